#!/bin/sh
# Sanitizer job: the unit tests under AddressSanitizer + UndefinedBehaviorSanitizer
# (g++), then each libFuzzer target for a short while (clang, when present).
# Exits non-zero on any test failure, sanitizer report, crash or leak.
#
#   .ci/sanitize.sh                    # what CI runs (~10-15 min on 2 cores)
#   FUZZ_SECONDS=600 .ci/sanitize.sh   # longer fuzzing
#   VIT_TSAN=1 .ci/sanitize.sh         # also the thread tests under ThreadSanitizer
#
# Environment: JOBS (build parallelism, default 2), FUZZ_SECONDS (per fuzz
# target, default 60; 0 skips fuzzing), VIT_TSAN (1 adds the TSan build),
# BUILD_ROOT (where build-asan, build-fuzz and build-tsan go; default the
# source tree).
#
# ThreadSanitizer is opt-in because it needs a third full build of the tests
# (about as long as the ASan one); it runs only the [threads] tests:
#   cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
#     -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer" \
#     -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread \
#     -DVIT_BUILD_APPS=OFF -DVIT_BUILD_EXAMPLES=OFF -DVIT_BUILD_BENCHMARKS=OFF
#   make -C build-tsan vit_tests && TSAN_OPTIONS=halt_on_error=1 build-tsan/tests/vit_tests '[threads]'
set -eu

src=$(cd "$(dirname "$0")/.." && pwd)
root=${BUILD_ROOT:-$src}
jobs=${JOBS:-2}
fuzz_seconds=${FUZZ_SECONDS:-60}

step() { printf '\n=== %s (%s)\n' "$1" "$(date +%T)"; }

# ---- packages: what the build needs, plus clang's libFuzzer runtime
step "packages"
packages="g++ cmake make catch2 libeigen3-dev nlohmann-json3-dev libstb-dev libjpeg-dev"
[ "$fuzz_seconds" != 0 ] && packages="$packages clang libclang-rt-dev"
missing=""
for p in $packages; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "sanitize.sh: missing packages:$missing (run as root to install them)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi

# ---- unit tests under ASan + UBSan
san="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
# GCC 12 warns about libstdc++ <regex> (Catch2 uses it) under -fsanitize: false positives.
warn="-Wno-maybe-uninitialized"
# -O1 with line tables only: about half the build time of -O2 -g, and the
# reports still name file and line.
opt="-O1 -g1 -DNDEBUG"
step "ASan+UBSan build"
cmake -S "$src" -B "$root/build-asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=g++ -DCMAKE_CXX_FLAGS="$san $warn" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$opt" \
  -DCMAKE_EXE_LINKER_FLAGS="$san" \
  -DVIT_BUILD_APPS=OFF -DVIT_BUILD_EXAMPLES=OFF -DVIT_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$root/build-asan" --target vit_tests -j "$jobs"

step "vit_tests under ASan+UBSan, without [large]"
# detect_stack_use_after_return: the forward pass hands out pointers into
# workspaces; halt_on_error: a UBSan report must fail the job, not scroll by.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1:check_initialization_order=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  "$root/build-asan/tests/vit_tests" '~[large]'

# ---- vit-serve under ASan+UBSan: its tests (hostile requests included) on an
# instrumented server. The timing test and the browser test are left to the
# plain build: under ASan they measure the sanitizer.
if dpkg -s libboost-dev >/dev/null 2>&1; then
  step "vit-serve under ASan+UBSan"
  # -fno-sanitize=vptr: UBSan's vptr check reports Boost.System's constant-
  # initialised error categories as "invalid vptr" (a known false positive,
  # reported against Boost for years); every other check stays on.
  cmake -S "$src" -B "$root/build-asan-serve" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER=g++ -DCMAKE_CXX_FLAGS="$san -fno-sanitize=vptr $warn" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$opt" \
    -DCMAKE_EXE_LINKER_FLAGS="$san" \
    -DVIT_BUILD_BENCHMARKS=OFF >/dev/null
  cmake --build "$root/build-asan-serve" --target vit-serve vit-classify -j "$jobs"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$root/build-asan-serve" -L serve -E 'idle_and_slow|test_browser' -j "$jobs" --output-on-failure
fi

# ---- ThreadSanitizer, on request
if [ "${VIT_TSAN:-0}" = 1 ]; then
  step "TSan build"
  tsan="-fsanitize=thread -fno-omit-frame-pointer"
  cmake -S "$src" -B "$root/build-tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER=g++ -DCMAKE_CXX_FLAGS="$tsan" -DCMAKE_EXE_LINKER_FLAGS="$tsan" \
    -DVIT_BUILD_APPS=OFF -DVIT_BUILD_EXAMPLES=OFF -DVIT_BUILD_BENCHMARKS=OFF >/dev/null
  cmake --build "$root/build-tsan" --target vit_tests -j "$jobs"
  step "[threads] under TSan"
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 "$root/build-tsan/tests/vit_tests" '[threads]'
fi

# ---- fuzzing
if [ "$fuzz_seconds" = 0 ]; then
  echo "fuzzing skipped (FUZZ_SECONDS=0)"
elif ! command -v clang++ >/dev/null; then
  echo "fuzzing skipped: no clang++"
else
  step "fuzz targets, ${fuzz_seconds}s each"
  BUILD="$root/build-fuzz" JOBS="$jobs" NICE=0 "$src/tests/fuzz/run.sh" "$fuzz_seconds"
fi
step "sanitizers: all clean"
