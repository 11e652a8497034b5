"""Serving benchmark: latency and throughput, in-process vs served, per model.

For each model of `--models` (default: `simple_cnn`, an image classifier, and
`text_cnn`, a text classifier), exported untrained (the weights do not change the
cost) into one model base path, one example per request (image: one random 0-255
image, float32 [1, H, W, C]; text: one short sentence, string [1]), closed loop
(each client sends its next request when the last answer arrives) at concurrency
1, 8 and 32:

- in-process: the loaded SavedModel's `serving_default`, called the public way
  with numpy in and numpy out (every output, as a server must return them) from N
  threads of one process, with batching off, and with batching on (the same
  `BatchScheduler` and parameters as the server's, so the same batches form);
  plus the model's ceiling: one thread calling it with full batches of 32;
- gRPC: `zoo-model-server` in its own process (one server per batching setting,
  serving every model), batching off and on;
- REST: the same servers' REST port (when serving.rest is available; `--no-rest`
  skips it);
- gRPC floor (echo, no model): a minimal `grpc.aio` server in a process of its
  own that runs no model: its PredictionService.Predict parses the request and
  returns a PredictResponse prepared once at start-up (the real server's answer to
  the same request, so the reply has the same size). Measured with the same
  client, it is the most requests per second a Python gRPC server can answer on
  this machine with a Python client on the same cores: the ceiling for the
  served rows, against which the 70%-of-in-process target can be judged;
- gRPC floor, batched (no model): the same server doing, at the highest
  concurrency, what a batching server does around its model without running one:
  the request's tensors read into numpy, a batch thread joining up to max_batch_size
  requests (one `np.concatenate`) and waking the event loop once per batch, the response's
  tensors written from numpy. Its CPU per request plus the model's in-process cost
  in full batches gives the best a batching Python gRPC server could do here.

Fairness. The in-process side runs in a process of its own with the same
TensorFlow thread settings as the servers (`--tf-threads`), so neither side pays
for the other's threads; the gRPC clients are asyncio coroutines in this process
(the cheapest Python client: one event loop instead of a thread per client) and
are the only thing this process runs meanwhile; REST clients are threads with
`http.client`, one keep-alive connection each. Client and server still share the
machine's cores, as a Python client on the same host would. Other processes on a
shared machine make single measurements noisy, so every cell is measured
`--rounds` times, the rounds interleaved across all cells and models (alternating
order), and the median is reported (with the throughput of every round). The CPU
columns are µs of CPU per request of the server process (served cells), of the
in-process child (in-process cells), and of this process (client).

The targets from the serving issue are checked per model: gRPC p50 at
concurrency 1 <= in-process p50 + 1 ms; gRPC throughput at concurrency 32 with
batching >= 2x without, and >= 70% of the in-process batched throughput, which is
checked against both in-process references (batching on at the same concurrency,
and the full-batch ceiling). Under them: the gRPC floor at concurrency 32 as a
share of in-process batching at concurrency 32, and the best any Python gRPC server
could do on this machine, from the measured costs: every core busy, each request
costing the floor's server and client CPU plus the model's own in-process CPU (per
image in full batches of 32 with batching, alone without). These two bounds say
whether a target is reachable here at all, whatever the server does.

Before and after. `--before REF` checks REF out into a detached `git worktree`
and starts the same two servers (same flags, config file and models) from it:
`python -m serving.server_main` run in the worktree with the worktree first on
PYTHONPATH, so its `serving` package is imported, not the installed one (checked
at start). Their cells, `grpc before` and `rest before`, are measured in the same
interleaved rounds as all the others, and each model gets a before -> after table
(p50 at the lowest concurrency, throughput at the highest, and REST's throughput
as a share of gRPC's), plus the bounds from the floor, before and after: gRPC
throughput at the highest concurrency >= 80% of the best a Python gRPC server
could do here with batching, >= 90% without. `--servers-only` measures the
in-process side and the floor only where the targets and bounds read them.

    python benchmarks/bench_serving.py                       # ~5 minutes (two models, 3 rounds of 1.5 s)
    python benchmarks/bench_serving.py --models simple_cnn --no-rest --concurrency 1 32
    python benchmarks/bench_serving.py --seconds 0.5 --rounds 1   # smoke run, ~1 minute
    python benchmarks/bench_serving.py --tf-threads 1,0      # intra-op 1, inter-op default
    python benchmarks/bench_serving.py --no-rest --concurrency 1 32 --servers-only \
        --tf-threads 1,-1 --batch-timeout-micros 16000 --max-batch-size 16   # tuned (RESULTS-serving.md)
    python benchmarks/bench_serving.py --before a20fbe2 --servers-only --concurrency 1 32

Writes benchmarks/out/serving.md and benchmarks/out/serving.json (`--out` folder).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import importlib.util
import json
import os
import pathlib
import platform
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from child_process import ChildProcess  # noqa: E402  (the in-process side's process)

MODELS = ("simple_cnn", "text_cnn")
# The exported batching_parameters.txt's defaults (serving.config.BATCHING_DEFAULTS).
MAX_BATCH_SIZE = 32
BATCH_TIMEOUT_MICROS = 1000


def batching_text(timeout_micros=BATCH_TIMEOUT_MICROS, max_batch_size=MAX_BATCH_SIZE):
    """The batching parameters of every batching party here (servers, in-process, batched floor)."""
    return (f"max_batch_size {{ value: {max_batch_size} }}\nbatch_timeout_micros {{ value: {timeout_micros} }}\n"
            "max_enqueued_batches { value: 100 }\nnum_batch_threads { value: 1 }\n")
WARMUP_SECONDS = 0.5
FLOOR = "grpc floor (echo, no model)"
BATCHED_FLOOR = "grpc floor, batched (no model)"
BEFORE = " before"  # the suffix of the --before servers' modes: "grpc before", "rest before"
# The servers' own gRPC options (serving.grpc_server), for the echo server.
GRPC_OPTIONS = [("grpc.max_receive_message_length", 2**31 - 1), ("grpc.max_send_message_length", 2**31 - 1),
                ("grpc.so_reuseport", 0)]


def closed_loop(make_call, concurrency, seconds, warmup=WARMUP_SECONDS):
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
    if not flat:
        raise RuntimeError("no request finished in the measured window")
    return flat, len(flat) / seconds


def wakeup_cost_us(cycles=1000):
    """µs of CPU an event loop thread spends per round trip with another thread that
    sleeps 2 ms and resolves its future (`call_soon_threadsafe`): the price of one block
    and wake-up on this machine, paid several times per request by any server whose
    request crosses threads (a VM's wake-ups are dear)."""
    handed = queue.Queue()

    def worker():
        while True:
            item = handed.get()
            if item is None:
                return
            loop, future = item
            time.sleep(0.002)
            loop.call_soon_threadsafe(future.set_result, None)

    async def trips():
        loop = asyncio.get_running_loop()
        start = time.thread_time()
        for _ in range(cycles):
            future = loop.create_future()
            handed.put((loop, future))
            await future
        return (time.thread_time() - start) / cycles * 1e6

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        return asyncio.run(trips())
    finally:
        handed.put(None)
        thread.join()


def summary(latencies, throughput):
    ms = np.asarray(latencies) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "throughput_rps": float(throughput), "requests": len(ms)}


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid, children=False):
    """User + system CPU seconds a process has used so far; with `children`, its live
    children's too (a server's worker processes; not this process's servers)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    if not children:
        return own
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return own + sum(_cpu_seconds(int(child), True) for child in f.read().split())


def _tf_threads(spec):
    intra, _, inter = spec.partition(",")
    return int(intra or 0), int(inter or 0)


def set_tf_threads(spec):
    """Set this process's TensorFlow threads from "INTRA,INTER" (0: TensorFlow's default), as the servers'
    flags set theirs; before TensorFlow runs its first op."""
    import tensorflow as tf

    intra, inter = _tf_threads(spec)
    if intra:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
    if inter:
        tf.config.threading.set_inter_op_parallelism_threads(inter)


# The in-process side: a child process, driven over stdin/stdout by child_process.ChildProcess.


def in_process_child(models_file, tf_threads, timeout_micros=BATCH_TIMEOUT_MICROS, max_batch_size=MAX_BATCH_SIZE):
    """Serve measurement requests for the in-process cells until stdin closes.

    `models_file`: JSON {name: {"version_dir", "key", "input" (a .npy file)}}.
    """
    import tensorflow as tf

    set_tf_threads(tf_threads)
    from serving import config as config_files
    from serving.batching import BatchingOptions, BatchScheduler

    class Model:  # what BatchScheduler needs of a servable, on the public call
        def __init__(self, name, version_dir, key, example):
            self.name, self.key, self.example = name, key, example
            self.function = tf.saved_model.load(version_dir).signatures["serving_default"]
            # The signature's dtype: float32 for images, tf.string for texts.
            self.dtype = self.function.structured_input_signature[1][key].dtype
            self.full_batch = np.repeat(example, 32, axis=0)
            self.output_keys = sorted(self.call(example))

        def call(self, batch):
            # As a program would use the model: numpy in, every output back as numpy.
            tensor = tf.constant(batch, dtype=self.dtype)
            return {k: v.numpy() for k, v in self.function(**{self.key: tensor}).items()}

        def run(self, signature_name, inputs, output_keys):
            outputs = self.call(inputs[self.key])
            return {k: outputs[k] for k in output_keys}

    models = {name: Model(name, m["version_dir"], m["key"], np.load(m["input"], allow_pickle=True))
              for name, m in json.loads(pathlib.Path(models_file).read_text()).items()}
    scheduler = BatchScheduler(BatchingOptions.from_proto(config_files.parse_text(
        batching_text(int(timeout_micros), int(max_batch_size)), config_files.BatchingParameters)))
    pid = os.getpid()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        model = models[request["model"]]
        kind, concurrency, seconds = request["kind"], request["concurrency"], request["seconds"]
        if kind == "off":
            make = lambda: lambda: model.call(model.example)  # noqa: E731
        elif kind == "on":
            inputs = {model.key: model.example}
            make = lambda: lambda: scheduler.run(model, "serving_default", inputs, model.output_keys)  # noqa: E731
        else:  # "batch32": the model's ceiling
            make = lambda: lambda: model.call(model.full_batch)  # noqa: E731
        cpu = _cpu_seconds(pid)
        try:
            latencies, throughput = closed_loop(make, concurrency, seconds)
        except Exception as e:  # reported in the table, the run goes on
            print(json.dumps({"error": f"{e!r}"[:500]}), flush=True)
            continue
        cpu = _cpu_seconds(pid) - cpu
        result = summary(latencies, throughput)
        result["cpu_us_per_request"] = cpu / max(1, len(latencies)) * 1e6 * seconds / (seconds + WARMUP_SECONDS)
        print(json.dumps(result), flush=True)
    scheduler.stop()


# The gRPC floor: an echo server that runs no model.


def echo_server(port, responses_dir, batch_timeout_micros="", max_batch_size=str(MAX_BATCH_SIZE)):
    """Answer every Predict with the prepared response of its model until SIGTERM.

    `responses_dir` holds `<model name>.pb`, a serialized PredictResponse each.
    `batch_timeout_micros` (given: batched): also do what a batching server does around
    its model, with no model: read the request's tensors into numpy (serving.tensors, as
    the server), hand them to a batch thread that joins up to `max_batch_size` requests
    (or what came in the batch timeout) with one `np.concatenate` and wakes the event
    loop once per batch, and write the response's tensors from numpy.
    """
    import grpc
    import numpy as np
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from serving import tensors

    responses = {p.stem: predict_pb2.PredictResponse.FromString(p.read_bytes())
                 for p in sorted(pathlib.Path(responses_dir).glob("*.pb"))}
    default = next(iter(responses.values()))
    outputs = {name: {key: tensors.to_ndarray(t) for key, t in r.outputs.items()} for name, r in responses.items()}
    batched = bool(batch_timeout_micros)
    timeout = int(batch_timeout_micros or 0) / 1e6
    most = int(max_batch_size)
    ready = threading.Condition()
    queued = []

    def resolve(batch):
        for future, _ in batch:
            if not future.done():
                future.set_result(None)

    def batch_thread(loop):
        while True:
            with ready:
                while not queued:
                    ready.wait()
                due = time.monotonic() + timeout
                while len(queued) < most and time.monotonic() < due:
                    ready.wait(due - time.monotonic())
                batch = queued[:most]
                del queued[:most]
            np.concatenate([x for _, x in batch])
            loop.call_soon_threadsafe(resolve, batch)

    class Echo(prediction_service_pb2_grpc.PredictionServiceServicer):
        async def Predict(self, request, context):
            name = request.model_spec.name
            if not batched:
                return responses.get(name, default)
            x = tensors.to_ndarray(next(iter(request.inputs.values())))
            done = asyncio.get_running_loop().create_future()
            with ready:
                queued.append((done, x))
                if len(queued) in (1, most):
                    ready.notify()
            await done
            response = predict_pb2.PredictResponse()
            response.model_spec.CopyFrom(responses.get(name, default).model_spec)
            for key, value in outputs.get(name, next(iter(outputs.values()))).items():
                response.outputs[key].CopyFrom(tensors.from_ndarray(value))
            return response

    async def serve():
        server = grpc.aio.server(options=GRPC_OPTIONS)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Echo(), server)
        if not server.add_insecure_port(f"localhost:{port}"):
            raise RuntimeError(f"could not bind localhost:{port}")
        await server.start()
        if batched:
            threading.Thread(target=batch_thread, args=(asyncio.get_running_loop(),), daemon=True).start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print(json.dumps({"ready": True}), flush=True)
        await stop.wait()
        await server.stop(None)

    asyncio.run(serve())
    return 0


class EchoServer:
    """The echo server in its own process, on a free port."""

    def __init__(self, responses_dir, batch_timeout_micros=None, max_batch_size=MAX_BATCH_SIZE):
        self.port = _free_port()
        batched = [str(batch_timeout_micros), str(max_batch_size)] if batch_timeout_micros is not None else []
        self.process = subprocess.Popen([sys.executable, __file__, "--echo-server", str(self.port),
                                         str(responses_dir)] + batched,
                                        stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if not line or not json.loads(line).get("ready"):
            raise RuntimeError("the echo server did not start")

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


# The served side.


def _tree_env(tree):
    """The environment that makes Python import `tree`'s packages.

    The project is installed in editable mode, but its finder comes after the path
    finder on sys.meta_path, so PYTHONPATH wins.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    return env


def checkout(ref, path):
    """Check `ref` out into a detached worktree at `path`: (commit, the file its server is imported from)."""
    done = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), ref],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"git worktree add {ref} failed:\n{done.stderr}")
    commit = subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=True).stdout.strip()
    # Ask the interpreter, environment and folder the before servers get.
    found = subprocess.run([sys.executable, "-c", "import serving.server_main as m; print(m.__file__)"],
                           cwd=path, env=_tree_env(path), capture_output=True, text=True)
    where = pathlib.Path(found.stdout.strip() or "?").resolve()
    if found.returncode or not where.is_relative_to(path.resolve()):
        raise SystemExit(f"{ref}'s serving is not the one imported from {path}: {where}\n{found.stderr}")
    return commit, str(where)


def remove_checkout(path):
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
                   capture_output=True, text=True)


class Server:
    """zoo-model-server in its own process, on free ports, serving every model of a config.

    `tree`: a checkout (the --before worktree) whose server to run instead of the
    installed one.
    """

    def __init__(self, config_file, batching_file=None, rest=True, tf_threads="0,0", tree=None, workers=1):
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        self.port = _free_port()
        self.rest_port = _free_port() if rest else None
        if tree is None:
            argv, cwd, env = [str(pathlib.Path(sys.executable).with_name("zoo-model-server"))], None, None
        else:
            argv, cwd, env = [sys.executable, "-m", "serving.server_main"], tree, _tree_env(tree)
        argv += [f"--port={self.port}", f"--model_config_file={config_file}",
                 "--file_system_poll_wait_seconds=0", "--grpc_max_threads=64"]
        intra, inter = _tf_threads(tf_threads)
        if intra:
            argv.append(f"--tensorflow_intra_op_parallelism={intra}")
        if inter:
            argv.append(f"--tensorflow_inter_op_parallelism={inter}")
        if rest:
            argv.append(f"--rest_api_port={self.rest_port}")
        if batching_file:
            argv += ["--enable_batching", f"--batching_parameters_file={batching_file}"]
        if workers > 1:
            argv.append(f"--worker_processes={workers}")
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, cwd=cwd, env=env)
        if tree is not None:  # the same folder and path as checkout() checked
            running_in = pathlib.Path(os.readlink(f"/proc/{self.process.pid}/cwd"))
            if running_in != pathlib.Path(tree).resolve():
                self.stop()
                raise RuntimeError(f"the server runs in {running_in}, not in {tree}")
        channel = grpc.insecure_channel(f"localhost:{self.port}")
        stub = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 180
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()  # the run goes on without it (its cells fail)
                raise RuntimeError("zoo-model-server did not start:\n" + self.log_tail())
            try:
                # With several workers, the first one up answers: wait for all of them.
                if (stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1
                        and (workers == 1 or f"Serving with {workers} worker processes" in self.log_tail())):
                    break
            except grpc.RpcError:
                pass
            time.sleep(0.25)
        channel.close()

    def log_tail(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def predict_once(self, request):
        """One Predict (sync), retried while the model is still loading: the response."""
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        with grpc.insecure_channel(f"localhost:{self.port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            deadline = time.monotonic() + 120
            while True:
                try:
                    return stub.Predict(request, timeout=60)
                except grpc.RpcError as e:
                    if e.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE) \
                            or time.monotonic() > deadline:
                        raise RuntimeError(f"Predict on {request.model_spec.name} failed: {e.code()}: "
                                           f"{e.details()}\n{self.log_tail()}") from e
                    time.sleep(0.25)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:  # so that the worktree can still be removed
            self.process.kill()
            self.process.wait()


def _predict_request(name, key, example):
    from tensorflow_serving.apis import predict_pb2

    from serving import tensors

    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.inputs[key].CopyFrom(tensors.from_ndarray(example))  # strings go in string_val
    return request


def grpc_closed_loop(port, request, concurrency, seconds, warmup=WARMUP_SECONDS):
    """`closed_loop` for gRPC with asyncio clients: one channel and coroutine per client."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    async def main():
        # A connection per client, as separate clients have (channels to one address
        # otherwise share one): a server's worker processes take connections, not requests.
        channels = [grpc.aio.insecure_channel(f"localhost:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
                    for _ in range(concurrency)]
        stubs = [prediction_service_pb2_grpc.PredictionServiceStub(c) for c in channels]
        latencies = [[] for _ in range(concurrency)]
        begin = time.perf_counter() + warmup
        end = begin + seconds

        async def client(i):
            predict, mine = stubs[i].Predict, latencies[i]
            while True:
                t0 = time.perf_counter()
                if t0 >= end:
                    return
                await predict(request, timeout=30)
                if t0 >= begin:
                    mine.append(time.perf_counter() - t0)

        try:
            await asyncio.gather(*(client(i) for i in range(concurrency)))
        finally:
            for channel in channels:
                await channel.close()
        return [x for per_client in latencies for x in per_client]

    try:
        flat = asyncio.run(main())
    except Exception as e:  # reported in the table, the run goes on
        raise RuntimeError(f"requests failed: {e!r}") from e
    if not flat:
        raise RuntimeError("no request finished in the measured window")
    return flat, len(flat) / seconds


def rest_caller(port, name, example):
    # One row per instance: the image as nested lists, the text as its string.
    rows = [x.decode() if isinstance(x, bytes) else x for x in example.tolist()]
    body = json.dumps({"instances": rows})
    path = f"/v1/models/{name}:predict"

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


# The run.


def export_models(names, base):
    """Export each model (untrained) into `base`: {name: {"task", "key", "example"}}."""
    import zoo
    from export import export_saved_model
    from export.archive import plan_export
    from zoo import registry

    models = {}
    for name in names:
        spec = registry.get_model_spec(name)
        model = zoo.build_model(name)
        # The task picks real examples (the default dataset's, else random pixels) and,
        # for text, the vocabulary of the set the model would train on.
        plan = plan_export(model, dataset=spec.default_dataset)
        (key, examples), = plan.examples.items()
        export_saved_model(model, base, model_name=name, version=1, verify=False, examples=examples,
                           dataset=spec.default_dataset)
        models[name] = {"task": spec.task, "key": key, "example": examples[:1],
                        "version_dir": str(base / name / "1")}
        print(f"exported {name}", flush=True)
    return models


def _median_cell(model, mode, batching, concurrency, rounds):
    ok = [r for r in rounds if "error" not in r]
    cell = {"model": model, "mode": mode, "batching": batching, "concurrency": concurrency}
    if not ok:
        cell["error"] = rounds[-1]["error"]
        return cell
    for key in ("p50_ms", "p99_ms", "throughput_rps", "cpu_us_per_request", "server_cpu_us_per_request",
                "client_cpu_us_per_request"):
        values = [r[key] for r in ok if key in r]
        if values:
            cell[key] = float(statistics.median(values))
    cell["requests"] = sum(r["requests"] for r in ok)
    cell["throughput_rounds"] = [round(r["throughput_rps"], 1) for r in ok]
    if len(ok) < len(rounds):
        cell["failed_rounds"] = len(rounds) - len(ok)
    return cell


def _find(cells, mode, batching, c):
    """The measured cell (mode, batching, concurrency) of `cells`, or None."""
    for x in cells:
        if (x["mode"], x["batching"], x["concurrency"]) == (mode, batching, c) and "error" not in x:
            return x
    return None


def _checks(cells, concurrency):
    """The issue's targets for one model's cells: [(target, measured, met)], floor line."""
    def cell(mode, batching, c):
        return _find(cells, mode, batching, c)

    checks = []
    low, high = min(concurrency), max(concurrency)
    a, b = cell("grpc", False, low), cell("in-process", False, low)
    if a and b:
        checks.append((f"gRPC p50 at c={low} <= in-process p50 + 1 ms",
                       f"{a['p50_ms']:.2f} vs {b['p50_ms'] + 1:.2f} ms", a["p50_ms"] <= b["p50_ms"] + 1))
    on, off = cell("grpc", True, high), cell("grpc", False, high)
    same, ceiling = cell("in-process", True, high), cell("in-process batches of 32", True, 1)
    if on and off:
        checks.append((f"gRPC throughput at c={high}: batching >= 2x no batching",
                       f"{on['throughput_rps']:.0f} vs 2 x {off['throughput_rps']:.0f} req/s",
                       on["throughput_rps"] >= 2 * off["throughput_rps"]))
    if on and same:
        floor = 0.7 * same["throughput_rps"]
        checks.append((f"gRPC throughput at c={high} with batching >= 70% of in-process with batching at c={high}",
                       f"{on['throughput_rps']:.0f} vs {floor:.0f} req/s ({on['throughput_rps'] / same['throughput_rps']:.0%})",
                       on["throughput_rps"] >= floor))
    if on and ceiling:
        floor = 0.7 * ceiling["throughput_rps"]
        checks.append((f"gRPC throughput at c={high} with batching >= 70% of in-process full batches of 32",
                       f"{on['throughput_rps']:.0f} vs {floor:.0f} req/s ({on['throughput_rps'] / ceiling['throughput_rps']:.0%})",
                       on["throughput_rps"] >= floor))
    echo = cell(FLOOR, None, high)
    floor_line = None
    if echo and same:
        floor_line = {"concurrency": high, "throughput_rps": echo["throughput_rps"],
                      "in_process_batched_rps": same["throughput_rps"],
                      "share": echo["throughput_rps"] / same["throughput_rps"]}
        unbatched = cell("in-process", False, high)

        def transport_us(floor_cell):  # a floor's server and client CPU per request
            return floor_cell.get("server_cpu_us_per_request", 0) + floor_cell.get("client_cpu_us_per_request", 0)

        def best_rps(transport, model):
            # The best any Python gRPC server could do here: every core busy, each
            # request costing what a floor's server and client spend on it plus
            # what the model costs in-process (per image in full batches, or alone).
            return os.cpu_count() * 1e6 / (transport + model["cpu_us_per_request"])

        transport = transport_us(echo)
        if ceiling and unbatched and transport:
            best_on, best_off = best_rps(transport, ceiling), best_rps(transport, unbatched)
            floor_line.update(best_batched_rps=best_on, best_unbatched_rps=best_off,
                              best_ratio=best_on / best_off, best_share=best_on / same["throughput_rps"])
        batched = cell(BATCHED_FLOOR, None, high)
        if ceiling and batched and on:
            # The same bound from the batched floor: what batching itself costs around the model.
            best = best_rps(transport_us(batched), ceiling)
            floor_line.update(batched_floor_rps=batched["throughput_rps"],
                              batched_floor_server_us=batched.get("server_cpu_us_per_request"),
                              batched_floor_client_us=batched.get("client_cpu_us_per_request"),
                              server_us=on.get("server_cpu_us_per_request"),
                              model_us=ceiling["cpu_us_per_request"],
                              best_batching_server_rps=best, share_of_best_batching=on["throughput_rps"] / best)
    return checks, floor_line


def _before_after(cells, concurrency, floor_line):
    """Before vs after for one model's cells: {"rows", "rest_share", "bounds"}, lists of dicts."""
    low, high = min(concurrency), max(concurrency)

    def value(mode, batching, c, key):
        x = _find(cells, mode, batching, c)
        return x[key] if x else None

    def ratio(a, b):
        return a / b if a is not None and b else None

    rows = []
    for key, c, unit in (("p50_ms", low, "p50 ms"), ("throughput_rps", high, "req/s")):
        for transport in ("grpc", "rest"):
            for batching in (False, True):
                before, after = (value(transport + side, batching, c, key) for side in (BEFORE, ""))
                rows.append({"metric": f"{'gRPC' if transport == 'grpc' else 'REST'} {unit} at c={c}",
                             "batching": batching, "before": before, "after": after, "ratio": ratio(after, before)})
    rest_share = [{"batching": batching, **{name: ratio(value("rest" + side, batching, high, "throughput_rps"),
                                                         value("grpc" + side, batching, high, "throughput_rps"))
                                            for name, side in (("before", BEFORE), ("after", ""))}}
                  for batching in (False, True)]

    # Each bound: (target, gRPC cell's key, batching, concurrency, limit, the best or None for a latency).
    bounds = []
    in_process = value("in-process", False, low, "p50_ms")
    if in_process is not None:
        bounds.append((f"gRPC p50 at c={low} <= in-process p50 + 1 ms ({in_process + 1:.2f} ms)",
                       "p50_ms", False, low, in_process + 1, None))
    if floor_line and "best_batched_rps" in floor_line:
        for batching, share, best in ((True, 0.8, floor_line["best_batched_rps"]),
                                      (False, 0.9, floor_line["best_unbatched_rps"])):
            bounds.append((f"gRPC throughput at c={high} with batching {'on' if batching else 'off'} >= "
                           f"{share:.0%} of the best a Python gRPC server could do here ({best:.0f} req/s)",
                           "throughput_rps", batching, high, share * best, best))
    checked = []
    for target, key, batching, c, limit, best in bounds:
        line = {"target": target, "limit": limit}
        for name, side in (("before", BEFORE), ("after", "")):
            v = value("grpc" + side, batching, c, key)
            line[name] = None if v is None else (
                {"measured": v, "met": v <= limit} if best is None
                else {"measured": v, "share_of_best": v / best, "met": v >= limit})
        checked.append(line)
    return {"rows": rows, "rest_share": rest_share, "bounds": checked}


def _before_after_lines(table, label):
    """The markdown and the summary lines of `_before_after`'s table."""
    def number(v, key):
        return "-" if v is None else f"{v:.2f}" if "p50" in key else f"{v:.0f}"

    def share(v):
        return "-" if v is None else f"{v:.0%}"

    lines = [f"### Before ({label['before']}) -> after ({label['after']})", "",
             "| metric | batching | before | after | after/before |", "|---|---|---|---|---|"]
    for r in table["rows"]:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(f"| {r['metric']} | {'on' if r['batching'] else 'off'} | {number(r['before'], r['metric'])} | "
                     f"{number(r['after'], r['metric'])} | {ratio} |")
    for r in table["rest_share"]:
        lines.append(f"| REST req/s as a share of gRPC's | {'on' if r['batching'] else 'off'} | "
                     f"{share(r['before'])} | {share(r['after'])} | |")
    lines += ["", "| bound | before | after |", "|---|---|---|"]
    summary = []
    for b in table["bounds"]:
        cells = []
        for name in ("before", "after"):
            x = b[name]
            if x is None:
                cells.append("not measured")
                continue
            measured = f"{x['measured']:.0f} req/s = {x['share_of_best']:.0%} of the best" \
                if "share_of_best" in x else f"{x['measured']:.2f} ms"
            cells.append(f"{measured}: {'met' if x['met'] else 'NOT met'}")
        lines.append(f"| {b['target']} | {cells[0]} | {cells[1]} |")
        summary.append(f"{b['target']}: before {cells[0]}; after {cells[1]}")
    return lines + [""], summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS),
                        help="registered image or text classifiers (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=1.5, help="measured seconds per cell and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, interleaved; medians are reported")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--tf-threads", default="0,0",
                        help="INTRA,INTER op parallelism for the servers and the in-process side alike "
                             "(0: TensorFlow's default, as tensorflow_model_server's flags)")
    parser.add_argument("--batch-timeout-micros", type=int, default=BATCH_TIMEOUT_MICROS,
                        help="batch_timeout_micros for every batching side: servers, in-process and the "
                             "batched floor (default: %(default)s, the exported batching_parameters.txt's)")
    parser.add_argument("--max-batch-size", type=int, default=MAX_BATCH_SIZE,
                        help="max_batch_size for every batching side (default: %(default)s, the exported "
                             "batching_parameters.txt's); the model's ceiling is still measured in batches of 32")
    parser.add_argument("--workers", type=int, default=1,
                        help="zoo-model-server --worker_processes (default: 1, one process)")
    parser.add_argument("--no-rest", action="store_true", help="skip the REST measurements")
    parser.add_argument("--before", metavar="REF",
                        help="also serve from this git ref (a detached worktree) and compare before -> after")
    parser.add_argument("--servers-only", action="store_true",
                        help="measure the in-process side and the floor only where the targets and bounds read them")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out"), help="results folder (default: %(default)s)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--echo-server", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.max_batch_size < 1:
        parser.error(f"--max-batch-size must be at least 1, not {args.max_batch_size}")
    if args.batch_timeout_micros < 0:
        parser.error(f"--batch-timeout-micros must be 0 or more, not {args.batch_timeout_micros}")
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, not {args.workers}")
    if args.child:
        return in_process_child(*args.child)
    if args.echo_server:
        return echo_server(*args.echo_server)

    import tensorflow as tf

    started = time.monotonic()
    rest = not args.no_rest and importlib.util.find_spec("serving.rest") is not None
    concurrency = sorted(set(args.concurrency))
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench_serving_"))
    base = work / "models"
    models = export_models(dict.fromkeys(args.models), base)
    config_file = base / "models.config"
    config_text = config_file.read_text()
    missing = [name for name in models if f'name: "{name}"' not in config_text]
    if missing:
        raise SystemExit(f"{config_file} does not list {missing}:\n{config_text}")
    batching_file = work / "batching.txt"
    batching = batching_text(args.batch_timeout_micros, args.max_batch_size)
    batching_file.write_text(batching)
    child_models = {}
    for name, m in models.items():
        path = work / f"{name}.npy"
        np.save(path, m["example"], allow_pickle=True)
        child_models[name] = {"version_dir": m["version_dir"], "key": m["key"], "input": str(path)}
        m["request"] = _predict_request(name, m["key"], m["example"])
    (work / "models.json").write_text(json.dumps(child_models))

    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "tensorflow": tf.__version__, "platform": platform.platform(),
                           "wakeup_cpu_us": wakeup_cost_us()},
               "seconds": args.seconds, "rounds": args.rounds, "concurrency": concurrency,
               "tf_threads": args.tf_threads, "workers": args.workers, "batching_parameters": batching, "rest": rest, "models": {}}

    in_process = ChildProcess(__file__, work / "models.json", args.tf_threads, args.batch_timeout_micros,
                              args.max_batch_size)
    in_process.ready()
    # Servers by (before, batching); one that does not start fails its cells, the run goes on.
    servers, failed, echo, batched_echo = {}, {}, None, None
    tree, rest_before = work / "before", False
    try:
        if args.before:
            commit, serving_file = checkout(args.before, tree)
            rest_before = not args.no_rest and (tree / "serving" / "rest.py").exists()
            dirty = subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", "HEAD"]).returncode != 0
            head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                  capture_output=True, text=True).stdout.strip()
            results["before"] = {"ref": args.before, "commit": commit, "serving": serving_file,
                                 "after": head + (" + uncommitted changes" if dirty else "")}
            print(f"before: {args.before} = {commit}, serving from {serving_file}; "
                  f"after: {results['before']['after']}", flush=True)
        for before in (False, True) if args.before else (False,):
            for batching in (False, True):
                try:
                    servers[before, batching] = Server(
                        config_file, batching_file if batching else None, rest=rest_before if before else rest,
                        tf_threads=args.tf_threads, tree=tree if before else None, workers=args.workers)
                except RuntimeError as e:
                    print(f"server (before={before}, batching={batching}): {e}", flush=True)
                    failed[before, batching] = str(e).strip().splitlines()[-1]
        if not servers:
            raise SystemExit("no server started")
        responses = work / "responses"
        responses.mkdir()
        for name, m in models.items():  # the echo server's answers: the real ones
            answer = next(iter(servers.values())).predict_once(m["request"])
            (responses / f"{name}.pb").write_bytes(answer.SerializeToString())
        echo = EchoServer(responses)
        batched_echo = EchoServer(responses, args.batch_timeout_micros, args.max_batch_size)
        low, high = concurrency[0], concurrency[-1]
        cells = []
        for name in models:
            if args.servers_only:  # only what the targets and bounds read
                cells += [(name, "in-process", b, c) for b, c in dict.fromkeys([(False, low), (False, high),
                                                                                (True, high)])]
            else:
                cells += [(name, "in-process", b, c) for b in (False, True) for c in concurrency]
            cells.append((name, "in-process batches of 32", True, 1))
            cells += [(name, "grpc", b, c) for c in concurrency for b in (False, True)]
            if args.before:
                cells += [(name, "grpc" + BEFORE, b, c) for c in concurrency for b in (False, True)]
            cells += [(name, FLOOR, None, c) for c in ([high] if args.servers_only else concurrency)]
            cells.append((name, BATCHED_FLOOR, None, high))
            if rest:
                cells += [(name, "rest", b, c) for c in concurrency for b in (False, True)]
            if rest_before:
                cells += [(name, "rest" + BEFORE, b, c) for c in concurrency for b in (False, True)]
        measured = {cell: [] for cell in cells}
        me = os.getpid()
        print(f"set up in {time.monotonic() - started:.0f} s; measuring {len(cells)} cells x {args.rounds} rounds",
              flush=True)
        for round_ in range(args.rounds):
            # Alternate the order, so that drift in the machine's load is shared out.
            for cell in (cells if round_ % 2 == 0 else cells[::-1]):
                name, mode, batching, c = cell
                m = models[name]
                try:
                    if mode.startswith("in-process"):
                        kind = "batch32" if mode.endswith("32") else ("on" if batching else "off")
                        result = in_process.ask({"model": name, "kind": kind, "concurrency": c,
                                                 "seconds": args.seconds})
                        if kind == "batch32":  # per example
                            result["throughput_rps"] *= 32
                            result["cpu_us_per_request"] /= 32
                    else:
                        if mode in (FLOOR, BATCHED_FLOOR):
                            floor = echo if mode == FLOOR else batched_echo
                            process, port = floor.process, floor.port
                        else:
                            key = (mode.endswith(BEFORE), batching)
                            if key not in servers:
                                raise RuntimeError(f"the server did not start: {failed[key]}")
                            server = servers[key]
                            process, port = server.process, server.port
                        server_cpu, client_cpu = _cpu_seconds(process.pid, True), _cpu_seconds(me)
                        if mode.startswith("rest"):
                            latencies, throughput = closed_loop(
                                rest_caller(server.rest_port, name, m["example"]), c, args.seconds)
                        else:
                            latencies, throughput = grpc_closed_loop(port, m["request"], c, args.seconds)
                        share = args.seconds / (args.seconds + WARMUP_SECONDS) / max(1, len(latencies)) * 1e6
                        result = summary(latencies, throughput)
                        result["server_cpu_us_per_request"] = (_cpu_seconds(process.pid, True) - server_cpu) * share
                        result["client_cpu_us_per_request"] = (_cpu_seconds(me) - client_cpu) * share
                except Exception as e:  # e.g. a REST server gone: the cell fails, the run goes on
                    result = {"error": str(e) if isinstance(e, RuntimeError) else repr(e)}
                measured[cell].append(result)
                head = (f"round {round_ + 1} {name:12s} {mode:27s} "
                        f"batching={'-  ' if batching is None else 'on ' if batching else 'off'} c={c:<3d}")
                if "error" in result:
                    print(f"{head} FAILED: {result['error']}", flush=True)
                else:
                    print(f"{head} p50={result['p50_ms']:7.2f} ms  p99={result['p99_ms']:7.2f} ms  "
                          f"{result['throughput_rps']:8.1f} /s", flush=True)
    finally:
        in_process.stop()
        for floor in (echo, batched_echo):
            if floor is not None:
                floor.stop()
        for server in servers.values():
            server.stop()
        if args.before:
            remove_checkout(tree)
        shutil.rmtree(work, ignore_errors=True)

    lines = ["# Serving benchmark: in-process vs zoo-model-server, one example per request", "",
             f"{results['machine']['cpus']} CPUs, TensorFlow {tf.__version__}, TF threads (intra,inter) "
             f"{args.tf_threads} (0: default) for servers and in-process alike; closed loop; "
             f"{args.seconds:g} s per cell, median of {args.rounds} interleaved rounds; server and clients "
             f"share the machine. Batching: max_batch_size {args.max_batch_size}, "
             f"batch_timeout_micros {args.batch_timeout_micros}, 1 batch thread. "
             f"zoo-model-server worker processes: {args.workers}. Each client has a connection of its own. "
             "CPU columns: µs of CPU per request, of the server process and its workers (served cells) "
             "or of the in-process child (in-process cells); client: this process, the gRPC/REST client. "
             f"`{FLOOR}`: a grpc.aio server that answers Predict with a prepared response "
             "(the real one) and runs no model: the most a Python gRPC server can serve here. "
             f"`{BATCHED_FLOOR}`: the same server doing what a batching server does around its model, "
             f"without one: request tensors read into numpy, a batch thread joining up to {args.max_batch_size} "
             f"of them (or what came in {args.batch_timeout_micros} µs) and waking the event loop once per "
             "batch, response tensors written from numpy. A thread's block and wake-up (an event loop "
             f"awaiting a future that another thread resolves) costs {results['machine']['wakeup_cpu_us']:.0f} µs of the loop thread's CPU "
             "on this machine.", ""]
    if args.before:
        before = results["before"]
        lines += [f"Before: `{before['ref']}` ({before['commit']}), its own `zoo-model-server` run from a worktree "
                  f"(`{before['serving']}`), modes `grpc before` and `rest before`; after: {before['after']}. "
                  "Both serve the same exported models with the same flags and config file.", ""]
    summary_lines = []
    for name, m in models.items():
        model_cells = [_median_cell(*cell, measured[cell]) for cell in cells if cell[0] == name]
        checks, floor_line = _checks(model_cells, concurrency)
        ceiling = next((c for c in model_cells if c["mode"] == "in-process batches of 32" and "error" not in c), None)
        example = m["example"]
        input_text = f"{m['key']} {example.dtype if m['key'] != 'text' else 'string'} {list(example.shape)}"
        results["models"][name] = {
            "task": m["task"], "input": input_text, "cells": model_cells,
            "in_process_batched_examples_per_s": ceiling["throughput_rps"] if ceiling else None,
            "targets": [{"target": t, "measured": v, "met": ok} for t, v, ok in checks],
            "grpc_floor": floor_line}
        lines += [f"## {name} ({m['task']}, input {input_text})", "",
                  "| mode | batching | concurrency | p50 ms | p99 ms | req/s | req/s over rounds | CPU µs/req | client CPU µs/req |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for c in model_cells:
            batching = "-" if c["batching"] is None else ("on" if c["batching"] else "off")
            head = f"| {c['mode']} | {batching} | {c['concurrency']} |"
            if "error" in c:
                lines.append(f"{head} failed: {c['error'][:80]} | | | | | |")
                continue
            unit = " images/s" if c["mode"].endswith("32") and m["key"] == "image" else \
                " texts/s" if c["mode"].endswith("32") else ""
            cpu = c.get("server_cpu_us_per_request", c.get("cpu_us_per_request"))
            client = c.get("client_cpu_us_per_request")
            rounds = ", ".join(f"{x:.0f}" for x in c["throughput_rounds"])
            if c.get("failed_rounds"):
                rounds += f" ({c['failed_rounds']} failed)"
            lines.append(f"{head} {c['p50_ms']:.2f} | {c['p99_ms']:.2f} | {c['throughput_rps']:.0f}{unit} | "
                         f"{rounds} | {'' if cpu is None else f'{cpu:.0f}'} | "
                         f"{'' if client is None else f'{client:.0f}'} |")
        lines += ["", "| target | measured | met |", "|---|---|---|"]
        lines += [f"| {t} | {v} | {'yes' if ok else 'no'} |" for t, v, ok in checks]
        if floor_line:
            lines += ["", f"gRPC floor at c={floor_line['concurrency']}: {floor_line['throughput_rps']:.0f} req/s = "
                          f"{floor_line['share']:.0%} of in-process batched at c={floor_line['concurrency']} "
                          f"({floor_line['in_process_batched_rps']:.0f} req/s)"]
            if "best_ratio" in floor_line:
                lines += ["", f"Best a Python gRPC server could do here ({os.cpu_count()} cores busy, each request "
                              "costing the floor's server and client CPU plus the model's in-process CPU): "
                              f"{floor_line['best_batched_rps']:.0f} req/s with batching = "
                              f"{floor_line['best_share']:.0%} of in-process batched, "
                              f"{floor_line['best_unbatched_rps']:.0f} without = "
                              f"{floor_line['best_ratio']:.2f}x from batching"]
            if "best_batching_server_rps" in floor_line:
                f = floor_line
                lines += ["", f"`{BATCHED_FLOOR}` at c={f['concurrency']}: {f['batched_floor_rps']:.0f} req/s, "
                              f"server {f['batched_floor_server_us']:.0f} + client {f['batched_floor_client_us']:.0f} "
                              f"µs of CPU per request (zoo-model-server with batching: server "
                              f"{f['server_us']:.0f} µs, of which the model's in-process cost is {f['model_us']:.0f}). "
                              f"From it, the best a batching Python gRPC server could do here: "
                              f"{f['best_batching_server_rps']:.0f} req/s; zoo-model-server serves "
                              f"{f['share_of_best_batching']:.0%} of that"]
        lines.append("")
        if args.before:
            table = _before_after(model_cells, concurrency, floor_line)
            results["models"][name]["before_after"] = table
            commit = results["before"]["commit"]
            more, bounds = _before_after_lines(table, {
                "before": args.before if commit.startswith(args.before) else f"{args.before} = {commit}",
                "after": results["before"]["after"]})
            lines += more
        summary_lines += [f"{name}: {t}: {v}: {'met' if ok else 'NOT met'}" for t, v, ok in checks]
        if floor_line:
            summary_lines.append(f"{name}: gRPC floor at c={floor_line['concurrency']} = "
                                 f"{floor_line['share']:.0%} of in-process batched")
        if args.before:
            summary_lines += [f"{name}: {b}" for b in bounds]
    results["duration_s"] = round(time.monotonic() - started, 1)

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "serving.json").write_text(json.dumps(results, indent=2))
    (out / "serving.md").write_text("\n".join(lines))
    print("\n".join(summary_lines))
    print(f"wrote {out / 'serving.md'} in {results['duration_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
