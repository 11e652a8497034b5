"""What a Python gRPC server costs per request, with no model: grpcio's asyncio server
(what zoo-model-server runs, and bench_serving's floor), grpcio's thread-pool server, and
grpclib (pure Python, on h2) when it is installed (`pip install -e '.[bench]'`).

Each server answers TF Serving's Predict with a prepared PredictResponse (simple_cnn's:
a [1,10] float tensor and two [1] tensors), in a process of its own, to 32 closed-loop
asyncio clients with a connection each (bench_serving.grpc_closed_loop) sending one
[1,32,32,3] float image. "batched" also does what a batching server does around its model
(bench_serving.echo_server's batched floor): the request's tensor into numpy, handed to a
batch thread that joins up to --max-batch-size requests (or what came in the timeout),
the response's tensors from numpy. The servers are measured in turn, round after round,
so each round's ratios are side by side; the table gives the medians.

    python benchmarks/bench_grpc_servers.py [--rounds 3] [--seconds 4]

Writes benchmarks/out/grpc_servers.json and prints a Markdown table.
"""

import argparse
import asyncio
import json
import pathlib
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import bench_serving as bench  # noqa: E402

KINDS = ("grpc.aio", "grpcio thread pool", "grpclib")


def _response():
    from tensorflow_serving.apis import predict_pb2

    from serving import tensors

    response = predict_pb2.PredictResponse()
    response.model_spec.name = "simple_cnn"
    response.model_spec.version.value = 1
    response.model_spec.signature_name = "serving_default"
    response.outputs["probabilities"].CopyFrom(tensors.from_ndarray(np.full((1, 10), 0.1, np.float32)))
    response.outputs["label"].CopyFrom(tensors.from_ndarray(np.array([b"7"], object)))
    response.outputs["class_id"].CopyFrom(tensors.from_ndarray(np.array([7], np.int64)))
    return response


class Batcher:
    """The batched floor's work around a model, for a server of either kind: `submit`
    queues a request's array with a token; once a batch is joined, the batch thread calls
    `wake` once with the batch's tokens (as the batched floor wakes its event loop once
    per batch)."""

    def __init__(self, timeout_micros, most, wake):
        self.timeout, self.most, self.wake = timeout_micros / 1e6, most, wake
        self.ready, self.queued = threading.Condition(), []
        threading.Thread(target=self._run, daemon=True).start()

    def submit(self, x, token):
        with self.ready:
            self.queued.append((token, x))
            if len(self.queued) in (1, self.most):
                self.ready.notify()

    def _run(self):
        while True:
            with self.ready:
                while not self.queued:
                    self.ready.wait()
                due = time.monotonic() + self.timeout
                while len(self.queued) < self.most and time.monotonic() < due:
                    self.ready.wait(due - time.monotonic())
                batch = self.queued[:self.most]
                del self.queued[:self.most]
            np.concatenate([x for _, x in batch])
            self.wake([token for token, _ in batch])


def serve(kind, port, timeout_micros, most):
    """Run one server until SIGTERM; print {"ready": true} once it listens."""
    from tensorflow_serving.apis import predict_pb2

    from serving import tensors

    response = _response()
    outputs = {key: tensors.to_ndarray(t) for key, t in response.outputs.items()}
    batcher = None

    def answer():  # what the batched floor writes: the tensors from numpy
        built = predict_pb2.PredictResponse()
        built.model_spec.CopyFrom(response.model_spec)
        for key, value in outputs.items():
            built.outputs[key].CopyFrom(tensors.from_ndarray(value))
        return built

    async def predict_async(request):
        if batcher is None:
            return response
        future = asyncio.get_running_loop().create_future()
        batcher.submit(tensors.to_ndarray(next(iter(request.inputs.values()))), future)
        await future
        return answer()

    if kind == "grpcio thread pool":
        import concurrent.futures

        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        class Sync(prediction_service_pb2_grpc.PredictionServiceServicer):
            def Predict(self, request, context):
                if batcher is None:
                    return response
                event = threading.Event()
                batcher.submit(tensors.to_ndarray(next(iter(request.inputs.values()))), event)
                event.wait()
                return answer()

        if timeout_micros:
            batcher = Batcher(timeout_micros, most, lambda events: [event.set() for event in events])
        server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=64), options=bench.GRPC_OPTIONS)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Sync(), server)
        server.add_insecure_port(f"localhost:{port}")
        server.start()
        print(json.dumps({"ready": True}), flush=True)
        signal.sigwait([signal.SIGTERM])
        server.stop(None)
        return

    def resolve(futures):
        for future in futures:
            future.set_result(None)

    async def main():
        nonlocal batcher
        loop = asyncio.get_running_loop()
        if timeout_micros:
            batcher = Batcher(timeout_micros, most, lambda futures: loop.call_soon_threadsafe(resolve, futures))
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        if kind == "grpc.aio":
            import grpc
            from tensorflow_serving.apis import prediction_service_pb2_grpc

            class Aio(prediction_service_pb2_grpc.PredictionServiceServicer):
                async def Predict(self, request, context):
                    return await predict_async(request)

            server = grpc.aio.server(options=bench.GRPC_OPTIONS)
            prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Aio(), server)
            server.add_insecure_port(f"localhost:{port}")
            await server.start()
            print(json.dumps({"ready": True}), flush=True)
            await stop.wait()
            await server.stop(None)
        else:
            from grpclib.const import Cardinality, Handler
            from grpclib.server import Server

            class Lib:
                async def predict(self, stream):
                    await stream.send_message(await predict_async(await stream.recv_message()))

                def __mapping__(self):
                    return {"/tensorflow.serving.PredictionService/Predict": Handler(
                        self.predict, Cardinality.UNARY_UNARY, predict_pb2.PredictRequest, predict_pb2.PredictResponse)}

            server = Server([Lib()])
            await server.start("localhost", port)
            print(json.dumps({"ready": True}), flush=True)
            await stop.wait()
            server.close()
            await server.wait_closed()

    asyncio.run(main())


def measure(kind, batched, args, request):
    port = bench._free_port()
    process = subprocess.Popen([sys.executable, __file__, "--serve", kind, str(port),
                                str(args.batch_timeout_micros if batched else 0), str(args.max_batch_size)],
                               stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        if not line or not json.loads(line).get("ready"):
            raise RuntimeError(f"the {kind} server did not start")
        bench.grpc_closed_loop(port, request, args.concurrency, 1.0)  # warm both ends
        server_cpu, client_cpu = bench._cpu_seconds(process.pid), time.process_time()
        latencies, rps = bench.grpc_closed_loop(port, request, args.concurrency, args.seconds, warmup=0)
        count = len(latencies)
        result = bench.summary(latencies, rps)
        result.update(server_cpu_us_per_request=(bench._cpu_seconds(process.pid) - server_cpu) / count * 1e6,
                      client_cpu_us_per_request=(time.process_time() - client_cpu) / count * 1e6)
        return result
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per cell")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batch-timeout-micros", type=int, default=16000)
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("rounds", "seconds", "concurrency", "max_batch_size"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.batch_timeout_micros <= 0:
        parser.error(f"--batch-timeout-micros must be positive (the batched cells wait this long for a "
                     f"batch to fill), got {args.batch_timeout_micros}")
    if args.serve:
        kind, port, timeout_micros, most = args.serve
        return serve(kind, int(port), int(timeout_micros), int(most))

    try:
        import grpclib  # noqa: F401
        kinds = KINDS
    except ImportError:
        print("grpclib is not installed (pip install -e '.[bench]'): measuring grpcio's servers only", file=sys.stderr)
        kinds = KINDS[:2]
    from serving import tensors  # noqa: F401  (imports TensorFlow once, before the clock)

    request = bench._predict_request("simple_cnn", "image", np.zeros((1, 32, 32, 3), np.float32))
    cells = [(kind, batched) for batched in (False, True) for kind in kinds]
    runs = {cell: [] for cell in cells}
    for round_number in range(args.rounds):
        for kind, batched in cells:
            result = measure(kind, batched, args, request)
            runs[kind, batched].append(result)
            print(f"round {round_number + 1} {kind}{' batched' if batched else ''}: "
                  f"{result['throughput_rps']:.0f} req/s, server {result['server_cpu_us_per_request']:.0f} µs/req",
                  flush=True)

    def median(kind, batched, key):
        return statistics.median(r[key] for r in runs[kind, batched])

    rows = []
    for kind, batched in cells:
        # Ratio to grpc.aio in the same round, then the median of those.
        ratio = statistics.median(r["throughput_rps"] / a["throughput_rps"]
                                  for r, a in zip(runs[kind, batched], runs["grpc.aio", batched]))
        rows.append({"server": kind, "batched": batched, "rounds": runs[kind, batched],
                     "throughput_rps": median(kind, batched, "throughput_rps"),
                     "server_cpu_us_per_request": median(kind, batched, "server_cpu_us_per_request"),
                     "client_cpu_us_per_request": median(kind, batched, "client_cpu_us_per_request"),
                     "p50_ms": median(kind, batched, "p50_ms"), "throughput_vs_aio": ratio})
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "grpc_servers.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    print(f"\nc={args.concurrency} closed loop, {args.rounds} rounds of {args.seconds:g} s, medians; "
          f"batched: max_batch_size {args.max_batch_size}, {args.batch_timeout_micros} µs\n")
    print("| server | batched | req/s | vs grpc.aio, same round | server CPU µs/req | client CPU µs/req | p50 ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['server']} | {'yes' if row['batched'] else 'no'} | {row['throughput_rps']:,.0f} | "
              f"{row['throughput_vs_aio']:.2f} | {row['server_cpu_us_per_request']:.0f} | "
              f"{row['client_cpu_us_per_request']:.0f} | {row['p50_ms']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
