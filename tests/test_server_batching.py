"""The gRPC behaviour of test_server.py again, on a server with batching on.

With `enable_batching` the server runs grpcio's asyncio server, whose Predict,
Classify, Regress and MultiInference await their batch (serving/grpc_server.py);
without it, the thread-pool server. Every answer, error text and status must be
the same on both, so the read-only tests of test_server.py are collected here
a second time against a batching server (this module's `server` fixture replaces
theirs), plus what only a batching server does: deadlines and cancellation while
a request waits for its batch, and draining on stop.
"""

import threading
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2

import serving_models as sm
from serving import ModelServer
from test_server import (  # noqa: F401 - fixtures and tests collected again here
    IMAGES,
    Stubs,
    _config,
    outputs,
    predict_request,
    store,
    stubs,
    test_bad_classify_and_metadata_requests,
    test_bad_predict_requests,
    test_classify_and_regress_tf1_savedmodel,
    test_classify_tf2_signature,
    test_get_model_metadata,
    test_get_model_status_and_health,
    test_multi_inference,
    test_predict_accepts_typed_value_encoding,
    test_predict_output_filter,
    test_predict_round_trip_with_resolved_model_spec,
    test_predict_strings_by_signature_and_version,
    test_regress_tf2_signature,
)

BATCHING = "max_batch_size { value: 8 } batch_timeout_micros { value: 2000 } num_batch_threads { value: 1 }"


@pytest.fixture(scope="module")
def server(store, tmp_path_factory):  # noqa: F811 - replaces test_server's fixture
    """tiny (v1) and tf1 (v1) behind a batching server."""
    base = tmp_path_factory.mktemp("batched_models")
    sm.copy_version(store["tiny1"], base, "tiny", 1)
    sm.copy_version(store["tf1"], base, "tf1", 1)
    config = _config(("tiny", base / "tiny"), ("tf1", base / "tf1"))
    with ModelServer(config=config, port=0, file_system_poll_wait_seconds=0, enable_batching=True,
                     batching_parameters=BATCHING) as srv:
        yield srv


def test_batching_server_is_the_asyncio_one(server):
    # What this module is for: the other tests here ran on the asyncio server.
    assert type(server._grpc).__name__ == "AsyncioServer"


def test_many_clients_each_get_their_own_rows(server):
    def client(i):
        stubs = Stubs(server.address)
        image = np.full([1 + i % 3, 2, 2, 1], i / 16.0, np.float32)
        try:
            for _ in range(4):
                got = outputs(stubs.predict.Predict(predict_request(images=image), timeout=30))
                np.testing.assert_allclose(got["probabilities"], sm.expected_probabilities(image, 1), rtol=1e-5)
        finally:
            stubs.channel.close()

    assert sm.run_concurrently(16, client) == []


def _slow_batching_server(store, tmp_path):
    sm.copy_version(store["tiny1"], tmp_path, "tiny", 1)
    # Batches wait up to 0.7 s for more rows: requests stay queued long enough to
    # time out, be cancelled or see the server stop.
    params = "max_batch_size { value: 64 } batch_timeout_micros { value: 700000 }"
    return ModelServer(tmp_path / "tiny", "tiny", port=0, enable_batching=True, batching_parameters=params,
                       file_system_poll_wait_seconds=0)


def test_deadline_and_cancellation_while_waiting_for_a_batch(store, tmp_path):
    with _slow_batching_server(store, tmp_path) as server:
        stubs = Stubs(server.address)
        with pytest.raises(grpc.RpcError) as info:
            stubs.predict.Predict(predict_request(), timeout=0.2)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

        future = stubs.predict.Predict.future(predict_request(), timeout=30)
        time.sleep(0.1)
        assert future.cancel()
        # Neither left anything behind: the next request is answered.
        response = stubs.predict.Predict(predict_request(), timeout=30)
        np.testing.assert_allclose(outputs(response)["probabilities"], sm.expected_probabilities(IMAGES, 1),
                                   rtol=1e-5)
        requests = server.metrics.registry.get_sample_value(
            ":tensorflow:serving:request_count", {"model_name": "tiny", "status": "OK"})
        assert requests == 1
        # Only the answered request ran the model: the other two left the batch first.
        runs = server.metrics.registry.get_sample_value(
            ":tensorflow:serving:runtime_latency_count", {"model_name": "tiny", "API": "Predict", "runtime": "TF1"})
        assert runs == 1


def test_stop_turns_health_off_and_drains_batched_requests(store, tmp_path):
    server = _slow_batching_server(store, tmp_path).start()
    stubs = Stubs(server.address)
    # A Watch stream opened before the stop is itself in flight, so it sees the
    # NOT_SERVING that the stop sends before refusing new calls (a Check polled
    # from here could land either side of that moment).
    watch = stubs.health.Watch(health_pb2.HealthCheckRequest(), timeout=30)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    futures = [stubs.predict.Predict.future(predict_request(), timeout=30) for _ in range(3)]
    time.sleep(0.2)
    stopper = threading.Thread(target=server.stop, kwargs={"grace": 10})
    stopper.start()
    assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
    # The batch the three requests wait in is still open (0.7 s): health turned
    # off first, and none of them has been answered yet.
    assert not any(f.done() for f in futures)
    watch.cancel()
    assert [f.result().model_spec.version.value for f in futures] == [1, 1, 1]
    stopper.join(15)
    assert not stopper.is_alive()
    with pytest.raises(grpc.RpcError):
        stubs.predict.Predict(predict_request(), timeout=2)
    assert server.wait(0)
