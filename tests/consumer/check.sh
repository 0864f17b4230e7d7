#!/bin/sh
# Installs vit from SOURCE_DIR into a scratch prefix, builds tests/consumer
# against it with find_package(vit), and runs it on a fixture.
set -eu
src=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
cmake -S "$src" -B "$work/build" -DVIT_BUILD_TESTS=OFF -DVIT_BUILD_EXAMPLES=OFF -DVIT_BUILD_BENCHMARKS=OFF \
  -DCMAKE_INSTALL_PREFIX="$work/prefix" >/dev/null
cmake --install "$work/build" >/dev/null
cmake -S "$src/tests/consumer" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/consumer" >/dev/null
label=$("$work/consumer/consumer" "$src/tests/data/vit-tiny-random/model" "$src/tests/data/images/coco_cats.png")
echo "consumer printed: $label"
test "$label" = "hen"
