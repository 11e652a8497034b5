"""Serving benchmark: latency and throughput of one model, in-process vs served.

For an exported `simple_cnn` (untrained: the weights do not change the cost), one
image per request, closed loop (each client sends its next request when the last
answer arrives) at concurrency 1, 8 and 32:

- in-process: the loaded SavedModel's `serving_default` called from N threads (the
  floor any server adds to), plus its batched throughput (batches of 32);
- gRPC: `zoo-model-server` in a separate process, batching off and on;
- REST: the same servers' REST port (when serving.rest is available).

The targets from the serving issue are checked at the end:
gRPC p50 at concurrency 1 <= in-process p50 + 1 ms; gRPC throughput at concurrency
32 with batching >= 2x without, and >= 70% of the in-process batched throughput.

    python benchmarks/bench_serving_grpc.py                  # ~2 minutes
    python benchmarks/bench_serving_grpc.py --seconds 2 --concurrency 1 32 --no-rest

Writes benchmarks/out/serving_grpc.md and benchmarks/out/serving_grpc.json.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import pathlib
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # noqa: E402

import zoo  # noqa: E402
from export import export_saved_model  # noqa: E402
from serving import tensors  # noqa: E402

MODEL = "simple_cnn"
BATCHING = ("max_batch_size { value: 32 }\nbatch_timeout_micros { value: 1000 }\n"
            "max_enqueued_batches { value: 100 }\nnum_batch_threads { value: 1 }\n")


def closed_loop(make_call, concurrency, seconds, warmup=0.5):
    """Run `concurrency` threads, each calling its own `make_call()` in a loop.

    Returns (latencies in seconds within the measured window, requests per second).
    """
    calls = [make_call() for _ in range(concurrency)]
    latencies = [[] for _ in range(concurrency)]
    errors = []
    start = threading.Barrier(concurrency + 1)
    window = {}

    def run(i):
        call = calls[i]
        start.wait()
        begin, end = window["begin"], window["end"]
        while True:
            t0 = time.perf_counter()
            if t0 >= end:
                return
            try:
                call()
            except Exception as e:  # a failed request is reported, not timed
                errors.append(repr(e))
                return
            if t0 >= begin:
                latencies[i].append(time.perf_counter() - t0)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    now = time.perf_counter()
    window.update(begin=now + warmup, end=now + warmup + seconds)
    start.wait()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, first: {errors[0]}")
    flat = [x for per_thread in latencies for x in per_thread]
    return flat, len(flat) / seconds


def summary(latencies, throughput):
    ms = np.asarray(latencies) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "throughput_rps": float(throughput), "requests": len(ms)}


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


class Server:
    """zoo-model-server in its own process, on free ports."""

    def __init__(self, config_file, batching_file=None, rest=True):
        self.port = _free_port()
        self.rest_port = _free_port() if rest else None
        script = pathlib.Path(sys.executable).with_name("zoo-model-server")
        argv = [str(script), f"--port={self.port}", f"--model_config_file={config_file}",
                "--file_system_poll_wait_seconds=0", "--grpc_max_threads=64"]
        if rest:
            argv.append(f"--rest_api_port={self.rest_port}")
        if batching_file:
            argv += ["--enable_batching", f"--batching_parameters_file={batching_file}"]
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        channel = grpc.insecure_channel(f"localhost:{self.port}")
        stub = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 180
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                raise RuntimeError("zoo-model-server did not start:\n" + self.log.read().decode()[-3000:])
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    break
            except grpc.RpcError:
                time.sleep(0.25)
        channel.close()

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


def grpc_caller(port, image):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs["image"].CopyFrom(tensors.from_ndarray(image))

    def make():
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"localhost:{port}"))
        return lambda: stub.Predict(request, timeout=30)

    return make


def rest_caller(port, image):
    body = json.dumps({"instances": image.tolist()})
    path = f"/v1/models/{MODEL}:predict"

    def make():
        connection = http.client.HTTPConnection("localhost", port, timeout=30)

        def call():
            connection.request("POST", path, body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            payload = response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {payload[:200]!r}")

        return call

    return make


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per cell")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--no-rest", action="store_true", help="skip the REST measurements")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out"))
    args = parser.parse_args(argv)
    rest = not args.no_rest and importlib.util.find_spec("serving.rest") is not None

    work = pathlib.Path(tempfile.mkdtemp(prefix="bench_serving_"))
    model = zoo.build_model(MODEL)
    shape = model.input_shape[1:]
    rng = np.random.default_rng(0)
    examples = rng.integers(0, 256, (4, *shape)).astype(np.float32)
    version_dir = export_saved_model(model, work, MODEL, examples=examples, verify=False)
    config_file = work / "models.config"
    batching_file = work / "batching.txt"
    batching_file.write_text(BATCHING)
    image = examples[:1]

    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "tensorflow": tf.__version__, "platform": platform.platform()},
               "model": MODEL, "input_shape": list(shape), "seconds": args.seconds, "cells": []}

    def measure(mode, batching, concurrency, make_call):
        try:
            latencies, throughput = closed_loop(make_call, concurrency, args.seconds)
        except RuntimeError as e:  # reported in the table, the run goes on
            results["cells"].append({"mode": mode, "batching": batching, "concurrency": concurrency,
                                     "error": str(e)})
            print(f"{mode:10s} batching={'on ' if batching else 'off'} c={concurrency:<3d} FAILED: {e}", flush=True)
            return
        record(mode, batching, concurrency, latencies, throughput)

    def record(mode, batching, concurrency, latencies, throughput):
        cell = {"mode": mode, "batching": batching, "concurrency": concurrency,
                **summary(latencies, throughput)}
        results["cells"].append(cell)
        print(f"{mode:10s} batching={'on ' if batching else 'off'} c={concurrency:<3d} "
              f"p50={cell['p50_ms']:7.2f} ms  p99={cell['p99_ms']:7.2f} ms  {cell['throughput_rps']:8.1f} req/s",
              flush=True)

    # In-process: the loaded SavedModel's signature, as a TF Serving runtime calls it.
    function = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    single = tf.constant(image)
    for concurrency in args.concurrency:
        latencies, throughput = closed_loop(lambda: lambda: function(image=single), concurrency, args.seconds)
        record("in-process", False, concurrency, latencies, throughput)
    batch = tf.constant(np.repeat(image, 32, axis=0))
    latencies, throughput = closed_loop(lambda: lambda: function(image=batch), 1, args.seconds)
    results["in_process_batched_images_per_s"] = throughput * 32
    print(f"in-process batches of 32: {throughput * 32:.1f} images/s", flush=True)

    for batching in (False, True):
        server = Server(config_file, batching_file if batching else None, rest=rest)
        try:
            for concurrency in args.concurrency:
                measure("grpc", batching, concurrency, grpc_caller(server.port, image))
            if rest:
                for concurrency in args.concurrency:
                    measure("rest", batching, concurrency, rest_caller(server.rest_port, image))
        finally:
            server.stop()

    def cell(mode, batching, concurrency):
        for c in results["cells"]:
            if (c["mode"], c["batching"], c["concurrency"]) == (mode, batching, concurrency) and "error" not in c:
                return c
        return None

    checks = []
    low, high = min(args.concurrency), max(args.concurrency)
    a, b = cell("grpc", False, low), cell("in-process", False, low)
    if a and b:
        checks.append((f"gRPC p50 at c={low} <= in-process p50 + 1 ms",
                       f"{a['p50_ms']:.2f} vs {b['p50_ms'] + 1:.2f} ms", a["p50_ms"] <= b["p50_ms"] + 1))
    on, off = cell("grpc", True, high), cell("grpc", False, high)
    if on and off:
        checks.append((f"gRPC throughput at c={high}: batching >= 2x no batching",
                       f"{on['throughput_rps']:.0f} vs 2 x {off['throughput_rps']:.0f} req/s",
                       on["throughput_rps"] >= 2 * off["throughput_rps"]))
        floor = 0.7 * results["in_process_batched_images_per_s"]
        checks.append((f"gRPC throughput at c={high} with batching >= 70% of in-process batched",
                       f"{on['throughput_rps']:.0f} vs {floor:.0f} req/s", on["throughput_rps"] >= floor))
    results["targets"] = [{"target": t, "measured": m, "met": ok} for t, m, ok in checks]

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "serving_grpc.json").write_text(json.dumps(results, indent=2))
    lines = [f"# Serving benchmark: {MODEL} {tuple(shape)}, one image per request", "",
             f"{results['machine']['cpus']} CPUs, TensorFlow {tf.__version__}, {args.seconds:g} s per cell, "
             "closed loop; server and clients share the machine.", "",
             "| mode | batching | concurrency | p50 ms | p99 ms | req/s |", "|---|---|---|---|---|---|"]
    for c in results["cells"]:
        head = f"| {c['mode']} | {'on' if c['batching'] else 'off'} | {c['concurrency']} |"
        if "error" in c:
            lines.append(f"{head} failed: {c['error'][:80]} | | |")
        else:
            lines.append(f"{head} {c['p50_ms']:.2f} | {c['p99_ms']:.2f} | {c['throughput_rps']:.0f} |")
    lines += ["", f"In-process batches of 32: {results['in_process_batched_images_per_s']:.0f} images/s.", "",
              "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {'yes' if ok else 'no'} |" for t, m, ok in checks]
    (out / "serving_grpc.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-len(checks) - 2:]))
    print(f"wrote {out / 'serving_grpc.md'}")


if __name__ == "__main__":
    main()
