"""vit-serve's text side on the CLIP and SigLIP fixtures: the HF zero-shot
call in the forms HF clients send it, the OIP `text` input, the label cache,
and the hostile cases. Expected values are transformers' (the fixtures'
reference.safetensors / reference.json: zeroshot.*, text.NNN.*).

  /usr/bin/python3 tests/serve/test_text.py [TEST...]   (no name: all)

ctest runs one entry per test_* function (tests/serve/CMakeLists.txt)."""
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import requests
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serverlib as S  # noqa: E402
from test_serve import assert_close, assert_error, b64, bytes_elements, fp32, oip_binary, output, parse_binary_response, safetensors  # noqa: E402

CLIP = os.path.join(S.DATA, "clip-text-tiny")
SIGLIP = os.path.join(S.DATA, "siglip-text-tiny")
STEMS = ["coco_cats", "chelsea", "camera_gray", "coffee", "tiny_7x5"]


def model(fixture):
    return os.path.join(fixture, "model")


def refs(fixture):
    with open(os.path.join(fixture, "reference.json")) as f:
        return safetensors(os.path.join(fixture, "reference.safetensors")), json.load(f)


def image_b64(stem):
    with open(S.image(stem + (".jpg" if stem == "coffee" else ".png")), "rb") as f:
        return b64(f.read())


def softmax(x):
    e = np.exp(x - np.max(x))
    return e / e.sum()


def check_answer(a, labels, want, what, tol=1e-5):
    """a: [{label, score}] best first; want: the reference score of each label."""
    assert isinstance(a, list) and len(a) == len(labels), "%s: %s" % (what, a)
    assert sorted(p["label"] for p in a) == sorted(labels), "%s: labels %s" % (what, [p["label"] for p in a])
    scores = [p["score"] for p in a]
    assert scores == sorted(scores, reverse=True), "%s: not best first: %s" % (what, scores)
    got = {p["label"]: p["score"] for p in a}
    for label, w in zip(labels, want):
        assert abs(got[label] - w) <= tol, "%s: %r scores %.7f, transformers %.7f" % (what, label, got[label], w)


def metric(url, name):
    fams = {f.name: f for f in text_string_to_metric_families(requests.get(url + "/metrics", timeout=30).text)}
    return fams[name].samples[0].value


# ---------------------------------------------------------------- zero-shot

def zero_shot_forms(fixture):
    ref, meta = refs(fixture)
    labels = meta["zeroshot"]["labels"]
    probs, logits = ref["zeroshot.probs"].astype(np.float64), ref["zeroshot.logits_per_image"].astype(np.float64)
    sigmoid = meta["zeroshot"]["scores"].startswith("sigmoid")
    # The comma-separated form cannot carry a label with a comma: those left
    # out, the CLIP softmax runs over the others' reference logits.
    plain = [i for i, l in enumerate(labels) if "," not in l]
    with S.Server(model(fixture)) as s:
        for k, stem in enumerate(STEMS):
            img = image_b64(stem)
            # huggingface_hub >= 0.22 (InferenceClient.zero_shot_image_classification).
            a = requests.post(s.url + "/", json={"inputs": img, "parameters": {"candidate_labels": labels}}).json()
            check_answer(a, labels, probs[k], "%s %s inputs string" % (fixture, stem))
            # The task's spec: inputs an object with the image.
            a = requests.post(s.url + "/predict", json={"inputs": {"image": img}, "parameters": {"candidate_labels": labels}}).json()
            check_answer(a, labels, probs[k], "%s %s inputs object" % (fixture, stem))
            # candidate_labels in the inputs object, as the spec once had it.
            a = requests.post(s.url + "/predict", json={"inputs": {"image": img, "candidate_labels": labels}}).json()
            check_answer(a, labels, probs[k], "%s %s labels in inputs" % (fixture, stem))
            # huggingface_hub < 0.22: {"image", "parameters": {"candidate_labels": "a,b"}}.
            sub = [labels[i] for i in plain]
            want = probs[k, plain] if sigmoid else softmax(logits[k, plain])
            a = requests.post(s.url + "/", json={"image": img, "parameters": {"candidate_labels": " , ".join(sub) + ",,"}}).json()
            check_answer(a, sub, want, "%s %s comma-separated" % (fixture, stem))
        # hypothesis_template "{}" with the pipeline's sentences as labels: its scores.
        seqs = meta["zeroshot"]["sequences"]
        a = requests.post(s.url + "/predict", json={"inputs": image_b64("coffee"),
                                                    "parameters": {"candidate_labels": seqs, "hypothesis_template": "{}"}}).json()
        check_answer(a, seqs, probs[3], fixture + " hypothesis_template")
        a = requests.post(s.url + "/predict", json={"inputs": image_b64("coffee"),
                                                    "parameters": {"candidate_labels": labels, "top_k": 3}}).json()
        best = np.argsort(-probs[3], kind="stable")[:3]
        assert [p["label"] for p in a] == [labels[i] for i in best], (a, best)
        # A raw image still gets the classifier's answer: none here.
        with open(S.image("coffee.jpg"), "rb") as f:
            raw = f.read()
        assert "candidate_labels" in assert_error(requests.post(s.url + "/predict", data=raw), 400, "raw image, no classifier")


def test_zero_shot_clip():
    zero_shot_forms(CLIP)


def test_zero_shot_siglip():
    zero_shot_forms(SIGLIP)


def test_label_cache():
    ref, meta = refs(CLIP)
    labels, probs = meta["zeroshot"]["labels"], ref["zeroshot.probs"]
    body = {"inputs": image_b64("chelsea"), "parameters": {"candidate_labels": labels}}
    with S.Server(model(CLIP), "--max-batch-size", "8", "--max-queue-delay-ms", "5") as s:
        assert metric(s.url, "vit_label_cache_sets") == 0
        check_answer(requests.post(s.url + "/predict", json=body).json(), labels, probs[1], "first call")
        assert metric(s.url, "vit_label_cache_misses") == 1 and metric(s.url, "vit_label_cache_hits") == 0
        assert metric(s.url, "vit_text_inferences") == len(labels)
        check_answer(requests.post(s.url + "/predict", json=body).json(), labels, probs[1], "cached call")
        assert metric(s.url, "vit_label_cache_hits") == 1 and metric(s.url, "vit_text_inferences") == len(labels)
        # Another template, or the labels in another order: other sets.
        other = {"inputs": image_b64("chelsea"), "parameters": {"candidate_labels": labels[::-1]}}
        check_answer(requests.post(s.url + "/predict", json=other).json(), labels[::-1], probs[1][::-1], "reversed")
        assert metric(s.url, "vit_label_cache_misses") == 2 and metric(s.url, "vit_label_cache_sets") == 2

        # Many clients at once, cached and not: every answer transformers'.
        def one(i):
            stem = STEMS[i % len(STEMS)]
            ls = labels if i % 2 else labels[::-1]
            r = requests.post(s.url + "/predict", json={"inputs": image_b64(stem), "parameters": {"candidate_labels": ls}}, timeout=120)
            return i, stem, ls, r.status_code, r.json()

        with ThreadPoolExecutor(12) as pool:
            for i, stem, ls, status, a in pool.map(one, range(48)):
                assert status == 200, a
                k = STEMS.index(stem)
                check_answer(a, ls, [probs[k][labels.index(l)] for l in ls], "concurrent %d %s" % (i, stem))
        # Bounded: 70 more label sets leave at most 64.
        for n in range(70):
            r = requests.post(s.url + "/predict", json={"inputs": image_b64("tiny_7x5"),
                                                        "parameters": {"candidate_labels": ["cat", "thing %d" % n]}})
            assert r.status_code == 200, r.text
        assert metric(s.url, "vit_label_cache_sets") == 64
        # The oldest went first: the first set runs the text tower again.
        before = metric(s.url, "vit_label_cache_misses")
        requests.post(s.url + "/predict", json=body)
        assert metric(s.url, "vit_label_cache_misses") == before + 1


# ---------------------------------------------------------------- OIP text

def oip_text(fixture, P):
    ref, meta = refs(fixture)
    prompts = meta["prompts"]
    want = np.stack([ref["text.%03d.text_embeds" % i] for i in range(len(prompts))])
    with S.Server(model(fixture)) as s:
        meta_j = requests.get(s.url + "/v2/models/model").json()
        ins = {i["name"]: i for i in meta_j["inputs"]}
        outs = {o["name"]: o for o in meta_j["outputs"]}
        assert ins["text"] == {"name": "text", "datatype": "BYTES", "shape": [-1]}, ins
        assert outs["text_embeds"] == {"name": "text_embeds", "datatype": "FP32", "shape": [-1, P]}, outs
        infer = s.url + "/v2/models/model/infer"
        body = {"id": "t1", "inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(prompts)], "data": prompts}]}
        r = requests.post(infer, json=body)
        assert r.status_code == 200, r.text
        j = r.json()
        assert j["id"] == "t1" and [o["name"] for o in j["outputs"]] == ["text_embeds"], j
        # Every prompt, the ones longer than the context truncated as transformers truncates.
        assert_close(fp32(output(j, "text_embeds")), want, 1e-5, fixture + " text_embeds")
        # Binary in and out: the same floats.
        raw = bytes_elements([p.encode() for p in prompts])
        head = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(prompts)], "parameters": {"binary_data_size": len(raw)}}],
                "outputs": [{"name": "text_embeds", "parameters": {"binary_data": True}}]}
        data, hdr = oip_binary(head, raw)
        h, t = parse_binary_response(requests.post(infer, data=data, headers=hdr))
        assert t["text_embeds"].shape == (len(prompts), P)
        assert_close(t["text_embeds"], want, 1e-5, fixture + " binary text_embeds")
        # One text alone equals its row of the batch.
        one = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [prompts[4]]}]}
        assert_close(fp32(output(requests.post(infer, json=one).json(), "text_embeds"))[0], want[4], 1e-5, "single text")


def test_oip_text_clip():
    oip_text(CLIP, 32)


def test_oip_text_siglip():
    oip_text(SIGLIP, 64)


# ---------------------------------------------------------------- hostile

def test_text_hostile():
    img = image_b64("coco_cats")
    zs = lambda labels, **p: {"inputs": img, "parameters": dict({"candidate_labels": labels}, **p)}  # noqa: E731
    text = lambda data, **kw: {"inputs": [dict({"name": "text", "datatype": "BYTES", "shape": [len(data)], "data": data}, **kw)]}  # noqa: E731
    # A vision-only checkpoint: text is refused, saying why.
    with S.Server(S.TINY) as s:
        msg = assert_error(requests.post(s.url + "/predict", json=zs(["cat", "dog"])), 400, "zero-shot on a classifier")
        assert "text tower" in msg and "tokenizer" in msg, msg
        msg = assert_error(requests.post(s.url + "/v2/models/model/infer", json=text(["a cat"])), 400, "text on a classifier")
        assert "text tower" in msg, msg
        meta = requests.get(s.url + "/v2/models/model").json()
        assert "text" not in [i["name"] for i in meta["inputs"]], meta
        assert requests.post(s.url + "/predict", json={"inputs": img}).json()[0]["label"] == "hen"
    with S.Server(model(CLIP)) as s:
        predict, infer = s.url + "/predict", s.url + "/v2/models/model/infer"
        j = lambda b: {"data": b, "headers": {"Content-Type": "application/json"}}  # noqa: E731
        for body, what, said in (
                (zs([]), "empty candidate_labels", "empty"),
                (zs(""), "empty comma string", "empty"),
                (zs(" , ,"), "comma string of blanks", "empty"),
                ({"inputs": {"image": img}}, "missing candidate_labels", "candidate_labels"),
                ({"inputs": {"image": img}, "parameters": {}}, "missing candidate_labels, parameters", "candidate_labels"),
                (zs(["cat", ""]), "empty label", "candidate_labels[1]"),
                (zs(["cat", 5]), "non-string label", "candidate_labels[1]"),
                (zs(5), "number for candidate_labels", "candidate_labels"),
                (zs({"a": 1}), "object for candidate_labels", "candidate_labels"),
                (zs(["cat", "dog", "cat"]), "duplicate label", "twice"),
                (zs(["x%d" % i for i in range(257)]), "257 labels", "limit of 256"),
                (zs(",".join("x%d" % i for i in range(257))), "257 comma-separated labels", "limit of 256"),
                (zs(["cat", "x" * 4097]), "a 4097-byte label", "limit of 4096"),
                (zs(["cat", "dog"], hypothesis_template="a photo"), "template without {}", "{}"),
                (zs(["cat", "dog"], hypothesis_template=5), "template not a string", "hypothesis_template"),
                ({"inputs": img, "parameters": {"hypothesis_template": "a {}"}}, "template without labels", "candidate_labels"),
                ({"inputs": {"image": 5}, "parameters": {"candidate_labels": ["a"]}}, "image not a string", "malformed"),
                ({"inputs": {"image": "@@@"}, "parameters": {"candidate_labels": ["a"]}}, "bad base64", "base64"),
                (zs(["cat " * 100, "dog"]), "a CLIP sentence past 77 tokens", "tokens")):
            msg = assert_error(requests.post(predict, json=body), 400, what)
            assert said in msg, "%s: %r does not say %r" % (what, msg, said)
        # Invalid UTF-8 and a lone surrogate in the JSON; not valid UTF-8 in binary text.
        for raw, what in ((b'{"inputs": "%s", "parameters": {"candidate_labels": ["ca\xfft", "dog"]}}', "0xFF in a label"),
                          (b'{"inputs": "%s", "parameters": {"candidate_labels": ["\\udc00", "dog"]}}', "lone surrogate")):
            msg = assert_error(requests.post(predict, **j(raw.replace(b"%s", img.encode()))), 400, what)
            assert "UTF-8" in msg or "surrogate" in msg, msg
        words = [b"a cat", b"caf\xe9", b"\xed\xa0\x80"]
        for i in (1, 2):
            blob = bytes_elements([words[0], words[i]])
            data, hdr = oip_binary({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2],
                                                "parameters": {"binary_data_size": len(blob)}}]}, blob)
            msg = assert_error(requests.post(infer, data=data, headers=hdr), 400, "binary text %d" % i)
            assert "text 1" in msg and "UTF-8" in msg, msg
        for body, what, said in (
                (text(["a"], datatype="FP32"), "text as FP32", "BYTES"),
                (text(["a", "b"], shape=[1, 2]), "text of shape [1, 2]", "BYTES [N]"),
                (text(["a"], shape=[2]), "text shorter than its shape", "shape"),
                (text([5]), "a number as text", "text 0"),
                (text(["a"] * 257), "257 texts", "limit of 256"),
                (text(["x" * 4097]), "a 4097-byte text", "limit of 4096"),
                (dict(text(["a"]), outputs=[{"name": "logits"}]), "logits of text", "text_embeds"),
                ({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [img]}], "outputs": [{"name": "text_embeds"}]},
                 "text_embeds of an image", "text")):
            msg = assert_error(requests.post(infer, json=body), 400, what)
            assert said in msg, "%s: %r does not say %r" % (what, msg, said)
        # Zero-shot is the HF call: not on /attention.
        assert_error(requests.post(s.url + "/attention", json=zs(["cat", "dog"])), 400, "labels to /attention")
        # Still serving, and the 400s kept nothing.
        assert requests.get(s.url + "/v2/health/live").status_code == 200
        assert requests.post(predict, json=zs(["cat", "dog"])).status_code == 200
        assert metric(s.url, "vit_label_cache_sets") == 1


def main(argv):
    return S.run_tests(globals(), argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
