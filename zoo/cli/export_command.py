"""`zoo export`: a finished run -> a verified SavedModel version for TF Serving.

The `zoo` CLI registers the subcommand with `add_parser(subparsers)`.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from export.serving_ops import DEFAULT_SERVING_VERSION, known_versions, resolve_version

EXAMPLES = """\
examples:
  zoo export runs/simple_cnn-digits --base-path models --model-name digits
  zoo export runs/simple_cnn-digits --model-name digits --version 3 --overwrite
  zoo export runs/simple_cnn-digits --model-name digits --target-serving-version 2.21
  zoo export runs/resnet20-cifar10 --model-name cifar --version-policy latest:2 \\
      --serving-base-path /models      # paths as the TF Serving container sees them

then:
  zoo serve models                       # the embedded server (or: --engine tfserving)
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
    p.add_argument("--target-serving-version", default=DEFAULT_SERVING_VERSION, metavar="X.Y",
                   help=f"the TF Serving release (tensorflow/serving tag) that must load the export: every op "
                        f"of the SavedModel is checked against that release's ops, and an op it lacks or any "
                        f"Xla op (TF Serving runs with XLA off) fails the export before publishing (default: "
                        f"{DEFAULT_SERVING_VERSION}; known: {', '.join(known_versions())})")
    p.add_argument("--serving-base-path", help="base path as the server sees it, for models.config")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="an export option of the model's task, e.g. max_image_pixels=20000000 for an "
                        "image classifier (images over it are refused before decoding); repeatable")
    p.add_argument("--keras-hub-preset", metavar="DIR",
                   help="BERT runs: write a keras-hub preset directory instead of a SavedModel "
                        "(keras_hub.models.TextClassifier.from_preset(DIR) loads it; zoo train --preset DIR "
                        "fine-tunes from it)")
    p.set_defaults(fn=run_export, func=run_export)  # zoo.cli calls args.fn(args)
    return p


def run_export(args) -> int:
    from export import describe_export, export_saved_model
    from serving.config import MODELS_CONFIG
    from zoo.training.config import parse_value

    if args.keras_hub_preset:
        from zoo.training.presets import save_preset

        path = save_preset(args.run_dir, args.keras_hub_preset, which=args.checkpoint)
        print(f"Wrote keras-hub preset {path} (fine-tune from it: zoo train MODEL --preset {path})")
        return 0

    resolve_version(args.target_serving_version, warn=False)  # a bad version: one line, before any work
    print(f"exporting {args.run_dir}: writing the SavedModel"
          + (", then verifying it in a fresh process ..." if not args.no_verify else " ..."), file=sys.stderr, flush=True)
    path = export_saved_model(
        args.run_dir, args.base_path, args.model_name, args.version, overwrite=args.overwrite,
        verify=not args.no_verify, checkpoint=args.checkpoint, num_examples=args.num_examples,
        version_policy=args.version_policy, serving_base_path=args.serving_base_path,
        fold_batch_norm=not args.no_fold_batch_norm, task_options=_task_options(args.set or [], parse_value),
        target_serving_version=args.target_serving_version,
    )
    info = describe_export(path)
    print(f"Exported {info['model_name']} version {info['version']} to {path}"
          f"{'' if not args.no_verify else ' (NOT verified: --no-verify)'}")
    print(f"Signatures: {', '.join(info['signatures'])}")
    print(f"Serve it:   zoo serve {args.base_path}   (TF Serving: tensorflow_model_server "
          f"--model_config_file={pathlib.Path(args.base_path).resolve() / MODELS_CONFIG})")
    return 0


def _task_options(pairs, parse_value) -> dict:
    options = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set takes key=value, got {pair!r} (e.g. --set max_image_pixels=20000000).")
        options[key.strip()] = parse_value(text.strip())
    return options
