"""TF Serving warm-up records: `assets.extra/tf_serving_warmup_requests`.

TF Serving replays these `PredictionLog` records (a TFRecord file) when it loads a
version, before the version takes traffic, so the first real request does not pay
for graph optimization and memory allocation. A record that fails fails the load, so
the export verification replays the same file. Records come from real examples
(`zoo.tasks.Request`), one per signature and batch size.

    requests = task.requests({"image": images})
    write_warmup_requests(export_dir, requests, model_name="digits")
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2, predict_pb2, prediction_log_pb2, regression_pb2

from zoo.tasks.base import REGRESS_METHOD

WARMUP_FILE = pathlib.Path("assets.extra") / "tf_serving_warmup_requests"
# TF Serving refuses a warm-up file with more records than this (WarmupConsts).
MAX_RECORDS = 1000


def prediction_log(request, model_name: str = "") -> prediction_log_pb2.PredictionLog:
    """One `Request` as the PredictionLog that TF Serving's warm-up replays."""
    log = prediction_log_pb2.PredictionLog()
    if request.examples and request.method_name == REGRESS_METHOD:
        rpc = regression_pb2.RegressionRequest()
        rpc.input.example_list.examples.extend(request.examples)
        target = log.regress_log.request
    elif request.examples:
        rpc = classification_pb2.ClassificationRequest()
        rpc.input.example_list.examples.extend(request.examples)
        target = log.classify_log.request
    else:
        rpc = predict_pb2.PredictRequest()
        for key, value in request.inputs.items():
            rpc.inputs[key].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
        target = log.predict_log.request
    rpc.model_spec.name = model_name
    rpc.model_spec.signature_name = request.signature
    target.CopyFrom(rpc)
    return log


def write_warmup_requests(export_dir, requests, model_name: str = "") -> pathlib.Path:
    """Writes `requests` into `export_dir`/assets.extra/tf_serving_warmup_requests.

    Args:
        export_dir: the SavedModel folder (a version folder or its temporary twin).
        requests: `zoo.tasks.Request` objects.
        model_name: written into each request's model_spec, as a client would.

    Example:
        >>> write_warmup_requests("models/digits/1", task.requests(examples), "digits")
        PosixPath('models/digits/1/assets.extra/tf_serving_warmup_requests')
    """
    if len(requests) > MAX_RECORDS:
        raise ValueError(f"TF Serving reads at most {MAX_RECORDS} warm-up records, got {len(requests)}.")
    path = pathlib.Path(export_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for request in requests:
            writer.write(prediction_log(request, model_name).SerializeToString())
    return path


def read_warmup_requests(path) -> list[prediction_log_pb2.PredictionLog]:
    """The PredictionLog records of a warm-up file (or of an export folder)."""
    path = pathlib.Path(path)
    if path.is_dir():
        path = path / WARMUP_FILE
    if not os.path.exists(path):
        raise FileNotFoundError(f"No warm-up file at {path}.")
    logs = []
    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record)
        logs.append(log)
    return logs


def log_inputs(log) -> tuple[str, str, dict]:
    """(signature key, RPC kind, inputs as numpy) of one record, as the server feeds them.

    A Classify request's examples become the [B] string tensor of serialized
    tf.Examples that TF Serving feeds to the signature's "inputs".
    """
    kind = log.WhichOneof("log_type")
    if kind in ("classify_log", "regress_log"):
        request = getattr(log, kind).request
        examples = request.input.example_list.examples
        serialized = np.array([e.SerializeToString() for e in examples], dtype=object)
        return request.model_spec.signature_name or "serving_default", kind[:-4], {"inputs": serialized}
    if kind == "predict_log":
        request = log.predict_log.request
        inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
        return request.model_spec.signature_name or "serving_default", "predict", inputs
    raise ValueError(f"Warm-up record of kind {kind!r}; this exporter writes predict, classify and regress logs.")
