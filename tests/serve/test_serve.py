"""vit-serve against real clients: every route, answers equal to vit-classify
and to the transformers references, concurrency, hostile input, lifecycle.

  /usr/bin/python3 tests/serve/test_serve.py [TEST...]   (no name: all)

ctest runs one entry per test_* function (tests/serve/CMakeLists.txt)."""
import base64
import json
import math
import os
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import requests
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serverlib as S  # noqa: E402

IMAGES = ["coco_cats.png", "chelsea.png", "camera_gray.png", "coffee.jpg", "tiny_7x5.png"]


def read_bytes(name):
    with open(S.image(name), "rb") as f:
        return f.read()


def safetensors(path):
    """The tensors of a safetensors file as numpy arrays (float32 / uint8 / int64)."""
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    head = json.loads(blob[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        dt = {"F32": np.float32, "U8": np.uint8, "I64": np.int64}[v["dtype"]]
        out[k] = np.frombuffer(blob[8 + n + a:8 + n + b], dtype=dt).reshape(v["shape"])
    return out


REF = safetensors(os.path.join(S.DATA, "vit-tiny-random", "reference.safetensors"))
REF_FEATURES = safetensors(os.path.join(S.DATA, "vit-tiny-features", "reference.safetensors"))


def b64(data):
    return base64.b64encode(data).decode()


def oip_image_json(names, **extra):
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [len(names)],
                        "data": [b64(read_bytes(n)) for n in names]}]}
    body.update(extra)
    return body


def oip_binary(head, raw):
    """An OIP request with the binary-data extension: JSON header, then the bytes."""
    h = json.dumps(head).encode()
    return h + raw, {"Inference-Header-Content-Length": str(len(h)), "Content-Type": "application/octet-stream"}


def bytes_elements(blobs):
    return b"".join(struct.pack("<I", len(b)) + b for b in blobs)


def parse_binary_response(r):
    n = int(r.headers["Inference-Header-Content-Length"])
    head = json.loads(r.content[:n])
    pos = n
    tensors = {}
    for o in head["outputs"]:
        size = o["parameters"]["binary_data_size"]
        raw = r.content[pos:pos + size]
        pos += size
        if o["datatype"] == "FP32":
            tensors[o["name"]] = np.frombuffer(raw, dtype="<f4").reshape(o["shape"])
        else:
            items, p = [], 0
            while p < len(raw):
                (ln,) = struct.unpack("<I", raw[p:p + 4])
                items.append(raw[p + 4:p + 4 + ln].decode())
                p += 4 + ln
            tensors[o["name"]] = items
    assert pos == len(r.content), "binary response longer than its outputs"
    return head, tensors


def output(j, name):
    for o in j["outputs"]:
        if o["name"] == name:
            return o
    raise AssertionError("no output %s in %s" % (name, [o["name"] for o in j["outputs"]]))


def fp32(o):
    return np.array(o["data"], dtype=np.float64).reshape(o["shape"])


def assert_close(a, b, tol, what):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, "%s: shape %s != %s" % (what, a.shape, b.shape)
    d = float(np.max(np.abs(a - b))) if a.size else 0.0
    assert d <= tol, "%s: max |diff| %.3g > %.3g" % (what, d, tol)


def assert_error(r, status, what):
    assert r.status_code == status, "%s: status %d (want %d): %s" % (what, r.status_code, status, r.text[:300])
    j = r.json()
    assert isinstance(j, dict) and isinstance(j.get("error"), str) and j["error"], "%s: no JSON error: %s" % (what, r.text)
    return j["error"]


def alive(s):
    r = requests.get(s.url + "/v2/health/live", timeout=10)
    assert r.status_code == 200 and r.json() == {"live": True}, r.text


def raw_exchange(s, data, shutdown=False, read_timeout=20):
    """Sends bytes on a fresh connection, returns (status, headers, body) of the answer."""
    with socket.create_connection((s.host, s.port), timeout=read_timeout) as c:
        c.sendall(data)
        if shutdown:
            c.shutdown(socket.SHUT_WR)
        buf = b""
        while True:
            try:
                chunk = c.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            buf += chunk
            if b"\r\n\r\n" in buf:
                head, body = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
                if len(body) >= int(headers.get("content-length", "0")):
                    return int(lines[0].split()[1]), headers, body
    raise AssertionError("no complete answer to %r...: got %r" % (data[:60], buf[:200]))


def softmax(x):
    e = np.exp(x - np.max(x))
    return e / e.sum()


# ---------------------------------------------------------------- routes

def test_routes():
    with S.Server(S.TINY, "--name", "tiny") as s:
        u = s.url
        v2 = requests.get(u + "/v2").json()
        assert v2["name"] == "vit-serve" and v2["version"], v2
        assert {"binary_tensor_data", "classification"} <= set(v2["extensions"]), v2
        assert requests.get(u + "/v2/health/live").json() == {"live": True}
        r = requests.get(u + "/v2/health/ready")
        assert r.status_code == 200 and r.json()["ready"] is True
        r = requests.get(u + "/v2/models/tiny/ready")
        assert r.status_code == 200
        meta = requests.get(u + "/v2/models/tiny").json()
        assert meta["name"] == "tiny"
        ins = {i["name"]: i for i in meta["inputs"]}
        assert ins["image"]["datatype"] == "BYTES" and ins["image"]["shape"] == [-1]
        assert ins["pixel_values"]["datatype"] == "FP32" and ins["pixel_values"]["shape"] == [-1, 3, 384, 384]
        outs = {o["name"]: o for o in meta["outputs"]}
        assert outs["logits"] == {"name": "logits", "datatype": "FP32", "shape": [-1, 10]}, outs
        assert outs["embeddings"]["shape"] == [-1, 64], outs
        page = requests.get(u + "/")
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        assert "<script" in page.text and "http://" not in page.text and "https://" not in page.text, "external assets"
        assert_error(requests.get(u + "/v2/models/other"), 404, "unknown model")
        assert_error(requests.post(u + "/v2/models/other/infer", json={}), 404, "unknown model infer")
        assert_error(requests.get(u + "/nowhere"), 404, "unknown route")
        assert_error(requests.delete(u + "/v2/health/live"), 405, "DELETE live")
        assert_error(requests.get(u + "/v2/models/tiny/infer"), 405, "GET infer")
        assert_error(requests.put(u + "/predict", data=b"x"), 405, "PUT predict")
        log = [j for j in s.log() if "route" in j]
        assert log and all({"route", "status", "ms", "batch"} <= set(j) for j in log), log[:3]


def test_default_name():
    # NAME defaults to the model folder's base name.
    with S.Server(S.TINY + "/") as s:
        assert requests.get(s.url + "/v2/models/model/ready").status_code == 200


# ---------------------------------------------------------------- answers

def test_infer_json_equals_vit_classify():
    ref = S.classify_json(S.TINY, *[S.image(n) for n in IMAGES])
    with S.Server(S.TINY) as s:
        r = requests.post(s.url + "/v2/models/model/infer", json=oip_image_json(IMAGES, id="req-7"))
        assert r.status_code == 200, r.text
        j = r.json()
        assert j["id"] == "req-7" and j["model_name"] == "model"
        logits = fp32(output(j, "logits"))
        assert logits.shape == (5, 10)
        for i, rj in enumerate(ref):
            assert_close(logits[i], rj["logits"], 1e-6, "logits of %s vs vit-classify" % IMAGES[i])
            assert_close(logits[i], REF[IMAGES[i].split(".")[0] + ".logits"], 1e-5, "logits of %s vs transformers" % IMAGES[i])
        emb = fp32(output(j, "embeddings"))
        assert emb.shape == (5, 64)
        for i, n in enumerate(IMAGES):  # no pooler: CLS after the final LayerNorm
            assert_close(emb[i], REF[n.split(".")[0] + ".cls_embedding"], 1e-5, "embedding of " + n)


def test_infer_binary_extension():
    ref = S.classify_json(S.TINY, S.image("coco_cats.png"), S.image("coffee.jpg"))
    blobs = [read_bytes("coco_cats.png"), read_bytes("coffee.jpg")]
    head = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2],
                        "parameters": {"binary_data_size": len(bytes_elements(blobs))}}]}
    with S.Server(S.TINY) as s:
        body, hdr = oip_binary(head, bytes_elements(blobs))
        r = requests.post(s.url + "/v2/models/model/infer", data=body, headers=hdr)
        assert r.status_code == 200, r.text
        logits = fp32(output(r.json(), "logits"))
        for i in range(2):
            assert_close(logits[i], ref[i]["logits"], 1e-6, "binary-in logits %d" % i)
        # Binary out as well: the same floats, raw.
        head["outputs"] = [{"name": "logits", "parameters": {"binary_data": True}}]
        body, hdr = oip_binary(head, bytes_elements(blobs))
        r = requests.post(s.url + "/v2/models/model/infer", data=body, headers=hdr)
        assert r.status_code == 200, r.text
        h, t = parse_binary_response(r)
        assert [o["name"] for o in h["outputs"]] == ["logits"]
        assert t["logits"].shape == (2, 10)
        for i in range(2):
            assert_close(t["logits"][i], ref[i]["logits"], 1e-6, "binary-out logits %d" % i)
        # binary_data_output on the request, JSON-only input.
        r = requests.post(s.url + "/v2/models/model/infer",
                          json=oip_image_json(["chelsea.png"], parameters={"binary_data_output": True}))
        h, t = parse_binary_response(r)
        assert set(t) == {"logits", "embeddings"}
        assert_close(t["logits"][0], REF["chelsea.logits"], 1e-5, "binary_data_output logits")


def pixel_values(name):
    with open(os.path.join(S.TINY, "preprocessor_config.json")) as f:
        pre = json.load(f)
    u8 = REF[name + ".resized_u8"].astype(np.float32)  # [H, W, 3]
    mean = np.array(pre["image_mean"], dtype=np.float32)
    std = np.array(pre["image_std"], dtype=np.float32)
    x = (u8 * np.float32(pre.get("rescale_factor", 1 / 255)) - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)


def test_pixel_values_input():
    px = np.stack([pixel_values("coco_cats"), pixel_values("tiny_7x5")])
    with S.Server(S.TINY, "--max-body-mb", "64") as s:  # 2 images as JSON numbers: ~18 MB
        body = {"inputs": [{"name": "pixel_values", "datatype": "FP32", "shape": list(px.shape),
                            "data": px.reshape(-1).tolist()}], "outputs": [{"name": "logits"}]}
        r = requests.post(s.url + "/v2/models/model/infer", json=body)
        assert r.status_code == 200, r.text
        j = r.json()
        assert [o["name"] for o in j["outputs"]] == ["logits"]
        logits = fp32(output(j, "logits"))
        assert_close(logits[0], REF["coco_cats.logits"], 1e-5, "pixel_values coco_cats")
        assert_close(logits[1], REF["tiny_7x5.logits"], 1e-5, "pixel_values tiny_7x5")
        # Nested data and the binary form give the same.
        body["inputs"][0]["data"] = px.tolist()
        nested = fp32(output(requests.post(s.url + "/v2/models/model/infer", json=body).json(), "logits"))
        assert_close(nested, logits, 0, "nested pixel_values")
        raw = px.astype("<f4").tobytes()
        head = {"inputs": [{"name": "pixel_values", "datatype": "FP32", "shape": list(px.shape),
                            "parameters": {"binary_data_size": len(raw)}}]}
        data, hdr = oip_binary(head, raw)
        binary = fp32(output(requests.post(s.url + "/v2/models/model/infer", data=data, headers=hdr).json(), "logits"))
        assert_close(binary, logits, 0, "binary pixel_values")


def test_classification_extension():
    with S.Server(S.TINY) as s:
        body = oip_image_json(["coco_cats.png", "chelsea.png"],
                              outputs=[{"name": "logits", "parameters": {"classification": 3}}])
        j = requests.post(s.url + "/v2/models/model/infer", json=body).json()
        o = output(j, "logits")
        assert o["datatype"] == "BYTES" and o["shape"] == [2, 3], o
        with open(os.path.join(S.TINY, "config.json")) as f:
            labels = json.load(f)["id2label"]
        for row, name in enumerate(["coco_cats", "chelsea"]):
            ref = REF[name + ".logits"].astype(np.float64)
            p = softmax(ref)
            items = o["data"][row * 3:(row + 1) * 3]
            parsed = [item.split(":", 2) for item in items]
            assert int(parsed[0][1]) == int(np.argmax(ref)), (items, np.argmax(ref))
            for score, index, label in parsed:
                assert label == labels[index], (label, labels[index])
                assert abs(float(score) - p[int(index)]) < 1e-5, (score, p[int(index)])
            scores = [float(x[0]) for x in parsed]
            assert scores == sorted(scores, reverse=True)


def test_embeddings_pooler():
    with S.Server(S.FEATURES) as s:
        meta = requests.get(s.url + "/v2/models/model").json()
        assert [o["name"] for o in meta["outputs"]] == ["embeddings"], meta
        j = requests.post(s.url + "/v2/models/model/infer", json=oip_image_json(["coco_cats.png", "chelsea.png"])).json()
        emb = fp32(output(j, "embeddings"))
        assert_close(emb[0], REF_FEATURES["coco_cats.pooler_output"], 1e-5, "pooler coco_cats")
        assert_close(emb[1], REF_FEATURES["chelsea.pooler_output"], 1e-5, "pooler chelsea")
        assert_error(requests.post(s.url + "/predict", data=read_bytes("coco_cats.png")), 400, "predict without classifier")


def test_hf_routes_equal_vit_classify():
    ref = S.classify_json(S.TINY, S.image("coco_cats.png"), S.image("coffee.jpg"), top=5)
    with S.Server(S.TINY) as s:
        for route in ("/predict", "/"):
            for i, name in enumerate(["coco_cats.png", "coffee.jpg"]):
                ctype = "image/png" if name.endswith("png") else "image/jpeg"
                a = requests.post(s.url + route, data=read_bytes(name), headers={"Content-Type": ctype}).json()
                want = ref[i]["predictions"]
                assert [p["label"] for p in a] == [p["label"] for p in want], (a, want)
                for p, q in zip(a, want):
                    assert abs(p["score"] - q["score"]) < 1e-6, (p, q)
        a = requests.post(s.url + "/predict", json={"inputs": b64(read_bytes("coco_cats.png")), "parameters": {"top_k": 2}}).json()
        assert len(a) == 2 and a[0]["label"] == "hen", a
        a = requests.post(s.url + "/predict", data=read_bytes("chelsea.png"), headers={"Content-Type": "application/octet-stream"}).json()
        p = softmax(REF["chelsea.logits"].astype(np.float64))
        assert [x["score"] for x in a] == sorted((x["score"] for x in a), reverse=True)
        assert_close([x["score"] for x in a], np.sort(p)[::-1][:5], 1e-5, "scores vs transformers' softmax")


def rollout(att):
    """Attention rollout from first principles: att [layers, heads, T, T]."""
    T = att.shape[-1]
    roll = np.eye(T)
    for layer in att.astype(np.float64):
        a = 0.5 * layer.mean(axis=0) + 0.5 * np.eye(T)
        a /= a.sum(axis=1, keepdims=True)
        roll = a @ roll
    cls = roll[0, 1:]
    return (cls - cls.min()) / (cls.max() - cls.min())


def test_attention_route():
    with S.Server(S.TINY) as s:
        r = requests.post(s.url + "/attention", data=read_bytes("coco_cats.png"), headers={"Content-Type": "image/png"})
        assert r.status_code == 200, r.text
        j = r.json()
        assert j["rows"] == 12 and j["cols"] == 12 and len(j["values"]) == 144, {k: j[k] for k in ("rows", "cols")}
        assert_close(j["values"], rollout(REF["coco_cats.attentions"]), 1e-4, "rollout vs the reference attentions")
        assert_error(requests.post(s.url + "/attention", data=b"not an image"), 400, "attention on junk")


# ---------------------------------------------------------------- load

def test_concurrent_batching():
    ref = {n: REF[n.split(".")[0] + ".logits"] for n in IMAGES}
    single = {}
    with S.Server(S.TINY, "--max-batch-size", "8", "--max-queue-delay-ms", "20") as s:
        for n in IMAGES:
            j = requests.post(s.url + "/v2/models/model/infer", json=oip_image_json([n])).json()
            single[n] = fp32(output(j, "logits"))[0]
            assert_close(single[n], ref[n], 1e-5, "single " + n)
        bodies = {n: oip_image_json([n]) for n in IMAGES}

        def one(i):
            n = IMAGES[i % len(IMAGES)]
            with requests.Session() as sess:
                r = sess.post(s.url + "/v2/models/model/infer", json=bodies[n], timeout=120)
            return n, r.status_code, (r.json() if r.status_code == 200 else r.text)

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(one, range(64)))
        for n, status, j in results:
            assert status == 200, (n, status, j)
            assert_close(fp32(output(j, "logits"))[0], single[n], 1e-6, "batched " + n)
        fams = {f.name: f for f in text_string_to_metric_families(requests.get(s.url + "/metrics").text)}
        batch = {float(x.labels["le"]): x.value for x in fams["vit_batch_size"].samples if x.name == "vit_batch_size_bucket"}
        forwards = [x.value for x in fams["vit_forward_executions"].samples if x.name.endswith("_total")][0]
        assert batch[math.inf] > batch[1.0], "no forward of more than one image: %s" % batch
        assert forwards < 64 + len(IMAGES), forwards
        logged = [j["batch"] for j in s.log() if j.get("route") == "/v2/models/model/infer"]
        assert max(logged) > 1, logged


def test_full_queue_503():
    # The first request waits 2 s in the queue for company that never fits
    # (batch 16), so with --max-queue 1 every other request meanwhile is refused.
    with S.Server(S.TINY, "--max-queue", "1", "--max-batch-size", "16", "--max-queue-delay-ms", "2000") as s:
        body = oip_image_json(["coco_cats.png"])

        def one(_):
            r = requests.post(s.url + "/v2/models/model/infer", json=body, timeout=120)
            return r.status_code, r.headers.get("Retry-After"), r.text

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(one, range(8)))
        statuses = [r[0] for r in results]
        assert set(statuses) <= {200, 503}, statuses
        assert statuses.count(503) >= 1 and statuses.count(200) >= 1, statuses
        for status, retry, text in results:
            if status == 503:
                assert retry and "queue full" in json.loads(text)["error"], (retry, text)
        alive(s)


def test_metrics_parse():
    with S.Server(S.TINY) as s:
        requests.post(s.url + "/predict", data=read_bytes("coco_cats.png"))
        requests.get(s.url + "/nowhere")
        text = requests.get(s.url + "/metrics").text
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        want = {"vit_requests": "counter", "vit_request_duration_seconds": "histogram",
                "vit_queue_duration_seconds": "histogram", "vit_inference_duration_seconds": "histogram",
                "vit_batch_size": "histogram", "vit_inferences": "counter", "vit_forward_executions": "counter",
                "vit_queue_length": "gauge"}
        for name, kind in want.items():
            assert name in fams, (name, sorted(fams))
            assert fams[name].type == kind, (name, fams[name].type)
        req = {(x.labels["route"], x.labels["status"]): x.value for x in fams["vit_requests"].samples if x.name == "vit_requests_total"}
        assert req[("/predict", "200")] == 1 and req[("other", "404")] == 1, req
        assert [x.value for x in fams["vit_inferences"].samples if x.name == "vit_inferences_total"] == [1]


# ---------------------------------------------------------------- hostile

def png_header(w, h):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_hostile_bodies():
    with S.Server(S.TINY, "--max-body-mb", "1", "--timeout-s", "3") as s:
        infer = s.url + "/v2/models/model/infer"
        assert "JSON" in assert_error(requests.post(infer, data=b'{"inputs": [', headers={"Content-Type": "application/json"}), 400, "malformed JSON")
        assert_error(requests.post(infer, json={"inputs": "x"}), 400, "inputs not an array")
        assert_error(requests.post(infer, json=[1, 2]), 400, "not an object")
        bad = oip_image_json(["coco_cats.png"])
        bad["inputs"][0]["data"] = ["@@@not base64@@@"]
        assert "base64" in assert_error(requests.post(infer, json=bad), 400, "bad base64")
        junk = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [b64(b"hello, not an image")]}]}
        assert_error(requests.post(infer, json=junk), 400, "non-image bytes")
        assert_error(requests.post(s.url + "/predict", data=b"\x00\x01garbage"), 400, "non-image raw body")
        bomb = png_header(100000, 100000)
        assert_error(requests.post(s.url + "/predict", data=bomb, headers={"Content-Type": "image/png"}), 400, "100000x100000 PNG")
        assert_error(requests.post(infer, json={"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [b64(bomb)]}]}), 400, "PNG bomb via OIP")
        wrong = {"inputs": [{"name": "pixel_values", "datatype": "FP32", "shape": [1, 3, 4, 4], "data": [0.0] * 47}]}
        assert_error(requests.post(infer, json=wrong), 400, "pixel_values shorter than shape")
        wrong["inputs"][0]["shape"] = [1, 3, 1 << 20, 1 << 20]
        assert_error(requests.post(infer, json=wrong), 400, "huge pixel_values shape")
        head = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 10 ** 6}}]}
        data, hdr = oip_binary(head, b"\x05\x00\x00\x00abc")
        assert_error(requests.post(infer, data=data, headers=hdr), 400, "binary_data_size past the body")
        data, hdr = oip_binary({"inputs": []}, b"")
        hdr["Inference-Header-Content-Length"] = "99999"
        assert_error(requests.post(infer, data=data, headers=hdr), 400, "header length past the body")
        hdr["Inference-Header-Content-Length"] = "12abc"
        assert_error(requests.post(infer, data=data, headers=hdr), 400, "non-numeric header length")
        assert_error(requests.post(infer, json={"inputs": [{"name": "audio", "datatype": "FP32", "shape": [1], "data": [1]}]}), 400, "unknown input")
        assert_error(requests.post(infer, json=oip_image_json(["coco_cats.png"], outputs=[{"name": "nope"}])), 400, "unknown output")

        # Over the limit: refused from the headers, before the body is sent.
        t0 = time.monotonic()
        status, headers, body = raw_exchange(s, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                                                b"Content-Length: 2097152\r\n\r\n")
        assert status == 413 and json.loads(body)["error"], (status, body)
        assert time.monotonic() - t0 < 2, "413 waited for the body"
        # Chunked over the limit: stopped once the limit is passed.
        chunk = b"%x\r\n" % 65536 + b"a" * 65536 + b"\r\n"
        try:
            status, headers, body = raw_exchange(s, b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 20)
            assert status == 413, (status, body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed after answering, while we were still sending
        # Truncated body: the client ends the connection early.
        status, headers, body = raw_exchange(s, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\nabcdef", shutdown=True)
        assert status == 400 and "truncated" in json.loads(body)["error"], (status, body)
        # Lying Content-Length, connection kept open: answered after --timeout-s.
        t0 = time.monotonic()
        status, headers, body = raw_exchange(s, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\nabcdef")
        assert status == 408 and json.loads(body)["error"], (status, body)
        assert 2 < time.monotonic() - t0 < 10
        # Content-Length shorter than the body: the rest is a bad next request.
        status, headers, body = raw_exchange(s, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcdefgh\r\n\r\n")
        assert status == 400, (status, body)
        # Bytes that are not UTF-8 in the target and in a JSON body: a 404 and
        # a 400, not an abort (the log line and the error message quote them).
        status, _, body = raw_exchange(s, b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 404 and json.loads(body)["error"], (status, body)
        status, _, body = raw_exchange(s, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                          b"Content-Length: 14\r\n\r\n{\"inputs\":\"\xff\"}")
        assert status == 400 and "JSON" in json.loads(body)["error"], (status, body)
        # Malformed request lines and headers.
        for junk in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
                     b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
                     b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 + b"\r\n\r\n"):
            status, _, body = raw_exchange(s, junk)
            assert status in (400, 431) and json.loads(body)["error"], (junk[:40], status, body)
        alive(s)
        assert requests.post(s.url + "/predict", data=read_bytes("coco_cats.png")).json()[0]["label"] == "hen"


def test_api_key():
    with tempfile.TemporaryDirectory() as d:
        key = os.path.join(d, "key")
        with open(key, "w") as f:
            f.write("s3cret-token\n")
        with S.Server(S.TINY, "--api-key-file", key) as s:
            img = read_bytes("coco_cats.png")
            r = requests.post(s.url + "/predict", data=img)
            assert_error(r, 401, "no token")
            assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")
            assert_error(requests.post(s.url + "/predict", data=img, headers={"Authorization": "Bearer s3cret-tokeN"}), 401, "wrong token")
            assert_error(requests.post(s.url + "/predict", data=img, headers={"Authorization": "Bearer s3cret"}), 401, "prefix of the token")
            assert_error(requests.get(s.url + "/v2/models/model", headers={"Authorization": "Basic s3cret-token"}), 401, "not bearer")
            ok = requests.post(s.url + "/predict", data=img, headers={"Authorization": "Bearer s3cret-token"})
            assert ok.status_code == 200 and ok.json()[0]["label"] == "hen"
            for open_route in ("/v2/health/live", "/v2/health/ready", "/metrics"):
                assert requests.get(s.url + open_route).status_code == 200, open_route


def test_idle_and_slow_clients():
    with S.Server(S.TINY, "--timeout-s", "30") as s:
        img = read_bytes("coco_cats.png")

        def timed():
            t0 = time.monotonic()
            r = requests.post(s.url + "/predict", data=img, timeout=60)
            assert r.status_code == 200
            return time.monotonic() - t0

        timed()
        usual = float(np.median([timed() for _ in range(7)]))
        idle = [socket.create_connection((s.host, s.port)) for _ in range(200)]
        slow = socket.create_connection((s.host, s.port))
        stop = threading.Event()

        def dribble():  # a header one byte at a time, never finished
            for ch in b"POST /predict HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10000:
                if stop.wait(0.05):
                    return
                try:
                    slow.send(bytes([ch]))
                except OSError:
                    return

        t = threading.Thread(target=dribble, daemon=True)
        t.start()
        try:
            time.sleep(0.5)
            loaded = float(np.median([timed() for _ in range(7)]))
        finally:
            stop.set()
            for c in idle + [slow]:
                c.close()
        assert loaded <= 2 * usual, "with 200 idle and a slow client: %.1f ms vs %.1f ms usual" % (loaded * 1e3, usual * 1e3)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_descriptors():
    # 64 descriptors in all: 100 connections run the server out of them.
    with S.Server(S.TINY, prefix=("prlimit", "--nofile=64:64")) as s:
        conns = []
        for _ in range(100):
            try:
                conns.append(socket.create_connection((s.host, s.port), timeout=5))
            except OSError:
                break
        time.sleep(0.5)
        c0 = cpu_seconds(s.proc.pid)
        time.sleep(1.0)
        spent = cpu_seconds(s.proc.pid) - c0
        assert spent < 0.3, "the server spins while out of descriptors: %.2f CPU s in 1 s" % spent
        assert any(j.get("event") == "accept_error" for j in s.log()), "no accept error logged"
        for c in conns:
            c.close()
        time.sleep(0.3)
        r = requests.post(s.url + "/predict", data=read_bytes("coco_cats.png"), timeout=30)
        assert r.status_code == 200 and r.json()[0]["label"] == "hen"


def test_idle_timeout():
    with S.Server(S.TINY, "--timeout-s", "1") as s:
        c = socket.create_connection((s.host, s.port))
        c.settimeout(10)
        t0 = time.monotonic()
        c.sendall(b"GET /v2 HTTP/1.1\r\nHost: x\r")  # never finished
        data = b""
        while True:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
        elapsed = time.monotonic() - t0
        c.close()
        assert 0.5 < elapsed < 5, elapsed
        alive(s)


# ---------------------------------------------------------------- lifecycle

def test_sigterm_drains():
    # A long batching delay keeps the 8 requests in the queue when the signal comes.
    s = S.Server(S.TINY, "--max-batch-size", "16", "--max-queue-delay-ms", "3000")
    try:
        body = oip_image_json(["coco_cats.png"])
        keep = requests.Session()
        assert keep.get(s.url + "/v2/health/ready").status_code == 200

        def one(_):
            r = requests.post(s.url + "/v2/models/model/infer", json=body, timeout=60)
            return r.status_code, r.text

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(one, i) for i in range(8)]
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                m = requests.get(s.url + "/metrics").text
                q = [x.value for f in text_string_to_metric_families(m) if f.name == "vit_queue_length" for x in f.samples]
                if q and q[0] >= 8:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("the 8 requests never queued")
            s.signal(signal.SIGTERM)
            drain = s.wait_line(lambda j: j.get("event") == "draining", 10)
            assert drain["in_flight"] >= 8, drain
            # While draining: ready says 503 on a kept-alive connection, new connections are refused.
            r = keep.get(s.url + "/v2/health/ready")
            assert r.status_code == 503 and r.headers.get("Retry-After"), (r.status_code, r.text)
            try:
                socket.create_connection((s.host, s.port), timeout=2).close()
                refused = False
            except OSError:
                refused = True
            assert refused, "still accepting while draining"
            results = [f.result() for f in futures]
        assert [st for st, _ in results] == [200] * 8, results
        assert s.wait(30) == 0, "exit status %s" % s.proc.returncode
    finally:
        s.stop()


def test_second_signal_exits_at_once():
    s = S.Server(S.TINY, "--max-batch-size", "16", "--max-queue-delay-ms", "20000")
    try:
        body = oip_image_json(["coco_cats.png"])
        def queued():  # the exit drops it: its connection just closes
            try:
                requests.post(s.url + "/v2/models/model/infer", json=body, timeout=60)
            except requests.ConnectionError:
                pass

        t = threading.Thread(target=queued, daemon=True)
        t.start()
        time.sleep(0.5)
        s.signal(signal.SIGTERM)
        s.wait_line(lambda j: j.get("event") == "draining", 10)
        s.signal(signal.SIGINT)
        t0 = time.monotonic()
        code = s.wait(10)
        assert time.monotonic() - t0 < 3 and code != 0, code
    finally:
        s.stop()


def test_not_ready_while_loading():
    # config.json is a FIFO: opening it blocks the load until the test opens
    # the other end; the loader then refuses it (not a regular file), so this
    # also covers a load that fails after the port is bound.
    with tempfile.TemporaryDirectory() as d:
        for f in ("model.safetensors", "preprocessor_config.json"):
            with open(os.path.join(S.TINY, f), "rb") as src, open(os.path.join(d, f), "wb") as dst:
                dst.write(src.read())
        fifo = os.path.join(d, "config.json")
        os.mkfifo(fifo)
        with S.Server(d, wait_ready=False) as s:
            time.sleep(0.3)
            r = requests.get(s.url + "/v2/health/ready")
            assert r.status_code == 503 and r.headers.get("Retry-After"), (r.status_code, r.text)
            assert requests.get(s.url + "/v2/health/live").status_code == 200
            assert_error(requests.post(s.url + "/predict", data=read_bytes("coco_cats.png")), 503, "infer before load")
            with open(os.path.join(S.TINY, "config.json"), "rb") as src:
                text = src.read()
            try:  # unbuffered: the server may close its end before we do
                with open(fifo, "wb", buffering=0) as w:
                    w.write(text)
            except BrokenPipeError:
                pass
            assert s.wait(30) == 1, s.proc.returncode
            assert any("config.json" in line and "regular file" in line for line in s.lines), s.lines


def test_bad_command_lines():
    import subprocess
    for args, what in (([], "--model is required"), (["--model", S.TINY, "--port", "99999"], "--port"),
                       (["--model", S.TINY, "--dtype", "f16"], "--dtype"), (["--model", S.TINY, "--bogus"], "unknown option")):
        p = subprocess.run([S.SERVE, *args], capture_output=True, text=True, timeout=30)
        assert p.returncode == 2 and what in p.stderr, (args, p.returncode, p.stderr)
    p = subprocess.run([S.SERVE, "--model", "/nonexistent/model", "--port", "0"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "/nonexistent/model" in p.stderr, (p.returncode, p.stderr)
    p = subprocess.run([S.SERVE, "--model", S.TINY, "--port", "0", "--api-key-file", "/nonexistent/key"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "/nonexistent/key" in p.stderr, (p.returncode, p.stderr)


def main(argv):
    return S.run_tests(globals(), argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
