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
4. compares probabilities (or classify scores) with the Keras model's on the same
   real examples (tolerance 1e-4), and checks class ids and label names.

    python -m export.verify JOBS.json     # prints a JSON report; exit 1 on failure
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

import numpy as np

TOLERANCE = 1e-4
# Names that tracing invents when nobody named a tensor: a client cannot rely on them.
GENERATED_NAME = re.compile(r"^(output|outputs|args|arg|input|inputs|keras_tensor|x)_\d+$")
# The outputs compared with the Keras model's softmax, by signature method.
_PROBABILITIES = {"predict": "probabilities", "classify": "scores"}


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
    classify = [k for k, s in signatures.items() if s["method_name"] == "tensorflow/serving/classify"]
    for key in classify:
        sig = signatures[key]
        # TF Serving's classifier.cc: one input "inputs", outputs "classes"/"scores".
        if list(sig["inputs"]) != ["inputs"] or not set(sig["outputs"]) <= {"classes", "scores"}:
            errors.append(f"classify signature {key!r} must take only 'inputs' and return 'classes'/'scores', "
                          f"has inputs {list(sig['inputs'])} and outputs {list(sig['outputs'])}")
    return errors


def _check_served(kind, key, signature_def, inputs, outputs) -> list[str]:
    """What TF Serving itself would refuse in a request or a response."""
    errors = []
    if set(inputs) != set(signature_def.inputs):
        errors.append(f"{key}: request inputs {sorted(inputs)} != signature inputs {sorted(signature_def.inputs)}")
    if kind == "classify":
        n = len(inputs["inputs"])
        for name, value in outputs.items():
            if value.ndim != 2 or value.shape[0] != n:
                errors.append(f"{key}: classify output {name!r} has shape {value.shape}, needs [{n}, num_classes]")
    return errors


def _run_session(export_dir, calls):
    """Outputs of each (kind, signature key, inputs) call via the TF1 session loader."""
    import tensorflow as tf

    results, errors = [], []
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(export_dir))
        for kind, key, inputs in calls:
            signature_def = meta_graph.signature_def[key]
            feed = {signature_def.inputs[k].name: v for k, v in inputs.items() if k in signature_def.inputs}
            fetch = {k: v.name for k, v in signature_def.outputs.items()}
            outputs = session.run(fetch, feed)
            errors += _check_served(kind, key, signature_def, inputs, outputs)
            results.append(outputs)
    return results, errors


def _run_tf2(export_dir, calls):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(export_dir))
    return [{k: v.numpy() for k, v in loaded.signatures[key](**{n: tf.constant(a) for n, a in inputs.items()}).items()}
            for _, key, inputs in calls]


def _text(values) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in np.asarray(values).ravel()]


def compare(kind, key, outputs, expected, labels) -> tuple[list[str], float]:
    """Errors and max |difference| of one call's outputs against Keras' probabilities."""
    name = _PROBABILITIES[kind]
    if name not in outputs:
        return [f"{key}: no {name!r} output"], float("inf")
    got = np.asarray(outputs[name], np.float64)
    if got.shape != expected.shape:
        return [f"{key}: {name} has shape {got.shape}, Keras gives {expected.shape}"], float("inf")
    diff = float(np.max(np.abs(got - expected))) if got.size else 0.0
    errors = [f"{key}: {name} differ from Keras by {diff:.3g} > {TOLERANCE}"] if diff > TOLERANCE else []
    if kind == "classify" and "classes" in outputs:
        rows = np.asarray(outputs["classes"])
        if any(_text(row) != list(labels) for row in rows):
            errors.append(f"{key}: classes {_text(rows[0])} are not the label names {list(labels)}")
    if "class_id" in outputs:
        class_id = np.asarray(outputs["class_id"])
        if not np.array_equal(class_id, np.argmax(got, axis=-1)):
            errors.append(f"{key}: class_id is not the argmax of probabilities")
        # Where Keras' top two are closer than the tolerance either answer is right.
        top2 = np.sort(expected, axis=-1)[:, -2:] if expected.shape[-1] > 1 else None
        clear = (top2[:, 1] - top2[:, 0] > 2 * TOLERANCE) if top2 is not None else np.ones(len(class_id), bool)
        if not np.array_equal(class_id[clear], np.argmax(expected, axis=-1)[clear]):
            errors.append(f"{key}: class_id differs from Keras' argmax")
        if "label" in outputs and _text(outputs["label"]) != [labels[i] for i in class_id]:
            errors.append(f"{key}: label is not label_names[class_id]")
    return errors, diff


def verify_export(export_dir, expected, methods: dict | None = None) -> dict:
    """Verifies one export in this process; returns a report ({"ok": bool, "errors": [...], ...}).

    Args:
        export_dir: a version folder (or the temporary folder before publishing).
        expected: [N, K] Keras probabilities on the examples the warm-up records hold;
            a record of batch size n holds the first n.
        methods: signature key -> method name that the export must have.

    Example:
        >>> verify_export("models/digits/1", np.load("expected.npy"))["ok"]
        True
    """
    from export import model_card, warmup

    export_dir = pathlib.Path(export_dir)
    expected = np.asarray(expected, np.float64)
    report = {"export_dir": str(export_dir), "errors": [], "max_abs_diff": {}, "records": 0,
              "loaders": ["tf.compat.v1.saved_model.loader.load", "tf.saved_model.load"]}
    try:
        signatures = model_card.read_signatures(export_dir)
        labels = model_card.read_model_card(export_dir)["labels"]
        report["signatures"] = sorted(signatures)
        report["errors"] += check_signature_names(signatures) + check_contract(signatures, methods or {})
        asset = export_dir / "assets" / "labels.txt"
        if asset.exists() and asset.read_text(encoding="utf-8").splitlines() != list(labels):
            report["errors"].append("assets/labels.txt differs from the model card's labels")
        calls = []
        for log in warmup.read_warmup_requests(export_dir):
            key, kind, inputs = warmup.log_inputs(log)
            if key not in signatures:
                report["errors"].append(f"warm-up record for unknown signature {key!r}")
                continue
            calls.append((kind, key, inputs))
        report["records"] = len(calls)
        session_outputs, served_errors = _run_session(export_dir, calls)
        report["errors"] += served_errors
        for loader, results in (("session", session_outputs), ("tf2", _run_tf2(export_dir, calls))):
            for (kind, key, inputs), outputs in zip(calls, results):
                n = len(next(iter(inputs.values())))
                errors, diff = compare(kind, key, outputs, expected[:n], labels)
                report["errors"] += [f"[{loader}] {e}" for e in errors]
                report["max_abs_diff"][key] = max(report["max_abs_diff"].get(key, 0.0), diff)
        covered = {key for _, key, _ in calls}
        report["errors"] += [f"signature {k!r} has no warm-up record" for k in signatures if k not in covered]
    except Exception as e:  # a broken export must produce a report, not a traceback
        report["errors"].append(f"{type(e).__name__}: {e}")
    report["ok"] = not report["errors"]
    return report


def verify_in_subprocess(jobs, timeout: float = 600) -> list[dict]:
    """Verifies exports in one fresh Python process; one report per job.

    Args:
        jobs: (export_dir, expected probabilities [N, K], methods dict) tuples. Several
            exports share one process, which pays for importing TensorFlow once.
        timeout: seconds before the verification counts as failed.

    Example:
        >>> [r["ok"] for r in verify_in_subprocess([("models/digits/1", expected, {})])]
        [True]
    """
    with tempfile.TemporaryDirectory(prefix="zoo-verify-") as tmp:
        spec = []
        for i, (export_dir, expected, methods) in enumerate(jobs):
            np.save(os.path.join(tmp, f"{i}.npy"), np.asarray(expected, np.float64))
            spec.append({"export_dir": str(pathlib.Path(export_dir).resolve()),
                         "expected": os.path.join(tmp, f"{i}.npy"), "methods": methods or {}})
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
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (proc.stderr or "")[-2000:]
        return [{"export_dir": s["export_dir"], "ok": False,
                 "errors": [f"verification process failed (exit {proc.returncode}): {tail}"]} for s in spec]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m export.verify JOBS.json", file=sys.stderr)
        return 2
    jobs = json.loads(pathlib.Path(argv[0]).read_text())
    reports = [verify_export(j["export_dir"], np.load(j["expected"]), j["methods"]) for j in jobs]
    print(json.dumps(reports))
    return 0 if all(r["ok"] for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
