#!/usr/bin/env python3
"""Writes the seed corpora in tests/fuzz/corpus/ from the test fixtures.

Seeds are small on purpose (the fuzzer mutates them, big seeds only slow it
down): a few tensors cut out of a fixture checkpoint, the fixtures' JSON files,
a torch.save-style archive built here without torch, tiny images in each
format the decoder accepts, and vit-serve request bodies of each form. Needs
only the Python standard library and g++ with Debian's libstb (for a JPEG);
rerun after changing a fixture.
"""
import json
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import types
import zipfile
import zlib
from collections import OrderedDict

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")
CORPUS = os.path.join(HERE, "corpus")


def out(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- safetensors

def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_safetensors(tensors, metadata=None):
    header, body = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(body), len(body) + len(data)]}
        body += data
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + body


def safetensors_seeds():
    header, body = read_safetensors(os.path.join(DATA, "vit-tiny-random/model/model.safetensors"))
    picked = []
    for name in ["vit.embeddings.cls_token", "vit.layernorm.bias", "classifier.bias"]:
        b, e = header[name]["data_offsets"]
        picked.append((name, header[name]["dtype"], header[name]["shape"], body[b:e]))
    out("safetensors", "tiny_subset.safetensors", write_safetensors(picked, {"format": "pt"}))
    f16 = [(n, "F16", s, d[: len(d) // 2]) for n, _, s, d in picked[:2]]
    out("safetensors", "f16.safetensors", write_safetensors(f16))
    bf16 = [(n, "BF16", s, d[: len(d) // 2]) for n, _, s, d in picked[:2]]
    out("safetensors", "bf16.safetensors", write_safetensors(bf16))
    misc = [("u8", "U8", [2, 3], bytes(range(6))), ("i64", "I64", [1], struct.pack("<q", -5)),
            ("scalar", "F64", [], struct.pack("<d", 1.5)), ("empty", "F32", [0, 4], b""),
            ("flag", "BOOL", [2], b"\x01\x00")]
    out("safetensors", "dtypes.safetensors", write_safetensors(misc))
    out("safetensors", "empty.safetensors", write_safetensors([]))


# ---- JSON files of a checkpoint folder

def config_seeds():
    for rel in ["vit-tiny-random/model/config.json", "vit-tiny-features/model/config.json",
                "vit-tiny-random/model/preprocessor_config.json"]:
        with open(os.path.join(DATA, rel), "rb") as f:
            out("config", rel.replace("/", "_"), f.read())
    # The full-size config, with 8 of its 1000 labels: long seeds slow every run.
    with open(os.path.join(DATA, "vit-large-formula/config.json")) as f:
        large = json.load(f)
    for key in ("id2label", "label2id"):
        large[key] = dict(list(large[key].items())[:8])
    out("config", "vit-large-formula_config.json", json.dumps(large, indent=2).encode())
    out("config", "index.json", json.dumps({"metadata": {"total_size": 4},
                                            "weight_map": {"vit.layernorm.weight": "model-00001-of-00002.safetensors",
                                                           "vit.layernorm.bias": "model-00002-of-00002.safetensors"}}).encode())
    out("config", "shapes.json", json.dumps({"image_size": [64, 96], "patch_size": 16, "hidden_size": 8,
                                             "num_attention_heads": 2, "num_labels": 3, "qkv_bias": False,
                                             "hidden_act": "gelu_new", "layer_norm_eps": 1e-6,
                                             "architectures": ["ViTModel"],
                                             "size": {"height": 64, "width": 96}, "resample": 3,
                                             "image_mean": [0.485, 0.456, 0.406], "image_std": 0.5}).encode())


# ---- torch.save archives, built without torch: stand-in globals whose
# pickled names are torch's, and a persistent id per storage.

def fake_torch():
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    torch._utils = utils
    for name in ["FloatStorage", "HalfStorage", "LongStorage"]:
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    for name in ["_rebuild_tensor_v2", "_rebuild_parameter"]:
        fn = lambda *a: None  # noqa: E731
        fn.__module__, fn.__name__, fn.__qualname__ = "torch._utils", name, name
        setattr(utils, name, fn)
    return torch, utils


class Storage:
    def __init__(self, cls, key, numel):
        self.cls, self.key, self.numel = cls, key, numel


class Tensor:
    def __init__(self, utils, storage, offset, size, stride, parameter=False):
        self.utils, self.args, self.parameter = utils, (storage, offset, size, stride, False, OrderedDict()), parameter

    def __reduce__(self):
        if self.parameter:
            return (self.utils._rebuild_parameter, (Tensor(self.utils, *self.args[:4]), False, OrderedDict()))
        return (self.utils._rebuild_tensor_v2, self.args)


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.cls, obj.key, "cpu", obj.numel)
        return None


def dumps(obj, protocol=2):
    import io
    b = io.BytesIO()
    Pickler(b, protocol=protocol).dump(obj)
    return b.getvalue()


def torch_zip(pkl, storages, folder="archive"):
    import io
    b = io.BytesIO()
    def entry(name):  # a fixed date keeps the seeds byte-identical across runs
        return zipfile.ZipInfo(folder + "/" + name, date_time=(2020, 1, 1, 0, 0, 0))
    with zipfile.ZipFile(b, "w", zipfile.ZIP_STORED) as z:
        z.writestr(entry("data.pkl"), pkl)
        z.writestr(entry("byteorder"), "little")
        for key, data in storages.items():
            z.writestr(entry("data/" + key), data)
        z.writestr(entry("version"), "3\n")
    return b.getvalue()


def pytorch_seeds():
    torch, utils = fake_torch()
    s0 = Storage(torch.FloatStorage, "0", 16)
    s1 = Storage(torch.HalfStorage, "1", 32)
    sd = OrderedDict()
    sd["vit.layernorm.weight"] = Tensor(utils, s0, 0, (4,), (1,))
    sd["vit.layernorm.bias"] = Tensor(utils, s0, 4, (2, 3), (3, 1), parameter=True)
    sd["transposed"] = Tensor(utils, s0, 0, (3, 2), (1, 3))
    sd["half"] = Tensor(utils, s1, 2, (2, 2, 2), (8, 2, 1))
    sd["step"] = 7
    # The harness's odd-byte mode wraps a pickle with storages "0".."3" of
    # 64 << k bytes: these sizes fit them.
    for proto in (2, 4):
        pkl = dumps(sd, proto)
        out("pytorch", "pickle_p%d" % proto, b"\x01" + pkl)
        out("pytorch", "archive_p%d" % proto,
            b"\x00" + torch_zip(pkl, {"0": bytes(range(64)), "1": bytes(range(64))}))
    wrapped = dumps({"state_dict": sd, "epoch": 3}, 2)
    out("pytorch", "pickle_wrapped", b"\x01" + wrapped)
    out("pytorch", "pickle_text", b"\x01" + dumps(sd, 0))
    # The fixture's own data.pkl: the real thing, in the pickle-only mode.
    with zipfile.ZipFile(os.path.join(DATA, "vit-tiny-random/pytorch_model/pytorch_model.bin")) as z:
        out("pytorch", "fixture_data_pkl", b"\x01" + z.read("pytorch_model/data.pkl"))


# ---- images

def png(w, h, color_type, depth, rows, extra=b""):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    raw = b"".join(b"\x00" + r for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0)) +
            extra + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def exif_orientation(v):
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, v, 0) + b"\0\0\0\0"
    return tiff


def image_seeds():
    with open(os.path.join(DATA, "images/tiny_7x5.png"), "rb") as f:
        out("image", "tiny_7x5.png", f.read())
    out("image", "rgb_3x2.png", png(3, 2, 2, 8, [bytes(range(9)), bytes(range(9, 18))]))
    out("image", "gray16_2x2.png", png(2, 2, 0, 16, [b"\x01\x00\x00\xff", b"\xff\xff\x00\x10"]))
    plte = struct.pack(">I", 9) + b"PLTE" + b"\xff\x00\x00\x00\xff\x00\x00\x00\xff"
    plte += struct.pack(">I", zlib.crc32(b"PLTE\xff\x00\x00\x00\xff\x00\x00\x00\xff") & 0xffffffff)
    out("image", "palette_4x1.png", png(4, 1, 3, 2, [b"\x1b"], plte))
    exif = exif_orientation(6)
    exif_chunk = struct.pack(">I", len(exif)) + b"eXIf" + exif + struct.pack(">I", zlib.crc32(b"eXIf" + exif) & 0xffffffff)
    out("image", "exif6_2x3.png", png(2, 3, 2, 8, [bytes(6), bytes(range(6)), bytes([255] * 6)], exif_chunk))
    # BMP 2x2, 24-bit
    rows = b"\x00\x00\xff\xff\xff\xff\x00\x00" + b"\xff\x00\x00\x00\xff\x00\x00\x00"
    bmp = b"BM" + struct.pack("<IHHI", 54 + len(rows), 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, 2, 2, 1, 24, 0, len(rows), 0, 0, 0, 0) + rows
    out("image", "rgb_2x2.bmp", bmp)
    out("image", "gray_3x2.pgm", b"P5\n3 2\n255\n" + bytes([0, 128, 255, 1, 2, 3]))
    out("image", "rgb_2x1.ppm", b"P6\n2 1\n255\n" + bytes(range(6)))
    tga = struct.pack("<BBBHHBHHHHBB", 0, 0, 2, 0, 0, 0, 0, 0, 2, 1, 24, 0) + bytes(range(6))
    out("image", "rgb_2x1.tga", tga)
    out("image", "one.gif", b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00"
                            b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
    # A small JPEG from stb_image_write, then the same with an EXIF block.
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "w.cpp")
        with open(src, "w") as f:
            f.write('#include <stb/stb_image_write.h>\n'
                    'int main(int, char** argv) { unsigned char px[8 * 6 * 3];\n'
                    '  for (int i = 0; i < 8 * 6 * 3; ++i) px[i] = (unsigned char)(i * 29);\n'
                    '  return !stbi_write_jpg(argv[1], 8, 6, 3, px, 90); }\n')
        exe = os.path.join(tmp, "w")
        subprocess.check_call(["g++", src, "-o", exe, "-lstb"])
        jpg = os.path.join(tmp, "x.jpg")
        subprocess.check_call([exe, jpg])
        with open(jpg, "rb") as f:
            data = f.read()
    out("image", "rgb_8x6.jpg", data)
    app1 = b"Exif\x00\x00" + exif_orientation(8)
    out("image", "exif8_8x6.jpg", data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:])


# ---- vit-serve request bodies. The first byte is fuzz_serve's mode: 0 OIP
# JSON, 1 OIP binary (then the header length, 2 bytes little-endian), 2 HF
# raw image, 3 HF JSON, 4 base64 text.

def oip_json(head):
    return b"\x00" + json.dumps(head, separators=(",", ":")).encode()


def oip_binary(head, raw, header_len=None):
    h = json.dumps(head, separators=(",", ":")).encode()
    return b"\x01" + struct.pack("<H", len(h) if header_len is None else header_len) + h + raw


def bytes_elements(blobs):
    return b"".join(struct.pack("<I", len(b)) + b for b in blobs)


def serve_seeds():
    import base64
    with open(os.path.join(DATA, "images/tiny_7x5.png"), "rb") as f:
        tiny = f.read()
    small = png(3, 2, 2, 8, [bytes(range(9)), bytes(range(9, 18))])
    ppm = b"P6\n2 1\n255\n" + bytes(range(6))
    b64 = lambda d: base64.b64encode(d).decode()  # noqa: E731
    def image_input(n, **kw):
        return dict({"name": "image", "datatype": "BYTES", "shape": [n]}, **kw)
    def pixel_input(**kw):
        return dict({"name": "pixel_values", "datatype": "FP32", "shape": [1, 3, 2, 2]}, **kw)
    values = [round(0.25 * i - 1.5, 2) for i in range(12)]
    nested = [[[values[c * 4 + y * 2:c * 4 + y * 2 + 2] for y in range(2)] for c in range(3)]]
    classify = [{"name": "logits", "parameters": {"classification": 3}}, {"name": "embeddings"}]

    out("serve", "oip_image_tiny_png", oip_json({"id": "r1", "inputs": [image_input(1, data=[b64(tiny)])]}))
    out("serve", "oip_images_classify", oip_json({"inputs": [image_input(2, data=[b64(small), b64(ppm)])],
                                                   "outputs": classify}))
    out("serve", "oip_pixels_nested", oip_json({"inputs": [pixel_input(data=nested)],
                                                "outputs": [{"name": "embeddings"}]}))
    out("serve", "oip_pixels_flat", oip_json({"id": "flat", "inputs": [pixel_input(data=values)],
                                              "parameters": {"binary_data_output": True}}))
    out("serve", "bin_images", oip_binary({"inputs": [image_input(2, parameters={"binary_data_size": len(bytes_elements([small, ppm]))})],
                                           "outputs": [{"name": "logits", "parameters": {"classification": 2, "binary_data": True}}]},
                                          bytes_elements([small, ppm])))
    raw = struct.pack("<12f", *values)
    out("serve", "bin_pixels", oip_binary({"inputs": [pixel_input(parameters={"binary_data_size": len(raw)})],
                                           "parameters": {"binary_data_output": True},
                                           "outputs": [{"name": "embeddings", "parameters": {"binary_data": True}}]}, raw))
    # A binary header with the inputs in JSON (no binary_data_size).
    out("serve", "bin_header_only", oip_binary({"inputs": [pixel_input(data=values)]}, b""))
    out("serve", "hf_raw_png", b"\x02" + tiny)
    out("serve", "hf_raw_ppm", b"\x02" + ppm)
    out("serve", "hf_json", b"\x03" + json.dumps({"inputs": b64(small), "parameters": {"top_k": 3}}).encode())
    text = {"name": "text", "datatype": "BYTES", "shape": [2], "data": ["a photo of a cat", "\u732b \U0001f431"]}
    out("serve", "oip_text", oip_json({"inputs": [text], "outputs": [{"name": "text_embeds"}]}))
    words = [b"a cat", "caf\u00e9".encode()]
    out("serve", "bin_text", oip_binary({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2],
                                                     "parameters": {"binary_data_size": len(bytes_elements(words))}}]},
                                        bytes_elements(words)))
    out("serve", "hf_zero_shot", b"\x03" + json.dumps({"inputs": b64(small), "parameters": {
        "candidate_labels": ["cat", "dog"], "hypothesis_template": "a photo of {}"}}).encode())
    out("serve", "hf_zero_shot_object", b"\x03" + json.dumps({"inputs": {"image": b64(small)},
                                                               "parameters": {"candidate_labels": ["cat", "dog"]}}).encode())
    out("serve", "hf_zero_shot_commas", b"\x03" + json.dumps({"image": b64(small),
                                                               "parameters": {"candidate_labels": "cat, dog,,bird"}}).encode())
    out("serve", "b64_text", b"\x04" + b64(small).encode())
    out("serve", "b64_wrapped", b"\x04" + b"QUJD\r\nRA==")
    # Broken ones, each refused for a different reason.
    out("serve", "bad_bin_truncated_element", oip_binary({"inputs": [image_input(1, parameters={"binary_data_size": 10})]},
                                                         struct.pack("<I", 100) + ppm[:6]))
    out("serve", "bad_bin_header_len", oip_binary({"inputs": [pixel_input(parameters={"binary_data_size": 48})]}, raw, 0xffff))
    out("serve", "bad_pixels_short", oip_json({"inputs": [pixel_input(data=values[:11])]}))
    out("serve", "bad_unknown_output", oip_json({"inputs": [pixel_input(data=values)], "outputs": [{"name": "probs"}]}))
    out("serve", "bad_base64", oip_json({"inputs": [image_input(1, data=["iVBOR*w0KGgo="])]}))
    out("serve", "bad_hf_json", b"\x03" + b'{"inputs": 5, "parameters": {"top_k": 0}')
    out("serve", "bad_bin_text_utf8", oip_binary({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1],
                                                              "parameters": {"binary_data_size": 7}}]},
                                                 bytes_elements([b"\xc3("])))
    out("serve", "bad_hf_duplicate_labels", b"\x03" + json.dumps({"inputs": b64(small),
                                                                   "parameters": {"candidate_labels": ["cat", "cat"]}}).encode())


if __name__ == "__main__":
    safetensors_seeds()
    config_seeds()
    pytorch_seeds()
    image_seeds()
    serve_seeds()
