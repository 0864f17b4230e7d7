# python/examples/dask_embed.py on a LocalCluster of two worker processes:
# the same embeddings as one process, bit for bit, in vit-classify's part format.
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import vit

distributed = pytest.importorskip("distributed")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python" / "examples"))
import dask_embed  # noqa: E402


def test_dask_two_workers_equal_in_process(data, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for f in (data / "images").iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    files = dask_embed.list_images(folder)
    assert len(files) == 6
    model = str(data / "clip-tiny" / "model")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            kind, rows, records = dask_embed.embed_files(client, model, files, normalize=True, chunk=2, threads=1)
            assert len(client.scheduler_info()["workers"]) == 2
    good = [f for f in files if not f.endswith("broken.png")]
    want = vit.load_model(model, threads=1).embed(good, normalize=True)
    assert kind == "image_embeds"
    assert np.array_equal(rows, want)
    assert [r["image"] for r in records] == files
    assert "broken.png" in records[files.index(str(folder / "broken.png"))]["error"]
    assert [r["row"] for r in records if "row" in r] == list(range(len(good)))
    dask_embed.write_part(tmp_path / "out", rows, records)
    assert np.array_equal(np.load(tmp_path / "out" / "part-00000-of-00001.npy"), want)
    lines = (tmp_path / "out" / "part-00000-of-00001.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == records


def test_dask_embed_main_writes_the_parts_of_vit_classify(data, tmp_path):
    import os
    import subprocess

    exe = os.environ.get("VIT_CLASSIFY")
    if not exe:
        pytest.skip("VIT_CLASSIFY is not set (ctest sets it to the build's vit-classify)")
    folder = tmp_path / "images"
    folder.mkdir()
    for f in (data / "images").iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / "broken.png").write_bytes(b"junk")
    model = str(data / "dinov2-tiny" / "model")
    args = ["--model", model, str(folder), "--output"]
    assert dask_embed.main(args + [str(tmp_path / "dask"), "--workers", "2", "--threads", "1", "--chunk", "3"]) == 1
    r = subprocess.run([exe, "--features", *args, str(tmp_path / "cli")], capture_output=True, text=True)
    assert r.returncode == 1, r.stderr  # 1: some images failed
    part = "part-00000-of-00001"
    got = [json.loads(x) for x in (tmp_path / "dask" / (part + ".jsonl")).read_text().splitlines()]
    want = [json.loads(x) for x in (tmp_path / "cli" / (part + ".jsonl")).read_text().splitlines()]
    assert got == want
    assert np.array_equal(np.load(tmp_path / "dask" / (part + ".npy")), np.load(tmp_path / "cli" / (part + ".npy")))
