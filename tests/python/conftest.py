# Fixtures for the tests of the Python package. Run by ctest (label python),
# which installs the package into a venv under the build folder and sets
# VIT_CLASSIFY to the vit-classify binary; by hand:
#   VIT_CLASSIFY=build/apps/vit-classify/vit-classify VENV/bin/python -m pytest tests/python
import json
import os
import shutil
import struct
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

DATA = Path(os.environ.get("VIT_TEST_DATA", Path(__file__).resolve().parents[1] / "data"))
IMAGES = ["coco_cats.png", "chelsea.png", "camera_gray.png", "coffee.jpg", "tiny_7x5.png"]
FAMILIES = ["dinov2-tiny", "dinov2-tiny-swiglu", "dinov2-tiny-cls", "dinov2-registers-tiny", "clip-tiny", "siglip-tiny",
            "deit-tiny-distilled"]


def read_safetensors(path):
    """{name: ndarray} of a safetensors file (numpy only)."""
    raw = Path(path).read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    dtypes = {"F32": "<f4", "F64": "<f8", "U8": "u1", "F16": "<f2", "I64": "<i8"}
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(raw[8 + n + a : 8 + n + b], dtype=dtypes[v["dtype"]]).reshape(v["shape"])
    return out


def assert_releases_gil(call):
    """Runs call() on a thread while this one counts ticks: holding the GIL,
    the call would leave no tick inside its middle 80%."""
    span = {}

    def work():
        span["start"] = time.perf_counter()
        call()
        span["end"] = time.perf_counter()

    t = threading.Thread(target=work)
    ticks = []
    t.start()
    while t.is_alive():
        ticks.append(time.perf_counter())
    t.join()
    a, b = span["start"], span["end"]
    inside = [x for x in ticks if a + 0.1 * (b - a) < x < b - 0.1 * (b - a)]
    assert len(inside) > 0, (b - a, len(ticks))


@pytest.fixture(scope="session")
def data():
    return DATA


@pytest.fixture(scope="session")
def image_paths():
    return [str(DATA / "images" / f) for f in IMAGES]


@pytest.fixture(scope="session")
def vit_classify():
    """Runs the vit-classify binary (VIT_CLASSIFY) and returns its JSON lines."""
    exe = os.environ.get("VIT_CLASSIFY") or shutil.which("vit-classify")
    if not exe:
        pytest.skip("VIT_CLASSIFY is not set (ctest sets it to the build's vit-classify)")

    def run(*args):
        r = subprocess.run([exe, *map(str, args)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    return run


@pytest.fixture(scope="session")
def reference():
    def load(name):
        return read_safetensors(DATA / name / "reference.safetensors"), json.loads((DATA / name / "reference.json").read_text())

    return load
