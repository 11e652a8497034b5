"""Export benchmark: time and size of each architecture's SavedModel, and its latency.

For every registered image classifier at its default size (the registry's defaults: 224x224
and 1000 classes for resnet50 and mobilenet_v2, CIFAR/MNIST shapes for the others):

- export time (`export_saved_model`, verification in a fresh process included, and
  that verification's share);
- SavedModel size (saved_model.pb + variables/) against the `.keras` file of the same
  model (untrained, so the .keras holds no optimizer state: the strict comparison);
  assets (labels.txt, warm-up records, model card) are reported apart;
- latency of the loaded SavedModel's `serving_default` (tf.saved_model.load, called
  like a TF Serving runtime calls a signature) against Keras' `model.predict_on_batch`
  at batch 1 and 64, measured in interleaved pairs in one process, as the median
  of per-pair wall-time ratios and as the ratio of CPU time per call (target <= 1.1).

    python benchmarks/bench_export.py                 # all architectures
    python benchmarks/bench_export.py --models mlp simple_cnn --seconds 2

Writes benchmarks/out/export.md and benchmarks/out/export.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import shutil
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import zoo  # noqa: E402
from export import export_saved_model  # noqa: E402
from export.model_card import read_model_card  # noqa: E402


def _size(path: pathlib.Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def _latency(keras_call, served_call, seconds: float, min_pairs: int = 5) -> dict:
    """Times both calls back to back, in pairs, so both see the same machine state.

    On a shared machine (other jobs on the same cores) load changes from second to
    second, so: the wall-time ratio is the median of per-pair ratios (a pair sees one
    level of load), and the CPU-time ratio (process CPU seconds per call, all threads)
    measures the work each call does, which other processes do not change.
    """
    for _ in range(2):  # warm-up: tracing, allocation, oneDNN primitive caches
        keras_call()
        served_call()
    wall = {"keras": [], "served": []}
    cpu = {"keras": [], "served": []}
    deadline = time.perf_counter() + seconds
    while len(wall["keras"]) < min_pairs or time.perf_counter() < deadline:
        order = (("keras", keras_call), ("served", served_call))
        # Alternate which goes first, so neither always runs on warmer caches.
        for who, call in order if len(wall["keras"]) % 2 else order[::-1]:
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            call()
            wall[who].append(time.perf_counter() - start_wall)
            cpu[who].append(time.process_time() - start_cpu)
    return {
        "keras_ms": statistics.median(wall["keras"]) * 1e3,
        "served_ms": statistics.median(wall["served"]) * 1e3,
        "ratio": statistics.median(s / k for s, k in zip(wall["served"], wall["keras"])),
        "cpu_ratio": statistics.median(cpu["served"]) / statistics.median(cpu["keras"]),
        "pairs": len(wall["keras"]),
    }


def bench_model(name: str, out: pathlib.Path, seconds: float, batches=(1, 64)) -> dict:
    model = zoo.build_model(name)
    shape = tuple(model.input["image"].shape[1:])
    keras_file = out / f"{name}.keras"
    model.save(keras_file)
    rng = np.random.default_rng(0)
    examples = rng.integers(0, 256, (4,) + shape).astype("float32")

    start = time.perf_counter()
    path = export_saved_model(model, out / "models", name, examples=examples)
    export_seconds = time.perf_counter() - start
    card = read_model_card(path)

    saved = _size(path / "saved_model.pb") + _size(path / "variables") + _size(path / "fingerprint.pb")
    assets = _size(path / "assets") + _size(path / "assets.extra")
    row = {
        "model": name, "input_shape": list(shape), "parameters": card["parameters"],
        "export_s": export_seconds, "verify_s": card["verification"]["seconds"],
        "keras_bytes": _size(keras_file), "saved_model_pb_bytes": _size(path / "saved_model.pb"),
        "variables_bytes": _size(path / "variables"), "saved_model_bytes": saved, "assets_bytes": assets,
        "size_overhead": saved / _size(keras_file) - 1,
    }

    serving_default = tf.saved_model.load(str(path)).signatures["serving_default"]
    for batch in batches:
        x = rng.integers(0, 256, (batch,) + shape).astype("float32")
        timing = _latency(lambda: model.predict_on_batch({"image": x}),
                          lambda: serving_default(image=tf.constant(x)), seconds)
        row.update({f"{k}_b{batch}": v for k, v in timing.items()})
    row["load_average"] = os.getloadavg()[0]
    return row


def markdown(rows, batches=(1, 64)) -> str:
    head = ("| model | params | export s (verify s) | .keras MB | SavedModel MB (pb + variables) | overhead | assets MB | "
            + " | ".join(f"b{b}: predict_on_batch / serving_default ms (ratio; CPU-time ratio)" for b in batches) + " |")
    lines = [head, "|" + "---|" * (7 + len(batches))]
    for r in rows:
        lat = " | ".join(f"{r[f'keras_ms_b{b}']:.2f} / {r[f'served_ms_b{b}']:.2f} "
                         f"({r[f'ratio_b{b}']:.2f}; {r[f'cpu_ratio_b{b}']:.2f})" for b in batches)
        lines.append(
            f"| {r['model']} {tuple(r['input_shape'])} | {r['parameters'] / 1e6:.2f}M | {r['export_s']:.1f} "
            f"({r['verify_s']:.1f}) | {r['keras_bytes'] / 1e6:.2f} | {r['saved_model_bytes'] / 1e6:.2f} "
            f"({r['saved_model_pb_bytes'] / 1e6:.2f} + {r['variables_bytes'] / 1e6:.2f}) | "
            f"{r['size_overhead']:+.1%} | {r['assets_bytes'] / 1e6:.2f} | {lat} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=None, help="architectures (default: every image classifier)")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing budget per model and batch size")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out"))
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    work = out / "export-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rows = []
    # Image classifiers: the latency comparison feeds pixels (text models take strings).
    for name in args.models or zoo.list_models("image_classification"):
        rows.append(bench_model(name, work, args.seconds))
        print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    table = markdown(rows)
    meta = {"python": platform.python_version(), "tensorflow": tf.__version__, "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "load_average_max": round(max(r["load_average"] for r in rows), 2)}
    (out / "export.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    (out / "export.md").write_text(f"Export benchmark ({meta})\n\n{table}")
    print(table)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
