#!/usr/bin/env python3
"""The Python package's speed (BENCHMARKS.md, "Python"), in one run:

1. Model.forward (batch 1, all tokens, 2 threads) against `vit-bench --all-tokens`,
   alternating rounds, medians;
2. two Python threads each running a one-thread forward against one thread alone;
3. vit against torchvision's vit_l_32 (at 384 px: ViT-L/32-384's geometry, random
   weights) in this process, fp32, batch 1 and 8, both on 2 threads.

    python bench/python-bench.py --model /tmp/vit-large --bench build/bench/vit-bench
(the model made by vit-make-formula; run with the venv's python that has vit).
For PyTorch, give it OpenBLAS as ../shared/peers does (Debian's default
libblas.so.3 is the reference BLAS, about 100x slower): apt-get install
libopenblas0-openmp, then run with LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp
OPENBLAS_CORETYPE=SkylakeX OMP_NUM_THREADS=2.
"""
import argparse
import json
import statistics
import subprocess
import threading
import time

import numpy as np
import vit


def timed(fn, reps, warmup=1):
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--bench", required=True, help="the vit-bench binary")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--no-torch", action="store_true")
    a = p.parse_args()
    rng = np.random.default_rng(0)
    res = {}

    def report(key, value):
        res[key] = value
        print(json.dumps({key: value}), flush=True)

    # 1. forward vs vit-bench --all-tokens
    m2 = vit.load_model(a.model, threads=2)
    m2.wait_packed()
    h, w = m2.config["input_size"]
    px1 = rng.uniform(-1, 1, (1, 3, h, w)).astype(np.float32)
    py_s, cli_s = [], []
    for _ in range(a.rounds):
        r = subprocess.run([a.bench, "--model", a.model, "--all-tokens", "--threads", "2", "--reps", str(a.reps), "--json"],
                           capture_output=True, text=True, check=True)
        cli_s.append(json.loads(r.stdout.strip().splitlines()[-1])["median_s_per_image"])
        py_s.append(timed(lambda: m2.forward(px1), a.reps, warmup=2))
    report("forward_b1_t2_s", statistics.median(py_s))
    report("vit_bench_all_tokens_b1_t2_s", statistics.median(cli_s))
    report("forward_over_vit_bench", statistics.median([x / y for x, y in zip(py_s, cli_s)]))

    # 2. two Python threads, one-thread forwards each
    m1 = vit.load_model(a.model, threads=1)
    m1.wait_packed()
    n = max(3, a.reps // 2)
    c0 = time.process_time()
    one = timed(lambda: [m1.forward(px1) for _ in range(n)], 1)
    one_cpu = (time.process_time() - c0) / 2  # warmup and timed call alike

    def two_threads():
        ts = [threading.Thread(target=lambda: [m1.forward(px1) for _ in range(n)]) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    c0 = time.process_time()
    both = timed(two_threads, 1)
    both_cpu = (time.process_time() - c0) / 2
    report("one_thread_s_per_forward", one / n)
    report("two_threads_wall_over_one", both / one)
    # Under load the process's CPU share caps the wall ratio; CPU time shows serialisation.
    report("two_threads_cpu_per_forward_over_one", (both_cpu / (2 * n)) / (one_cpu / n))
    del m1

    # 3. torchvision's vit_l_32 in this process
    if not a.no_torch:
        import torch
        import torchvision

        torch.set_num_threads(2)
        tv = torchvision.models.vit_l_32(weights=None, image_size=h).eval()
        for b in (1, 8):
            px = rng.uniform(-1, 1, (b, 3, h, w)).astype(np.float32)
            tpx = torch.from_numpy(px)
            reps = a.reps if b == 1 else max(2, a.reps // 3)
            with torch.inference_mode():
                t_torch = timed(lambda: tv(tpx), reps) / b
            t_vit = timed(lambda: m2.forward(px), reps) / b
            report(f"b{b}_vit_s_per_image", t_vit)
            report(f"b{b}_torch_s_per_image", t_torch)
            report(f"b{b}_torch_over_vit", t_torch / t_vit)
        report("torch", torch.__version__)
        report("torchvision", torchvision.__version__)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
