"""TF Serving's REST API: JSON shapes, dtypes, error texts and HTTP codes, limits.

The server under test is `serving.ModelServer` serving the toy SavedModels
(tests/rest_models.py) with its REST API from `serving.rest`; every answer is
compared with the SavedModel's own output computed in process.
"""

import base64
import http.client
import json
import socket
import threading
import time
import types

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

import rest_models as rm
import serving_models as sm
from rest_models import IMAGE, call, good_request_works
from serving import json_tensors, rest, tensors
from serving.errors import ServingError


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    return rm.save_toy(tmp_path_factory.mktemp("rest-models"))


@pytest.fixture(scope="module")
def model_server(toy_dir):
    srv = rm.start_server(toy_dir)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def server(model_server):
    """The ModelServer's own REST API (what `--rest_api_port` serves)."""
    return types.SimpleNamespace(port=model_server.rest_port, core=model_server.core)


@pytest.fixture(scope="module")
def small_server(model_server):
    """A second REST front on the same core, with a 1 MiB body limit."""
    srv = rest.start_rest_server(model_server.core, "127.0.0.1", 0, 5000, max_body_bytes=1 << 20)
    yield srv
    srv.stop()


# --- predict ---------------------------------------------------------------


def test_predict_row_format_matches_the_saved_model(server, toy_dir):
    status, doc = call(server, "POST", "/v1/models/toy:predict", {"instances": IMAGE.tolist()})
    assert status == 200
    want = rm.reference(toy_dir, 2, "serving_default", image=IMAGE)
    assert [sorted(p) for p in doc["predictions"]] == [["class_id", "label", "probabilities"]] * 2
    np.testing.assert_allclose([p["probabilities"] for p in doc["predictions"]], want["probabilities"],
                               rtol=1e-6)
    assert [p["class_id"] for p in doc["predictions"]] == want["class_id"].tolist()
    assert [p["label"] for p in doc["predictions"]] == [s.decode() for s in want["label"]]


def test_predict_columnar_format_versions_and_labels(server, toy_dir):
    for path, version in (("/v1/models/toy/versions/1:predict", 1), ("/v1/models/toy/labels/canary:predict", 2),
                          ("/v1/models/toy/labels/stable:predict", 1)):
        status, doc = call(server, "POST", path, {"signature_name": "serving_default",
                                                  "inputs": {"image": IMAGE.tolist()}})
        assert status == 200, doc
        want = rm.reference(toy_dir, version, "serving_default", image=IMAGE)
        np.testing.assert_allclose(doc["outputs"]["probabilities"], want["probabilities"], rtol=1e-6)


def test_single_input_instances_can_be_named_objects(server):
    rows = [{"image": x} for x in IMAGE.tolist()]
    assert call(server, "POST", "/v1/models/toy:predict", {"instances": rows})[0] == 200


def test_image_bytes_travel_as_b64(server, toy_dir):
    png = rm.png_bytes((np.arange(16).reshape(4, 4) * 13) % 256)
    body = {"signature_name": "image_bytes", "instances": [{"b64": base64.b64encode(png).decode()}]}
    status, doc = call(server, "POST", "/v1/models/toy:predict", body)
    assert status == 200, doc
    want = rm.reference(toy_dir, 2, "image_bytes", image_bytes=np.array([png], dtype=object))
    np.testing.assert_allclose(doc["predictions"][0]["probabilities"], want["probabilities"][0], rtol=1e-6)


def test_dtypes_and_binary_outputs(server):
    body = {"signature_name": "echo", "inputs": {
        "count": [1, -3], "flag": [True, False], "text": ["héllo", {"b64": base64.b64encode(b"\x00\xfe").decode()}],
        "pair": [[0.1, 2], [float("nan"), float("-inf")]]}}
    status, doc = call(server, "POST", "/v1/models/toy:predict", body)
    assert status == 200, doc
    out = doc["outputs"]
    assert out["count"] == [2, -6] and out["flag"] == [False, True]
    # Valid UTF-8 stays text; other bytes, and any output named *_bytes, come as b64.
    assert out["text"] == ["héllo", {"b64": base64.b64encode(b"\x00\xfe").decode()}]
    assert out["text_bytes"] == [{"b64": base64.b64encode("héllo".encode()).decode()},
                                 {"b64": base64.b64encode(b"\x00\xfe").decode()}]
    assert out["raw"][0] == {"b64": base64.b64encode("héllo".encode() + b"\xff").decode()}
    assert out["pair"][0] == [0.2, 4.0] and np.isnan(out["pair"][1][0]) and out["pair"][1][1] == -np.inf


def test_float32_outputs_are_written_short_and_exact():
    assert json_tensors.tensor_json(np.array([0.1, 1.0, 3e-8, np.nan, np.inf], np.float32)) == \
        "[0.1,1.0,3e-08,NaN,Infinity]"
    assert json_tensors.tensor_json(np.array([[1, 2]], np.int64)) == "[[1,2]]"
    assert json_tensors.tensor_json(np.array([True]), "") == "[true]"
    assert json_tensors.tensor_json(np.array([b"a\xff"], dtype=object)) == '[{"b64":"Yf8="}]'


# --- classify, regress, status, metadata ------------------------------------


def test_classify_and_regress(server, toy_dir):
    examples = [{"image": IMAGE[i].ravel().tolist()} for i in range(2)]
    status, doc = call(server, "POST", "/v1/models/toy:classify", {"signature_name": "classify", "examples": examples})
    assert status == 200, doc
    want = rm.reference(toy_dir, 2, "serving_default", image=IMAGE)["probabilities"]
    assert [[c[0] for c in row] for row in doc["results"]] == [rm.LABELS] * 2
    np.testing.assert_allclose([[c[1] for c in row] for row in doc["results"]], want, rtol=1e-6)
    status, doc = call(server, "POST", "/v1/models/toy:regress",
                       {"signature_name": "regress", "context": {}, "examples": examples})
    assert status == 200, doc
    np.testing.assert_allclose(doc["results"], IMAGE.reshape(2, -1).mean(axis=1), rtol=1e-6)


def test_status_and_metadata_json(server):
    status, doc = call(server, "GET", "/v1/models/toy")
    assert status == 200
    assert sorted(doc["model_version_status"], key=lambda s: s["version"]) == [
        {"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        for v in (1, 2)]
    status, doc = call(server, "GET", "/v1/models/toy/versions/1")
    assert [s["version"] for s in doc["model_version_status"]] == ["1"]
    status, doc = call(server, "GET", "/v1/models/toy/versions/1/metadata")
    assert status == 200
    assert doc["model_spec"] == {"name": "toy", "signature_name": "", "version": "1"}
    sigs = doc["metadata"]["signature_def"]["signature_def"]  # TF Serving's doubled key
    image = sigs["serving_default"]["inputs"]["image"]
    assert image["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in image["tensor_shape"]["dim"]] == ["-1", "4", "4", "1"]
    assert sigs["classify"]["method_name"] == "tensorflow/serving/classify"


# --- bad requests -------------------------------------------------------------

ROW = IMAGE[:1].tolist()

BAD = [
    # (method, path, body, HTTP status, text in the error)
    ("POST", "/v1/models/nope:predict", {"instances": ROW}, 404, "Servable not found for request: Latest(nope)"),
    ("POST", "/v1/models/toy/versions/9:predict", {"instances": ROW}, 404, "Specific(toy, 9)"),
    ("GET", "/v1/models/nope", None, 404, "nope"),
    ("GET", "/v1/models/toy/versions/99999999999999999999", None, 400, "Failed to convert version"),
    ("POST", "/v1/models/toy:predict", {"signature_name": "nope", "instances": ROW}, 400,
     'Serving signature name: "nope" not found in signature def'),
    ("POST", "/v1/models/toy:predict", {"signature_name": 3, "instances": ROW}, 400,
     "'signature_name' key must be a string value"),
    ("POST", "/v1/models/toy:predict", {"instances": [{"imag": ROW[0]}]}, 400,
     "does not have named input: imag"),
    ("POST", "/v1/models/toy:predict", {"inputs": {"imag": ROW}}, 400, "Missing named input: image in 'inputs' object."),
    ("POST", "/v1/models/toy:predict", {"signature_name": "echo", "instances": [1, 2]}, 400,
     "instances is a plain list, but expecting list of objects"),
    ("POST", "/v1/models/toy:predict", {"instances": [[["x"]]]}, 400,
     'JSON Value: "x" Type: String is not of expected type: float'),
    ("POST", "/v1/models/toy:predict", {"signature_name": "echo", "inputs": {
        "count": [1.5], "flag": [True], "text": ["a"], "pair": [[1, 2]]}}, 400,
     "JSON Value: 1.5 Type: Number is not of expected type: int32"),
    ("POST", "/v1/models/toy:predict", {"signature_name": "echo", "inputs": {
        "count": [True], "flag": [True], "text": ["a"], "pair": [[1, 2]]}}, 400, "Type: True is not of expected type: int32"),
    ("POST", "/v1/models/toy:predict", {"signature_name": "echo", "inputs": {
        "count": [2**31], "flag": [True], "text": ["a"], "pair": [[1, 2]]}}, 400, "is not of expected type: int32"),
    ("POST", "/v1/models/toy:predict", {"inputs": [[[[16777217]]]]}, 400,
     "Cannot convert JSON value: 16777217 to float without loss of precision."),
    ("POST", "/v1/models/toy:predict", {"inputs": [[[[1e39]]]]}, 400, "to float without loss of precision"),
    ("POST", "/v1/models/toy:predict", {"signature_name": "image_bytes", "instances": [{"b64": "!!"}]}, 400,
     "Unable to base64 decode"),
    ("POST", "/v1/models/toy:predict", {"signature_name": "image_bytes", "instances": [{"b64": "AA", "x": 1}]}, 400,
     "does not have named input: b64"),
    ("POST", "/v1/models/toy:predict", {"instances": [[[[1.0]]]]}, 400,
     "Input to reshape is a tensor with 1 values, but the requested shape requires a multiple of 16"),
    ("POST", "/v1/models/toy:predict", {"inputs": [[1, 2], [3]]}, 400,
     "Encountered list at unexpected size: 1 at level: 1 expected size: 2"),
    ("POST", "/v1/models/toy:predict", {"inputs": [[1, 2], 3]}, 400, "found at incorrect level"),
    ("POST", "/v1/models/toy:predict", {"instances": [ROW[0], ROW[0][:3]]}, 400,
     "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: Expecting tensor size: 16 but got: 12"),
    ("POST", "/v1/models/toy:predict", {"instances": ROW, "inputs": ROW}, 400, "expecting only one of 'inputs' or 'instances'"),
    ("POST", "/v1/models/toy:predict", {"instances": []}, 400, "No values in 'instances' array"),
    ("POST", "/v1/models/toy:predict", {"instances": 5}, 400, "to be an list/array"),
    ("POST", "/v1/models/toy:predict", {"foo": 1}, 400, "Missing 'inputs' or 'instances' key"),
    ("POST", "/v1/models/toy:predict", "", 400, "JSON Parse error: The document is empty"),
    ("POST", "/v1/models/toy:predict", "{\"instances\": [1,", 400, "JSON Parse error:"),
    ("POST", "/v1/models/toy:predict", b"{\"a\": \"\xff\"}", 400, "JSON Parse error: Invalid encoding"),
    ("POST", "/v1/models/toy:predict", "[1, 2]", 400, "Is not object"),
    ("POST", "/v1/models/toy:predict", "[" * 5000 + "]" * 5000, 400, "nested 5000 levels deep"),
    ("POST", "/v1/models/toy:predict", '{"instances": ' + "[" * 200 + "]" * 200 + "}", 400, "more than the limit of 100"),
    ("POST", "/v1/models/toy:classify", {"signature_name": "classify"}, 400, "key 'examples' is expected"),
    ("POST", "/v1/models/toy:classify", {"signature_name": "classify", "examples": [{"image": [1.0, "a"]}]}, 400,
     "Unexpected element type in feature: image expecting type: float"),
    ("POST", "/v1/models/toy:classify", {"signature_name": "classify", "examples": [{"image": [[1.0]]}]}, 400,
     "has element with unexpected JSON type: Array"),
    ("POST", "/v1/models/toy:classify", {"signature_name": "classify", "examples": [3]}, 400,
     "Example must be JSON object but got JSON Number"),
    ("POST", "/v1/models/toy:explain", {"instances": ROW}, 400, "Malformed request: POST /v1/models/toy:explain"),
    ("PUT", "/v1/models/toy", None, 400, "Malformed request: PUT /v1/models/toy"),
    ("GET", "/v1/models", None, 400, "Missing model name in request."),
    ("GET", "/v1/models/toy/versions/1/labels/x", None, 400, "Malformed request"),
    ("GET", "/elsewhere", None, 404, "Not found"),
]


@pytest.mark.parametrize("method,path,body,code,text", BAD, ids=[f"{b[1]}-{b[4][:30]}" for b in BAD])
def test_bad_request_is_answered_clearly_and_the_next_one_works(server, toy_dir, method, path, body, code, text):
    status, doc = call(server, method, path, body)
    assert status == code, doc
    assert set(doc) == {"error"}
    assert text in doc["error"], doc["error"]
    good_request_works(server, toy_dir)


@pytest.mark.parametrize("length", [1 << 30, 2 << 20])
def test_oversized_body_is_refused_before_reading_it(server, small_server, toy_dir, length):
    srv, limit = (server, rest.DEFAULT_MAX_BODY_BYTES) if length > (64 << 20) else (small_server, 1 << 20)
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(f"POST /v1/models/toy:predict HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n"
                  .encode() + b"[" * 1000)
        reply = s.recv(65536).decode()
    assert reply.startswith("HTTP/1.1 413"), reply
    assert f"larger than the limit of {limit} bytes" in reply and "Connection: close" in reply
    good_request_works(srv, toy_dir)


def test_chunked_bodies_are_read_and_limited(small_server, toy_dir):
    server = small_server

    def chunked(payload: bytes, size=4096):
        out = b"".join(b"%x\r\n%s\r\n" % (len(payload[i:i + size]), payload[i:i + size])
                       for i in range(0, len(payload), size))
        return out + b"0\r\n\r\n"

    headers = b"POST /v1/models/toy:predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(headers + chunked(json.dumps({"instances": ROW}).encode()))
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(headers + chunked(b" " * (1 << 20) + b"{}"))
        assert s.recv(65536).startswith(b"HTTP/1.1 413")
    good_request_works(server, toy_dir)


def test_keep_alive_and_concurrent_clients_get_their_own_rows(server, toy_dir):
    want = rm.reference(toy_dir, 2, "serving_default", image=IMAGE)["probabilities"]

    def client(k):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            for i in range(5):
                row = (i + k) % 2
                status, doc = call(server, "POST", "/v1/models/toy:predict",
                                   {"instances": IMAGE[row:row + 1].tolist()}, conn=conn)
                assert status == 200, doc
                np.testing.assert_allclose(doc["predictions"][0]["probabilities"], want[row], rtol=1e-6)
        finally:
            conn.close()

    assert sm.run_concurrently(16, client) == []


def test_prometheus_metrics_on_the_monitoring_path(server):
    call(server, "POST", "/v1/models/toy:predict", {"instances": ROW})
    status, text = call(server, "GET", rm.PROMETHEUS_PATH)
    assert status == 200 and ":tensorflow:serving:request_count" in text and 'entrypoint="REST"' in text


# --- timeouts, core failures, shutdown -----------------------------------------


@pytest.fixture(scope="module")
def slow_dir(tmp_path_factory):
    return rm.save_slow(tmp_path_factory.mktemp("slow"))


REST_TIMEOUT_MS = 300


@pytest.fixture(scope="module")
def slow_server(slow_dir):
    """The real server on a model that takes as long as it is asked, REST timeout 300 ms."""
    srv = rm.start_slow_server(slow_dir, rest_api_timeout_in_ms=REST_TIMEOUT_MS)
    yield types.SimpleNamespace(port=srv.rest_port, server=srv)
    srv.stop()


def _slow_example(seconds, signature):
    return {"signature_name": signature, "examples": [{"seconds": seconds}]}


@pytest.mark.parametrize("verb,body", [
    ("predict", {"instances": [1.0]}),
    ("classify", _slow_example(1.0, "classify")),
    ("regress", _slow_example(1.0, "regress")),
])
def test_a_run_past_the_rest_timeout_answers_504_in_time_and_the_next_answers(slow_server, verb, body):
    start = time.monotonic()
    status, doc = call(slow_server, "POST", f"/v1/models/{rm.SLOW_MODEL}:{verb}", body)
    elapsed = time.monotonic() - start
    assert status == 504, doc
    assert "Deadline Exceeded" in doc["error"] or "Deadline exceeded" in doc["error"]
    # Answered at the deadline, not when the 1 s run ends.
    assert elapsed < REST_TIMEOUT_MS / 1000 + 0.4, elapsed
    # The run itself goes on (a session run cannot be interrupted, in TF Serving either),
    # spinning on this 2-core machine's inter-op threads; once it is over the server answers.
    time.sleep(1.1 - elapsed)
    status, doc = call(slow_server, "POST", f"/v1/models/{rm.SLOW_MODEL}:predict", {"instances": [0.0, 0.0]})
    assert status == 200 and len(doc["predictions"]) == 2


def test_a_run_within_the_rest_timeout_answers(slow_server):
    status, doc = call(slow_server, "POST", f"/v1/models/{rm.SLOW_MODEL}:regress", _slow_example(0.05, "regress"))
    assert status == 200 and doc["results"][0] >= 0.049


def test_a_grpc_deadline_is_enforced_by_the_core_too(slow_server):
    channel = grpc.insecure_channel(slow_server.server.address)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = rm.SLOW_MODEL
    request.inputs["seconds"].CopyFrom(tensors.from_ndarray(np.array([1.0], np.float32)))
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(request, timeout=0.3)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    request.inputs["seconds"].CopyFrom(tensors.from_ndarray(np.array([0.0], np.float32)))
    assert list(stub.Predict(request, timeout=10).outputs["waited"].float_val) == [pytest.approx(0.0, abs=0.05)]
    channel.close()


def test_core_errors_map_to_tf_servings_http_codes(server, slow_server, toy_dir):
    # Real failures of the core, each answered with TF Serving's status:
    assert call(server, "POST", "/v1/models/nope:predict", {"instances": ROW})[0] == 404  # NOT_FOUND
    assert call(server, "POST", "/v1/models/toy:predict", {"instances": [[1.0]]})[0] == 400  # INVALID_ARGUMENT
    status, doc = call(slow_server, "POST", f"/v1/models/{rm.SLOW_MODEL}:regress",
                       _slow_example(REST_TIMEOUT_MS / 1000 + 0.2, "regress"))
    assert status == 504, doc  # DEADLINE_EXCEEDED
    good_request_works(server, toy_dir)


@pytest.mark.parametrize("exc,code", [
    (ServingError(grpc.StatusCode.UNAVAILABLE, "shutting down"), 503),
    (ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full"), 429),
    (ServingError(grpc.StatusCode.FAILED_PRECONDITION, "no signature"), 400),
    (ServingError(grpc.StatusCode.UNIMPLEMENTED, "no"), 501),
    (ServingError(grpc.StatusCode.CANCELLED, "gone"), 499),
    (tf.errors.ResourceExhaustedError(None, None, "out of memory"), 429),
    (RuntimeError("boom"), 500),
])
def test_the_error_map_is_tf_servings(exc, code):
    status, body = rest.http_error(exc)
    assert status == code
    assert set(json.loads(body)) == {"error"} and json.loads(body)["error"]


def test_past_the_connection_cap_a_new_connection_is_answered_503_while_all_are_busy(slow_server):
    front = rest.start_rest_server(slow_server.server.core, "127.0.0.1", 0, 0, max_connections=2)
    path = f"/v1/models/{rm.SLOW_MODEL}:predict"
    try:
        answers = []

        def slow_request():
            answers.append(call(front, "POST", path, {"instances": [1.0]}))

        busy = [threading.Thread(target=slow_request) for _ in range(2)]
        for t in busy:
            t.start()
        time.sleep(0.4)  # both connections are busy for a second
        status, doc = call(front, "GET", f"/v1/models/{rm.SLOW_MODEL}")
        assert status == 503 and "Too many connections" in doc["error"], doc
        for t in busy:
            t.join()
        assert [status for status, _ in answers] == [200, 200]
        assert call(front, "GET", f"/v1/models/{rm.SLOW_MODEL}")[0] == 200
    finally:
        front.stop()


def test_stop_lets_a_request_in_flight_finish(slow_dir):
    srv = rm.start_slow_server(slow_dir, rest_api_timeout_in_ms=0)
    front = types.SimpleNamespace(port=srv.rest_port)
    result = {}
    t = threading.Thread(target=lambda: result.update(r=call(
        front, "POST", f"/v1/models/{rm.SLOW_MODEL}:predict", {"instances": [0.5]})))
    t.start()
    time.sleep(0.2)
    srv.stop(grace=5)
    t.join()
    assert result["r"][0] == 200 and result["r"][1]["predictions"][0] >= 0.5
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", front.port), timeout=1).close()


def test_with_batching_one_event_loop_serves_both_apis_and_stops_cleanly(slow_dir):
    """With batching the gRPC server is grpcio's asyncio one, and REST runs on its event loop:
    no REST thread of its own; deadlines, answers and a graceful stop as on its own loop."""
    srv = rm.start_slow_server(slow_dir, rest_api_timeout_in_ms=REST_TIMEOUT_MS, enable_batching=True)
    front = types.SimpleNamespace(port=srv.rest_port)
    try:
        names = {t.name for t in threading.enumerate()}
        assert "grpc_asyncio" in names and f"rest-api:{srv.rest_port}" not in names, names
        status, doc = call(front, "POST", f"/v1/models/{rm.SLOW_MODEL}:predict", {"instances": [0.0, 0.0]})
        assert status == 200 and len(doc["predictions"]) == 2
        start = time.monotonic()
        status, _ = call(front, "POST", f"/v1/models/{rm.SLOW_MODEL}:predict", {"instances": [1.0]})
        assert status == 504 and time.monotonic() - start < REST_TIMEOUT_MS / 1000 + 0.4
        time.sleep(1.0)
        result = {}
        t = threading.Thread(target=lambda: result.update(r=call(
            front, "POST", f"/v1/models/{rm.SLOW_MODEL}:regress", _slow_example(0.2, "regress"))))
        t.start()
        time.sleep(0.05)
    finally:
        srv.stop(grace=5)
    t.join()
    assert result["r"][0] == 200 and result["r"][1]["results"][0] >= 0.2  # finished during the stop
    assert "grpc_asyncio" not in {t.name for t in threading.enumerate()}  # the shared loop has ended
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", front.port), timeout=1).close()


# --- JSON -> tensor conversion, unit level -----------------------------------------


def test_json_value_to_tensor():
    t = json_tensors.json_value_to_tensor([[1, 2.5], [3, float("inf")]], types_pb2.DT_FLOAT)
    assert [d.size for d in t.tensor_shape.dim] == [2, 2]
    np.testing.assert_array_equal(np.frombuffer(t.tensor_content, np.float32), [1, 2.5, 3, np.inf])
    t = json_tensors.json_value_to_tensor(7, types_pb2.DT_INT64)
    assert list(t.tensor_shape.dim) == [] and np.frombuffer(t.tensor_content, np.int64).tolist() == [7]
    t = json_tensors.json_value_to_tensor([[], []], types_pb2.DT_FLOAT)
    assert [d.size for d in t.tensor_shape.dim] == [2, 0]
    t = json_tensors.json_value_to_tensor([2**64 - 1], types_pb2.DT_UINT64)
    assert np.frombuffer(t.tensor_content, np.uint64).tolist() == [2**64 - 1]
    t = json_tensors.json_value_to_tensor(["a", {"b64": "AP8"}], types_pb2.DT_STRING)
    assert list(t.string_val) == [b"a", b"\x00\xff"]
    with pytest.raises(ServingError, match="Encountered list at unexpected level: 1 expected < 1"):
        json_tensors.json_value_to_tensor([1, [2]], types_pb2.DT_FLOAT)
    with pytest.raises(ServingError, match="not formatted correctly for base64"):
        json_tensors.json_value_to_tensor([{"x": "y"}], types_pb2.DT_STRING)
    with pytest.raises(ServingError, match="to type: complex64") as e:
        json_tensors.json_value_to_tensor([1], types_pb2.DT_COMPLEX64)
    assert e.value.code == grpc.StatusCode.UNIMPLEMENTED
