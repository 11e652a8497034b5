"""Export verification: load the export the way TF Serving does and compare with Keras.

Run in a fresh process (`verify_in_subprocess`), so nothing of the exporting process
(Python objects, the original labels file, traced functions) can hide a broken
export. For each export it:

1. checks the SignatureDefs: the signatures the task promises, their method names,
   and no generated key such as `output_0` or `args_0` (names are contracts);
2. loads the "serve" MetaGraph with the session-based loader that mirrors TF
   Serving's C++ loader (`tf.compat.v1.saved_model.loader.load`) and runs every
   warm-up record through its SignatureDef by tensor names, validating inputs and
   outputs as TF Serving's Predict and Classify do;
3. loads it again with `tf.saved_model.load` and calls the same signatures;
4. hands every output back to the exporting process, where the model's task compares
   it with the Keras model's answer on the same real examples (`Task.compare`: for a
   classifier, probabilities within 1e-4, class ids and label names).

    python -m export.verify JOBS.json     # prints a JSON report; exit 1 on failure
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

import numpy as np

from zoo.stale_files import remove_stale

LOADERS = ("tf.compat.v1.saved_model.loader.load", "tf.saved_model.load")
# Names that tracing invents when nobody named a tensor: a client cannot rely on them.
GENERATED_NAME = re.compile(r"^(output|outputs|args|arg|input|inputs|keras_tensor|x)_\d+$")


def check_signature_names(signatures: dict) -> list[str]:
    """Errors for generated signature keys or input/output names (see GENERATED_NAME)."""
    errors = []
    for key, sig in signatures.items():
        if GENERATED_NAME.match(key):
            errors.append(f"signature key {key!r} is a generated name")
        for kind in ("inputs", "outputs"):
            for name in sig[kind]:
                if GENERATED_NAME.match(name):
                    errors.append(f"signature {key!r} has a generated {kind[:-1]} name {name!r}")
    return errors


def check_contract(signatures: dict, methods: dict) -> list[str]:
    """Errors where the promised signatures (key -> method name) are missing or differ."""
    errors = []
    for key, method in methods.items():
        if key not in signatures:
            errors.append(f"signature {key!r} is missing (found: {', '.join(sorted(signatures))})")
        elif signatures[key]["method_name"] != method:
            errors.append(f"signature {key!r} has method {signatures[key]['method_name']!r}, expected {method!r}")
    for key, sig in signatures.items():
        # TF Serving's classifier.cc / regressor.cc: one input "inputs"; outputs
        # "classes"/"scores", or "outputs".
        allowed = {"tensorflow/serving/classify": {"classes", "scores"},
                   "tensorflow/serving/regress": {"outputs"}}.get(sig["method_name"])
        if allowed and (list(sig["inputs"]) != ["inputs"] or not set(sig["outputs"]) <= allowed):
            errors.append(f"{sig['method_name'].rsplit('/', 1)[-1]} signature {key!r} must take only 'inputs' and "
                          f"return {'/'.join(sorted(allowed))}, has inputs {list(sig['inputs'])} and outputs "
                          f"{list(sig['outputs'])}")
    return errors


def _check_served(kind, key, signature_def, inputs, outputs) -> list[str]:
    """What TF Serving itself would refuse in a request or a response."""
    errors = []
    # TF Serving's GetInputValues feeds the SignatureDef's default for an input left out.
    missing = set(signature_def.inputs) - set(inputs) - set(signature_def.defaults)
    if missing or not set(inputs) <= set(signature_def.inputs):
        errors.append(f"{key}: request inputs {sorted(inputs)} != signature inputs {sorted(signature_def.inputs)}"
                      + (f" (defaults: {sorted(signature_def.defaults)})" if signature_def.defaults else ""))
    if kind == "classify":
        n = len(inputs["inputs"])
        for name, value in outputs.items():
            if value.ndim != 2 or value.shape[0] != n:
                errors.append(f"{key}: classify output {name!r} has shape {value.shape}, needs [{n}, num_classes]")
    if kind == "regress":
        # regressor.cc: one float per example, [B] or [B, 1].
        n, value = len(inputs["inputs"]), outputs.get("outputs")
        if value is None or value.shape not in ((n,), (n, 1)):
            errors.append(f"{key}: regress output 'outputs' has shape {getattr(value, 'shape', None)}, needs [{n}] "
                          f"or [{n}, 1]")
    return errors


def _run_session(export_dir, calls):
    """Outputs of each (kind, signature key, inputs) call via the TF1 session loader."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401 - its ops are linked into TF Serving's model server, as here

    results, errors = [], []
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(export_dir))
        for kind, key, inputs in calls:
            signature_def = meta_graph.signature_def[key]
            given = {**{k: tf.make_ndarray(v) for k, v in signature_def.defaults.items()}, **inputs}
            feed = {signature_def.inputs[k].name: v for k, v in given.items() if k in signature_def.inputs}
            fetch = {k: v.name for k, v in signature_def.outputs.items()}
            outputs = session.run(fetch, feed)
            errors += _check_served(kind, key, signature_def, inputs, outputs)
            results.append(outputs)
    return results, errors


def _run_tf2(export_dir, calls):
    import tensorflow as tf

    from export import model_card

    # A loaded signature function takes every input: give it the defaults TF Serving would.
    defaults = {key: {k: tf.make_ndarray(v) for k, v in sig.defaults.items()}
                for m in model_card.read_saved_model(export_dir).meta_graphs if "serve" in m.meta_info_def.tags
                for key, sig in m.signature_def.items()}
    loaded = tf.saved_model.load(str(export_dir))
    return [{k: v.numpy() for k, v in loaded.signatures[key](
        **{n: tf.constant(a) for n, a in {**defaults.get(key, {}), **inputs}.items()}).items()}
        for _, key, inputs in calls]


def run_export(export_dir, methods: dict | None = None, outputs_file=None) -> dict:
    """Runs one export's warm-up records as TF Serving would; returns a report.

    The report holds the contract errors (signature names, method names, what TF
    Serving's Predict/Classify/Regress would refuse) and `calls`, one (signature key,
    method, batch size) per record. Each loader's outputs are written to
    `outputs_file` (.npz) for the exporting process, which knows the task and the Keras
    model, to compare (`check_outputs`).

    Example:
        >>> run_export("models/digits/1", {"serving_default": PREDICT})["calls"][0]
        ['serving_default', 'tensorflow/serving/predict', 1]
    """
    from export import model_card, warmup

    export_dir = pathlib.Path(export_dir)
    report = {"export_dir": str(export_dir), "errors": [], "max_abs_diff": {}, "records": 0, "calls": [],
              "loaders": list(LOADERS)}
    try:
        signatures = model_card.read_signatures(export_dir)
        card = model_card.read_model_card(export_dir)
        report["signatures"] = sorted(signatures)
        report["errors"] += check_signature_names(signatures) + check_contract(signatures, methods or {})
        asset = export_dir / "assets" / "labels.txt"
        if card.get("labels") and asset.exists() and asset.read_text(encoding="utf-8").splitlines() != card["labels"]:
            report["errors"].append("assets/labels.txt differs from the model card's labels")
        calls = []
        for log in warmup.read_warmup_requests(export_dir):
            key, kind, inputs = warmup.log_inputs(log)
            if key not in signatures:
                report["errors"].append(f"warm-up record for unknown signature {key!r}")
                continue
            calls.append((kind, key, inputs))
            # The batch size: the first dimension of an input that has one (not a scalar like beam_size).
            size = next((len(v) for v in inputs.values() if getattr(v, "ndim", 1) > 0), 1)
            report["calls"].append([key, signatures[key]["method_name"], size])
        report["records"] = len(calls)
        session_outputs, served_errors = _run_session(export_dir, calls)
        report["errors"] += served_errors
        tf2_outputs = _run_tf2(export_dir, calls)
        if outputs_file:
            arrays = {f"{loader}/{i}/{name}": value
                      for loader, results in zip(LOADERS, (session_outputs, tf2_outputs))
                      for i, outputs in enumerate(results) for name, value in outputs.items()}
            np.savez(outputs_file, **arrays)
        covered = {key for _, key, _ in calls}
        report["errors"] += [f"signature {k!r} has no warm-up record" for k in signatures if k not in covered]
    except Exception as e:  # a broken export must produce a report, not a traceback
        report["errors"].append(f"{type(e).__name__}: {e}")
    report["ok"] = not report["errors"]
    return report


def check_outputs(report: dict, outputs: dict, task, reference: dict, assets: dict) -> dict:
    """Compares each loader's outputs with the Keras reference, by the task's rules.

    Args:
        report: `run_export`'s report (updated: errors, max_abs_diff, ok).
        outputs: loader -> one dict of named arrays per call.
        task: the `zoo.tasks.Task` of the export.
        reference: what the Keras model answers on the warm-up examples (`task.reference`).
        assets: the task's export assets (labels, tokenizer, ...).
    """
    from zoo.tasks import Request

    for loader, results in outputs.items():
        for (key, method, size), got in zip(report["calls"], results):
            errors, diff = task.compare(Request(key, method, size), got, reference, assets)
            report["errors"] += [f"[{loader}] {e}" for e in errors]
            report["max_abs_diff"][key] = max(report["max_abs_diff"].get(key, 0.0), diff)
    report["ok"] = not report["errors"]
    return report


def verify_in_subprocess(jobs, timeout: float = 600) -> list[dict]:
    """Verifies exports in one fresh Python process; one report per job.

    Args:
        jobs: `Job`s (export dir, promised methods, task, Keras reference, assets).
            Several exports share one process, which pays for importing TensorFlow once.
        timeout: seconds before the verification counts as failed.

    Example:
        >>> [r["ok"] for r in verify_in_subprocess([Job("models/digits/1", methods, task, ref, assets)])]
        [True]
    """
    # Named with this PID, so a later verification removes what a killed one left.
    remove_stale(tempfile.gettempdir(), r"zoo-verify-(\d+)-.*")
    with tempfile.TemporaryDirectory(prefix=f"zoo-verify-{os.getpid()}-") as tmp:
        spec = [{"export_dir": str(pathlib.Path(job.export_dir).resolve()), "methods": job.methods or {},
                 "outputs": os.path.join(tmp, f"{i}.npz")} for i, job in enumerate(jobs)]
        jobs_file = os.path.join(tmp, "jobs.json")
        pathlib.Path(jobs_file).write_text(json.dumps(spec))
        root = str(pathlib.Path(__file__).resolve().parents[1])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            # Run in the empty temp folder: `-m` puts the working folder first on sys.path,
            # where a user's own "export/" folder (a base path, say) would shadow this package.
            proc = subprocess.run([sys.executable, "-m", "export.verify", jobs_file], env=env, cwd=tmp,
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return [{"export_dir": s["export_dir"], "ok": False,
                     "errors": [f"verification took over {timeout:.0f} s"]} for s in spec]
        lines = proc.stdout.strip().splitlines()
        try:
            reports = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            tail = (proc.stderr or "")[-2000:]
            return [{"export_dir": s["export_dir"], "ok": False,
                     "errors": [f"verification process failed (exit {proc.returncode}): {tail}"]} for s in spec]
        for job, s, report in zip(jobs, spec, reports):
            if os.path.exists(s["outputs"]):
                with np.load(s["outputs"], allow_pickle=True) as saved:
                    outputs = {loader: [{} for _ in report["calls"]] for loader in LOADERS}
                    for name in saved.files:
                        loader, i, key = name.split("/", 2)
                        outputs[loader][int(i)][key] = saved[name]
                check_outputs(report, outputs, job.task, job.reference, job.assets)
    return reports


@dataclasses.dataclass
class Job:
    """One export to verify, and what it must answer."""

    export_dir: object
    methods: dict
    task: object  # zoo.tasks.Task
    reference: dict
    assets: dict


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m export.verify JOBS.json", file=sys.stderr)
        return 2
    jobs = json.loads(pathlib.Path(argv[0]).read_text())
    reports = [run_export(j["export_dir"], j["methods"], j["outputs"]) for j in jobs]
    print(json.dumps(reports))
    return 0 if all(r["ok"] for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
