#!/bin/sh
# Builds the libFuzzer targets and runs each for SECONDS, one after the other.
#   tests/fuzz/run.sh SECONDS [TARGET...]     TARGET: safetensors config pytorch image serve
# Prints execs/s and the final corpus size of each; exits non-zero if any
# target finds a crash, a leak, a timeout or a sanitizer report (the input is
# then in $BUILD/artifacts/). Environment: BUILD (default build-fuzz in the
# source tree), JOBS (build parallelism, default 2), NICE (default 10).
set -eu

seconds=${1:?usage: run.sh SECONDS [safetensors|config|pytorch|image|serve ...]}
shift
targets=${*:-safetensors config pytorch image serve}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${BUILD:-$src/build-fuzz}
jobs=${JOBS:-2}
nice=${NICE:-10}

command -v clang++ >/dev/null || { echo "run.sh: clang++ not found (apt-get install clang libclang-rt-dev)" >&2; exit 2; }
if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIT_BUILD_FUZZERS=ON \
    -DVIT_BUILD_APPS=OFF -DVIT_BUILD_EXAMPLES=OFF -DVIT_BUILD_BENCHMARKS=OFF >/dev/null
fi
for t in $targets; do
  nice -n "$nice" cmake --build "$build" --target "fuzz_$t" -j "$jobs" >/dev/null
done

status=0
mkdir -p "$build/artifacts"
for t in $targets; do
  # The working corpus grows in the build tree; the committed seeds stay as they are.
  work=$build/corpus/$t
  mkdir -p "$work"
  log=$build/fuzz_$t.log
  # JSON past a few KB only repeats what is already covered, at a tenth of the speed.
  case $t in config) max_len=8192 ;; *) max_len=65536 ;; esac
  # -timeout: a single input taking 10 s is a bug (a hang or a blow-up);
  # -rss_limit_mb: so is one that needs 2 GB; -max_len: larger inputs only
  # slow the search down, the limits are exercised by the length fields.
  if nice -n "$nice" "$build/tests/fuzz/fuzz_$t" "$work" "$here/corpus/$t" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" \
      -artifact_prefix="$build/artifacts/$t-" -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    status=1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  files=$(find "$work" -type f | wc -l)
  bytes=$(cat "$work"/* 2>/dev/null | wc -c)
  printf '%-12s %-6s %10s execs %8s execs/s  corpus %5s files %8s bytes\n' \
    "$t" "$result" "${execs:-?}" "${rate:-?}" "$files" "$bytes"
  if [ "$result" = FAILED ]; then
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written|terminate' "$log" | head -20 >&2 || true
  fi
done
exit $status
