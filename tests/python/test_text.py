# The text side of the package (embed_text, tokenize, zero_shot) against
# transformers' references (tests/data/{clip,siglip}-text-tiny, TEXT.md) and
# vit-classify --text / --label, and its errors.
import json

import numpy as np
import pytest
import vit
from conftest import IMAGES, assert_releases_gil

TEXT = ["clip-text-tiny", "siglip-text-tiny"]


@pytest.fixture(scope="module")
def models(data):
    return {name: vit.load_model(data / name / "model", threads=2) for name in TEXT}


def prompts(data, name):
    return json.loads((data / name / "reference.json").read_text())["prompts"]


@pytest.mark.parametrize("name", TEXT)
def test_tokenize_equals_the_references_ids(name, models, data, reference):
    ref, meta = reference(name)
    got = models[name].tokenize(meta["prompts"])
    assert len(got) == len(meta["prompts"])
    for i, ids in enumerate(got):
        want = ref[f"text.{i:03d}.input_ids"][ref[f"text.{i:03d}.attention_mask"] == 1]
        assert ids == want.tolist(), (i, meta["prompts"][i])
    assert models[name].tokenize(meta["prompts"][0]) == got[:1]  # a str is a list of one


@pytest.mark.parametrize("name", TEXT)
def test_embed_text_against_references(name, models, reference):
    ref, meta = reference(name)
    e = models[name].embed_text(meta["prompts"])
    want = np.stack([ref[f"text.{i:03d}.text_embeds"] for i in range(len(meta["prompts"]))])
    assert e.dtype == np.float32 and e.shape == want.shape
    assert np.abs(e - want).max() < 1e-5
    n = models[name].embed_text(meta["prompts"], normalize=True)
    unit = want.astype(np.float64) / np.linalg.norm(want.astype(np.float64), axis=1, keepdims=True)
    assert np.abs(n - unit).max() < 1e-5
    assert not e.flags.owndata and e.base is not None and e.flags.c_contiguous  # zero-copy


@pytest.mark.parametrize("name", TEXT)
def test_zero_shot_against_references(name, models, data, reference, image_paths):
    ref, meta = reference(name)
    zs = meta["zeroshot"]
    assert meta["images"] == [f.rsplit(".", 1)[0] for f in IMAGES]
    m = models[name]
    got = m.zero_shot(image_paths, zs["labels"], zs["hypothesis_template"])
    probs = ref["zeroshot.probs"]
    assert len(got) == len(image_paths)
    for i, preds in enumerate(got):
        assert sorted(p.index for p in preds) == list(range(len(zs["labels"])))
        assert [p.score for p in preds] == sorted((p.score for p in preds), reverse=True)
        assert all(p.label == zs["labels"][p.index] for p in preds)
        assert max(abs(p.score - probs[i, p.index]) for p in preds) < 1e-5
        assert preds[0].label == zs["top_label_per_image"][i]
    logits = m.zero_shot_logits(image_paths, zs["labels"], zs["hypothesis_template"])
    assert logits.shape == (len(image_paths), len(zs["labels"])) and logits.dtype == np.float32
    assert np.abs(logits - ref["zeroshot.logits_per_image"]).max() < 1e-4
    top2 = m.zero_shot(image_paths, zs["labels"], zs["hypothesis_template"], top_k=2, batch_size=2)
    assert [[p.index for p in ps] for ps in top2] == [[p.index for p in ps[:2]] for ps in got]


def test_siglip_scores_are_sigmoids_clip_softmax(models, image_paths):
    labels = ["cat", "dog", "a cup of coffee"]
    for name in TEXT:
        m = models[name]
        logits = m.zero_shot_logits(image_paths[:2], labels).astype(np.float64)
        if name.startswith("siglip"):
            want = 1 / (1 + np.exp(-logits))
        else:
            want = np.exp(logits - logits.max(axis=1, keepdims=True))
            want /= want.sum(axis=1, keepdims=True)
        for i, preds in enumerate(m.zero_shot(image_paths[:2], labels)):
            assert max(abs(p.score - want[i, p.index]) for p in preds) < 1e-6


def test_equals_vit_classify(models, data, image_paths, vit_classify):
    name, texts = "clip-text-tiny", prompts(data, "clip-text-tiny")[:5]
    args = [x for t in texts for x in ("--text", t)]
    cli = vit_classify("--model", data / name / "model", "--features", "--tokens", *args)
    e = models[name].embed_text(texts)
    assert np.array_equal(e, np.array([r["features"] for r in cli], dtype=np.float32))
    assert models[name].tokenize(texts) == [r["input_ids"] for r in cli]
    cli_n = vit_classify("--model", data / name / "model", "--features", "--normalize", *args)
    assert np.array_equal(models[name].embed_text(texts, normalize=True),
                          np.array([r["features"] for r in cli_n], dtype=np.float32))
    labels = ["cat", "dog", "a cup of coffee", "camera"]
    lab = [x for label in labels for x in ("--label", label)]
    for siglip in (False, True):
        name = "siglip-text-tiny" if siglip else "clip-text-tiny"
        cli = vit_classify("--model", data / name / "model", "--json", "--logits", *lab, *image_paths)
        got = models[name].zero_shot(image_paths, labels)
        for preds, rec in zip(got, cli):
            assert [(p.label, p.index) for p in preds] == [(q["label"], q["index"]) for q in rec["predictions"]]
            assert max(abs(p.score - q["score"]) for p, q in zip(preds, rec["predictions"])) <= 1e-7
        logits = models[name].zero_shot_logits(image_paths, labels)
        assert np.array_equal(logits, np.array([r["logits"] for r in cli], dtype=np.float32))


def test_vision_only_checkpoints_load_and_text_calls_name_what_is_missing(data, image_paths):
    m = vit.load_model(data / "dinov2-tiny" / "model")
    assert m.embed(image_paths[:1]).shape[0] == 1  # loads and runs as before
    with pytest.raises(vit.Error, match="no text tower: config.json's model_type is 'dinov2'"):
        m.embed_text("a cat")
    with pytest.raises(vit.Error, match="no text tower"):
        m.tokenize(["a cat"])
    with pytest.raises(vit.Error, match="no text tower"):
        m.zero_shot(image_paths[:1], ["cat", "dog"])
    clip = vit.load_model(data / "clip-tiny" / "model")  # the vision fixture: no tokenizer files
    with pytest.raises(vit.Error, match="clip-tiny/model: no CLIP tokenizer"):
        clip.embed_text(["a cat"])
    assert clip.embed(image_paths[:1]).shape == (1, clip.embedding_size)


def test_errors_name_the_problem(models, image_paths):
    m = models["clip-text-tiny"]
    with pytest.raises(vit.Error, match="no labels"):
        m.zero_shot(image_paths[:1], [])
    with pytest.raises(vit.Error, match="no labels"):
        m.zero_shot_logits(image_paths[:1], [])
    with pytest.raises(vit.Error, match="no texts"):
        m.embed_text([])
    with pytest.raises(vit.Error, match="text 1: expected a str, got int"):
        m.embed_text(["a cat", 3])
    with pytest.raises(vit.Error, match="label 0: expected a str, got bytes"):
        m.zero_shot(image_paths[:1], [b"cat"])
    with pytest.raises(vit.Error, match="expected a str or a list of str"):
        m.tokenize(42)
    with pytest.raises(vit.Error, match="expected a str or a list of str"):
        m.embed_text(b"a cat")
    with pytest.raises(vit.Error, match="top_k must be a positive int or None"):
        m.zero_shot(image_paths[:1], ["cat"], top_k=0)
    with pytest.raises(vit.Error, match="its sentence is .* tokens, more than the text tower's 77"):
        m.zero_shot(image_paths[:1], ["cat " * 80])
    with pytest.raises(vit.Error, match="image 0"):
        m.zero_shot([3], ["cat"])


def test_text_calls_release_the_gil(data):
    m = vit.load_model(data / "siglip-text-tiny" / "model", threads=1)
    texts = prompts(data, "siglip-text-tiny") * 6
    m.embed_text(texts)
    assert_releases_gil(lambda: m.embed_text(texts))
