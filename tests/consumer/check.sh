#!/bin/sh
# Installs vit from SOURCE_DIR into a scratch prefix, builds tests/consumer
# against it with find_package(vit) and runs it on a fixture.
#   check.sh SOURCE_DIR WORK_DIR [vit|core] [CMAKE_ARG...]
# TARGET vit (default) classifies an image file with vit::vit; core classifies
# the fixture's resized pixels with vit::core alone. CMAKE_ARGs go to the consumer's configure, e.g.
# -DVIT_USE_SYSTEM_STB=OFF to compile stb from its headers.
set -eu
src=$1
work=$2
target=${3:-vit}
[ $# -ge 3 ] && shift 3 || shift $#
rm -rf "$work" && mkdir -p "$work"
cmake -S "$src" -B "$work/build" -DVIT_BUILD_TESTS=OFF -DVIT_BUILD_APPS=OFF -DVIT_BUILD_EXAMPLES=OFF -DVIT_BUILD_BENCHMARKS=OFF \
  -DCMAKE_INSTALL_PREFIX="$work/prefix" >/dev/null
cmake --install "$work/build" >/dev/null
cmake -S "$src/tests/consumer" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCONSUMER_TARGET="$target" "$@" >/dev/null
cmake --build "$work/consumer" >/dev/null
model=$src/tests/data/vit-tiny-random/model
if [ "$target" = core ]; then
  label=$("$work/consumer/consumer" "$model" "$src/tests/data/vit-tiny-random/reference.safetensors")
else
  label=$("$work/consumer/consumer" "$model" "$src/tests/data/images/coco_cats.png")
fi
echo "consumer (vit::$target) printed: $label"
test "$label" = "hen"
# With stb from source, the program carries it and needs no libstb.
case " $* " in
  *" -DVIT_USE_SYSTEM_STB=OFF "*)
    if readelf -d "$work/consumer/consumer" | grep -q 'libstb'; then
      echo "consumer links libstb although VIT_USE_SYSTEM_STB=OFF" >&2
      exit 1
    fi
    nm -C "$work/consumer/consumer" | grep -q ' stbi_load_from_memory$' || {
      echo "consumer has no stbi_load_from_memory of its own" >&2
      exit 1
    } ;;
esac
