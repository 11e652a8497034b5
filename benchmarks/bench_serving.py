"""Serving latency and throughput: in-process SavedModel vs zoo-model-server over gRPC and REST.

For each model (simple_cnn, and a text classifier when one is registered) it exports a
SavedModel, then measures one-example requests at concurrency 1, 8 and 32:

- in-process: the SavedModel's serving_default called from this process's threads
  (plus one row of batch-32 calls: what the hardware does when requests come batched);
- gRPC and REST: `serving.Client` against `zoo-model-server` running in its own process,
  once without and once with server-side batching (--enable_batching).

All in one run, side by side, into benchmarks/out/serving.md (and .json), with the
issue's targets checked underneath: gRPC p50 at concurrency 1 within 1 ms of
in-process; at concurrency 32, batching at least 2x the throughput without it and at
least 70% of in-process batched throughput.

    .venv/bin/python benchmarks/bench_serving.py [--seconds 3] [--models simple_cnn]

Client and server share this machine's cores, so served numbers include the client's
own cost (Python threads building and reading requests), as they would for a Python
client on the same host.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = pathlib.Path(__file__).parent
ROOT = HERE.parent
OUT = HERE / "out"
CONCURRENCY = (1, 8, 32)
BATCHING = """max_batch_size { value: 32 }
batch_timeout_micros { value: 2000 }
max_enqueued_batches { value: 1000 }
num_batch_threads { value: 2 }
"""
TEXTS = ["a gripping, beautifully shot film", "dull and far too long", "not bad at all", "I want my money back"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def export_models(names, base) -> dict:
    """Exports each model (untrained: speed does not depend on the weights) -> example input."""
    import numpy as np

    import zoo
    from export import export_saved_model
    from zoo import registry

    inputs = {}
    for name in names:
        spec = registry.get_model_spec(name)
        model = zoo.build_model(name)
        if spec.task == "image_classification":
            shape = tuple(model.input["image"].shape[1:])
            # Raw pixels, as a client sends them: whole numbers 0-255 in float32.
            examples = np.random.default_rng(0).integers(0, 256, (4,) + shape).astype("float32")
            inputs[name] = {"image": examples[:1]}
        else:
            examples = np.array(TEXTS, dtype=object)
            inputs[name] = {"text": examples[:1]}
        export_saved_model(model, base, model_name=name, version=1, verify=False, examples=examples,
                           task=spec.task)
        print(f"exported {name}", file=sys.stderr)
    return inputs


def load(call, concurrency: int, seconds: float) -> dict:
    """Runs `call()` from `concurrency` threads for `seconds`: latency percentiles, rate."""
    latencies = [[] for _ in range(concurrency)]
    errors = []
    start = threading.Barrier(concurrency + 1)
    stop_at = [0.0]

    def worker(out):
        start.wait()
        try:
            while time.perf_counter() < stop_at[0]:
                t0 = time.perf_counter()
                call()
                out.append(time.perf_counter() - t0)
        except Exception as e:  # noqa: BLE001 - reported in the table
            errors.append(repr(e))

    for _ in range(max(3, concurrency)):  # warm up connections and caches
        call()
    threads = [threading.Thread(target=worker, args=(lat,), daemon=True) for lat in latencies]
    for t in threads:
        t.start()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    all_ms = sorted(x * 1000 for lat in latencies for x in lat)
    if errors or not all_ms:
        return {"error": errors[0] if errors else "no requests finished"}
    return {
        "p50_ms": statistics.median(all_ms),
        "p99_ms": all_ms[min(len(all_ms) - 1, int(len(all_ms) * 0.99))],
        "per_s": len(all_ms) / elapsed,
        "requests": len(all_ms),
    }


def bench_in_process(base, name, example, seconds) -> list[dict]:
    import numpy as np
    import tensorflow as tf

    fn = tf.saved_model.load(str(base / name / "1")).signatures["serving_default"]
    (key, value), = example.items()
    one = {key: tf.constant(value)}
    rows = []
    for c in CONCURRENCY:
        rows.append({"path": "in-process", "batching": "-", "concurrency": c,
                     **load(lambda: fn(**one), c, seconds)})
    batch = {key: tf.constant(np.repeat(value, 32, axis=0))}
    result = load(lambda: fn(**batch), 1, seconds)
    if "per_s" in result:
        result["per_s"] *= 32  # examples per second
    rows.append({"path": "in-process, batch 32", "batching": "-", "concurrency": 1, **result})
    return rows


class Server:
    """zoo-model-server in its own process."""

    def __init__(self, base, batching_file=None):
        self.grpc_port, self.rest_port = free_port(), free_port()
        cmd = [sys.executable, "-m", "serving.server_main", "--host=127.0.0.1",
               f"--port={self.grpc_port}", f"--rest_api_port={self.rest_port}",
               f"--model_config_file={base / 'models.config'}", "--file_system_poll_wait_seconds=0"]
        if batching_file:
            cmd += ["--enable_batching=true", f"--batching_parameters_file={batching_file}"]
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def bench_served(base, names, inputs, seconds, batching_file) -> dict:
    from serving import Client

    server = Server(base, batching_file)
    rows = {name: [] for name in names}
    try:
        for protocol, port in (("gRPC", server.grpc_port), ("REST", server.rest_port)):
            for name in names:
                client = Client(f"127.0.0.1:{port}", name, protocol=protocol.lower(), timeout=60)
                client.wait_until_available(timeout=300)
                example = inputs[name]
                for c in CONCURRENCY:
                    result = load(lambda: client.predict(example), c, seconds)
                    rows[name].append({"path": protocol, "batching": "on" if batching_file else "off",
                                       "concurrency": c, **result})
                    print(f"{name} {protocol} batching={'on' if batching_file else 'off'} c={c}: {result}",
                          file=sys.stderr)
                client.close()
    finally:
        server.stop()
    return rows


def find(rows, path, batching, concurrency):
    for r in rows:
        if (r["path"], r["batching"], r["concurrency"]) == (path, batching, concurrency) and "per_s" in r:
            return r
    return None


def targets(rows) -> list[str]:
    lines = []
    inproc, grpc1 = find(rows, "in-process", "-", 1), find(rows, "gRPC", "off", 1)
    if inproc and grpc1:
        ok = grpc1["p50_ms"] <= inproc["p50_ms"] + 1.0
        lines.append(f"- gRPC p50 at concurrency 1 ≤ in-process + 1 ms: {grpc1['p50_ms']:.2f} vs "
                     f"{inproc['p50_ms']:.2f} + 1 ms: {'met' if ok else 'NOT met'}")
    batched = find(rows, "in-process, batch 32", "-", 1)
    for path in ("gRPC", "REST"):
        on, off = find(rows, path, "on", 32), find(rows, path, "off", 32)
        if on and off:
            ratio = on["per_s"] / off["per_s"]
            lines.append(f"- {path} at concurrency 32, batching on / off ≥ 2×: {ratio:.2f}× "
                         f"({'met' if ratio >= 2 else 'NOT met'})")
        if on and batched:
            share = on["per_s"] / batched["per_s"]
            lines.append(f"- {path} at concurrency 32 with batching ≥ 70% of in-process batched: "
                         f"{share:.0%} ({'met' if share >= 0.7 else 'NOT met'})")
    return lines


def markdown(results, seconds) -> str:
    import tensorflow as tf

    out = ["# Serving benchmark", "",
           f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, TF {tf.__version__}; "
           f"one-example requests, {seconds:g} s per cell; served through `serving.Client` "
           "against `zoo-model-server` in its own process (batching: max_batch_size 32, "
           "batch_timeout_micros 2000, 2 batch threads).", ""]
    for name, rows in results.items():
        out += [f"## {name}", "", "| path | batching | concurrency | p50 ms | p99 ms | examples/s |",
                "|---|---|---:|---:|---:|---:|"]
        for r in rows:
            if "error" in r:
                out.append(f"| {r['path']} | {r['batching']} | {r['concurrency']} | error: {r['error']} | | |")
            else:
                out.append(f"| {r['path']} | {r['batching']} | {r['concurrency']} | {r['p50_ms']:.2f} | "
                           f"{r['p99_ms']:.2f} | {r['per_s']:,.0f} |")
        out += ["", "Targets:", "", *targets(rows), ""]
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per cell")
    parser.add_argument("--models", nargs="+", help="registered models (default: simple_cnn and a "
                                                     "text classifier if one is registered)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from zoo import registry

    names = args.models or ["simple_cnn"] + [
        n for n in registry.list_models() if registry.get_model_spec(n).task == "text_classification"][:1]
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        base = pathlib.Path(tmp) / "models"
        inputs = export_models(names, base)
        batching_file = pathlib.Path(tmp) / "batching.txt"
        batching_file.write_text(BATCHING)
        results = {name: bench_in_process(base, name, inputs[name], args.seconds) for name in names}
        for batching in (None, batching_file):
            for name, rows in bench_served(base, names, inputs, args.seconds, batching).items():
                results[name] += rows
    text = markdown(results, args.seconds)
    (OUT / "serving.md").write_text(text)
    (OUT / "serving.json").write_text(json.dumps(results, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
