#!/bin/sh
# Times vit-bench against ONNX Runtime and PyTorch on the same machine, the
# runs interleaved (ours, theirs, ours, theirs, ...) so that the host's clock
# drift hits both sides alike, and prints a Markdown table of medians and of
# the median ratio ours/theirs taken pair by pair.
#
#   bench/compare-peers.sh PEERS_DIR MODEL_DIR [ROUNDS]
#
# PEERS_DIR: a prepared copy of the peers harness (its README: apt packages,
# `npm ci`, and the exported vit_l32_384.onnx / vit_l32_384.int8.onnx, which
# its run_all.sh makes). MODEL_DIR: the ViT-L/32 checkpoint folder
# (vit-make-formula writes one). ROUNDS: pairs per comparison (default 3).
# VIT_BENCH: the vit-bench binary (default build/bench/vit-bench); PY: the
# Python with Debian's python3-torch (default /usr/bin/python3).
# Only the two processes being timed should be running.
set -eu
[ $# -ge 2 ] || { sed -n '2,15p' "$0"; exit 2; }
PEERS=$(cd "$1" && pwd)
MODEL=$2
ROUNDS=${3:-3}
VIT_BENCH=${VIT_BENCH:-build/bench/vit-bench}
PY=${PY:-/usr/bin/python3}
[ -x "$VIT_BENCH" ] || { echo "no vit-bench at $VIT_BENCH (set VIT_BENCH)" >&2; exit 2; }
[ -s "$PEERS/vit_l32_384.onnx" ] && [ -s "$PEERS/vit_l32_384.int8.onnx" ] ||
    { echo "$PEERS: run its run_all.sh once (it exports the ONNX models)" >&2; exit 2; }

# The peers' own settings (see their run_all.sh): OpenBLAS with its AVX-512
# kernels for PyTorch, 2 threads everywhere, glibc malloc kept from
# returning memory (page faults are expensive on this VM).
TORCH="env LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp OPENBLAS_CORETYPE=SkylakeX OMP_NUM_THREADS=2
 GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=17179869184 $PY $PEERS/torch_vit.py"
ORT="node $PEERS/ort_vit.mjs"

out=$(mktemp)
trap 'rm -f "$out"' EXIT

# pair LABEL BATCH "OURS" "THEIRS": ROUNDS alternating runs, one JSON line each.
pair() {
    reps=11; warm=3
    [ "$2" = 1 ] || { reps=5; warm=1; }
    i=0
    while [ $i -lt "$ROUNDS" ]; do
        o=$($3 --batch "$2" --reps $reps --warmup $warm --threads 2 --json | tail -n 1)
        t=$(cd "$PEERS" && $4 --batch "$2" --reps $reps --warmup $warm | tail -n 1)
        echo "$1|$2|$o|$t" >> "$out"
        i=$((i + 1))
    done
}

for b in 1 8; do
    pair "fp32 vs ONNX Runtime fp32" $b "$VIT_BENCH --model $MODEL --dtype f32" "$ORT --model vit_l32_384.onnx"
    pair "int8 vs ONNX Runtime int8" $b "$VIT_BENCH --model $MODEL --dtype int8" "$ORT --model vit_l32_384.int8.onnx"
    pair "bf16 vs PyTorch bf16" $b "$VIT_BENCH --model $MODEL --dtype bf16" "$TORCH --mode bf16"
    pair "fp32 vs PyTorch fp32" $b "$VIT_BENCH --model $MODEL --dtype f32" "$TORCH --mode eager"
done

"$PY" - "$out" <<'EOF'
import json, statistics as st, sys
rows = {}
for line in open(sys.argv[1]):
    label, batch, ours, theirs = line.rstrip("\n").split("|", 3)
    o, t = json.loads(ours), json.loads(theirs)
    rows.setdefault((label, int(batch)), []).append(
        (o["median_s_per_image"], t["median_s_per_image"], o["peak_rss_mb"], t["peak_rss_mib"], o["ready_s"]))
print("| comparison | batch | vit s/image | peer s/image | ratio vit/peer (median, min-max) | vit peak RSS MB | peer peak RSS MB | vit ready s |")
print("|---|---:|---:|---:|---|---:|---:|---:|")
for (label, batch), r in rows.items():
    ratios = [a / b for a, b, *_ in r]
    print(f"| {label} | {batch} | {st.median(a for a, *_ in r):.4f} | {st.median(x[1] for x in r):.4f} | "
          f"{st.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f}) | {st.median(x[2] for x in r):.0f} | "
          f"{st.median(x[3] for x in r):.0f} | {st.median(x[4] for x in r):.2f} |")
EOF
