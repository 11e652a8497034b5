"""zoo-model-server over gRPC: round trips, rollouts, batching, bad requests, shutdown.

The models are the tiny SavedModels of tests/serving_models.py (a TF2 image
classifier whose weights depend on the version, and a TF1 SavedModelBuilder model
with Classify/Regress signatures). Each is written once per session and copied into
a fresh base path per test that changes the disk.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

import serving_models as sm
from serving import ModelServer, tensors
from serving.server_main import main as server_main

AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
END = get_model_status_pb2.ModelVersionStatus.END
IMAGES = np.arange(8, dtype=np.float32).reshape(2, 2, 2, 1) / 8.0


@pytest.fixture(scope="session")
def store(tmp_path_factory):
    """Every model version the tests use, written once."""
    root = tmp_path_factory.mktemp("store")
    return {
        "tiny1": sm.write_image_classifier(root, "tiny", 1),
        "tiny2": sm.write_image_classifier(root, "tiny", 2),
        "tf1": sm.write_tf1_model(root, "tf1", 1),
    }


def _config(*models):
    """A ModelServerConfig for (name, base_path[, policy dict]) tuples."""
    config = model_server_config_pb2.ModelServerConfig()
    for name, base_path, *rest in models:
        entry = config.model_config_list.config.add(name=name, base_path=str(base_path),
                                                    model_platform="tensorflow")
        if rest:
            for label, version in rest[0].get("labels", {}).items():
                entry.version_labels[label] = version
    return config


@pytest.fixture(scope="module")
def server(store, tmp_path_factory):
    """One server for the read-only tests: tiny (v1) and tf1 (v1)."""
    base = tmp_path_factory.mktemp("models")
    sm.copy_version(store["tiny1"], base, "tiny", 1)
    sm.copy_version(store["tf1"], base, "tf1", 1)
    config = _config(("tiny", base / "tiny"), ("tf1", base / "tf1"))
    with ModelServer(config=config, port=0, file_system_poll_wait_seconds=0) as srv:
        yield srv


class Stubs:
    def __init__(self, target):
        self.channel = grpc.insecure_channel(target)
        self.predict = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.model = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def status(self, name):
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = name
        return {s.version: s for s in self.model.GetModelStatus(request, timeout=10).model_version_status}


@pytest.fixture
def stubs(server):
    stubs = Stubs(f"localhost:{server.grpc_port}")
    yield stubs
    stubs.channel.close()


def predict_request(name="tiny", images=IMAGES, signature="", version=None, label=None, output_filter=()):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    if images is not None:
        request.inputs["image"].CopyFrom(tensors.from_ndarray(images))
    request.output_filter.extend(output_filter)
    return request


def outputs(response):
    return {k: tensors.to_ndarray(v, k) for k, v in response.outputs.items()}


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _wait_for(condition, timeout=30.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False


# Round trips.


def test_predict_round_trip_with_resolved_model_spec(stubs):
    response = stubs.predict.Predict(predict_request(), timeout=10)
    assert response.model_spec.name == "tiny"
    assert response.model_spec.signature_name == "serving_default"
    assert response.model_spec.version.value == 1
    got = outputs(response)
    np.testing.assert_allclose(got["probabilities"], sm.expected_probabilities(IMAGES, 1), rtol=1e-5)
    assert got["class_id"].dtype == np.int64
    assert got["label"].tolist() == [sm.LABELS[i] for i in got["class_id"]]
    # Numbers come back in their typed field (Tensor::AsProtoField, as TF Serving's
    # Predict answers), strings in string_val.
    assert list(response.outputs["probabilities"].float_val) == got["probabilities"].ravel().tolist()
    assert not response.outputs["probabilities"].tensor_content
    assert list(response.outputs["class_id"].int64_val) == got["class_id"].tolist()
    assert list(response.outputs["label"].string_val) == got["label"].tolist()


def test_predict_accepts_typed_value_encoding(stubs):
    request = predict_request(images=None)
    proto = request.inputs["image"]
    proto.dtype = types_pb2.DT_FLOAT
    for d in IMAGES.shape:
        proto.tensor_shape.dim.add(size=d)
    proto.float_val.extend(IMAGES.ravel().tolist())
    got = outputs(stubs.predict.Predict(request, timeout=10))
    np.testing.assert_allclose(got["probabilities"], sm.expected_probabilities(IMAGES, 1), rtol=1e-5)


def test_predict_output_filter(stubs):
    response = stubs.predict.Predict(predict_request(output_filter=["label"]), timeout=10)
    assert list(response.outputs) == ["label"]


def test_predict_strings_by_signature_and_version(stubs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tiny"
    request.model_spec.signature_name = "strings"
    request.model_spec.version.value = 1
    request.inputs["text"].CopyFrom(tensors.from_ndarray(np.array([b"abc", "é".encode()])))
    response = stubs.predict.Predict(request, timeout=10)
    assert response.model_spec.signature_name == "strings"
    got = outputs(response)
    assert got["upper"].tolist() == [b"ABC", "é".encode()]
    assert got["length"].tolist() == [3, 2]


def _examples(request, rows, encode=sm.example_bytes):
    for row in rows:
        request.input.example_list.examples.add().ParseFromString(encode(row))


def test_classify_tf2_signature(stubs):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "tiny"
    request.model_spec.signature_name = "classify"
    _examples(request, IMAGES)
    response = stubs.predict.Classify(request, timeout=10)
    assert response.model_spec.signature_name == "classify" and response.model_spec.version.value == 1
    expected = sm.expected_probabilities(IMAGES, 1)
    for row, classifications in zip(expected, response.result.classifications):
        assert [c.label.encode() for c in classifications.classes] == list(sm.LABELS)
        np.testing.assert_allclose([c.score for c in classifications.classes], row, rtol=1e-5)


def test_classify_and_regress_tf1_savedmodel(stubs):
    x = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 1.0]], np.float32)
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "tf1"
    request.model_spec.signature_name = "classify"
    _examples(request, x, sm.tf1_example_bytes)
    response = stubs.predict.Classify(request, timeout=10)
    logits = sm.tf1_expected(x, 1)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    for row, classifications in zip(expected, response.result.classifications):
        assert [c.label.encode() for c in classifications.classes] == list(sm.TF1_CLASSES)
        np.testing.assert_allclose([c.score for c in classifications.classes], row, rtol=1e-5)

    regress = regression_pb2.RegressionRequest()
    regress.model_spec.name = "tf1"
    regress.model_spec.signature_name = "regress"
    _examples(regress, x, sm.tf1_example_bytes)
    response = stubs.predict.Regress(regress, timeout=10)
    np.testing.assert_allclose([r.value for r in response.result.regressions], x.sum(axis=1), rtol=1e-6)
    assert response.model_spec.signature_name == "regress"


def test_regress_tf2_signature(stubs):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "tiny"
    request.model_spec.signature_name = "regress"
    _examples(request, IMAGES)
    response = stubs.predict.Regress(request, timeout=10)
    np.testing.assert_allclose([r.value for r in response.result.regressions],
                               sm.expected_regression(IMAGES, 1), rtol=1e-6)


def test_multi_inference(stubs):
    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    request = inference_pb2.MultiInferenceRequest()
    for signature, method in (("classify", "tensorflow/serving/classify"), ("regress", "tensorflow/serving/regress")):
        task = request.tasks.add(method_name=method)
        task.model_spec.name = "tf1"
        task.model_spec.signature_name = signature
    _examples(request, x, sm.tf1_example_bytes)
    response = stubs.predict.MultiInference(request, timeout=10)
    assert [r.model_spec.signature_name for r in response.results] == ["classify", "regress"]
    assert len(response.results[0].classification_result.classifications[0].classes) == 2
    assert response.results[1].regression_result.regressions[0].value == pytest.approx(6.0)

    # TF2 signatures each have their own input placeholder: the same examples go to each.
    for task in request.tasks:
        task.model_spec.name = "tiny"
    request.ClearField("input")
    _examples(request, IMAGES)
    response = stubs.predict.MultiInference(request, timeout=10)
    assert [r.model_spec.signature_name for r in response.results] == ["classify", "regress"]
    assert len(response.results[0].classification_result.classifications) == len(IMAGES)
    np.testing.assert_allclose([r.value for r in response.results[1].regression_result.regressions],
                               sm.expected_regression(IMAGES, 1), rtol=1e-6)


def test_get_model_metadata(stubs):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "tiny"
    response = stubs.predict.GetModelMetadata(request, timeout=10)
    assert response.model_spec.name == "tiny" and response.model_spec.version.value == 1
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    assert set(signatures.signature_def) >= {"serving_default", "classify", "regress", "strings"}
    image = signatures.signature_def["serving_default"].inputs["image"]
    assert image.dtype == types_pb2.DT_FLOAT
    assert [d.size for d in image.tensor_shape.dim] == [-1, 2, 2, 1]


def test_get_model_status_and_health(stubs):
    status = stubs.status("tiny")
    assert status[1].state == AVAILABLE and status[1].status.error_code == 0
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "tiny"
    request.model_spec.version.value = 7
    with pytest.raises(grpc.RpcError) as info:
        stubs.model.GetModelStatus(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == "Could not find version 7 of model tiny"
    for service in ("", "tensorflow.serving.PredictionService", "tensorflow.serving.ModelService"):
        answer = stubs.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


# Bad requests: the code, the message, and the next good request still works.


def _tensor(dtype, dims, **fields):
    proto = tensor_pb2.TensorProto(
        dtype=dtype,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]),
    )
    for name, value in fields.items():
        if name == "tensor_content":
            proto.tensor_content = value
        else:
            getattr(proto, name).extend(value)
    return proto


def _with_input(name, proto, *, keep_image=False):
    request = predict_request(images=IMAGES if keep_image else None)
    request.inputs[name].CopyFrom(proto)
    return request


BAD_PREDICTS = {
    "unknown-model": (predict_request(name="nope"), grpc.StatusCode.NOT_FOUND,
                      "Servable not found for request: Latest(nope)"),
    "unknown-version": (predict_request(version=9), grpc.StatusCode.NOT_FOUND,
                        "Servable not found for request: Specific(tiny, 9)"),
    "unknown-label": (predict_request(label="canary"), grpc.StatusCode.INVALID_ARGUMENT,
                      "Unrecognized servable version label: canary"),
    "unknown-signature": (predict_request(signature="nope"), grpc.StatusCode.FAILED_PRECONDITION,
                          'Serving signature key "nope" not found.'),
    "no-model-spec": (predict_pb2.PredictRequest(), grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec"),
    "wrong-input-name": (
        _with_input("pixels", tensors.from_ndarray(IMAGES)), grpc.StatusCode.INVALID_ARGUMENT,
        "Signature input alias: image(feed name: serving_default_image:0) not found in request and no "
        "default value provided. Inputs expected to be in the request {pixels}, or default input alias set: ",
    ),
    "extra-input": (
        _with_input("extra", tensors.from_ndarray(IMAGES), keep_image=True), grpc.StatusCode.INVALID_ARGUMENT,
        "input size does not match signature: 2!=1 len({extra,image}) != len({image}). "
        "Sent extra: {extra}. Missing but required: {}.",
    ),
    "missing-input": (
        predict_request(images=None), grpc.StatusCode.INVALID_ARGUMENT,
        "input size does not match signature: 0!=1 len({}) != len({image}). Sent extra: {}. "
        "Missing but required: {image}.",
    ),
    "wrong-dtype": (_with_input("image", tensors.from_ndarray(IMAGES.astype(np.int32))),
                    grpc.StatusCode.INVALID_ARGUMENT, "Expects arg[0] to be float but int32 is provided"),
    "wrong-shape": (_with_input("image", tensors.from_ndarray(np.ones([2, 3], np.float32))),
                    grpc.StatusCode.INVALID_ARGUMENT,
                    # The graph decides, as in TF Serving: shapes are not checked against the signature.
                    "Input to reshape is a tensor with 6 values, but the requested shape requires a multiple of 4"),
    "content-length": (_with_input("image", _tensor(types_pb2.DT_FLOAT, [1, 2, 2, 1], tensor_content=b"\0" * 12)),
                       grpc.StatusCode.INVALID_ARGUMENT, "tensor parsing error: image (tensor_content has 12 bytes"),
    "negative-dim": (_with_input("image", _tensor(types_pb2.DT_FLOAT, [-4, 2, 2, 1], float_val=[1.0])),
                     grpc.StatusCode.INVALID_ARGUMENT, "tensor parsing error: image"),
    "huge-dim": (_with_input("image", _tensor(types_pb2.DT_FLOAT, [1 << 40, 2, 2, 1], float_val=[1.0])),
                 grpc.StatusCode.INVALID_ARGUMENT, "tensor parsing error: image"),
    "overflowing-dims": (_with_input("image", _tensor(types_pb2.DT_FLOAT, [1 << 62, 1 << 62, 2, 1])),
                         grpc.StatusCode.INVALID_ARGUMENT, "tensor parsing error: image"),
    "unknown-output": (predict_request(output_filter=["nope"]), grpc.StatusCode.INVALID_ARGUMENT,
                       "output tensor alias not found in signature: nope Outputs expected to be in the set "
                       "{class_id,label,probabilities}."),
    "duplicate-output": (predict_request(output_filter=["label", "label"]), grpc.StatusCode.INVALID_ARGUMENT,
                         "duplicate output tensor alias: label"),
}


@pytest.mark.parametrize("case", list(BAD_PREDICTS))
def test_bad_predict_requests(stubs, case):
    request, code, message = BAD_PREDICTS[case]
    with pytest.raises(grpc.RpcError) as info:
        stubs.predict.Predict(request, timeout=10)
    assert info.value.code() == code
    assert info.value.details().startswith(message), info.value.details()
    # The server is none the worse for it.
    assert stubs.predict.Predict(predict_request(), timeout=10).model_spec.version.value == 1


def _classify(signature):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "tiny"
    request.model_spec.signature_name = signature
    _examples(request, IMAGES)
    return request


def test_bad_classify_and_metadata_requests(stubs):
    empty = classification_pb2.ClassificationRequest()
    empty.model_spec.name = "tiny"
    empty.model_spec.signature_name = "classify"
    predict_only = classification_pb2.ClassificationRequest()
    predict_only.model_spec.name = "tiny"
    predict_only.model_spec.signature_name = "strings"  # one input, but not "inputs"
    _examples(predict_only, IMAGES)
    no_signature = classification_pb2.ClassificationRequest()
    no_signature.model_spec.name = "tiny"
    no_signature.model_spec.signature_name = "nope"
    _examples(no_signature, IMAGES)
    metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["graph"])
    metadata.model_spec.name = "tiny"
    cases = [
        (stubs.predict.Classify, empty, "Input is empty."),
        (stubs.predict.Classify, predict_only, "No classification inputs found in SignatureDef: "),
        (stubs.predict.Classify, _classify("serving_default"), "Expected one or two output Tensors, found 3"),
        (stubs.predict.Classify, no_signature, "No signature was found with the name: nope"),
        (stubs.predict.GetModelMetadata, metadata, "Metadata field graph is not supported"),
    ]
    for method, request, message in cases:
        with pytest.raises(grpc.RpcError) as info:
            method(request, timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details().startswith(message), info.value.details()


# Model lifecycle.


def _client_loop(target, stop, seen, failures):
    stubs = Stubs(target)
    try:
        while not stop.is_set():
            try:
                response = stubs.predict.Predict(predict_request(), timeout=10)
                version = response.model_spec.version.value
                np.testing.assert_allclose(
                    outputs(response)["probabilities"], sm.expected_probabilities(IMAGES, version), rtol=1e-5
                )
                seen.append(version)
            except Exception as e:  # every failure counts
                failures.append(repr(e))
    finally:
        stubs.channel.close()


def test_new_version_is_picked_up_with_zero_failed_requests(store, tmp_path):
    sm.copy_version(store["tiny1"], tmp_path, "tiny", 1)
    with ModelServer(tmp_path / "tiny", "tiny", port=0, file_system_poll_wait_seconds=0.1) as server:
        stop, seen, failures = threading.Event(), [], []
        clients = [threading.Thread(target=_client_loop, args=(server.address, stop, seen, failures))
                   for _ in range(4)]
        for client in clients:
            client.start()
        try:
            assert _wait_for(lambda: len(seen) > 20)
            sm.copy_version(store["tiny2"], tmp_path, "tiny", 2)
            assert _wait_for(lambda: seen[-8:] == [2] * 8)
            count = len(seen)
            assert _wait_for(lambda: len(seen) > count + 20)
        finally:
            stop.set()
            for client in clients:
                client.join()
        assert failures == []
        assert 1 in seen and 2 in seen
        status = Stubs(server.address).status("tiny")
        assert status[2].state == AVAILABLE
        assert status[1].state == END and status[1].status.error_code == 0


def test_corrupt_version_keeps_last_good_serving(store, tmp_path):
    sm.copy_version(store["tiny1"], tmp_path, "tiny", 1)
    with ModelServer(tmp_path / "tiny", "tiny", port=0, file_system_poll_wait_seconds=0.1,
                     max_num_load_retries=0) as server:
        stubs = Stubs(server.address)
        # A truncated export lands as version 2 (prepared aside, then renamed in).
        staging = tmp_path / "staging"
        sm.copy_version(store["tiny2"], staging, "tiny", 2)
        sm.corrupt_variables(staging / "tiny" / "2")
        os.rename(staging / "tiny" / "2", tmp_path / "tiny" / "2")
        assert _wait_for(lambda: 2 in stubs.status("tiny") and stubs.status("tiny")[2].state == END)
        status = stubs.status("tiny")
        assert status[2].status.error_code != 0
        assert status[2].status.error_message
        assert status[1].state == AVAILABLE
        response = stubs.predict.Predict(predict_request(), timeout=10)
        assert response.model_spec.version.value == 1
        # A good version 3 then replaces both.
        sm.copy_version(store["tiny2"], tmp_path, "tiny", 3)
        assert _wait_for(lambda: stubs.predict.Predict(predict_request(), timeout=10).model_spec.version.value == 3)


def test_handle_reload_config_adds_and_removes_models(store, tmp_path):
    sm.copy_version(store["tiny1"], tmp_path, "tiny", 1)
    sm.copy_version(store["tf1"], tmp_path, "tf1", 1)
    with ModelServer(tmp_path / "tiny", "tiny", port=0, file_system_poll_wait_seconds=0) as server:
        stubs = Stubs(server.address)
        request = model_management_pb2.ReloadConfigRequest()
        request.config.CopyFrom(_config(("tiny", tmp_path / "tiny"), ("tf1", tmp_path / "tf1")))
        response = stubs.model.HandleReloadConfigRequest(request, timeout=30)
        assert response.status.error_code == 0
        x = tensors.from_ndarray(np.ones([1, 3], np.float32))
        tf1 = predict_pb2.PredictRequest()
        tf1.model_spec.name = "tf1"
        tf1.inputs["x"].CopyFrom(x)
        np.testing.assert_allclose(outputs(stubs.predict.Predict(tf1, timeout=10))["y"],
                                   sm.tf1_expected(np.ones([1, 3]), 1))

        request.config.CopyFrom(_config(("tf1", tmp_path / "tf1")))
        stubs.model.HandleReloadConfigRequest(request, timeout=30)
        with pytest.raises(grpc.RpcError) as info:
            stubs.predict.Predict(predict_request(), timeout=10)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND

        request.config.CopyFrom(_config(("rel", "relative/path")))
        with pytest.raises(grpc.RpcError) as info:
            stubs.model.HandleReloadConfigRequest(request, timeout=30)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details() == "Expected model rel to have an absolute path or URI; got base_path()=relative/path"
        # A failed reload changes nothing.
        assert stubs.predict.Predict(tf1, timeout=10).model_spec.name == "tf1"


# Batching.


def _batch_histogram(server, name="tiny"):
    """(count of batches, count of batches of one row) from the batch-size metric."""
    count = server.metrics.registry.get_sample_value(
        ":tensorflow:serving:batching:batch_size_count", {"model_name": name, "op_name": "serving_default"})
    ones = server.metrics.registry.get_sample_value(
        ":tensorflow:serving:batching:batch_size_bucket",
        {"model_name": name, "op_name": "serving_default", "le": "1.0"})
    return count or 0, ones or 0


def test_batching_with_32_concurrent_clients(store, tmp_path):
    sm.copy_version(store["tiny1"], tmp_path, "tiny", 1)
    params = "max_batch_size { value: 32 } batch_timeout_micros { value: 5000 } num_batch_threads { value: 1 }"
    with ModelServer(tmp_path / "tiny", "tiny", port=0, enable_batching=True, batching_parameters=params,
                     file_system_poll_wait_seconds=0) as server:
        results = {}

        def client(i):
            stubs = Stubs(server.address)
            image = np.full([1, 2, 2, 1], i / 32.0, np.float32) * np.array([1, -1, 2, 0.5], np.float32).reshape(1, 2, 2, 1)
            try:
                for _ in range(5):
                    got = outputs(stubs.predict.Predict(predict_request(images=image), timeout=30))
                    results.setdefault(i, []).append((image, got["probabilities"]))
            finally:
                stubs.channel.close()

        assert sm.run_concurrently(32, client) == []
        for i, answers in results.items():
            assert len(answers) == 5
            for image, probabilities in answers:
                assert probabilities.shape == (1, 3)
                np.testing.assert_allclose(probabilities, sm.expected_probabilities(image, 1), rtol=1e-5)
        batches, singles = _batch_histogram(server)
        assert batches < 160, "every request ran alone: no batch was formed"
        assert batches > singles

        # A request larger than max_batch_size is refused, as TF Serving refuses it.
        with pytest.raises(grpc.RpcError) as info:
            Stubs(server.address).predict.Predict(predict_request(images=np.zeros([33, 2, 2, 1], np.float32)))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details() == "Task size 33 is larger than maximum input batch size 32"


def test_batching_pads_to_allowed_batch_sizes(store, tmp_path):
    sm.copy_version(store["tiny1"], tmp_path, "tiny", 1)
    params = ("max_batch_size { value: 8 } batch_timeout_micros { value: 0 } "
              "allowed_batch_sizes: 4 allowed_batch_sizes: 8")
    with ModelServer(tmp_path / "tiny", "tiny", port=0, enable_batching=True, batching_parameters=params,
                     file_system_poll_wait_seconds=0) as server:
        images = np.random.default_rng(0).random([3, 2, 2, 1]).astype(np.float32)
        # (No deadline on this call: a batched request then waits as long as it takes.)
        got = outputs(Stubs(server.address).predict.Predict(predict_request(images=images)))
        np.testing.assert_allclose(got["probabilities"], sm.expected_probabilities(images, 1), rtol=1e-5)
        assert got["label"].shape == (3,)
        padding = server.metrics.registry.get_sample_value(
            ":tensorflow:serving:batching:padding_size_sum", {"model_name": "tiny", "op_name": "serving_default"})
        assert padding == 1


def test_stop_lets_in_flight_requests_finish(store, tmp_path):
    sm.copy_version(store["tiny1"], tmp_path, "tiny", 1)
    # A long batch timeout keeps requests in flight while stop() begins.
    params = "max_batch_size { value: 64 } batch_timeout_micros { value: 700000 }"
    server = ModelServer(tmp_path / "tiny", "tiny", port=0, enable_batching=True, batching_parameters=params,
                         file_system_poll_wait_seconds=0).start()
    stubs = Stubs(server.address)
    answers, failures = [], []

    def call():
        try:
            answers.append(stubs.predict.Predict(predict_request(), timeout=30))
        except Exception as e:
            failures.append(repr(e))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    server.stop(grace=10)
    for t in threads:
        t.join()
    assert failures == [] and len(answers) == 4
    assert server.wait(0)


def test_unix_socket(store, tmp_path):
    sm.copy_version(store["tiny1"], tmp_path, "tiny", 1)
    socket_path = tmp_path / "grpc.sock"
    with ModelServer(tmp_path / "tiny", "tiny", port=0, grpc_socket_path=str(socket_path),
                     file_system_poll_wait_seconds=0):
        stubs = Stubs(f"unix:{socket_path}")
        assert stubs.predict.Predict(predict_request(), timeout=10).model_spec.version.value == 1


# A real export (export.export_saved_model): every signature over gRPC equals Keras.


def test_export_round_trip_equals_keras(tmp_path):
    export = pytest.importorskip("export")
    import tensorflow as tf
    import zoo

    model = zoo.build_model("simple_cnn", num_classes=3, input_shape=(8, 8, 1))
    images = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 1)).astype(np.float32)
    export.export_saved_model(model, tmp_path, "cnn", examples=images, verify=False, label_names=["a", "b", "c"])
    expected = tf.nn.softmax(model({"image": images})).numpy()
    with ModelServer(model_config_file=str(tmp_path / "models.config"), port=0, enable_batching=True,
                     batching_parameters_file=str(tmp_path / "batching_parameters.txt"),
                     file_system_poll_wait_seconds=0) as server:
        stubs = Stubs(server.address)
        got = outputs(stubs.predict.Predict(predict_request("cnn", images), timeout=30))
        np.testing.assert_allclose(got["probabilities"], expected, rtol=1e-5, atol=1e-6)
        assert got["label"].tolist() == [[b"a", b"b", b"c"][i] for i in expected.argmax(axis=1)]

        encoded = np.empty(len(images), dtype=object)
        encoded[:] = [tf.io.encode_png(tf.cast(image, tf.uint8)).numpy() for image in images]
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "cnn"
        request.model_spec.signature_name = "image_bytes"
        request.inputs["image_bytes"].CopyFrom(tensors.from_ndarray(encoded))
        got = outputs(stubs.predict.Predict(request, timeout=30))
        np.testing.assert_allclose(got["probabilities"], expected, rtol=1e-5, atol=1e-6)

        request = classification_pb2.ClassificationRequest()
        request.model_spec.name = "cnn"
        request.model_spec.signature_name = "classify"
        for image in images:
            request.input.example_list.examples.add().features.feature["image"].float_list.value.extend(image.ravel())
        response = stubs.predict.Classify(request, timeout=30)
        scores = [[c.score for c in cl.classes] for cl in response.result.classifications]
        np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)


# The console script.


def test_console_script_serves_and_stops_on_sigterm(store, tmp_path):
    sm.copy_version(store["tiny1"], tmp_path, "tiny", 1)
    port = _free_port()
    script = os.path.join(os.path.dirname(sys.executable), "zoo-model-server")
    process = subprocess.Popen(
        [script, f"--port={port}", "--model_name=tiny", f"--model_base_path={tmp_path / 'tiny'}",
         "--file_system_poll_wait_seconds=0", "--enable_batching"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        stubs = Stubs(f"localhost:{port}")

        def serving():
            try:
                answer = stubs.health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                return answer.status == health_pb2.HealthCheckResponse.SERVING
            except grpc.RpcError:
                return process.poll() is not None

        assert _wait_for(serving, timeout=120, interval=0.25)
        assert process.poll() is None, process.stdout.read()
        got = outputs(stubs.predict.Predict(predict_request(), timeout=10))
        np.testing.assert_allclose(got["probabilities"], sm.expected_probabilities(IMAGES, 1), rtol=1e-5)
        stubs.channel.close()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 0, output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_console_script_reports_config_errors(tmp_path, capsys):
    bad = tmp_path / "models.config"
    bad.write_text('model_config_list {\n  config {\n    name: "x"\n    base_pth: "/m"\n  }\n}\n')
    assert server_main([f"--model_config_file={bad}", "--port=0"]) == 255
    err = capsys.readouterr().err
    assert ('Error parsing text-format tensorflow.serving.ModelServerConfig: 4:5: Message type '
            '"tensorflow.serving.ModelConfig" has no field named "base_pth".') in err
    assert f"Failed to start server. Error: INVALID_ARGUMENT: Invalid protobuf file: '{bad}'" in err


def test_console_script_refuses_unknown_flags(capsys):
    assert server_main(["--model_base_path=/m", "--enable_batchin"]) == 255
    assert "unknown argument: --enable_batchin" in capsys.readouterr().err


def test_every_rpc_of_tf_servings_services_is_in_the_rpc_table():
    from tensorflow_serving.apis import model_service_pb2, prediction_service_pb2

    from serving.grpc_server import RPCS

    declared = {(service.full_name, method.name)
                for module in (prediction_service_pb2, model_service_pb2)
                for service in module.DESCRIPTOR.services_by_name.values()
                for method in service.methods}
    assert {(rpc.service, rpc.method) for rpc in RPCS} == declared
