#!/usr/bin/python3
"""Seconds per GFLOP of the ViT family's full-size formula checkpoints, beside
ViT-L/32-384's, in one run.

Writes each model's formula checkpoint once (vit-make-formula, into --dir),
then runs `vit-bench --all-tokens --json` on each model in turn, --rounds
times, the models interleaved so that a slow phase of the machine touches
them all. Each run gives seconds per image and GFLOP per image (every token
through every layer, at the size the checkpoint's image processor gives);
their quotient is seconds per GFLOP. Prints a table per round, and the median
over the rounds of each model's s/GFLOP over ViT-L/32's in the same round
(the issue asks for at most 1.1 for DINOv2-L/14 and CLIP ViT-L/14).

Needs only Python's standard library.

  bench/family-speed.py --bench build/bench/vit-bench --make build/bench/vit-make-formula \\
      [--dir /tmp/formula] [--rounds 3] [--models vit-large,dinov2-large,...] [--json out.json]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")

# name -> config.json the formula checkpoint is made from
CONFIGS = {
    "vit-large": os.path.join(ROOT, "tests", "data", "vit-large-formula", "config.json"),
    "dinov2-large": os.path.join(HERE, "formula", "dinov2-large", "config.json"),
    "clip-vit-large-patch14": os.path.join(HERE, "formula", "clip-vit-large-patch14", "config.json"),
    "dinov2-base": os.path.join(HERE, "formula", "dinov2-base", "config.json"),
    "clip-vit-base-patch32": os.path.join(HERE, "formula", "clip-vit-base-patch32", "config.json"),
    "siglip-base-patch16-224": os.path.join(HERE, "formula", "siglip-base-patch16-224", "config.json"),
}
BASELINE = "vit-large"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", required=True, help="the vit-bench binary")
    p.add_argument("--make", required=True, help="the vit-make-formula binary")
    p.add_argument("--dir", default="/tmp/formula", help="where the checkpoints are written (about 1.2 GB per large model)")
    p.add_argument("--models", default=",".join(CONFIGS), help="comma separated, from: " + ", ".join(CONFIGS))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--reps", type=int, default=5, help="vit-bench --reps")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", default="f32", choices=["f32", "bf16", "int8"])
    p.add_argument("--json", help="also write every run to this file")
    a = p.parse_args()
    a.models = [m for m in a.models.split(",") if m]
    unknown = [m for m in a.models if m not in CONFIGS]
    if unknown:
        p.error("unknown model(s): " + ", ".join(unknown))
    if BASELINE not in a.models:
        a.models.insert(0, BASELINE)
    if a.rounds < 1 or a.reps < 1:
        p.error("--rounds and --reps must be positive")
    return a


def make(a, name):
    out = os.path.join(a.dir, name)
    if not os.path.exists(os.path.join(out, "model.safetensors")):
        subprocess.run([a.make, CONFIGS[name], out], check=True)
    return out


def bench(a, folder):
    cmd = [a.bench, "--model", folder, "--all-tokens", "--json", "--reps", str(a.reps),
           "--threads", str(a.threads), "--dtype", a.dtype]
    r = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(r.stdout)


def main():
    a = parse_args()
    folders = {m: make(a, m) for m in a.models}
    runs = []
    ratios = {m: [] for m in a.models}
    for rnd in range(1, a.rounds + 1):
        got = {m: bench(a, folders[m]) for m in a.models}
        base = got[BASELINE]["s_per_gflop"]
        print(f"round {rnd} ({a.dtype}, {a.threads} threads, batch 1, all tokens)")
        print(f"  {'model':<26}{'input':>9}{'GFLOP':>9}{'s/image':>10}{'s/GFLOP':>10}{'/ ViT-L/32':>12}")
        for m in a.models:
            g = got[m]
            ratio = g["s_per_gflop"] / base
            ratios[m].append(ratio)
            print(f"  {m:<26}{str(g['width']) + 'x' + str(g['height']):>9}{g['gflop_per_image']:>9.2f}"
                  f"{g['median_s_per_image']:>10.4f}{g['s_per_gflop']:>10.5f}{ratio:>12.3f}")
            runs.append(dict(g, round=rnd, name=m, ratio_to_vit_large=ratio))
        sys.stdout.flush()
    print(f"median over {a.rounds} round(s) of s/GFLOP / ViT-L/32's (range):")
    for m in a.models:
        if m != BASELINE:
            print(f"  {m:<26}{statistics.median(ratios[m]):.3f} ({min(ratios[m]):.3f}-{max(ratios[m]):.3f})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(runs, f, indent=1)


if __name__ == "__main__":
    main()
