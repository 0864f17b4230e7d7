#!/usr/bin/python3
"""Load test of vit-serve beside vit-bench, in one run.

Each round runs, one after the other on the same machine:
  1. vit-bench --batch 8          the forward's images/s at the server's batch size
  2. vit-bench --batch 1 --image  one image's forward, and decode + preprocess
  3. vit-serve on a free loopback port, then
     - C clients at once for each C in --concurrency, each sending requests
       back to back over one keep-alive connection: latency percentiles and
       images/s (answers / wall time of the level);
     - a burst of --burst requests at once (all queued behind one forward):
       every one must answer 200; the server's peak RSS (VmHWM) after it.
Prints one table per round and the medians over the rounds of the figures the
issue sets targets for:
  saturated images/s (the highest C)  /  vit-bench --batch 8 images/s
  median latency at C=1               /  (vit-bench --batch 1 + decode)
  peak RSS of the server (MB)

Needs only Python's standard library.

  bench/serve-load.py --serve build/apps/vit-serve/vit-serve --bench build/bench/vit-bench \\
      --model /tmp/vit-large [--rounds 3] [--json out.json]
"""
import argparse
import base64
import http.client
import json
import os
import signal
import statistics
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--serve", required=True, help="the vit-serve binary")
    p.add_argument("--bench", required=True, help="the vit-bench binary")
    p.add_argument("--model", required=True, help="checkpoint folder, e.g. from vit-make-formula")
    p.add_argument("--image", default=os.path.join(HERE, "..", "tests", "data", "images", "coffee.jpg"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", default="f32", choices=["f32", "bf16", "int8"])
    p.add_argument("--max-batch-size", type=int, default=8)
    p.add_argument("--concurrency", default="1,4,16", help="client counts, comma separated")
    p.add_argument("--requests", type=int, default=48, help="requests per concurrency level (at least one per client)")
    p.add_argument("--burst", type=int, default=64, help="requests sent at once for the RSS figure")
    p.add_argument("--encoding", default="json", choices=["json", "binary"],
                   help="JSON with base64 images, or the binary tensor extension")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--bench-reps", type=int, default=5)
    p.add_argument("--json", help="also write every figure to this file")
    a = p.parse_args()
    a.concurrency = [int(c) for c in a.concurrency.split(",")]
    if min(a.concurrency) < 1 or a.requests < 1 or a.burst < 1 or a.rounds < 1:
        p.error("counts must be positive")
    return a


def vit_bench(a, batch, image=None):
    cmd = [a.bench, "--model", a.model, "--batch", str(batch), "--threads", str(a.threads), "--dtype", a.dtype,
           "--reps", str(a.bench_reps), "--warmup", "1", "--json"]
    if image:
        cmd += ["--image", image]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def request_body(a, image_bytes):
    """(body, headers) of one infer request for one image, logits only."""
    if a.encoding == "json":
        body = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                       "data": [base64.b64encode(image_bytes).decode()]}],
                           "outputs": [{"name": "logits"}]}).encode()
        return body, {"Content-Type": "application/json"}
    element = struct.pack("<I", len(image_bytes)) + image_bytes
    head = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                   "parameters": {"binary_data_size": len(element)}}],
                       "outputs": [{"name": "logits"}]}).encode()
    return head + element, {"Content-Type": "application/octet-stream",
                            "Inference-Header-Content-Length": str(len(head))}


class Server:
    def __init__(self, a):
        cmd = [a.serve, "--model", a.model, "--port", "0", "--threads", str(a.threads), "--dtype", a.dtype,
               "--max-batch-size", str(a.max_batch_size), "--max-queue", str(max(64, a.burst))]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.port = None
        deadline = time.monotonic() + 300
        for line in self.proc.stderr:
            try:
                j = json.loads(line)
            except ValueError:
                continue
            if "listening" in j:
                self.port = int(j["listening"].rsplit(":", 1)[1])
            if j.get("event") == "ready":
                break
            if time.monotonic() > deadline:
                break
        if self.port is None or self.proc.poll() is not None:
            raise SystemExit("serve-load: vit-serve did not become ready: " + " ".join(cmd))
        # Keep reading the request log so the pipe never fills.
        self.log = []
        threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True).start()

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        c.request("GET", path)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data

    def peak_rss_mb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
        return float("nan")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=120)
        if rc != 0:
            raise SystemExit("serve-load: vit-serve exited with %d" % rc)


def load(server, path, body, headers, clients, total):
    """`clients` threads share `total` requests, each over its own connection.
    Returns (latencies in s, wall s, statuses)."""
    lat, statuses, lock = [], [], threading.Lock()
    left = [total]
    start = threading.Barrier(clients + 1)

    def client():
        c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
        start.wait()
        while True:
            with lock:
                if left[0] == 0:
                    break
                left[0] -= 1
            t0 = time.monotonic()
            c.request("POST", path, body=body, headers=headers)
            r = c.getresponse()
            r.read()
            dt = time.monotonic() - t0
            with lock:
                lat.append(dt)
                statuses.append(r.status)
        c.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join()
    return lat, time.monotonic() - t0, statuses


def percentile(xs, q):
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def one_round(a, body, headers):
    r = {"bench_b8": vit_bench(a, 8), "bench_b1": vit_bench(a, 1, a.image)}
    s = Server(a)
    try:
        if s.get("/v2/health/ready")[0] != 200:
            raise SystemExit("serve-load: vit-serve logged ready but /v2/health/ready does not answer 200")
        # The model's name is the folder's base name unless --name is given.
        name = os.path.basename(os.path.normpath(a.model))
        path = "/v2/models/%s/infer" % name
        # Warm up: the first forwards run while the weights are still packed.
        for clients in (1, a.max_batch_size):
            _, _, st = load(s, path, body, headers, clients, clients)
            if set(st) != {200}:
                raise SystemExit("serve-load: warm-up answered %s" % sorted(set(st)))
        levels = []
        for c in a.concurrency:
            lat, wall, st = load(s, path, body, headers, c, max(a.requests, c))
            if set(st) != {200}:
                raise SystemExit("serve-load: %d clients got statuses %s" % (c, sorted(set(st))))
            levels.append({"clients": c, "requests": len(lat), "images_per_s": len(lat) / wall,
                           "p50_s": percentile(lat, .5), "p90_s": percentile(lat, .9),
                           "p99_s": percentile(lat, .99), "max_s": max(lat)})
        r["peak_rss_mb_before_burst"] = s.peak_rss_mb()
        lat, wall, st = load(s, path, body, headers, a.burst, a.burst)
        if set(st) != {200}:
            raise SystemExit("serve-load: the burst of %d got statuses %s" % (a.burst, sorted(set(st))))
        r["burst"] = {"requests": a.burst, "images_per_s": a.burst / wall, "max_s": max(lat)}
        r["levels"] = levels
        r["peak_rss_mb"] = s.peak_rss_mb()
    finally:
        s.stop()
    b8 = 1.0 / r["bench_b8"]["median_s_per_image"]
    b1 = r["bench_b1"]["median_s_per_image"]
    dec = r["bench_b1"]["decode_s"]
    one = next(l for l in levels if l["clients"] == min(a.concurrency))
    top = max(levels, key=lambda l: l["clients"])
    r["throughput_ratio"] = top["images_per_s"] / b8
    r["latency_ratio"] = one["p50_s"] / (b1 + dec)
    return r


def main():
    a = parse_args()
    with open(a.image, "rb") as f:
        body, headers = request_body(a, f.read())
    rounds = []
    for i in range(a.rounds):
        r = one_round(a, body, headers)
        rounds.append(r)
        b8, b1 = r["bench_b8"], r["bench_b1"]
        print("round %d: vit-bench batch 8 %.3f images/s, batch 1 %.4f s + decode %.4f s; server peak RSS %.0f MB"
              % (i + 1, 1 / b8["median_s_per_image"], b1["median_s_per_image"], b1["decode_s"], r["peak_rss_mb"]))
        print("  %7s %8s %9s %8s %8s %8s %8s" % ("clients", "requests", "images/s", "p50 s", "p90 s", "p99 s", "max s"))
        for l in r["levels"]:
            print("  %7d %8d %9.3f %8.3f %8.3f %8.3f %8.3f" % (l["clients"], l["requests"], l["images_per_s"],
                                                            l["p50_s"], l["p90_s"], l["p99_s"], l["max_s"]))
        print("  burst of %d: all 200, %.3f images/s, slowest %.2f s; peak RSS %.0f MB before it"
              % (r["burst"]["requests"], r["burst"]["images_per_s"], r["burst"]["max_s"], r["peak_rss_mb_before_burst"]))
        print("  saturated / vit-bench b8 = %.3f; p50 at 1 client / (b1 + decode) = %.3f"
              % (r["throughput_ratio"], r["latency_ratio"]))
        sys.stdout.flush()
    med = lambda k: statistics.median(r[k] for r in rounds)
    summary = {"rounds": a.rounds, "encoding": a.encoding, "dtype": a.dtype, "threads": a.threads,
               "throughput_ratio": med("throughput_ratio"), "latency_ratio": med("latency_ratio"),
               "peak_rss_mb": med("peak_rss_mb"), "max_peak_rss_mb": max(r["peak_rss_mb"] for r in rounds)}
    print("median over %d rounds: throughput ratio %.3f (target >= 0.9), latency ratio %.3f (target <= 1.2), "
          "peak RSS %.0f MB (max %.0f, target < 1600)"
          % (a.rounds, summary["throughput_ratio"], summary["latency_ratio"], summary["peak_rss_mb"],
             summary["max_peak_rss_mb"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"summary": summary, "rounds": rounds}, f, indent=1)


if __name__ == "__main__":
    main()
