"""vit-search against numpy and Python's faiss, independently of the C++ code.

    search_check.py VIT_SEARCH VIT_CLASSIFY TEST_DATA WORKDIR

Writes a features folder as numpy would (np.save parts, several of them, a
failed image's record), takes a query image's embedding from vit-classify's
JSON, and checks that
  - vit-search --exact ranks the images as numpy's cosine over the parts does;
  - the index vit-search --build-faiss writes opens in Python's faiss, holds
    every image once (search.faiss.ids), and its search agrees with numpy;
  - vit-search's FAISS query agrees too.
"""
import json
import os
import shutil
import subprocess
import sys

import faiss
import numpy as np

search, classify, data, work = sys.argv[1:5]
model = os.path.join(data, "clip-tiny", "model")
query_image = os.path.join(data, "images", "chelsea.png")
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)

out = subprocess.run([classify, "--features", "--model", model, query_image], check=True, capture_output=True, text=True)
rec = json.loads(out.stdout.splitlines()[0])
query = np.array(rec["features"], dtype=np.float64)
kind, width = rec["kind"], len(rec["features"])

rng = np.random.default_rng(7)
names, rows = [], []
for p in range(4):
    n = 150 + 10 * p
    emb = (rng.standard_normal((n, width)) * rng.uniform(0.5, 3.0, (n, 1))).astype(np.float32)
    stem = os.path.join(work, "part-%05d-of-00004" % p)
    np.save(stem + ".npy", emb)
    with open(stem + ".jsonl", "w") as f:
        for r in range(n):
            name = "p%d/img-%03d.jpg" % (p, r)
            f.write(json.dumps({"image": name, "kind": kind, "row": r}) + "\n")
            names.append(name)
            rows.append(emb[r])
        f.write(json.dumps({"image": "bad.jpg", "error": "bad.jpg: not an image"}) + "\n")
x = np.stack(rows).astype(np.float64)
cos = (x @ query) / (np.linalg.norm(x, axis=1) * np.linalg.norm(query))
order = np.argsort(-cos, kind="stable")
want = [(names[i], cos[i]) for i in order]


def run_search(*extra):
    r = subprocess.run([search, "--index", work, "--model", model, "--image", query_image, "--json"] + list(extra),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()], r.stderr


def same(got, k, what):
    assert len(got) == min(k, len(want)), (what, len(got))
    for i, g in enumerate(got):
        assert g["image"] == want[i][0], (what, i, g, want[i])
        assert abs(g["score"] - want[i][1]) < 1e-5, (what, i, g, want[i])


got, err = run_search("--top-k", "40", "--exact")
same(got, 40, "exact")
assert "exact search over %d images in 4 parts" % len(names) in err, err

subprocess.run([search, "--index", work, "--build-faiss"], check=True, capture_output=True)
index = faiss.read_index(os.path.join(work, "search.faiss"))
assert index.ntotal == len(names) and index.d == width, (index.ntotal, index.d)
with open(os.path.join(work, "search.faiss.ids")) as f:
    ids = [json.loads(line) for line in f]
assert sorted(ids) == sorted(names)
meta = json.load(open(os.path.join(work, "search.faiss.json")))
assert meta["kind"] == kind and meta["dimension"] == width and meta["count"] == len(names), meta
q = (query / np.linalg.norm(query)).astype(np.float32)[None, :]
dist, label = index.search(q, 40)
same([{"image": ids[i], "score": float(d)} for d, i in zip(dist[0], label[0])], 40, "python faiss")

got, err = run_search("--top-k", "40")
same(got, 40, "vit-search faiss")
assert "faiss Flat search" in err, err
print("ok: numpy, Python's faiss and vit-search agree on %d images" % len(names))
