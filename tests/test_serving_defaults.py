"""Predict feeds a SignatureDef's default inputs, as TF Serving does.

`tf.saved_model.save` writes `SignatureDef.defaults` for a tf.function argument with a
tensor default (`def f(x, k=tf.constant(2))`). TF Serving's Predict
(predict_util.cc, saved_model::GetInputValues) feeds, for each signature input, the
request's tensor, else the default, else answers INVALID_ARGUMENT. REST builds the
same PredictRequest from JSON, so an input left out of the body takes the default too.
The model here answers `y = x * k`, so every answer shows which `k` was fed.
"""

import concurrent.futures
import json
import http.client

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from serving import ModelServer, tensors

MODEL = "scale"
VERSION_DIR = "00000007"  # TF Serving's version folders may have leading zeros
BATCHING = "max_batch_size { value: 8 } batch_timeout_micros { value: 20000 } num_batch_threads { value: 1 }"


class _Scale(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x"),
                                  tf.TensorSpec([], tf.int32, name="k")])
    def scale(self, x, k=tf.constant(2)):
        return {"y": x * tf.cast(k, tf.float32)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x"),
                                  tf.TensorSpec([], tf.int32, name="k")])
    def no_defaults(self, x, k):
        return {"y": x * tf.cast(k, tf.float32)}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    base = tmp_path_factory.mktemp("defaults_models")
    module = _Scale()
    tf.saved_model.save(module, str(base / MODEL / VERSION_DIR),
                        signatures={"serving_default": module.scale, "no_defaults": module.no_defaults})
    return base


def _server(base, **options):
    return ModelServer(base / MODEL, MODEL, port=0, host="127.0.0.1", rest_api_port=0,
                       file_system_poll_wait_seconds=0, **options).start()


@pytest.fixture(scope="module")
def server(base, tmp_path_factory):
    socket_path = tmp_path_factory.mktemp("sock") / "grpc.sock"
    srv = _server(base, grpc_socket_path=str(socket_path))
    srv.socket_path = socket_path
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def batching_server(base):
    srv = _server(base, enable_batching=True, batching_parameters=BATCHING)
    yield srv
    srv.stop()


def _predict(target, signature="", **inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = signature
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tensors.from_ndarray(np.asarray(value)))
    with grpc.insecure_channel(target) as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    return tensors.to_ndarray(response.outputs["y"], "y")


def _grpc_error(target, signature="", **inputs):
    with pytest.raises(grpc.RpcError) as info:
        _predict(target, signature, **inputs)
    return info.value.code(), info.value.details()


def _rest(server, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
    try:
        conn.request("POST" if body is not None else "GET", path, body=json.dumps(body) if body is not None else None)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


X = np.array([1.0, 2.0, 3.0], np.float32)


def test_saved_signature_def_has_the_default(base):
    saved_model = saved_model_pb2.SavedModel.FromString((base / MODEL / VERSION_DIR / "saved_model.pb").read_bytes())
    signatures = saved_model.meta_graphs[0].signature_def
    assert list(signatures["serving_default"].defaults["k"].int_val) == [2]
    assert not signatures["no_defaults"].defaults


def test_metadata_carries_the_defaults(server):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = MODEL
    with grpc.insecure_channel(server.address) as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(request, timeout=30)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    assert response.model_spec.version.value == 7
    assert list(signature_map.signature_def["serving_default"].defaults["k"].int_val) == [2]
    status, doc = _rest(server, f"/v1/models/{MODEL}/metadata")
    assert status == 200
    assert doc["metadata"]["signature_def"]["signature_def"]["serving_default"]["defaults"]["k"]["int_val"] == [2]


def test_grpc_predict_feeds_the_default_for_a_missing_input(server):
    np.testing.assert_allclose(_predict(server.address, x=X), X * 2)
    np.testing.assert_allclose(_predict(server.address, x=X, k=np.int32(3)), X * 3)
    # The Unix socket is the same service.
    np.testing.assert_allclose(_predict(f"unix:{server.socket_path}", x=X), X * 2)


def test_grpc_predict_refuses_missing_and_extra_inputs_in_tf_servings_words(server):
    code, details = _grpc_error(server.address, k=np.int32(3))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == ("Signature input alias: x(feed name: serving_default_x:0) not found in request and "
                       "no default value provided. Inputs expected to be in the request {k}, or default "
                       "input alias set: k")
    # No defaults: the request's size is checked first (VerifyRequestInputsSize).
    code, details = _grpc_error(server.address, "no_defaults", x=X)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == ("input size does not match signature: 1!=2 len({x}) != len({k,x}). "
                       "Sent extra: {}. Missing but required: {k}.")
    # An unknown alias in place of the defaulted one takes the default, then is refused.
    code, details = _grpc_error(server.address, x=X, z=X)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == "Inputs contains invalid name. Used request inputs: x, request input: x,z"


@pytest.mark.parametrize("body, key, want", [
    ({"instances": [1.0, 2.0]}, "predictions", [2.0, 4.0]),
    ({"instances": [{"x": 1.0}, {"x": 2.0}]}, "predictions", [2.0, 4.0]),
    ({"inputs": {"x": [1.0]}}, "outputs", [2.0]),
    ({"inputs": [1.0, 2.0]}, "outputs", [2.0, 4.0]),
    ({"inputs": {"x": [1.0], "k": 3}}, "outputs", [3.0]),
])
def test_rest_predict_feeds_the_default_in_both_formats(server, body, key, want):
    status, doc = _rest(server, f"/v1/models/{MODEL}:predict", body)
    assert (status, doc) == (200, {key: want})


@pytest.mark.parametrize("body, error", [
    ({"instances": [{"x": 1.0, "k": 3}, {"x": 2.0}]},
     "Failed to process element: 1 of 'instances' list. JSON object: {\"x\":2.0} must only have keys: k,x"),
    ({"inputs": {"k": 3}}, "Missing named input: x in 'inputs' object."),
    ({"signature_name": "no_defaults", "inputs": [1.0]},
     "inputs is a plain value/list, but expecting an object as multiple input tensors required as per "
     "tensorinfo_map"),
])
def test_rest_predict_refuses_what_has_no_default(server, body, error):
    status, doc = _rest(server, f"/v1/models/{MODEL}:predict", body)
    assert (status, doc) == (400, {"error": error})


def test_batching_groups_requests_by_their_scalar_inputs(batching_server):
    # Concurrent requests, a third leaving k to its default, a third sending k=3 and a
    # third sending k=2: each must get its own rows times its own k.
    def ask(i):
        x = np.full([1 + i % 2], float(i), np.float32)
        k = [None, 3, 2][i % 3]
        got = _predict(batching_server.address, x=x) if k is None else _predict(
            batching_server.address, x=x, k=np.int32(k))
        np.testing.assert_allclose(got, x * (k or 2))
        return i

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        assert sorted(pool.map(ask, range(24))) == list(range(24))
    status, doc = _rest(batching_server, f"/v1/models/{MODEL}:predict", {"instances": [1.0, 2.0]})
    assert (status, doc) == (200, {"predictions": [2.0, 4.0]})


def test_zoo_load_fills_the_default(base):
    zoo = pytest.importorskip("zoo")
    predictor = zoo.load(base / MODEL)
    np.testing.assert_allclose(predictor({"x": X})["y"], X * 2)
    np.testing.assert_allclose(predictor(X)["y"], X * 2)
    np.testing.assert_allclose(predictor(x=X, k=3)["y"], X * 3)
    with pytest.raises(TypeError, match="pass a dict"):
        predictor(X, signature="no_defaults")
    with pytest.raises(ValueError, match=r"missing \['k'\]"):
        predictor({"x": X}, signature="no_defaults")
