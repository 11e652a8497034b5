"""What an export is, read from disk: `zoo info` on a version or model folder.

    info = describe_export("models/digits")       # the newest version
    print(format_export(info))
"""

from __future__ import annotations

import json
import pathlib


def _version_dir(path: pathlib.Path) -> pathlib.Path:
    if (path / "saved_model.pb").exists():
        return path
    # TF Serving's version is the folder's number; the folder keeps its name (00000123).
    versions = [d for d in path.iterdir() if d.name.isdigit() and (d / "saved_model.pb").exists()] \
        if path.is_dir() else []
    if not versions:
        raise FileNotFoundError(
            f"{path} is neither a SavedModel version folder nor a model folder with numeric "
            f"versions; pass e.g. models/<name> or models/<name>/<version>.")
    return max(versions, key=lambda d: int(d.name))


def is_export(path) -> bool:
    """True for a version folder, or a model folder holding numbered versions."""
    try:
        _version_dir(pathlib.Path(path))
        return True
    except (FileNotFoundError, OSError):
        return False


def _size(path: pathlib.Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def describe_export(path) -> dict:
    """What `zoo info` shows for an export: the model card plus what is on disk.

    Args:
        path: a version folder, or a model folder (its highest version is described).

    Example:
        >>> describe_export("models/digits")["signatures"]["serving_default"]["outputs"]["label"]
        {'dtype': 'string', 'shape': [None]}
    """
    from export import model_card

    version_dir = _version_dir(pathlib.Path(path))
    try:
        card = model_card.read_model_card(version_dir)
    except FileNotFoundError:
        card = {}  # a SavedModel from elsewhere: show its signatures all the same
    siblings = sorted(int(d.name) for d in version_dir.parent.iterdir() if d.name.isdigit())
    return {
        "path": str(version_dir),
        "model_name": card.get("model_name", version_dir.parent.name),
        "version": int(version_dir.name) if version_dir.name.isdigit() else card.get("version"),
        "versions": siblings,
        "task": card.get("task"),
        "architecture": card.get("architecture"),
        "labels": card.get("labels"),
        # What the task recorded (image size and pixel limit, tokenizer, ...).
        "task_fields": {k: card[k] for k in card.get("task_fields", []) if k != "labels"},
        # Read from saved_model.pb, so it is what a server sees even if the card is stale.
        "signatures": model_card.read_signatures(version_dir),
        "metrics": card.get("metrics"),
        "training": card.get("training"),
        "library_versions": card.get("library_versions"),
        "verification": card.get("verification"),
        "warmup": card.get("warmup"),
        "size_bytes": _size(version_dir),
    }


def _shape(spec) -> str:
    return "?" if spec["shape"] is None else "[" + ",".join("B" if d is None else str(d) for d in spec["shape"]) + "]"


def format_export(info: dict) -> str:
    """A human-readable `zoo info` page for `describe_export`'s dict."""
    lines = [f"{info['model_name']} version {info['version']} ({info['path']}, {info['size_bytes'] / 1e6:.1f} MB)",
             f"  versions on disk: {', '.join(map(str, info['versions']))}",
             f"  task: {info['task']}   architecture: {info['architecture']}"]
    if info["labels"]:
        lines.append(f"  labels ({len(info['labels'])}): {', '.join(info['labels'][:20])}"
                     + (" ..." if len(info["labels"]) > 20 else ""))
    for key, value in info["task_fields"].items():
        lines.append(f"  {key}: {json.dumps(value)}")
    lines.append("  signatures:")
    for key, sig in info["signatures"].items():
        ins = ", ".join(f"{k} {v['dtype']}{_shape(v)}" for k, v in sig["inputs"].items())
        outs = ", ".join(f"{k} {v['dtype']}{_shape(v)}" for k, v in sig["outputs"].items())
        lines.append(f"    {key} ({sig['method_name'].rsplit('/', 1)[-1]}): {ins} -> {outs}")
    if info["metrics"]:
        lines.append("  metrics: " + json.dumps(info["metrics"], sort_keys=True))
    if info["verification"]:
        diffs = info["verification"].get("max_abs_diff", {})
        lines.append(f"  verified: max |diff| {max(diffs.values(), default=0):.2g} vs Keras")
    if info["training"]:
        t = info["training"]
        lines.append(f"  trained: {t.get('model')} on {t.get('dataset')}, {t.get('epochs')} epochs")
    if info["library_versions"]:
        lines.append("  libraries: " + ", ".join(f"{k} {v}" for k, v in info["library_versions"].items() if v))
    return "\n".join(lines)
