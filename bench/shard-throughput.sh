#!/bin/sh
# Throughput of sharded vit-classify runs on one machine: one task of
# --threads C against C tasks of --threads 1 (C = the cores), on the same
# images, alternated pair by pair; per dtype. Prints the images/s of each
# run, the median ratio, and the cost per million images.
#
#   bench/shard-throughput.sh build/examples/vit-classify /tmp/vit-large [images] [pairs] [dtypes]
#
# /tmp/vit-large: a full-size checkpoint, e.g. from
#   build/bench/vit-make-formula tests/data/vit-large-formula/config.json /tmp/vit-large
set -eu
cli=$1
model=$2
n=${3:-48}
pairs=${4:-3}
dtypes=${5:-f32 bf16 int8}
cores=$(nproc)
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/vit-shard-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/img"
i=0
while [ "$i" -lt "$n" ]; do
  for f in "$src"/tests/data/images/*; do
    [ "$i" -lt "$n" ] || break
    cp "$f" "$work/img/$i-$(basename "$f")"
    i=$((i + 1))
  done
done
find "$work/img" -type f | sort > "$work/list.txt"

now() { date +%s.%N; }
# One run: $1 tasks of $2 threads each, all started together; prints seconds.
run() {
  rm -rf "$work/out"
  t0=$(now)
  k=0
  while [ "$k" -lt "$1" ]; do
    /usr/bin/time -f "%M" -o "$work/rss.$k" "$cli" --model "$model" --dtype "$dtype" --threads "$2" \
      --files-from "$work/list.txt" --shard "$k/$1" --output "$work/out" 2>/dev/null &
    k=$((k + 1))
  done
  wait
  t1=$(now)
  [ "$(cat "$work"/out/part-*.jsonl | wc -l)" = "$n" ] || { echo "shard-throughput: a run lost images" >&2; exit 1; }
  echo "$t0 $t1" | awk '{ printf "%.3f", $2 - $1 }'
}
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "images $n, cores $cores, pairs $pairs, model $model"
printf '%-5s %-28s %-28s %-7s %-16s %-16s\n' dtype "1x$cores threads (s, img/s)" "${cores}x1 thread (s, img/s)" ratio "img/s per core" "core-h / M img"
for dtype in $dtypes; do
  : > "$work/ratios"
  : > "$work/one"
  : > "$work/many"
  p=0
  while [ "$p" -lt "$pairs" ]; do
    a=$(run 1 "$cores")
    rss_one=$(cat "$work/rss.0")
    b=$(run "$cores" 1)
    rss_many=$(cat "$work/rss.0")
    echo "$a" >> "$work/one"
    echo "$b" >> "$work/many"
    echo "$a $b" | awk '{ printf "%.4f\n", $1 / $2 }' >> "$work/ratios"  # >1: the tasks are faster
    p=$((p + 1))
  done
  one=$(median < "$work/one")
  many=$(median < "$work/many")
  ratio=$(median < "$work/ratios")
  echo "$dtype $one $many $ratio $n $cores $rss_one $rss_many" | awk '{
    per_core = $5 / $3 / $6
    printf "%-5s %-28s %-28s %-7.3f %-16.3f %-16.1f (peak RSS MB: one task %.0f, each of the tasks %.0f)\n", $1,
      sprintf("%.2f s, %.3f", $2, $5 / $2), sprintf("%.2f s, %.3f", $3, $5 / $3), $4, per_core, 1e6 / per_core / 3600, $7 / 1024, $8 / 1024 }'
  echo "  ratios (1-task time / ${cores}-task time): $(tr '\n' ' ' < "$work/ratios")"
done
