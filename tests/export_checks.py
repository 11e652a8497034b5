"""Helpers shared by the export tests: real examples, image encoders, proto parsers."""

from __future__ import annotations

import io
import pathlib

import numpy as np
from google.protobuf import text_format
from PIL import Image

import zoo
from export import export_saved_model
from export.archive import plan_export
from model_checks import tiny_model
from serving.protos.tf_serving_config_pb2 import BatchingParameters
from zoo.tasks import CLASSIFY_METHOD, PREDICT_METHOD

IMAGE_METHODS = {"serving_default": PREDICT_METHOD, "image_bytes": PREDICT_METHOD, "classify": CLASSIFY_METHOD}


def real_images(dataset="synthetic_shapes", split="train", n=4) -> np.ndarray:
    """The first `n` images of an offline dataset, [n,H,W,C] float32 0-255."""
    features, _ = next(iter(zoo.load_dataset(dataset, split, batch_size=n, shuffle=False)))
    return features["image"].numpy()


def export_tiny(name, base_path, images, **kwargs):
    """Exports the tiny `name` without verification; returns (path, model, Keras probabilities)."""
    path, model, plan = export_tiny_plan(name, base_path, images, **kwargs)
    return path, model, plan.reference["probabilities"]


def export_tiny_plan(name, base_path, images, **kwargs):
    """Exports the tiny `name` without verification; returns (path, model, its ExportPlan)."""
    model = tiny_model(name)
    path = export_saved_model(model, base_path, name, examples=images, verify=False, **kwargs)
    return path, model, plan_export(model, examples=images)


def encode(pixels, fmt: str, size=None, mode: str | None = None) -> bytes:
    """[H,W,C] 0-255 pixels as `fmt` bytes (PNG, JPEG, GIF, BMP), optionally resized/converted."""
    array = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
    image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    if size is not None:
        image = image.resize(size, Image.BILINEAR)
    if mode is not None:
        image = image.convert(mode)
    out = io.BytesIO()
    image.save(out, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return out.getvalue()


def decode_like_a_client(data: bytes, height: int, width: int, channels: int) -> np.ndarray:
    """Decodes with PIL (not TF) and resizes to the model's size: the client's own pixels."""
    import tensorflow as tf

    image = Image.open(io.BytesIO(data)).convert("L" if channels == 1 else "RGB")
    array = np.asarray(image, np.float32).reshape(image.size[1], image.size[0], channels)
    return tf.image.resize(array, (height, width)).numpy()


def tree(path) -> list[str]:
    """Every file and folder under `path` (relative), to check that nothing was written."""
    path = pathlib.Path(path)
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


def parse_batching_parameters(path) -> BatchingParameters:
    """A batching_parameters.txt parsed with serving's BatchingParameters, as the server reads it."""
    params = BatchingParameters()
    text_format.Parse(pathlib.Path(path).read_text(), params)
    return params
