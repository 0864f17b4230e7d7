# The package against vit-classify's --json output and transformers' references
# (tests/data), every input form, errors and threads.
import os
import pathlib
import threading

import numpy as np
import pytest
import vit
from conftest import FAMILIES, IMAGES, assert_releases_gil

PIL = pytest.importorskip("PIL.Image")

TINY = "vit-tiny-random"


@pytest.fixture(scope="module")
def tiny(data):
    return vit.load_model(data / TINY / "model", threads=2)


def test_installed_outside_the_source_tree():
    here = pathlib.Path(__file__).resolve().parents[2]
    assert not pathlib.Path(vit.__file__).resolve().is_relative_to(here / "python"), vit.__file__
    assert vit.__version__.count(".") == 2
    assert issubclass(vit.Error, RuntimeError)


def test_classify_equals_vit_classify(tiny, data, image_paths, vit_classify):
    cli = vit_classify("--model", data / TINY / "model", "--json", "--top-k", 10, "--logits", *image_paths)
    got = tiny.classify(image_paths, top_k=10)
    assert len(got) == len(cli) == len(image_paths)
    for preds, rec in zip(got, cli):
        assert [p.label for p in preds] == [p["label"] for p in rec["predictions"]]
        assert [p.index for p in preds] == [p["index"] for p in rec["predictions"]]
        assert max(abs(p.score - q["score"]) for p, q in zip(preds, rec["predictions"])) <= 1e-6
    logits = tiny.forward(tiny.preprocess(image_paths))["logits"]
    assert np.abs(logits - np.array([r["logits"] for r in cli])).max() <= 1e-6


def test_classify_top_k_per_image_from_logits(tiny, image_paths):
    got = tiny.classify(image_paths, top_k=3, batch_size=2)
    logits = tiny.forward(tiny.preprocess(image_paths))["logits"].astype(np.float64)
    for preds, row in zip(got, logits):
        p = np.exp(row - row.max())
        p /= p.sum()
        best = np.argsort(-p, kind="stable")[:3]
        assert [q.index for q in preds] == list(best)
        assert np.allclose([q.score for q in preds], p[best], atol=1e-12)
        assert [q.label for q in preds] == [tiny.labels[i] for i in best]


@pytest.mark.parametrize("name", [TINY, "clip-tiny", "siglip-tiny", "dinov2-tiny", "deit-tiny-distilled"])
@pytest.mark.parametrize("normalize", [False, True])
def test_embed_equals_vit_classify(name, normalize, data, image_paths, vit_classify):
    m = vit.load_model(data / name / "model", threads=2)
    args = ["--model", data / name / "model", "--features"] + (["--normalize"] if normalize else []) + image_paths
    cli = vit_classify(*args)
    got = m.embed(image_paths, normalize=normalize)
    assert got.dtype == np.float32 and got.shape == (len(image_paths), m.embedding_size)
    assert all(r["kind"] == m.embedding_kind for r in cli)
    assert np.abs(got - np.array([r["features"] for r in cli], dtype=np.float64)).max() <= 1e-6


def test_forward_against_references(tiny, data, reference, image_paths):
    ref, meta = reference(TINY)
    stems = [pathlib.Path(p).stem for p in image_paths]
    out = tiny.forward(tiny.preprocess(image_paths), output_hidden_states=True, output_attentions=True)
    tol = 1e-5  # float32 against float64 truth (reference.json: about 1e-6)
    for i, s in enumerate(stems):
        assert np.abs(out["logits"][i] - ref[s + ".logits"]).max() <= tol
        assert np.abs(out["cls_embedding"][i] - ref[s + ".cls_embedding"]).max() <= tol
        for layer in range(3):
            assert np.abs(out["hidden_states"][layer][i] - ref[s + ".hidden_states"][layer]).max() <= tol
        for layer in range(2):
            assert np.abs(out["attentions"][layer][i] - ref[s + ".attentions"][layer]).max() <= tol
    # another size: position embeddings interpolated, as interpolate_pos_encoding=True
    u8 = ref["coco_cats.resized_u8_448x320"]
    px = ((u8.astype(np.float64) / 255 - 0.5) / 0.5).astype(np.float32).transpose(2, 0, 1)[None]
    logits = tiny.forward(np.ascontiguousarray(px))["logits"][0]
    assert np.abs(logits - ref["coco_cats.logits_interpolated_448x320"]).max() <= tol


@pytest.mark.parametrize("name", FAMILIES)
def test_family_forward_against_references(name, data, reference, image_paths):
    ref, meta = reference(name)
    m = vit.load_model(data / name / "model")
    out = m.forward(m.preprocess(image_paths))
    keys = [k.split(".", 1)[1] for k in ref if k.startswith("chelsea.") and k.split(".", 1)[1] != "resized_u8"]
    assert keys
    for i, p in enumerate(image_paths):
        s = pathlib.Path(p).stem
        for k in keys:
            assert k in out, k
            assert np.abs(out[k][i] - ref[s + "." + k]).max() <= 1e-5, (s, k)


def test_preprocess_bit_identical_vit(tiny, reference, image_paths):
    ref, _ = reference(TINY)
    px = tiny.preprocess(image_paths)
    assert px.dtype == np.float32 and px.shape == (5, 3, 384, 384)
    for i, p in enumerate(image_paths):
        u8 = ref[pathlib.Path(p).stem + ".resized_u8"].astype(np.float64)
        want = ((u8 / 255 - 0.5) / 0.5).astype(np.float32).transpose(2, 0, 1)  # the processor's Pillow path
        assert np.array_equal(px[i], want), p


@pytest.mark.parametrize("name", ["clip-tiny", "siglip-tiny", "dinov2-tiny", "deit-tiny-distilled"])
def test_preprocess_bit_identical_families(name, data, reference, image_paths):
    ref, _ = reference(name)
    m = vit.load_model(data / name / "model")
    px = m.preprocess(image_paths)
    assert np.array_equal(px[0], ref["coco_cats.pixel_values"])
    lut = ref["normalize_lut"]
    for i, p in enumerate(image_paths):
        u8 = ref[pathlib.Path(p).stem + ".resized_u8"]
        want = np.stack([lut[c][u8[:, :, c]] for c in range(3)])
        assert np.array_equal(px[i], want), p


def test_every_input_form_gives_the_same_numbers(tiny, image_paths):
    want = tiny.embed(image_paths)
    forms = {
        "str": image_paths,
        "PathLike": [pathlib.Path(p) for p in image_paths],
        "bytes": [pathlib.Path(p).read_bytes() for p in image_paths],
        "PIL": [PIL.open(p) for p in image_paths],
        "numpy": [np.asarray(PIL.open(p).convert("RGB")) for p in image_paths],
    }
    for form, imgs in forms.items():
        assert np.array_equal(tiny.embed(imgs), want), form
    mixed = [forms[f][i] for i, f in enumerate(["bytes", "PIL", "numpy", "str", "PathLike"])]
    assert np.array_equal(tiny.embed(mixed), want)
    assert np.array_equal(tiny.preprocess(mixed), tiny.preprocess(image_paths))
    assert np.array_equal(tiny.embed(image_paths[0]), want[:1])  # one image, not in a list


def test_outputs_are_zero_copy(tiny, image_paths):
    e = tiny.embed(image_paths)
    assert not e.flags.owndata and e.base is not None and e.flags.c_contiguous
    out = tiny.forward(tiny.preprocess(image_paths[:2]))
    assert all(not v.flags.owndata for v in out.values())
    del out["cls_embedding"]  # the other arrays keep the shared buffer alive
    assert np.isfinite(out["logits"]).all()


def test_config_and_labels(tiny, data):
    c = tiny.config
    assert c["model_type"] == "vit" and c["patch_size"] == 32 and c["hidden_size"] == 64 and c["num_labels"] == 10
    assert len(tiny.labels) == 10 and tiny.embedding_kind == "cls_embedding"
    clip = vit.load_model(data / "clip-tiny" / "model")
    assert clip.embedding_kind == "image_embeds" and clip.embedding_size == 32 and clip.labels == []


def test_errors_name_the_problem(tiny, data, tmp_path, image_paths):
    with pytest.raises(vit.Error, match="no_such_model"):
        vit.load_model(tmp_path / "no_such_model")
    with pytest.raises(vit.Error, match="missing.png"):
        tiny.classify([image_paths[0], str(tmp_path / "missing.png")])
    corrupt = pathlib.Path(image_paths[3]).read_bytes()[:300]  # a truncated JPEG
    with pytest.raises(vit.Error, match="image 1"):
        tiny.embed([image_paths[0], corrupt])
    with pytest.raises(vit.Error, match="not an image"):
        tiny.embed([b"these are not the bytes of an image"])
    with pytest.raises(vit.Error, match="not a multiple of the patch size 32"):
        tiny.forward(np.zeros((1, 3, 100, 96), np.float32))
    with pytest.raises(vit.Error, match="pixel_values must be"):
        tiny.forward(np.zeros((3, 64, 64), np.float32))
    with pytest.raises(vit.Error, match="uint8"):
        tiny.embed([np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(vit.Error, match="dtype"):
        vit.load_model(data / TINY / "model", dtype="f16")
    with pytest.raises(vit.Error, match="no classifier"):
        vit.load_model(data / "clip-tiny" / "model").classify(image_paths[:1])


def test_threads_share_a_model(data, image_paths):
    m = vit.load_model(data / TINY / "model", threads=1)
    px = m.preprocess(image_paths * 4)
    want = m.forward(px)["logits"]
    got, errors = {}, []

    def work(k):
        try:
            for _ in range(3):
                got.setdefault(k, []).append(m.forward(px)["logits"])
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(np.array_equal(x, want) for k in got for x in got[k]) and len(got) == 2


def test_the_gil_is_released_while_computing(data, image_paths):
    m = vit.load_model(data / TINY / "model", threads=1)
    px = m.preprocess(image_paths * 8)
    m.forward(px)
    assert_releases_gil(lambda: m.forward(px))


def test_hub_id_from_the_hf_cache(data, tmp_path, monkeypatch, image_paths):
    repo = tmp_path / "models--acme--vit-tiny"
    snap = repo / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    for f in (data / TINY / "model").iterdir():
        (snap / f.name).symlink_to(f)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd\n")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    m = vit.load_model("acme/vit-tiny")
    assert m.path == str(snap)
    want = vit.load_model(data / TINY / "model").embed(image_paths[:2])
    assert np.array_equal(m.embed(image_paths[:2]), want)
    with pytest.raises(vit.Error, match="not in the Hugging Face cache"):
        vit.load_model("acme/absent")
