#!/bin/sh
# Throughput of sharded vit-classify runs on one machine: one task of
# --threads C against C tasks of --threads 1 (C = the cores), on the same
# images, alternated pair by pair, per dtype. Two figures per run:
#   whole: images / wall time of the whole run, model loading included;
#   steady: images/s once loaded, from the tasks' per-chunk progress lines
#           (first to last chunk), summed over the tasks.
# Prints the medians, the median ratio of each pair, the cost per million
# images (from the steady rate of the C-task runs) and the peak RSS.
#
#   bench/shard-throughput.sh build/apps/vit-classify/vit-classify MODEL_DIR [images] [pairs] [dtypes]
#
# MODEL_DIR: a full-size checkpoint, e.g. from
#   build/bench/vit-make-formula tests/data/vit-large-formula/config.json /tmp/vit-large
# For bf16 and int8, a folder converted with vit-convert (MODEL_DIR-bf16,
# MODEL_DIR-int8) is used when it exists, as a large run would.
set -eu
cli=$1
model=$2
n=${3:-96}
pairs=${4:-3}
dtypes=${5:-f32 bf16 int8}
chunk=8
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
# Stamps each line of stdin with the time it arrived.
stamp() { while IFS= read -r line; do echo "$(now) $line"; done; }
# One run of $1 tasks of $2 threads each, started together: prints
# "wall_seconds steady_images_per_s".
run() {
  rm -rf "$work/out"
  t0=$(now)
  k=0
  while [ "$k" -lt "$1" ]; do
    ( /usr/bin/time -f "%M" -o "$work/rss.$k" "$cli" --model "$m" --dtype "$dtype" --threads "$2" --chunk "$chunk" \
        --batch "$chunk" --files-from "$work/list.txt" --shard "$k/$1" --output "$work/out" 2>&1 >/dev/null |
        stamp > "$work/progress.$k" ) &
    k=$((k + 1))
  done
  wait
  t1=$(now)
  [ "$(cat "$work"/out/part-*.jsonl | wc -l)" = "$n" ] || { echo "shard-throughput: a run lost images" >&2; exit 1; }
  steady=0
  k=0
  while [ "$k" -lt "$1" ]; do
    # "T vit-classify: part...: D/N images, ..." -> rate between the first and last chunk
    r=$(sed -n 's|^\([0-9.]*\) vit-classify: [^:]*: \([0-9]*\)/.*|\1 \2|p' "$work/progress.$k" |
      awk 'NR == 1 { t = $1; d = $2 } { T = $1; D = $2 } END { print (T > t) ? (D - d) / (T - t) : 0 }')
    steady=$(echo "$steady $r" | awk '{ print $1 + $2 }')
    k=$((k + 1))
  done
  echo "$t0 $t1 $steady" | awk '{ printf "%.3f %.4f", $2 - $1, $3 }'
}
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "images $n, cores $cores, pairs $pairs, chunk $chunk, model $model"
for dtype in $dtypes; do
  m=$model
  [ "$dtype" != f32 ] && [ -d "$model-$dtype" ] && m=$model-$dtype
  : > "$work/res"
  p=0
  while [ "$p" -lt "$pairs" ]; do
    a=$(run 1 "$cores")
    rss_one=$(cat "$work/rss.0")
    b=$(run "$cores" 1)
    rss_many=$(cat "$work/rss.0")
    echo "$a $b" >> "$work/res"
    p=$((p + 1))
  done
  # columns: wall1 steady1 wallC steadyC
  w1=$(awk '{ print $1 }' "$work/res" | median)
  s1=$(awk '{ print $2 }' "$work/res" | median)
  wc_=$(awk '{ print $3 }' "$work/res" | median)
  sc=$(awk '{ print $4 }' "$work/res" | median)
  rw=$(awk '{ print $1 / $3 }' "$work/res" | median)
  rs=$(awk '{ print $4 / $2 }' "$work/res" | median)
  echo "$dtype ($m)"
  echo "$w1 $s1 $wc_ $sc $rw $rs $n $cores $rss_one $rss_many" | awk '{
    printf "  1 task x %d threads: whole %.2f s (%.3f img/s), steady %.3f img/s; peak RSS %.0f MB\n", $8, $1, $7 / $1, $2, $9 / 1024
    printf "  %d tasks x 1 thread: whole %.2f s (%.3f img/s), steady %.3f img/s; peak RSS %.0f MB each\n", $8, $3, $7 / $3, $4, $10 / 1024
    printf "  throughput ratio, %d tasks / 1 task (median of pairs): whole %.3f, steady %.3f\n", $8, $5, $6
    printf "  cost (steady, %d tasks): %.3f img/s per core, %.1f core-hours per million images\n", $8, $4 / $8, 1e6 / ($4 / $8) / 3600 }'
  echo "  pairs (wall1 steady1 wall$cores steady$cores): $(tr '\n' ';' < "$work/res")"
done
