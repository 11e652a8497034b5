"""`assets.extra/model_card.json`: what a served model is, read without loading it.

The card holds the task, the label names, the signatures with dtypes and shapes (read
back from saved_model.pb, so they are what a server sees), evaluation metrics, the
training configuration and the library versions that wrote the export. `zoo info`
on an export prints it (`describe_export`).

    card = read_model_card("models/digits/1")
    card["labels"], card["signatures"]["serving_default"]["outputs"]
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import pathlib
import platform

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

CARD_FILE = pathlib.Path("assets.extra") / "model_card.json"
FORMAT_VERSION = 1
# Entries of the SignatureDef map that are no serving signatures: TF2's SavedModel
# stores its resource-initializer op under this key.
_INTERNAL_SIGNATURES = ("__saved_model_init_op",)
_PACKAGES = ("tensorflow", "keras", "numpy", "protobuf", "tensorflow-serving-api", "keras-hub", "keras-zoo")


def read_saved_model(export_dir) -> saved_model_pb2.SavedModel:
    path = pathlib.Path(export_dir) / "saved_model.pb"
    if not path.exists():
        raise FileNotFoundError(f"{export_dir} holds no saved_model.pb; it is not a SavedModel export.")
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString(path.read_bytes())
    return saved_model


def _tensor(info) -> dict:
    shape = None if info.tensor_shape.unknown_rank else [
        None if d.size < 0 else d.size for d in info.tensor_shape.dim]
    return {"dtype": tf.dtypes.as_dtype(info.dtype).name, "shape": shape}


def read_signatures(export_dir) -> dict:
    """Serving signatures of the "serve" MetaGraph: key -> method, inputs, outputs.

    Example:
        >>> read_signatures("models/digits/1")["serving_default"]["inputs"]
        {'image': {'dtype': 'float32', 'shape': [None, 8, 8, 1]}}
    """
    for meta_graph in read_saved_model(export_dir).meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return {
                key: {
                    "method_name": sig.method_name,
                    "inputs": {k: _tensor(v) for k, v in sorted(sig.inputs.items())},
                    "outputs": {k: _tensor(v) for k, v in sorted(sig.outputs.items())},
                }
                for key, sig in sorted(meta_graph.signature_def.items())
                if key not in _INTERNAL_SIGNATURES
            }
    raise ValueError(f"{export_dir} has no MetaGraph tagged 'serve', which TF Serving loads.")


def library_versions() -> dict:
    versions = {"python": platform.python_version()}
    for package in _PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def build_model_card(*, export_dir, model_name: str, version: int, task: str, architecture: str,
                     task_fields: dict, model, source: dict, examples: dict, metrics=None,
                     training=None, dataset=None) -> dict:
    """The card's content; `source`/`examples` say where the model and warm-up data came
    from, `task_fields` what the task records (labels, limits, tokenizer)."""
    signatures = read_signatures(export_dir)
    card = {
        "format_version": FORMAT_VERSION,
        "model_name": model_name,
        "version": version,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "task": task,
        "architecture": architecture,
        "parameters": int(model.count_params()),
        "inputs": signatures["serving_default"]["inputs"],
        "signatures": signatures,
        "metrics": metrics or {},
        "training": training,
        "dataset": dataset,
        "source": source,
        "warmup": examples,
        "library_versions": library_versions(),
    }
    clash = sorted(set(task_fields) & set(card))
    if clash:
        raise ValueError(f"The task's model card fields {clash} clash with the card's own; rename them.")
    return {**card, **task_fields, "task_fields": sorted(task_fields)}


def write_model_card(export_dir, card: dict) -> pathlib.Path:
    path = pathlib.Path(export_dir) / CARD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_model_card(export_dir) -> dict:
    path = pathlib.Path(export_dir) / CARD_FILE
    if not path.exists():
        raise FileNotFoundError(f"{export_dir} has no {CARD_FILE}; it was not written by `zoo export`.")
    return json.loads(path.read_text(encoding="utf-8"))
