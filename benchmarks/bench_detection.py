"""Detection benchmark: served latency and throughput of a trained `light_detector`, with and without
server-side batching, against the exported signatures called in-process.

The exported `object_detection` model (zoo/tasks/object_detection.py) decodes its boxes and runs
`CombinedNonMaxSuppression` inside the SavedModel, so one Predict answers final detections. This
measures, in one run, a `light_detector` trained on synthetic_detection (128x128), exported with
`export.export_saved_model(run, base, "light_detector")`:

1. Served, gRPC, one image per request, closed loop (each client sends its next request when its last
   answer arrives; bench_serving.py's `grpc_closed_loop`: asyncio clients, one channel each, in this
   process), `zoo-model-server` in a process of its own (bench_serving.py's `Server`):
   - c=1 without batching: p50 and p90 ms per image;
   - c=8 without batching, and c=8 on a second server started with `--enable_batching` and a
     `--batching_parameters_file` written by `serving.config` (`BATCHING`: batches of up to 8, a 2 ms
     timeout, 2 batch threads: one per core here): images/s, p50 and p90.
   Each through `image_bytes` (the PNG file of one synthetic_detection test image) and
   `serving_default` (its pixels, float32 [1, 128, 128, 3]). Requests are built once
   (`serving.tensors`), so a time is Predict's round trip and nothing else.
2. In-process, in a child process under the servers' TensorFlow thread setting: the exported signatures
   as `tf.saved_model.load(...).signatures[...]`, called the public way (numpy in, every output back as
   numpy; as bench_serving.py's in-process side calls them), one thread: one image per call (the cost
   of one image, against which the served c=1 figures show what gRPC and the server add) and 8 images
   per call (what one batch of 8 costs per image: the most batching could save).

Answers are checked while measuring: after every served cell, its server answers the same request from
c clients at once (so a batching server answers from a batch); every answer, and the child's after
every in-process cell, must have the same detections as the first served answer (`serving_default`,
no batching): the same number, the same classes in the same order, boxes within 1e-4.

The machine is shared, so every round runs every cell back to back, the order reversed every other
round, the 1-minute load average recorded at the start of each cell; figures are medians of the
per-round figures (the rounds' values beside them).

    .venv/bin/python benchmarks/bench_detection.py [--run DIR] [--rounds 3] [--seconds 3]
        [--tf-threads 0,0] [--out benchmarks/RESULTS-detection.md]
    .venv/bin/python benchmarks/bench_detection.py --report /tmp/benchdet/detection.json  # rewrite the markdown

Without --run it trains one first (`TRAIN`, about 90 s here) into /tmp/benchdet/runs; the whole run takes
about 5 minutes on 2 cores. Scratch (runs, exports, JSON) goes to /tmp/benchdet.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import shutil
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402

from bench_seq2seq import machine  # noqa: E402  (the machine line of the other reports)
from bench_serving import (  # noqa: E402  (the closed loops, requests and zoo-model-server as bench_serving runs them)
    WARMUP_SECONDS, Server, _cpu_seconds, _predict_request, closed_loop, grpc_closed_loop,
    set_tf_threads,
)
from child_process import ChildProcess  # noqa: E402  (the in-process child's process)

SCRATCH = pathlib.Path("/tmp/benchdet")
RESULTS = HERE / "RESULTS-detection.md"
MODEL = "light_detector"
DATASET = "synthetic_detection"
# The training recipe (zoo.train keyword arguments), as tests/test_object_detection.py trains it.
TRAIN = dict(epochs=8, batch_size=32, learning_rate=3e-3)
SIGNATURES = ("image_bytes", "serving_default")
KEY = {"image_bytes": "image_bytes", "serving_default": "image"}
# Server-side batching for 8 clients: a batch is full at 8; 2 ms of waiting is well under one call's
# cost, and one batch thread per core of this machine.
BATCHING = dict(max_batch_size=8, batch_timeout_micros=2000, num_batch_threads=2)
HIGH = BATCHING["max_batch_size"]  # the throughput concurrency, and the images per in-process batch
# Served cells: (signature, concurrency, batching).
SERVED = [(s, c, b) for s in SIGNATURES for c, b in ((1, False), (HIGH, False), (HIGH, True))]
# In-process cells: (signature, images per call).
IN_PROCESS = [(s, n) for s in SIGNATURES for n in (1, HIGH)]
MIN_OBJECTS = 3  # the benchmark image: the first test image with at least this many objects


def _call(recipe: dict) -> str:
    return f'zoo.train("{MODEL}", "{DATASET}", ' + ", ".join(f"{k}={v!r}" for k, v in recipe.items()) + ")"


# --- the model and the image -----------------------------------------------------
def ensure_run(run: str | None) -> tuple[pathlib.Path, dict]:
    """The run to measure: `run` if given (it must hold model.keras), else one trained now."""
    import zoo

    if run:
        run_dir = pathlib.Path(run)
        if not (run_dir / "model.keras").exists():
            raise SystemExit(f"{run_dir} has no model.keras: not a finished run.")
        config = json.loads((run_dir / "config.json").read_text())
        if (config.get("model"), config.get("dataset")) != (MODEL, DATASET):
            raise SystemExit(f"{run_dir} is a run of {config.get('model')!r} on {config.get('dataset')!r}, "
                             f"not {MODEL} on {DATASET}.")
        return run_dir, {"trained": False}
    start = time.perf_counter()
    run_dir = pathlib.Path(zoo.train(MODEL, DATASET, out_dir=SCRATCH / "runs" / MODEL, overwrite=True, verbose=0,
                                     **TRAIN))
    return run_dir, {"trained": True, "train_s": time.perf_counter() - start, "recipe": _call(TRAIN)}


def test_image() -> tuple[int, np.ndarray, list[int]]:
    """(index, uint8 [128, 128, 3], its objects' classes) of the first synthetic_detection test image with
    MIN_OBJECTS or more objects."""
    from zoo.data import registry as datasets

    for i, (image, objects) in enumerate(datasets.get_dataset(DATASET).examples("test").as_numpy_iterator()):
        if len(objects["label"]) >= MIN_OBJECTS:
            return i, image, [int(x) for x in objects["label"]]
    raise RuntimeError(f"no {DATASET} test image has {MIN_OBJECTS} objects")


def requests(image: np.ndarray) -> dict:
    """{signature: PredictRequest} for one image: its PNG file, or its pixels as float32."""
    from zoo.tasks import image_codec

    inputs = {"image_bytes": np.array([image_codec.encode_png(image)], dtype=object),
              "serving_default": image[None].astype(np.float32)}
    made = {}
    for signature in SIGNATURES:
        made[signature] = _predict_request(MODEL, KEY[signature], inputs[signature])
        made[signature].model_spec.signature_name = signature
    return made


# --- answers -------------------------------------------------------------------------
def detections(outputs: dict) -> dict:
    """One image's detections (the first row of a signature's outputs): count, classes, boxes, scores."""
    count = int(np.asarray(outputs["num_detections"]).reshape(-1)[0])
    return {"count": count, "classes": np.asarray(outputs["classes"])[0, :count].tolist(),
            "boxes": np.asarray(outputs["boxes"], np.float32)[0, :count].tolist(),
            "scores": np.asarray(outputs["scores"], np.float32)[0, :count].tolist()}


def from_response(response) -> dict:
    from serving import tensors

    return detections({k: tensors.to_ndarray(response.outputs[k], k, max_bytes=None)
                       for k in ("num_detections", "classes", "boxes", "scores")})


def box_difference(what: str, got: dict, want: dict) -> float:
    """max |difference| of the boxes of two answers; AssertionError unless the same detections."""
    from zoo.tasks.object_detection import BOX_TOLERANCE

    if got["count"] != want["count"] or got["classes"] != want["classes"]:
        raise AssertionError(f"{what}: {got['count']} detections of classes {got['classes']}, the first answer "
                             f"had {want['count']} of {want['classes']}")
    diff = float(np.max(np.abs(np.subtract(got["boxes"], want["boxes"])), initial=0.0))
    if diff > BOX_TOLERANCE:
        raise AssertionError(f"{what}: boxes differ from the first answer's by {diff:.3g} (> {BOX_TOLERANCE})")
    return diff


class Checker:
    """A server's answers to one request sent by `concurrency` clients at once (futures on one channel)."""

    def __init__(self, port: int):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.channel = grpc.insecure_channel(f"localhost:{port}")
        self.predict = prediction_service_pb2_grpc.PredictionServiceStub(self.channel).Predict

    def answers(self, request, concurrency: int) -> list[dict]:
        futures = [self.predict.future(request, timeout=60) for _ in range(concurrency)]
        return [from_response(f.result()) for f in futures]

    def close(self):
        self.channel.close()


# --- in-process ------------------------------------------------------------------------
def in_process_child(spec_file: str) -> None:
    """Measure in-process cells until stdin closes: one JSON line in ({"signature", "images", "seconds"}),
    one out ({"p50_ms", "p90_ms", "calls_per_s", "cpu_ms_per_image", "answer"})."""
    import tensorflow as tf

    spec = json.loads(pathlib.Path(spec_file).read_text())
    set_tf_threads(spec["tf_threads"])
    from zoo.tasks import image_codec

    loaded = tf.saved_model.load(spec["version_dir"])
    image = np.load(spec["image"])
    one = {"image_bytes": np.array([image_codec.encode_png(image)], dtype=object),
           "serving_default": image[None].astype(np.float32)}

    def caller(signature, images):
        function, key = loaded.signatures[signature], KEY[signature]
        batch = np.repeat(one[signature], images, axis=0)

        def call():  # as a program would use it: numpy in, every output back as numpy
            tensor = tf.constant(batch, dtype=tf.string if signature == "image_bytes" else tf.float32)
            return {k: v.numpy() for k, v in function(**{key: tensor}).items()}

        return call

    for signature, images in IN_PROCESS:  # every path traced and warm before the first measurement
        caller(signature, images)()
    pid = os.getpid()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            call = caller(request["signature"], request["images"])
            cpu = _cpu_seconds(pid)
            latencies, calls_per_s = closed_loop(lambda: call, 1, request["seconds"])
            cpu = (_cpu_seconds(pid) - cpu) * request["seconds"] / (request["seconds"] + WARMUP_SECONDS)
            ms = np.asarray(latencies) * 1e3
            result = {"p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
                      "calls_per_s": calls_per_s, "calls": len(ms),
                      "cpu_ms_per_image": cpu * 1e3 / (len(ms) * request["images"]),
                      "answer": detections(call())}
        except Exception as e:  # the parent stops the run with it
            result = {"error": f"{type(e).__name__}: {e}"[:1000]}
        print(json.dumps(result), flush=True)


# --- measuring -----------------------------------------------------------------------
def served_key(signature: str, concurrency: int, batching: bool) -> str:
    return f"{signature} c={concurrency} batching {'on' if batching else 'off'}"


def in_process_key(signature: str, images: int) -> str:
    return f"{signature} {images} per call"


def measure_round(r: int, servers: dict, checkers: dict, child: ChildProcess, reqs: dict, expected: dict,
                  seconds: float) -> dict:
    """One round: every served cell, then every in-process cell, the order reversed every other round."""
    cells = [("served", cell) for cell in SERVED] + [("in_process", cell) for cell in IN_PROCESS]
    rnd = {"load": os.getloadavg()[0], "served": {}, "in_process": {}, "box_difference": 0.0}
    for kind, cell in cells if r % 2 == 0 else cells[::-1]:
        load = os.getloadavg()[0]
        if kind == "served":
            signature, c, batching = cell
            server = servers[batching]
            cpu = _cpu_seconds(server.process.pid)
            latencies, rps = grpc_closed_loop(server.port, reqs[signature], c, seconds)
            cpu = (_cpu_seconds(server.process.pid) - cpu) * seconds / (seconds + WARMUP_SECONDS)
            ms = np.asarray(latencies) * 1e3
            key = served_key(*cell)
            for answer in checkers[batching].answers(reqs[signature], c):
                rnd["box_difference"] = max(rnd["box_difference"], box_difference(f"served {key}", answer, expected))
            rnd["served"][key] = {"load": load, "p50_ms": float(np.percentile(ms, 50)),
                                  "p90_ms": float(np.percentile(ms, 90)), "images_per_s": rps,
                                  "requests": len(ms), "server_cpu_ms_per_image": cpu * 1e3 / len(ms)}
        else:
            signature, images = cell
            key = in_process_key(*cell)
            result = child.ask({"signature": signature, "images": images, "seconds": seconds})
            rnd["box_difference"] = max(rnd["box_difference"],
                                        box_difference(f"in-process {key}", result.pop("answer"), expected))
            result.update(load=load, images_per_s=result["calls_per_s"] * images,
                          ms_per_image=result["p50_ms"] / images)
            rnd["in_process"][key] = result
    return rnd


# --- report --------------------------------------------------------------------------
def _median(res: dict, kind: str, key: str, field: str) -> float:
    return statistics.median(r[kind][key][field] for r in res["rounds"])


def _values(res: dict, kind: str, key: str, field: str, fmt: str = "{:.0f}") -> str:
    return ", ".join(fmt.format(r[kind][key][field]) for r in res["rounds"])


def overhead(res: dict, signature: str) -> list[float]:
    """Per round: served p50 at c=1 (no batching) - in-process p50 of one image, ms."""
    served, inproc = served_key(signature, 1, False), in_process_key(signature, 1)
    return [r["served"][served]["p50_ms"] - r["in_process"][inproc]["p50_ms"] for r in res["rounds"]]


def report(res: dict) -> str:
    mc, info, image = res["machine"], res["run"], res["image"]
    loads = " / ".join(f"{r['load']:.2f}" for r in res["rounds"])
    m = info.get("metrics", {})
    how = (f"trained by this run in {info['train_s']:.0f} s: `{info['recipe']}`" if info.get("trained")
           else f"the given run {info['dir']} (" + ", ".join(f"{k} {v}" for k, v in info["config"].items() if v)
           + ")")
    quality = (f"test mAP {m['map']:.3f}, mAP@0.5 {m['map_50']:.3f}" if "map" in m else "no test metrics")
    b = res["batching"]
    confident = [i for i, score in enumerate(image["scores"]) if score > 0.5]
    lines = [
        f"# Detection benchmark: `{MODEL}` served over gRPC, with and without server-side batching", "",
        f"`{res['command']}`, run {res['date']}, took {res['seconds'] / 60:.1f} min.", "",
        f"Machine: {mc['cpu']}, {mc['cores']} CPU cores, shared with other jobs; Python {mc['python']}, "
        f"TensorFlow {mc['tf']}, Keras {mc['keras']}. Load average (1 min) at the start of each round: {loads} "
        f"({mc['cores']} cores: above {mc['cores']} means other jobs were waiting for a core).", "",
        f"Model: `{MODEL}` ({info['params']:,} parameters, {DATASET}, 128x128), {how}; {quality} (metrics.json, "
        f"COCO metrics on the test split). Exported with `export.export_saved_model(run, base, \"{MODEL}\")` in "
        f"{info['export_s']:.0f} s (with its verification); served by `zoo-model-server` in its own process, "
        f"TensorFlow threads {res['tf_threads']} (intra-op, inter-op; 0 = TensorFlow's default), the in-process "
        "child under the same setting.", "",
        f"Image: {DATASET} test image {image['index']} (the first with {MIN_OBJECTS} or more objects: "
        f"{len(image['objects'])}, classes {image['objects']}); `image_bytes` gets its PNG file "
        f"({image['png_bytes']:,} bytes, a request of {image['request_bytes']['image_bytes']:,} bytes), "
        f"`serving_default` its pixels as float32 [1, 128, 128, 3] ({image['request_bytes']['serving_default']:,} "
        f"bytes). The served answer: {image['detections']} detections above the export's score threshold "
        f"(0.05; all of them are compared in the checks), {len(confident)} above 0.5: classes "
        f"{[image['classes'][i] for i in confident]}, scores "
        + ", ".join(f"{image['scores'][i]:.2f}" for i in confident) + ".", "",
        f"Batching (the c={HIGH} batching-on rows): a second server with `--enable_batching` and "
        f"`--batching_parameters_file` written by `serving.config.write_batching_parameters`: max_batch_size "
        f"{b['max_batch_size']}, batch_timeout_micros {b['batch_timeout_micros']}, num_batch_threads "
        f"{b['num_batch_threads']}, max_enqueued_batches 100.", "",
        f"Closed loop, one image per request, {res['seconds_per_cell']:g} s measured per cell after "
        f"{WARMUP_SECONDS:g} s of warm-up; {len(res['rounds'])} rounds, each running every cell back to back "
        "(the order reversed every other round); figures are medians over the rounds (each round's images/s "
        "beside them). Answers checked while measuring: after every served cell its server answered the same "
        "request from c clients at once, and the in-process child answered after each of its cells; every "
        "answer had the first served answer's detections (the same classes in the same order, boxes within "
        f"1e-4; largest box difference seen: {res['box_difference']:.2g}).", "",
        "## Served, gRPC, one image per request", "",
        "| signature | c | batching | p50 ms | p90 ms | images/s | images/s per round | server CPU ms/image |",
        "|---|---:|---|---:|---:|---:|---|---:|",
    ]
    for cell in SERVED:
        key = served_key(*cell)
        signature, c, batching = cell
        lines.append(
            f"| `{signature}` | {c} | {'on' if batching else 'off'} | {_median(res, 'served', key, 'p50_ms'):.2f} | "
            f"{_median(res, 'served', key, 'p90_ms'):.2f} | {_median(res, 'served', key, 'images_per_s'):.0f} | "
            f"{_values(res, 'served', key, 'images_per_s')} | "
            f"{_median(res, 'served', key, 'server_cpu_ms_per_image'):.2f} |")
    lines += ["", "Server CPU: user + system CPU of the server process per image answered (all its threads), "
                  "while the cell ran; the clients (this process) use the same 2 cores.", "",
              "## In-process, the exported signatures", "",
              "`tf.saved_model.load(...).signatures[...]` in a child process, numpy in and every output back as "
              "numpy, one thread, closed loop.", "",
              "| signature | images per call | p50 ms per call | p90 ms per call | ms per image | images/s | "
              "images/s per round | CPU ms/image |",
              "|---|---:|---:|---:|---:|---:|---|---:|"]
    for cell in IN_PROCESS:
        key = in_process_key(*cell)
        signature, images = cell
        lines.append(
            f"| `{signature}` | {images} | {_median(res, 'in_process', key, 'p50_ms'):.2f} | "
            f"{_median(res, 'in_process', key, 'p90_ms'):.2f} | "
            f"{_median(res, 'in_process', key, 'ms_per_image'):.2f} | "
            f"{_median(res, 'in_process', key, 'images_per_s'):.0f} | "
            f"{_values(res, 'in_process', key, 'images_per_s')} | "
            f"{_median(res, 'in_process', key, 'cpu_ms_per_image'):.2f} |")
    lines += ["", "## Served overhead at c=1", "",
              "| signature | served p50 ms | in-process p50 ms (1 image per call) | served - in-process ms | "
              "per round |", "|---|---:|---:|---:|---|"]
    for signature in SIGNATURES:
        served, inproc = served_key(signature, 1, False), in_process_key(signature, 1)
        per_round = overhead(res, signature)
        lines.append(f"| `{signature}` | {_median(res, 'served', served, 'p50_ms'):.2f} | "
                     f"{_median(res, 'in_process', inproc, 'p50_ms'):.2f} | {statistics.median(per_round):.2f} | "
                     + ", ".join(f"{x:.2f}" for x in per_round) + " |")
    lines += ["", "## Per round", "",
              "Load: the 1-minute load average when the cell began. Served: p50 ms, images/s; in-process: p50 ms "
              "per call, images/s.", "",
              "| round | cell | load | p50 ms | images/s |", "|---:|---|---:|---:|---:|"]
    for i, r in enumerate(res["rounds"]):
        for kind, keys in (("served", [served_key(*c) for c in SERVED]),
                           ("in_process", [in_process_key(*c) for c in IN_PROCESS])):
            for key in keys:
                c = r[kind][key]
                lines.append(f"| {i + 1} | {'served' if kind == 'served' else 'in-process'} {key} | {c['load']:.2f} | "
                             f"{c['p50_ms']:.2f} | {c['images_per_s']:.0f} |")
    lines += ["", "## What this shows", "", what_this_shows(res), ""]
    return "\n".join(lines)


def what_this_shows(res: dict) -> str:
    def s(signature, c, batching, field):
        return _median(res, "served", served_key(signature, c, batching), field)

    def p(signature, images, field):
        return _median(res, "in_process", in_process_key(signature, images), field)

    loads = [c["load"] for r in res["rounds"] for cells in (r["served"], r["in_process"]) for c in cells.values()]

    def ratio(signature):
        return statistics.median(r["served"][served_key(signature, HIGH, True)]["images_per_s"]
                                 / r["served"][served_key(signature, HIGH, False)]["images_per_s"]
                                 for r in res["rounds"])

    parts = [
        f"On this shared machine (1-minute load average {min(loads):.1f}-{max(loads):.1f} on "
        f"{res['machine']['cores']} cores while measuring), served over gRPC one image at a time (c=1), an image "
        "costs "
        + " and ".join(f"{s(sig, 1, False, 'p50_ms'):.1f} ms p50 ({s(sig, 1, False, 'p90_ms'):.1f} p90) as "
                       f"{'a PNG file' if sig == 'image_bytes' else 'float32 pixels'}" for sig in SIGNATURES)
        + "; the same signatures called in-process take "
        + " and ".join(f"{p(sig, 1, 'p50_ms'):.1f} ms" for sig in SIGNATURES)
        + ", so gRPC, the request's bytes and the server add "
        + " and ".join(f"{statistics.median(overhead(res, sig)):.1f} ms" for sig in SIGNATURES)
        + " (medians of the per-round differences).",
        f"Without batching, {HIGH} clients get "
        + " and ".join(f"{s(sig, HIGH, False, 'images_per_s') / s(sig, 1, False, 'images_per_s'):.2f}x"
                       for sig in SIGNATURES)
        + " the images/s of one.",
        f"At c={HIGH} with batching on, the server answers "
        + " and ".join(f"{s(sig, HIGH, True, 'images_per_s'):.0f} images/s through `{sig}`" for sig in SIGNATURES)
        + ", against " + " and ".join(f"{s(sig, HIGH, False, 'images_per_s'):.0f}" for sig in SIGNATURES)
        + " with batching off: "
        + " and ".join(f"{ratio(sig):.2f}x" for sig in SIGNATURES)
        + " (median of per-round ratios), at p50 latencies of "
        + " and ".join(f"{s(sig, HIGH, True, 'p50_ms'):.1f} ms (batching on) vs "
                       f"{s(sig, HIGH, False, 'p50_ms'):.1f} ms (off)" for sig in SIGNATURES) + ".",
        f"In-process, a call on {HIGH} images costs "
        + " and ".join(f"{p(sig, HIGH, 'ms_per_image'):.1f} ms per image through `{sig}` "
                       f"({p(sig, HIGH, 'images_per_s'):.0f} images/s) against {p(sig, 1, 'p50_ms'):.1f} ms alone"
                       for sig in SIGNATURES)
        + f"; the served c={HIGH} batching-on figures reach "
        + " and ".join(f"{s(sig, HIGH, True, 'images_per_s') / p(sig, HIGH, 'images_per_s'):.0%}" for sig in SIGNATURES)
        + " of those in-process rates, with the gRPC clients on the same "
        + f"{res['machine']['cores']} cores; the server's CPU per image at c={HIGH} is "
        + " and ".join(f"{s(sig, HIGH, True, 'server_cpu_ms_per_image'):.2f} ms with batching against "
                       f"{s(sig, HIGH, False, 'server_cpu_ms_per_image'):.2f} ms without through `{sig}`"
                       for sig in SIGNATURES) + ".",
    ]
    return " ".join(parts)


# --- main ----------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", metavar="DIR", help=f"an existing {MODEL} run on {DATASET} (else one is trained)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, interleaved; medians are reported")
    ap.add_argument("--seconds", type=float, default=3.0, help="measured seconds per cell and round")
    ap.add_argument("--tf-threads", default="0,0", help="the servers' and the in-process child's TensorFlow "
                                                        "threads, intra-op,inter-op (0: default; %(default)s)")
    ap.add_argument("--out", default=str(RESULTS), help="results markdown (default: %(default)s)")
    ap.add_argument("--report", metavar="JSON", help="only rewrite --out from a run's detection.json")
    ap.add_argument("--child", nargs=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return in_process_child(*args.child)
    if args.report:
        pathlib.Path(args.out).write_text(report(json.loads(pathlib.Path(args.report).read_text())))
        return print(f"written: {args.out}")

    import export
    from serving import config as server_config
    from zoo.training import load_run

    started = time.perf_counter()
    command = ".venv/bin/python benchmarks/bench_detection.py" + (f" --run {args.run}" if args.run else "") + "".join(
        f" --{k.replace('_', '-')} {getattr(args, k)}" for k, d in (
            ("rounds", 3), ("seconds", 3.0), ("tf_threads", "0,0")) if getattr(args, k) != d) + (
        "" if pathlib.Path(args.out).resolve() == RESULTS else f" --out {args.out}")
    SCRATCH.mkdir(parents=True, exist_ok=True)

    print(f"{MODEL}: {'run ' + args.run if args.run else 'training'} (load {os.getloadavg()[0]:.2f})", flush=True)
    run_dir, info = ensure_run(args.run)
    config = json.loads((run_dir / "config.json").read_text())
    info.update(dir=str(run_dir), config={k: config.get(k) for k in ("epochs", "batch_size", "learning_rate",
                                                                     "lr_schedule", "model_kwargs")})
    if (run_dir / "metrics.json").exists():
        info["metrics"] = json.loads((run_dir / "metrics.json").read_text())
    print(f"{MODEL}: run {run_dir} (test mAP {info.get('metrics', {}).get('map', float('nan')):.3f}); exporting "
          f"(load {os.getloadavg()[0]:.2f})", flush=True)
    base = SCRATCH / "models"
    shutil.rmtree(base, ignore_errors=True)
    start = time.perf_counter()
    version_dir = pathlib.Path(export.export_saved_model(run_dir, base, MODEL))
    info.update(export_s=time.perf_counter() - start, params=load_run(run_dir)[0].count_params())
    config_file = base / "models.config"
    batching_file = server_config.write_batching_parameters(
        base, server_config.batching_parameters(**BATCHING), overwrite=True)

    index, image, objects = test_image()
    reqs = requests(image)
    np.save(SCRATCH / "image.npy", image)
    spec = SCRATCH / "in_process.json"
    spec.write_text(json.dumps({"tf_threads": args.tf_threads, "version_dir": str(version_dir),
                                "image": str(SCRATCH / "image.npy")}))

    servers, checkers, child = {}, {}, None
    try:
        child = ChildProcess(__file__, spec)  # loads and warms up while the servers start
        for batching in (False, True):
            servers[batching] = Server(config_file, batching_file if batching else None, rest=False,
                                       tf_threads=args.tf_threads)
            for signature in SIGNATURES:
                servers[batching].predict_once(reqs[signature])  # waits until the model is loaded
            checkers[batching] = Checker(servers[batching].port)
        child.ready()
        # The reference: the first served answer (serving_default, no batching); every other must match it.
        expected = from_response(servers[False].predict_once(reqs["serving_default"]))
        png = reqs["image_bytes"].inputs["image_bytes"].string_val[0]
        res = {"date": datetime.date.today().isoformat(), "command": command, "machine": machine(), "run": info,
               "tf_threads": args.tf_threads, "batching": BATCHING, "seconds_per_cell": args.seconds,
               "image": {"index": index, "objects": objects, "png_bytes": len(png),
                         "request_bytes": {s: reqs[s].ByteSize() for s in SIGNATURES},
                         "detections": expected["count"], "classes": expected["classes"],
                         "scores": expected["scores"]},
               "rounds": []}
        print(f"measuring (setup took {(time.perf_counter() - started) / 60:.1f} min); the image: test "
              f"{index}, {len(objects)} objects, {expected['count']} detections", flush=True)
        for r in range(args.rounds):
            rnd = measure_round(r, servers, checkers, child, reqs, expected, args.seconds)
            res["rounds"].append(rnd)
            print(f"round {r + 1} (load {rnd['load']:.2f}): " + "; ".join(
                f"{key} p50 {c['p50_ms']:.2f} ms {c['images_per_s']:.0f}/s" for key, c in rnd["served"].items())
                + "; in-process " + "; ".join(f"{key} p50 {c['p50_ms']:.2f} ms {c['images_per_s']:.0f}/s"
                                              for key, c in rnd["in_process"].items()), flush=True)
    finally:
        if child is not None:
            child.stop()
        for checker in checkers.values():
            checker.close()
        for server in servers.values():
            server.stop()
    res["box_difference"] = max(r["box_difference"] for r in res["rounds"])
    res["seconds"] = time.perf_counter() - started
    (SCRATCH / "detection.json").write_text(json.dumps(res, indent=2, default=str))
    text = report(res)
    print(text)
    pathlib.Path(args.out).write_text(text)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
