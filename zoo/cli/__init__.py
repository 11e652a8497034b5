"""`zoo`: the command line. It parses arguments and calls the Python API, nothing more.

This package is the only one that imports all three of `zoo` (models, data, tasks,
training), `export` and `serving`; its modules import them inside the commands, so
`zoo --help` answers without importing TensorFlow.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import json
import logging
import os
import sys

from zoo.cli import export_command, serve_command

EXAMPLES = {
    "list": "zoo list\n  zoo list --task image_classification --json",
    "info": "zoo info simple_cnn\n  zoo info runs/simple_cnn-digits\n  zoo info models/digits        (an export: its newest version)",
    "train": (
        "zoo train simple_cnn --dataset digits --epochs 15\n"
        "  zoo train resnet20 --dataset cifar10 --epochs 30 --set optimizer=sgd --set learning_rate=0.1\n"
        "  zoo train mlp --dataset mnist --set hidden_units=512,256 --out runs/mlp-wide"
    ),
    "evaluate": "zoo evaluate runs/simple_cnn-digits --split test",
    "datasets": "zoo datasets\n  zoo datasets --task text_classification --json",
    "bench": "zoo bench simple_cnn --dataset synthetic_shapes --batch-size 64",
    "demo": "zoo demo --out /tmp/zoo-demo",
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Examples kept as written, and every option's default shown."""


def _parser_with_example(sub, name, help_text):
    return sub.add_parser(
        name, help=help_text, description=help_text,
        epilog=f"example:\n  {EXAMPLES[name]}", formatter_class=HelpFormatter,
    )


def _cmd_list(args):
    from zoo import registry

    rows = []
    names = registry.list_models(args.task)
    progress(f"building {len(names)} models to count their parameters ...")
    for name in names:
        spec = registry.get_model_spec(name)
        rows.append({
            "name": name, "task": spec.task,
            "parameters": registry.build_model(name, compiled=False).count_params(),
            "default_dataset": spec.default_dataset, "summary": spec.summary,
        })
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    _table(("name", "task", "parameters", "default dataset"),
           [(r["name"], r["task"], f"{r['parameters']:,}", r["default_dataset"]) for r in rows], right=(2,))
    return 0


def progress(line: str) -> None:
    """One line on stderr before work that takes seconds, so a command is never silent."""
    print(line, file=sys.stderr, flush=True)


def _table(header, rows, right=()) -> None:
    table = [header] + rows
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("  ".join(c.rjust(w) if j in right else c.ljust(w) for j, (c, w) in enumerate(zip(row, widths))).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def _cmd_datasets(args):
    from zoo.data import registry

    rows = []
    for name in registry.list_datasets(args.task):
        dataset = registry.get_dataset(name)
        row = {"name": name, "task": dataset.task, "source": dataset.source, "offline": dataset.offline, "splits": None,
               "examples": None, "about": dataset.description}
        if dataset.offline:  # a TFDS set's splits are known once it is downloaded
            info = dataset.info()
            row.update(splits=info.num_examples, examples=sum(v or 0 for v in info.num_examples.values()))
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    _table(("name", "task", "source", "splits (examples)", "about"), [
        (r["name"], r["task"], r["source"],
         ", ".join(f"{k} {v:,}" for k, v in r["splits"].items()) if r["splits"] else "when downloaded",
         r["about"]) for r in rows])
    print("\nAny other TFDS name loads too (from --data-dir, or downloaded when reachable).")
    return 0


def _cmd_info(args):
    if os.path.isdir(args.target):
        from export import describe_export, format_export, is_export

        if is_export(args.target):
            info = describe_export(args.target)
            print(json.dumps(info, indent=2, default=str) if args.json else format_export(info))
            return 0
        from zoo.training import load_run

        model, config, info = load_run(args.target)
        if not args.json:
            model.summary()
        print(json.dumps({"config": config.to_json(), "dataset": info}, indent=2))
        return 0
    import inspect

    from zoo import registry

    spec = registry.get_model_spec(args.target)
    model = registry.build_model(args.target, compiled=False)
    if args.json:
        print(json.dumps({"name": spec.name, "task": spec.task, "default_dataset": spec.default_dataset,
                          "parameters": model.count_params(), "arguments": spec.defaults}, indent=2, default=str))
        return 0
    print(f"{spec.name} ({spec.task}; default dataset {spec.default_dataset})\n")
    print(inspect.getdoc(spec.builder), "\n")
    model.summary()
    # What `zoo train --set` takes for this model; the data sets some of them itself.
    from zoo import tasks

    decided = set(tasks.get_task(spec.task).data_arguments)
    print(f"\n`zoo train {spec.name} --set KEY=VALUE` keys (default):")
    for key, value in spec.defaults.items():
        print(f"  {key}={value!r}" + ("   (set from the dataset)" if key in decided else ""))
    from zoo.training.config import TrainConfig

    options = [f"{f.name}={f.default!r}" for f in dataclasses.fields(TrainConfig)
               if f.name not in ("model", "dataset", "task", "model_kwargs") and f.default is not dataclasses.MISSING]
    print("and the training options:\n  " + "\n  ".join(options))
    return 0


def _cmd_train(args):
    from zoo import registry
    from zoo.training import train
    from zoo.training.config import TrainConfig, apply_overrides

    spec = registry.get_model_spec(args.model)
    config = TrainConfig(
        model=args.model, dataset=args.dataset or spec.default_dataset, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate, data_dir=args.data_dir,
        init_from=args.init_from, frozen_epochs=args.frozen_epochs,
    )
    config = apply_overrides(config, args.set or [], spec.defaults)
    if args.preset:
        if "preset" not in spec.defaults:
            raise ValueError(f"{args.model} does not start from a keras-hub preset; BERT models do "
                             f"({', '.join(n for n in registry.list_models() if 'preset' in registry.get_model_spec(n).defaults)}).")
        config = dataclasses.replace(config, model_kwargs=dict(config.model_kwargs, preset=args.preset))
    fields = dataclasses.asdict(config)
    for key in ("model", "dataset", "task"):
        fields.pop(key)
    run_dir = train(args.model, config.dataset, out_dir=args.out, overwrite=args.overwrite, restart=args.restart,
                    **fields)
    print(f"run directory: {run_dir}")
    metrics = run_dir / "metrics.json"
    if metrics.exists():
        print(f"test metrics: {metrics.read_text().strip()}")
    return 0


def _cmd_evaluate(args):
    from zoo.training import evaluate

    print(json.dumps(evaluate(args.run_dir, split=args.split, which=args.checkpoint), indent=2))
    return 0


def _cmd_bench(args):
    from zoo.benchmark import benchmark_training

    progress(f"measuring {args.model} on {args.dataset}: fit and the input pipeline, {args.steps} steps each ...")
    result = benchmark_training(args.model, args.dataset, batch_size=args.batch_size, steps=args.steps)
    print(json.dumps(result, indent=2))
    return 0


def _cmd_demo(args):
    from zoo.cli.demo import run_demo

    return run_demo(args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoo", description="Keras model zoo: train, export for TF Serving, serve, query.",
        epilog="run `zoo COMMAND --help` for each command's options and an example",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the zoo does")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = _parser_with_example(sub, "list", "list the registered models")
    p.add_argument("--task", help="only models of this task")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(fn=_cmd_list)

    p = _parser_with_example(sub, "info", "describe a model, a run directory or an export")
    p.add_argument("target", help="a model name, a run directory, or an export (model or version folder)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a summary")
    p.set_defaults(fn=_cmd_info)

    p = _parser_with_example(sub, "train", "train a model with fit and write a run directory")
    p.add_argument("model", help="a registered model (see `zoo list`)")
    p.add_argument("--dataset", help="offline (digits, synthetic_shapes) or TFDS name; default: the model's")
    p.add_argument("--epochs", type=int, default=10, help="passes over the training split")
    p.add_argument("--batch-size", type=int, default=64, help="examples per step")
    p.add_argument("--learning-rate", type=float, default=1e-3, help="the optimizer's learning rate")
    p.add_argument("--data-dir", help="TFDS data dir")
    p.add_argument("--out", help="run directory (default runs/MODEL-DATASET); an unfinished run there resumes")
    p.add_argument("--overwrite", action="store_true", help="delete a finished run in --out first")
    p.add_argument("--restart", action="store_true",
                   help="start the unfinished run in --out over instead of resuming it (e.g. its backup is damaged)")
    p.add_argument("--init-from", metavar="RUN_DIR",
                   help="fine-tune: start from this finished run's weights (where shapes match; the head is "
                        "rebuilt when the classes differ)")
    p.add_argument("--frozen-epochs", type=int, default=0, metavar="N",
                   help="with --init-from: train only the head for the first N epochs")
    p.add_argument("--preset", metavar="DIR",
                   help="BERT models: start from this keras-hub preset directory (its weights and vocabulary; "
                        "same as --set preset=DIR)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a training option (optimizer, seed, early_stopping_patience, image_size, ...) "
                        "or a model argument (e.g. dropout=0.3); repeatable")
    p.set_defaults(fn=_cmd_train)

    p = _parser_with_example(sub, "evaluate", "evaluate a finished run")
    p.add_argument("run_dir")
    p.add_argument("--split", default="test", help="the split to evaluate on")
    p.add_argument("--checkpoint", choices=("model", "best"), default="model",
                   help="the final model or the best by validation loss")
    p.set_defaults(fn=_cmd_evaluate)

    p = _parser_with_example(sub, "bench", "measure training and input-pipeline throughput")
    p.add_argument("model")
    p.add_argument("--dataset", default="synthetic_shapes")
    p.add_argument("--batch-size", type=int, default=64, help="examples per step")
    p.add_argument("--steps", type=int, default=200, help="steps measured")
    p.set_defaults(fn=_cmd_bench)

    p = _parser_with_example(sub, "demo", "train, evaluate, export, serve and query a model end to end")
    p.add_argument("--out", default="zoo-demo", help="folder for the run and the exported models")
    p.set_defaults(fn=_cmd_demo)

    p = _parser_with_example(sub, "datasets", "list the registered datasets (any TFDS name also loads)")
    p.add_argument("--task", help="only datasets of this task")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(fn=_cmd_datasets)

    export_command.add_parser(sub)
    serve_command.add_parsers(sub)
    return parser


@contextlib.contextmanager
def _native_stderr_silenced():
    """TensorFlow's C++ start-up lines (oneDNN, "Could not find cuda drivers", "failed
    call to cuInit" on a CPU machine) go to file descriptor 2 before absl logging is set
    up, past TF_CPP_MIN_LOG_LEVEL: while TensorFlow starts, fd 2 goes to /dev/null."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _start_tensorflow_quietly():
    with _native_stderr_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # CUDA's start-up message comes here, not mid-command


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        _start_tensorflow_quietly()  # --verbose shows TensorFlow's own start-up lines
    try:
        return args.fn(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        # One clear line, not a traceback (-v shows it): exit 2 for bad input, 1 for a
        # failure. Anything else is a bug, and its traceback is what a report needs.
        code = exit_code(e)
        if code is None or args.verbose:
            raise
        print(f"zoo {args.command}: error: {_describe(e)}", file=sys.stderr)
        return code


BAD_INPUT, FAILURE = 2, 1
_DISK_FIXES = {
    errno.ENOSPC: "free some space or write somewhere else (--out, --base-path)",
    errno.EDQUOT: "free some space or write somewhere else (--out, --base-path)",
    errno.EACCES: "choose a folder you can write to (--out, --base-path)",
    errno.EPERM: "choose a folder you can write to (--out, --base-path)",
    errno.EROFS: "the file system is read-only: choose another folder (--out, --base-path)",
}


def exit_code(error: BaseException) -> int | None:
    """The exit status for an error a user can act on; None for a bug.

    An exception class may say for itself (`exit_code = 1` on a failed export
    verification, `exit_code = 2` on a run directory that holds another run).
    """
    explicit = getattr(error, "exit_code", None)
    if isinstance(explicit, int):
        return explicit
    if isinstance(error, (ValueError, TypeError, FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        return BAD_INPUT
    if isinstance(error, (RuntimeError, OSError)):
        return FAILURE
    from serving.errors import ServingError

    if isinstance(error, ServingError):
        return FAILURE
    return None


def _describe(error: BaseException) -> str:
    if isinstance(error, OSError) and not isinstance(error, FileNotFoundError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        fix = _DISK_FIXES.get(error.errno)
        return f"{error.strerror}{where}" + (f"; {fix}" if fix else "")
    return str(error)


if __name__ == "__main__":
    sys.exit(main())
