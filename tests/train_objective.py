"""vit-train-head reaches the optimum of its stated objective.

Writes the UCI digits (tests/data/digits) as PNG class folders, trains a head
with vit-train-head (features cached in the part format), then solves
mean cross-entropy + (l2 / 2) * ||W||^2 (bias not penalised) on the very same
cached features with an independent solver: Newton's method with the exact
Hessian in float64 numpy. The objectives must agree to 1e-6 relative, also at
the float32 weights in OUT/model.safetensors.

usage: train_objective.py TRAIN_HEAD MODEL WORK [COUNT] [L2]
"""
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def write_png_gray(path, a):
    h, w = a.shape
    raw = b"".join(b"\x00" + a[r].astype(np.uint8).tobytes() for r in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def write_digits(out, count):
    d = np.loadtxt(gzip.open(os.path.join(HERE, "data/digits/digits.csv.gz")), delimiter=",")
    assert d.shape == (1797, 65), d.shape
    for i, row in enumerate(d[:count]):
        c = int(row[64])
        os.makedirs(f"{out}/{c}", exist_ok=True)
        write_png_gray(f"{out}/{c}/{i:04d}.png", np.floor(row[:64].reshape(8, 8) * 255 / 16 + 0.5))


def read_safetensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", (k, v["dtype"])
        s, e = v["data_offsets"]
        out[k] = np.frombuffer(b[8 + n + s:8 + n + e], dtype="<f4").reshape(v["shape"])
    return out


def read_cache(cache):
    rows = {}
    for line in open(f"{cache}/part-00000-of-00001.jsonl"):
        r = json.loads(line)
        if "row" in r:
            rows[r["image"]] = r["row"]
    raw = open(f"{cache}/part-00000-of-00001.npy", "rb").read()
    hlen = struct.unpack("<H", raw[8:10])[0]
    header = raw[10:10 + hlen].decode()
    n, w = [int(x) for x in header.split("(")[1].split(")")[0].split(",")]
    x = np.frombuffer(raw[10 + hlen:], dtype="<f4")[: n * w].reshape(n, w)
    return rows, x


def objective(w, b, x, y, l2, grad=False):
    z = x @ w.T + b
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    s = e.sum(axis=1, keepdims=True)
    n = len(y)
    f = float(np.mean(m[:, 0] + np.log(s[:, 0]) - z[np.arange(n), y]) + 0.5 * l2 * np.sum(w * w))
    if not grad:
        return f
    p = e / s
    p[np.arange(n), y] -= 1
    return f, p.T @ x / n + l2 * w, p.sum(axis=0) / n, e / s


def newton(x, y, k, l2):
    """Newton's method with the exact Hessian and a backtracking line search."""
    n, f = x.shape
    xt = np.hstack([x, np.ones((n, 1))])  # the bias as a last, unpenalised, column
    theta = np.zeros((k, f + 1))
    reg = np.full(f + 1, l2)
    reg[-1] = 0
    for it in range(100):
        w, b = theta[:, :f], theta[:, f]
        obj, gw, gb, p = objective(w, b, x, y, l2, grad=True)
        g = np.hstack([gw, gb[:, None]]).ravel()
        if np.linalg.norm(g) < 1e-11:
            break
        a = (p[:, :, None] * xt[:, None, :]).reshape(n, -1)  # [n, k*(f+1)]
        h = -(a.T @ a) / n
        for c in range(k):
            blk = (xt * p[:, c:c + 1]).T @ xt / n
            h[c * (f + 1):(c + 1) * (f + 1), c * (f + 1):(c + 1) * (f + 1)] += blk + np.diag(reg)
        # The biases' common shift is a null direction (softmax ignores it): least squares.
        step = -np.linalg.lstsq(h, g, rcond=1e-13)[0].reshape(k, f + 1)
        t = 1.0
        while t > 1e-10:
            cand = theta + t * step
            if objective(cand[:, :f], cand[:, f], x, y, l2) <= obj + 1e-4 * t * float(g @ step.ravel()):
                break
            t *= 0.5
        theta = theta + t * step
    w, b = theta[:, :f], theta[:, f]
    return objective(w, b, x, y, l2), np.linalg.norm(g), w, b


def main():
    train_head, model, work = sys.argv[1], sys.argv[2], sys.argv[3]
    count = int(sys.argv[4]) if len(sys.argv) > 4 else 1797
    l2 = float(sys.argv[5]) if len(sys.argv) > 5 else 1e-3
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    write_digits(f"{work}/digits", count)
    cache, out = f"{work}/cache", f"{work}/out"
    subprocess.run([train_head, "--model", model, "--train", f"{work}/digits", "--output", out, "--features-cache",
                    cache, "--l2", repr(l2), "--threads", "2"], check=True)
    report = json.load(open(f"{out}/training.json"))
    rows, feats = read_cache(cache)
    images = sorted(rows)
    x = np.array([feats[rows[i]] for i in images], dtype=np.float64)
    y = np.array([int(os.path.basename(os.path.dirname(i))) for i in images])
    assert x.shape[0] == count and sorted(set(y)) == list(range(10))
    k = 10
    best, gnorm, _, _ = newton(x, y, k, l2)
    t = read_safetensors(f"{out}/model.safetensors")
    w, b = t["classifier.weight"].astype(np.float64), t["classifier.bias"].astype(np.float64)
    assert w.shape == (k, x.shape[1]) and b.shape == (k,)
    at_saved = objective(w, b, x, y, l2)
    print(f"features {x.shape}, l2 {l2}: Newton {best:.12g} (gradient norm {gnorm:.1e}); "
          f"vit-train-head {report['objective']:.12g} (gradient norm {report['gradient_norm']:.1e}, "
          f"{report['iterations']} iterations); at the float32 weights {at_saved:.12g}")
    assert report["gradient_norm"] <= 1e-6 and report["converged"], report["gradient_norm"]
    assert abs(report["objective"] - best) <= 1e-6 * abs(best), (report["objective"], best)
    assert abs(at_saved - best) <= 1e-6 * abs(best), (at_saved, best)
    assert report["l2"] == l2
    acc = float(np.mean(np.argmax(x @ w.T + b, axis=1) == y))
    assert abs(acc - report["train"]["accuracy"]) <= 1.0 / len(y) + 1e-12, (acc, report["train"]["accuracy"])
    shutil.rmtree(work, ignore_errors=True)
    print("ok")


if __name__ == "__main__":
    main()
