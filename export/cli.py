"""`zoo export` and `zoo info` for an export folder.

The `zoo` CLI registers the subcommand with `add_parser(subparsers)`; `zoo info`
calls `describe_export(path)` when `is_export(path)` and prints `format_export(...)`.
"""

from __future__ import annotations

import argparse
import json
import pathlib

EXAMPLES = """\
examples:
  zoo export runs/simple_cnn-digits --base-path models --model-name digits
  zoo export runs/simple_cnn-digits --model-name digits --version 3 --overwrite
  zoo export runs/resnet20-cifar10 --model-name cifar --version-policy latest:2 \\
      --serving-base-path /models      # paths as the TF Serving container sees them

then:
  tensorflow_model_server --model_config_file=models/models.config --rest_api_port=8501
  zoo info models/digits
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Registers `export` on the `zoo` CLI's subparsers; the handler is `args.fn(args)`.

    Example:
        >>> parser = argparse.ArgumentParser(prog="zoo")
        >>> add_parser(parser.add_subparsers(dest="command"))
        >>> args = parser.parse_args(["export", "runs/simple_cnn-digits", "--model-name", "digits"])
        >>> args.fn(args)
        0
    """
    p = subparsers.add_parser(
        "export", help="export a trained run as a verified SavedModel for TF Serving",
        description="Export RUN_DIR as <base-path>/<model-name>/<version>/: a SavedModel with "
                    "raw-input signatures (serving_default, image_bytes, classify), warm-up "
                    "records and a model card, verified against the Keras model in a fresh "
                    "process, then renamed into place. Also writes <base-path>/models.config "
                    "and batching_parameters.txt.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", help="a finished `zoo train` run directory (holds model.keras)")
    p.add_argument("--base-path", default="models", help="folder of model folders (default: models)")
    p.add_argument("--model-name", help="served model name (default: the architecture name)")
    p.add_argument("--version", type=int, help="version number (default: one above the highest)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --version")
    p.add_argument("--no-verify", action="store_true", help="skip verification (debugging only)")
    p.add_argument("--checkpoint", choices=("model", "best"), default="model",
                   help="export model.keras (final, default) or best.keras")
    p.add_argument("--num-examples", type=int, default=4,
                   help="training examples for warm-up records and verification (default: 4)")
    p.add_argument("--version-policy", help="models.config policy: latest, latest:N, all, specific:1,2")
    p.add_argument("--no-fold-batch-norm", action="store_true",
                   help="keep BatchNormalization layers as trained instead of folding them into "
                        "the convolutions before them (the default folds: same outputs, smaller export)")
    p.add_argument("--serving-base-path", help="base path as the server sees it, for models.config")
    p.set_defaults(fn=run_export, func=run_export)  # zoo.cli calls args.fn(args)
    return p


def run_export(args) -> int:
    from export.archive import export_saved_model

    path = export_saved_model(
        args.run_dir, args.base_path, args.model_name, args.version, overwrite=args.overwrite,
        verify=not args.no_verify, checkpoint=args.checkpoint, num_examples=args.num_examples,
        version_policy=args.version_policy, serving_base_path=args.serving_base_path,
        fold_batch_norm=not args.no_fold_batch_norm,
    )
    info = describe_export(path)
    print(f"Exported {info['model_name']} version {info['version']} to {path}"
          f"{'' if not args.no_verify else ' (NOT verified: --no-verify)'}")
    print(f"Signatures: {', '.join(info['signatures'])}")
    print(f"Serve it:   tensorflow_model_server --model_config_file={pathlib.Path(args.base_path) / 'models.config'}")
    return 0


def _version_dir(path: pathlib.Path) -> pathlib.Path:
    if (path / "saved_model.pb").exists():
        return path
    versions = sorted((int(d.name) for d in path.iterdir() if d.name.isdigit() and (d / "saved_model.pb").exists()),
                      reverse=True) if path.is_dir() else []
    if not versions:
        raise FileNotFoundError(
            f"{path} is neither a SavedModel version folder nor a model folder with numeric "
            f"versions; pass e.g. models/<name> or models/<name>/<version>.")
    return path / str(versions[0])


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
