"""`zoo-model-server --worker_processes=2`: two servers, one port, one supervisor.

The real console script serving TF Serving's half_plus_two: both workers take
connections on the shared gRPC and REST ports, a worker that dies is started again
while the other keeps answering, HandleReloadConfigRequest is refused with the way
to do it instead, SIGTERM stops everything with status 0, and a worker that cannot
start fails the whole server as tensorflow_model_server fails.
"""

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import (model_management_pb2, model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)

import serving_models as sm
from serving import ModelServer, tensors

SCRIPT = os.path.join(os.path.dirname(sys.executable), "zoo-model-server")


def _children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return sorted(int(p) for p in f.read().split())


def _established_on(pid, port):
    """Connections process `pid` holds that were accepted on `port`."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for row in f.readlines()[1:]:
                fields = row.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] == "01" and fields[9] in inodes:
                    count += 1
    return count


def _wait_serving(port, deadline_s=120):
    deadline = time.monotonic() + deadline_s
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise AssertionError("the workers did not start serving")


def _own_channel(port):
    """A channel with a connection of its own (channels to one address otherwise share one)."""
    return grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])


@contextlib.contextmanager
def _connected(port, count):
    """`count` connections to `port`, open (handshake done) until the block ends."""
    channels = [_own_channel(port) for _ in range(count)]
    try:
        for channel in channels:
            grpc.channel_ready_future(channel).result(timeout=30)
        yield
    finally:
        for channel in channels:
            channel.close()


def _predict(port, x):
    """One Predict on a connection of its own."""
    with _own_channel(port) as channel:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "hp"
        request.inputs["x"].CopyFrom(tensors.from_ndarray(np.asarray([[x]], np.float32)))
        return list(prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
                    .outputs["y"].float_val)


@pytest.fixture(scope="module")
def supervised(tmp_path_factory):
    base = tmp_path_factory.mktemp("workers")
    sm.write_half_plus_two_tf2(base, "hp")
    port, rest_port = sm.free_port(), sm.free_port()
    process = subprocess.Popen(
        [SCRIPT, f"--port={port}", f"--rest_api_port={rest_port}", "--host=127.0.0.1", "--model_name=hp",
         f"--model_base_path={base / 'hp'}", "--worker_processes=2", "--enable_batching"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_serving(port)
        yield process, port, rest_port, base
    finally:
        if process.poll() is None:
            process.kill()
            for child in _children(process.pid):
                os.kill(child, signal.SIGKILL)
            process.wait()


def test_both_workers_take_connections_on_the_shared_ports(supervised):
    process, port, rest_port, _ = supervised
    workers = _children(process.pid)
    assert len(workers) == 2
    with _connected(port, 16):
        held = [_established_on(pid, port) for pid in workers]
    # Our 16 connections (and any not yet closed), and each worker holds some
    # (all 16 on one: odds of 1 in 2**15).
    assert sum(held) >= 16 and min(held) > 0, held
    assert _predict(port, 5.0) == [4.5]
    connections = [http.client.HTTPConnection("127.0.0.1", rest_port, timeout=30) for _ in range(16)]
    for i, connection in enumerate(connections):
        connection.request("POST", "/v1/models/hp:predict", body=json.dumps({"instances": [float(i)]}))
        response = connection.getresponse()
        assert response.status == 200 and json.loads(response.read()) == {"predictions": [i / 2 + 2]}
    held = [_established_on(pid, rest_port) for pid in workers]
    for connection in connections:
        connection.close()
    assert sum(held) >= 16 and min(held) > 0, held


def test_reload_config_is_refused_with_the_way_to_change_models(supervised):
    _, port, _, base = supervised
    request = model_management_pb2.ReloadConfigRequest()
    model = request.config.model_config_list.config.add()
    model.name, model.base_path, model.model_platform = "hp", str(base / "hp"), "tensorflow"
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        with pytest.raises(grpc.RpcError) as refused:
            model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(request, timeout=30)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "--model_config_file_poll_wait_seconds" in refused.value.details()
    assert "--worker_processes=1" in refused.value.details()


def test_a_worker_that_dies_is_started_again_while_the_other_serves(supervised):
    process, port, _, _ = supervised
    first, second = _children(process.pid)
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while os.path.exists(f"/proc/{first}"):  # until every thread has exited and the supervisor reaped it
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # Once its socket is closed, new connections reach the worker still listening.
    assert [_predict(port, 1.0) for _ in range(8)] == [[2.5]] * 8
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        workers = _children(process.pid)
        if len(workers) == 2 and first not in workers:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the dead worker was not started again")
    assert second in workers
    restarted = next(pid for pid in workers if pid != second)
    deadline = time.monotonic() + 120
    while True:  # requests answer all along; the restarted worker takes connections once it listens
        for _ in range(8):
            assert _predict(port, 3.0) == [3.5]
        with _connected(port, 8):
            if _established_on(restarted, port):
                break
        assert time.monotonic() < deadline, "the restarted worker never took a connection"
        time.sleep(0.5)


def test_sigterm_stops_every_worker_and_exits_0(supervised):
    process, port, _, _ = supervised
    workers = _children(process.pid)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    for pid in workers:
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read()
    log = process.stdout.read()
    assert "Serving with 2 worker processes" in log and "worker-0" in log and "worker-1" in log
    assert "starting it again" in log


def test_a_worker_that_cannot_start_fails_the_server(tmp_path):
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    process = subprocess.run(
        [SCRIPT, f"--port={sm.free_port()}", "--model_name=m", f"--model_base_path={tmp_path / 'm'}",
         "--worker_processes=2", "--max_num_load_retries=0"],
        capture_output=True, text=True, timeout=120)
    assert process.returncode == 255
    assert "Failed to start server. Error:" in process.stderr
    assert "while starting; stopping the others" in process.stderr


def test_bad_worker_counts_are_refused():
    process = subprocess.run([SCRIPT, "--model_base_path=/m", "--worker_processes=-1"],
                             capture_output=True, text=True, timeout=60)
    assert process.returncode == 255
    assert "--worker_processes=-1: give a number of processes, at least 1" in process.stderr
    process = subprocess.run([SCRIPT, "--model_base_path=/m"], env=dict(os.environ, ZOO_SERVER_WORKER="x"),
                             capture_output=True, text=True, timeout=60)
    assert process.returncode == 255 and "ZOO_SERVER_WORKER='x' is not INDEX/COUNT/READY_FD" in process.stderr
    with pytest.raises(TypeError, match="'worker_processes' is a flag of the zoo-model-server console script"):
        ModelServer("/m", "m", worker_processes=2)


def test_a_port_another_process_holds_fails_before_any_worker_starts():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        process = subprocess.run([SCRIPT, f"--port={port}", "--host=127.0.0.1", "--model_base_path=/m",
                                  "--worker_processes=2"], capture_output=True, text=True, timeout=60)
    assert process.returncode == 255
    assert "Failed to start server. Error: UNAVAILABLE:" in process.stderr
    assert f"Failed to bind gRPC server to 127.0.0.1:{port} (Address already in use)" in process.stderr
    assert "worker-" not in process.stderr
