#!/bin/sh
# ctest's python_install: builds the package as a user would, offline, and
# installs it into venvs under BUILD (the build folder):
#   BUILD/python/venv        pip install --no-build-isolation --no-index SRC (the tests run here)
#   BUILD/python/venv-wheel  a fresh venv, the wheel of pip wheel installed, imported
# Usage: install.sh PYTHON SRC BUILD
set -eu
py=$1 src=$2 build=$3/python
export VIT_PYTHON_BUILD_DIR="$build/setuptools" PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
mkdir -p "$build"
rm -rf "$build/venv" "$build/venv-wheel" "$build/wheel"
"$py" -m venv --system-site-packages "$build/venv"
"$build/venv/bin/pip" install -q --no-build-isolation --no-index "$src"
"$build/venv/bin/pip" wheel -q --no-build-isolation --no-index --no-deps -w "$build/wheel" "$src"
"$py" -m venv --system-site-packages "$build/venv-wheel"
"$build/venv-wheel/bin/pip" install -q --no-index "$build"/wheel/vit-*.whl
cd "$build"
"$build/venv-wheel/bin/python" -c 'import vit, sys; assert "venv-wheel" in vit.__file__, vit.__file__; print("vit", vit.__version__, "from", vit.__file__)'
