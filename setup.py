# The extension module vit._vit (see pyproject.toml). Compiled like the CMake
# Release build of vit::vit: -O3, libjpeg-turbo for JPEG (VIT_HAVE_LIBJPEG=1),
# Debian's compiled libstb or else src/vit_stb.cpp.
import os
import re
import sys
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

root = Path(__file__).resolve().parent
os.chdir(root)  # setuptools wants paths relative to this file

# The hub-id resolver vit-classify uses (apps/common/hub.hpp): one include directory.
hub_dir = "apps"

version = re.search(r'#define VIT_VERSION_STRING "([^"]+)"', (root / "include/vit/version.hpp").read_text()).group(1)


def first_dir(candidates, name):
    return next((d for d in candidates if (Path(d) / name).exists()), None)


multiarch = sys.implementation._multiarch if hasattr(sys.implementation, "_multiarch") else ""
lib_dirs = [d for d in (f"/usr/lib/{multiarch}", "/usr/lib", "/usr/local/lib") if d and Path(d).is_dir()]
eigen = first_dir(["/usr/include/eigen3", "/usr/local/include/eigen3"], "Eigen/Core")
stb = first_dir(["/usr/include/stb", "/usr/local/include/stb", "/usr/include"], "stb_image.h")
if not eigen or not stb:
    sys.exit("vit: Eigen and stb headers are needed (Debian: apt-get install libeigen3-dev libstb-dev nlohmann-json3-dev)")

sources = ["python/src/vit_python.cpp"]
libraries = []
macros = []
# Debian's libstb-dev ships stb compiled (as vit::vit links it); otherwise compile it here.
if first_dir(lib_dirs, "libstb.so"):
    libraries.append("stb")
else:
    sources.append("src/vit_stb.cpp")
# libjpeg-turbo decodes JPEG as Pillow does (VIT_WITH_LIBJPEG in CMake).
if os.environ.get("VIT_WITH_LIBJPEG", "1") != "0" and first_dir(["/usr/include", "/usr/local/include"], "jpeglib.h"):
    libraries.append("jpeg")
    macros.append(("VIT_HAVE_LIBJPEG", "1"))

# The tokenizers of the text towers (vit::text in CMake): utf8proc for both,
# sentencepiece for SigLIP's; without one, that tokenizer throws vit.Error naming it.
inc_dirs = ["/usr/include", "/usr/local/include"]
if first_dir(inc_dirs, "utf8proc.h") and first_dir(lib_dirs, "libutf8proc.so"):
    libraries.append("utf8proc")
    macros.append(("VIT_HAVE_UTF8PROC", "1"))
if first_dir(inc_dirs, "sentencepiece_processor.h") and first_dir(lib_dirs, "libsentencepiece.so"):
    libraries.append("sentencepiece")
    macros.append(("VIT_HAVE_SENTENCEPIECE", "1"))

ext = Pybind11Extension(
    "vit._vit",
    sources,
    include_dirs=["include", hub_dir, eigen, stb],
    libraries=libraries,
    define_macros=macros + [("NDEBUG", "1")],
    extra_compile_args=["-O3", "-Wall", "-Wextra", "-pthread"],
    extra_link_args=["-pthread"],
    cxx_std=17,
    depends=[str(p) for p in sorted(Path("include").rglob("*.hpp"))] + [f"{hub_dir}/common/hub.hpp"],
)

# Intermediate files go under build/python (or $VIT_PYTHON_BUILD_DIR), apart from CMake's.
build_base = os.environ.get("VIT_PYTHON_BUILD_DIR", "build/python")
os.makedirs(build_base, exist_ok=True)

setup(
    version=version,
    ext_modules=[ext],
    cmdclass={"build_ext": build_ext},
    options={"build": {"build_base": build_base}, "egg_info": {"egg_base": build_base}},
    zip_safe=False,
)
