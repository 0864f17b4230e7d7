"""vit: Vision Transformer inference (ViT, DINOv2, CLIP/SigLIP vision, DeiT) on the
header-only C++ library, bit-compatible with transformers.

    import vit
    model = vit.load_model("google/vit-large-patch32-384")   # a folder or a hub id in the HF cache
    for p in model.classify(["cat.jpg"], top_k=3)[0]:
        print(f"{p.score:.4f}  {p.label}")

CLIP and SigLIP checkpoints also embed texts and score labels zero-shot:

    model = vit.load_model("openai/clip-vit-base-patch32")
    model.embed_text(["a photo of a cat"])                   # text_embeds, float32 [N, P]
    for p in model.zero_shot("cat.jpg", ["cat", "dog"])[0]:   # the pipeline's probs, best first
        print(f"{p.score:.4f}  {p.label}")

Images may be paths (str or os.PathLike), encoded bytes (JPEG, PNG, ...),
PIL.Image.Image or numpy uint8 arrays [H, W, 3] (RGB), mixed in one list.
Every call that decodes or computes releases the GIL, and a Model may be
shared by many threads.
"""

import os as _os

import numpy as _np

from . import _vit
from ._vit import Error, Prediction

__version__ = _vit.__version__
__all__ = ["Error", "Model", "Prediction", "load_model", "__version__"]


def _image_arg(img):
    """One image in a form the extension takes: str path, bytes or uint8 [H, W, 3]."""
    if isinstance(img, (str, bytes)):
        return img
    if isinstance(img, (bytearray, memoryview)):
        return bytes(img)
    if isinstance(img, _os.PathLike):
        return _os.fsdecode(img)
    if isinstance(img, _np.ndarray):
        if img.dtype == _np.uint8 and img.ndim == 2:  # grayscale: the channel copied, as convert("RGB")
            return _np.repeat(img[:, :, None], 3, axis=2)
        if img.dtype == _np.uint8 and img.ndim == 3 and img.shape[2] == 4:  # RGBA: alpha dropped, as convert("RGB")
            return _np.ascontiguousarray(img[:, :, :3])
        return img
    if hasattr(img, "convert") and hasattr(img, "mode") and hasattr(img, "size"):  # PIL.Image.Image
        # As transformers' processor: convert("RGB") (no EXIF transpose of an opened image).
        return _np.asarray(img if img.mode == "RGB" else img.convert("RGB"), dtype=_np.uint8)
    return img  # the extension names what it cannot take


def _image_list(images):
    """A list of images; a single image (path, bytes, PIL image, [H, W, 3] array) is a list of one."""
    single = (str, bytes, bytearray, memoryview, _os.PathLike)
    if isinstance(images, single) or (isinstance(images, _np.ndarray) and images.ndim in (2, 3)) or hasattr(
        images, "convert"
    ):
        images = [images]
    elif isinstance(images, _np.ndarray) and images.ndim == 4:  # [N, H, W, 3]
        images = list(images)
    return [_image_arg(i) for i in images]


def _text_list(texts, what="text"):
    """A list of str; a single str is a list of one (the extension checks the items)."""
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, (bytes, bytearray)) or not hasattr(texts, "__iter__"):
        raise Error(f"expected a str or a list of str ({what}s), got {type(texts).__name__}")
    return list(texts)


class Model:
    """A checkpoint loaded for inference. Thread-safe: share one across threads."""

    __slots__ = ("_m",)

    def __init__(self, path_or_hub_id, dtype="f32", threads=None):
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise Error(f"load_model: threads must be a positive int or None, got {threads!r}")
        self._m = _vit.Model(_os.fspath(path_or_hub_id), str(dtype), 0 if threads is None else threads)

    def classify(self, images, top_k=5, batch_size=8):
        """The top_k predictions of each image, best first: one list per image."""
        return self._m.classify(_image_list(images), int(top_k), int(batch_size))

    def embed(self, images, normalize=False, batch_size=8):
        """The family's image embedding (see embedding_kind), float32 [N, D]."""
        return self._m.embed(_image_list(images), bool(normalize), int(batch_size))

    def embed_text(self, texts, normalize=False):
        """Each text's text_embeds (CLIP projected, SigLIP pooled), float32 [N, P]. The text
        tower loads on the first text call; a checkpoint without one raises Error."""
        return self._m.embed_text(_text_list(texts), bool(normalize))

    def tokenize(self, texts):
        """Each text's input_ids as the text tower gets them (padding left out)."""
        return self._m.tokenize(_text_list(texts))

    def zero_shot(self, images, labels, template="This is a photo of {}.", top_k=None, batch_size=8):
        """Per image, the labels best first, scored as transformers' zero-shot pipeline (CLIP:
        softmax over the labels; SigLIP: sigmoid of each). Each label fills template's "{}"."""
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise Error(f"zero_shot: top_k must be a positive int or None, got {top_k!r}")
        return self._m.zero_shot(
            _image_list(images), _text_list(labels, "label"), str(template), 0 if top_k is None else top_k,
            int(batch_size))

    def zero_shot_logits(self, images, labels, template="This is a photo of {}.", batch_size=8):
        """logits_per_image, float32 [n_images, n_labels]: exp(logit_scale) * cosine (+ logit_bias, SigLIP)."""
        return self._m.zero_shot_logits(_image_list(images), _text_list(labels, "label"), str(template),
                                        int(batch_size))

    def preprocess(self, images):
        """The image processor's pixel_values, float32 [N, 3, H, W]."""
        return self._m.preprocess(_image_list(images))

    def forward(self, pixel_values, output_hidden_states=False, output_attentions=False):
        """The model's outputs on pixel_values [N, 3, H, W] (any multiple of the patch size), as a dict."""
        return self._m.forward(_np.asarray(pixel_values), bool(output_hidden_states), bool(output_attentions))

    def wait_packed(self):
        """Pack now the layers no call has packed yet (each packs on its first call otherwise)."""
        self._m.wait_packed()

    @property
    def config(self):
        return self._m.config

    @property
    def labels(self):
        return self._m.labels

    @property
    def embedding_kind(self):
        return self._m.embedding_kind

    @property
    def embedding_size(self):
        return self._m.embedding_size

    @property
    def path(self):
        return self._m.path

    @property
    def dtype(self):
        return self._m.dtype

    def __repr__(self):
        c = self._m.config
        return f"vit.Model({c['path']!r}, model_type={c['model_type']!r}, dtype={c['dtype']!r})"

    def __reduce__(self):
        raise TypeError("vit.Model cannot be pickled: load one per process (see vit.load_model)")


def load_model(path_or_hub_id, dtype="f32", threads=None):
    """Loads a checkpoint folder, or a hub id (e.g. "google/vit-large-patch32-384") from the
    Hugging Face cache. dtype: "f32", "bf16" or "int8" (how the encoder computes);
    threads: per call (None: every core)."""
    return Model(path_or_hub_id, dtype, threads)
