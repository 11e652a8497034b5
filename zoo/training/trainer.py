"""`train` and `evaluate`: compile + fit with the task's loss, callbacks and a run directory.

A run directory holds everything needed to resume, evaluate and export a run:

    config.json    the resolved TrainConfig (what `zoo train` would need to redo it)
    dataset.json   the dataset's metadata: task, classes, label names, input shape
    vocab.txt      (and other files a task needs, such as a text run's vocabulary)
    model.keras    the trained model
    best.keras     the best model by validation loss (written atomically)
    history.json   loss and metrics per epoch; history.csv the same, appended as it goes
    curves.png     those curves, plotted
    metrics.json   test metrics of the final model
    logs/          TensorBoard logs
    backup/        BackupAndRestore state while a run is unfinished
"""

from __future__ import annotations

import csv
import json
import logging
import os
import pathlib
import shutil
import sys
import time

import keras
import tensorflow as tf

from zoo import registry, tasks
from zoo.data.pipeline import dataset_info, load_dataset
from zoo.data.registry import list_datasets
from zoo.data.user_data import in_memory_dataset
from zoo.stale_files import remove_stale
from zoo.training import strategy as strategies
from zoo.training.callbacks import AtomicBestCheckpoint, check_backup
from zoo.training.fine_tune import freeze_all_but_head, initialize_from
from zoo.training.multi_worker import fit_multi_worker
from zoo.training.optimizers import fuse_updates
from zoo.training.precision import dtype_policy
from zoo.training.config import TrainConfig
from zoo.training.plots import plot_history

log = logging.getLogger(__name__)


class RunDirError(RuntimeError):
    """The run directory holds something that this run must not overwrite."""

    exit_code = 2  # the command line's exit status: bad input (choose --out or --overwrite)


def default_run_dir(model: str, dataset: str) -> pathlib.Path:
    return pathlib.Path("runs") / f"{model}-{dataset.replace('/', '_')}"


def _write_json(path: pathlib.Path, data) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _splits(info) -> tuple[str, str | None, str | None]:
    """(train, validation, test) split names for a dataset."""
    available = set(info.num_examples)
    test = "test" if "test" in available else None
    if "validation" in available:
        return "train", "validation", test or "validation"
    if info.source == "memory":  # a tf.data.Dataset given without validation data
        return "train", None, test
    # TFDS sets without a validation split: hold out the last 10% of train.
    return "train[:90%]", "train[90%:]", test or "train[90%:]"


def _learning_rate(config: TrainConfig, steps: int | None):
    """The learning rate, or its schedule over `steps` optimizer steps (None: unknown)."""
    if config.lr_schedule == "constant":
        return config.learning_rate
    if not steps:
        log.warning("lr_schedule=%s needs the number of steps, which this dataset does not know; "
                    "training at a constant learning rate", config.lr_schedule)
        return config.learning_rate
    warmup = int(steps * config.warmup_share)
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else config.learning_rate, decay_steps=max(1, steps - warmup),
        warmup_target=config.learning_rate if warmup else None, warmup_steps=warmup)


def _optimizer(config: TrainConfig, steps: int | None = None):
    rate = _learning_rate(config, steps)
    if config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(rate, momentum=config.momentum)
    elif config.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(rate, weight_decay=config.weight_decay)
    else:
        optimizer = keras.optimizers.Adam(rate)
    return fuse_updates(optimizer)


def _prepare_run_dir(run_dir: pathlib.Path, config: TrainConfig, overwrite: bool, restart: bool = False) -> bool:
    """Creates or checks `run_dir`; returns True when an unfinished run will resume."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"Run directory {run_dir} is a file; pass --out to a directory.")
    backup = run_dir / "backup"
    saved = run_dir / "config.json"
    if restart and (run_dir / "model.keras").exists() and not backup.exists():
        raise RunDirError(f"{run_dir} holds a finished run; --restart starts an unfinished one over. "
                          f"Pass --overwrite to train it again.")
    if (overwrite or restart) and run_dir.exists():
        shutil.rmtree(run_dir)
    elif saved.exists():
        previous = json.loads(saved.read_text())
        previous.setdefault("task", config.task)  # runs from before config.json recorded the task
        previous.setdefault("init_from", None)  # and before fine-tuning
        previous.setdefault("frozen_epochs", 0)
        if previous != config.to_json():
            changed = sorted(k for k in set(previous) | set(config.to_json())
                             if previous.get(k) != config.to_json().get(k))
            raise RunDirError(
                f"{run_dir} holds a run with a different configuration (differs in: "
                f"{', '.join(changed)}). Resume it with the same options, or pass another "
                f"--out, or --overwrite to start over."
            )
        if (run_dir / "model.keras").exists() and not backup.exists():
            raise RunDirError(
                f"{run_dir} already holds a finished run (model.keras). Evaluate or export "
                f"it, or pass another --out, or --overwrite to train again."
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    return backup.exists()


def _read_csv_history(path: pathlib.Path) -> dict:
    """history.csv as {metric: [per epoch]}; the last row wins for a repeated epoch
    (a run killed after logging an epoch but before backing it up redoes it)."""
    rows = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            rows[int(row["epoch"])] = row
    history = {"epoch": sorted(rows)}
    for key in next(iter(rows.values()), {}):
        if key != "epoch":
            history[key] = [float(rows[e][key]) for e in history["epoch"]]
    return history


def train(
    model: str,
    data=None,
    *,
    validation_data=None,
    label_names=None,
    dataset: str | None = None,
    out_dir: str | os.PathLike | None = None,
    epochs: int = 10,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    overwrite: bool = False,
    restart: bool = False,
    strategy: str | tf.distribute.Strategy = "auto",
    verbose: str | int = "auto",
    callbacks: list | None = None,
    model_kwargs: dict | None = None,
    **options,
) -> pathlib.Path:
    """Trains registered model `model` on `data` with `fit`; returns the run dir.

    An unfinished run in `out_dir` (same configuration) resumes from its backup.

    Args:
        model: a registered model name (`zoo.list_models()`).
        data: a dataset name (registered, offline or TFDS; default: the model's
            default), or your own data: `(x, y)` arrays (raw inputs as the task
            takes them, e.g. images [N,H,W,C] 0-255 or texts [N], and integer labels
            [N]), or a `tf.data.Dataset` of `(input, label)` pairs, batched or not.
            Your own data gets everything a named set gets (run directory, resume,
            curves, metrics, the text tokenizer); see `zoo.data.user_data`.
        validation_data: with your own data: the same for validation (default: 10%
            of arrays held out; none for a tf.data.Dataset). Its metrics are the
            run's test metrics.
        label_names: with your own data: class names (default "0", "1", ...).
        dataset: the old name of `data`, for a dataset name.
        out_dir: run directory; default runs/<model>-<dataset>.
        epochs, batch_size, learning_rate: as in Keras.
        overwrite: delete an existing run in `out_dir` first.
        restart: start the unfinished run in `out_dir` over, from scratch (a damaged
            backup is reported, never silently restarted).
        strategy: "auto", "default", "mirrored", "multi_worker", or a
            `tf.distribute.Strategy` instance.
        verbose: Keras' fit verbosity.
        callbacks: extra Keras callbacks.
        model_kwargs: builder arguments (num_classes and input_shape, or for text
            vocabulary_size, come from the data; a text model's sequence_length also
            sets the pipeline's).
        **options: other `TrainConfig` fields (optimizer, seed, early_stopping_patience, ...),
            among them fine-tuning's `init_from` (a finished run whose weights this run
            starts from, where shapes match; the head is rebuilt when the classes
            differ) and `frozen_epochs` (epochs that train only the head first).

    Example:
        >>> import zoo
        >>> run_dir = zoo.train("simple_cnn", "digits", epochs=2, out_dir="/tmp/run")
        >>> run_dir = zoo.train("simple_cnn", (x, y), label_names=["cat", "dog"], epochs=2)
    """
    spec = registry.get_model_spec(model)
    if dataset is not None:
        if data is not None:
            raise TypeError("train() takes the data once: pass `data` or `dataset=`, not both.")
        data = dataset
    if data is None:
        data = spec.default_dataset
    if isinstance(data, str):
        if validation_data is not None or label_names is not None:
            raise TypeError(f"validation_data and label_names go with your own data; the dataset {data!r} "
                            "has its own splits and label names.")
        dataset = data
    else:
        dataset = in_memory_dataset(spec.task, data, validation_data, label_names, seed=options.get("seed", 0))
    strategy_name = strategy if isinstance(strategy, str) else "auto"
    if options.get("init_from") is not None:
        options["init_from"] = str(pathlib.Path(options["init_from"]).resolve())
    unknown = set(options) - set(TrainConfig.__dataclass_fields__)
    derived = {"model", "dataset", "task"}  # arguments of their own, or from the model
    if unknown or derived & set(options):
        raise TypeError(
            f"train() got unknown options {sorted(unknown | (derived & set(options)))}; known: "
            f"{sorted(set(TrainConfig.__dataclass_fields__) - derived)}."
        )
    config = TrainConfig(
        model=model, dataset=dataset, task=spec.task, epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, strategy=strategy_name,
        model_kwargs=dict(model_kwargs or {}), **options,
    ).validated()
    registry.check_model_kwargs(model, config.model_kwargs)
    # First TF work of the run: MultiWorkerMirroredStrategy must configure collectives
    # before the runtime initializes.
    dist = strategy if isinstance(strategy, tf.distribute.Strategy) else strategies.choose_strategy(config.strategy)
    run_dir = pathlib.Path(out_dir) if out_dir else default_run_dir(model, dataset)
    worker = strategies.non_chief_worker_index()
    if worker is not None:
        # Only the chief writes the run directory; each other worker keeps its own
        # backup and logs beside it, as tf.distribute's multi-worker guide does.
        run_dir = run_dir / "workers" / str(worker)
    fresh = not run_dir.exists() or overwrite or restart
    resuming = _prepare_run_dir(run_dir, config, overwrite, restart)
    if resuming:
        check_backup(run_dir / "backup")
    # Half-written checkpoints of a killed run: the backup is what resumes it.
    remove_stale(run_dir, r"\.(?:best|model)\.tmp(\d+)\.keras")
    try:
        task = tasks.get_task(spec.task)
        info = dataset_info(dataset, data_dir=config.data_dir)
        if info.task != spec.task:
            raise ValueError(f"{model} is a {spec.task} model but {dataset} is a {info.task} dataset; "
                             f"{spec.task} datasets: {', '.join(list_datasets(spec.task))}.")
        train_split, val_split, test_split = _splits(info)
        load = dict(batch_size=config.batch_size, data_dir=config.data_dir, seed=config.seed,
                    image_size=config.image_size, **registry.data_options(model, config.model_kwargs))
        source_model = None
        if config.init_from:
            source_model, source_config, source_info = load_run(config.init_from)
            source_task = source_config.task or source_info.get("task")
            if source_task != spec.task:
                raise ValueError(f"init_from {config.init_from} is a {source_task} run; {model} is a {spec.task} model.")
            # The source's preprocessing (a text run's vocabulary) goes with its weights.
            load.update(task.read_run_assets(pathlib.Path(config.init_from), source_info))
        train_ds, info = load_dataset(dataset, train_split, with_info=True, shuffle=config.shuffle, **load)

        from_data = task.builder_arguments(info)
        for key, value in from_data.items():
            if key in config.model_kwargs and config.model_kwargs[key] != value:
                raise ValueError(f"{key} comes from the dataset ({value}); do not set it.")
        build_kwargs = dict(config.model_kwargs, **from_data)

        _write_json(run_dir / "config.json", config.to_json())
        # What the task needs beyond the model (a text run's vocabulary), written beside it;
        # every later split, evaluation and export reads it back from the run directory.
        dataset_json = dict(info.to_json(), **task.write_run_assets(run_dir, info))
        _write_json(run_dir / "dataset.json", dataset_json)
        load.update(task.read_run_assets(run_dir, dataset_json))
        val_ds = load_dataset(dataset, val_split, **load) if val_split else None

        policy = dtype_policy(config.mixed_precision)
        jit = strategies.use_xla(config.jit_compile)
        log.info("strategy=%s replicas=%d dtype_policy=%s xla=%s", type(dist).__name__,
                 dist.num_replicas_in_sync, policy, jit)
        # What this machine chose, beside what was asked (mixed_precision in config.json).
        _write_json(run_dir / "device.json", {"dtype_policy": policy, "jit_compile": jit,
                                              "strategy": type(dist).__name__,
                                              "replicas": dist.num_replicas_in_sync})

        if isinstance(dist, tf.distribute.MultiWorkerMirroredStrategy):
            fit_fn = fit_multi_worker
        else:
            fit_fn = None
        steps_per_execution = config.steps_per_execution
        if fit_fn is not None and config.frozen_epochs:
            raise ValueError("frozen_epochs is not supported with several workers (TF_CONFIG); train the head "
                             "in a run of its own, then fine-tune from it.")
        if dist.num_replicas_in_sync > 1 and steps_per_execution > 1 and fit_fn is None:
            # Keras 3.15's multi-step loop under MirroredStrategy fails with "You must feed
            # a value for placeholder tensor 'while/.../Placeholder'": one step per call.
            log.warning("steps_per_execution=%d is not supported with %d replicas; using 1",
                        steps_per_execution, dist.num_replicas_in_sync)
            steps_per_execution = 1

        keras.utils.set_random_seed(config.seed)
        batches = int(train_ds.cardinality())
        steps = batches * config.epochs if batches > 0 else None  # for a learning-rate schedule
        previous_policy = keras.config.dtype_policy()
        if policy != "float32":
            keras.config.set_dtype_policy(policy)
        def compile_net():
            with dist.scope():
                net.compile(
                    optimizer=_optimizer(config, steps), loss=task.loss(), metrics=task.metrics(),
                    jit_compile=jit, steps_per_execution=steps_per_execution,
                )

        try:
            with dist.scope():
                net = registry.build_model(model, compiled=False, **build_kwargs)
                task.check_model(net)  # a builder that breaks its task's contract fails here, not at export
            compile_net()
        finally:
            keras.config.set_dtype_policy(previous_policy)
        if source_model is not None:
            report = initialize_from(net, source_model)
            _write_json(run_dir / "init_from.json", {"run_dir": config.init_from, **report})
            log.info("Initialized from %s: %d layers copied, %s rebuilt", config.init_from, len(report["copied"]),
                     ", ".join(report["skipped"]) or "none")

        monitor = "val_loss" if val_ds is not None else "loss"
        csv_logger = keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=resuming)
        cbs = [
            keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
            csv_logger,
            AtomicBestCheckpoint(run_dir / "best.keras", monitor=monitor),
            keras.callbacks.TensorBoard(str(run_dir / "logs"), profile_batch=0),
        ]
        if config.early_stopping_patience:
            cbs.append(keras.callbacks.EarlyStopping(
                monitor=monitor, patience=config.early_stopping_patience, restore_best_weights=True))
        cbs += list(callbacks or [])
        if resuming:
            log.info("Resuming the unfinished run in %s from its backup", run_dir)

        if verbose == "auto":
            verbose = 1 if sys.stdout.isatty() else 2
    except BaseException:
        # A run that fails before its first step leaves nothing behind (an unknown
        # dataset, a bad option): the next attempt starts clean, not "resuming" nothing.
        if fresh:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    start = time.perf_counter()
    if fit_fn is not None:
        fit_fn(net, dist, train_ds, val_ds, config, cbs, verbose, run_dir)
    else:
        initial_epoch = 0
        done = len(_read_csv_history(run_dir / "history.csv")["epoch"]) if resuming and \
            (run_dir / "history.csv").exists() else 0
        if config.frozen_epochs and done < config.frozen_epochs:
            # First the new head alone, on the copied features; then everything.
            freeze_all_but_head(net, True)
            compile_net()
            net.fit(train_ds, validation_data=val_ds, epochs=config.frozen_epochs, callbacks=cbs,
                    verbose=verbose, shuffle=False)
            freeze_all_but_head(net, False)
            compile_net()
            csv_logger.append = True  # the second fit goes on with the same history
        if config.frozen_epochs:
            initial_epoch = config.frozen_epochs
        net.fit(train_ds, validation_data=val_ds, epochs=config.epochs, initial_epoch=initial_epoch,
                callbacks=cbs, verbose=verbose, shuffle=False)  # the pipeline shuffles
    seconds = time.perf_counter() - start

    tmp = run_dir / f".model.tmp{os.getpid()}.keras"
    net.save(tmp)
    os.replace(tmp, run_dir / "model.keras")
    history = _read_csv_history(run_dir / "history.csv")
    _write_json(run_dir / "history.json", history)
    plot_history(history, run_dir / "curves.png", title=f"{model} on {dataset}")
    if test_split:
        if fit_fn is not None:
            # evaluate() under MultiWorkerMirrored hits the same Keras bug as fit();
            # the saved model, outside the strategy, evaluates normally.
            net = keras.saving.load_model(run_dir / "model.keras")
            net.compile(loss=task.loss(), metrics=task.metrics())
        test_ds = load_dataset(dataset, test_split, **load)
        metrics = {k: float(v) for k, v in net.evaluate(test_ds, verbose=0, return_dict=True).items()}
        metrics.update(task.report_metrics(net, test_ds, list(info.label_names)))
        _write_json(run_dir / "metrics.json", {"split": test_split, **metrics,
                                               "train_seconds_this_process": seconds})
        log.info("test %s", metrics)
    return run_dir


def load_run(run_dir: str | os.PathLike, which: str = "model"):
    """(model, TrainConfig, dataset metadata dict) of a finished run."""
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"Run directory {run_dir} does not exist; `zoo train` makes one.")
    path = run_dir / f"{which}.keras"
    if not path.exists():
        raise FileNotFoundError(
            f"{run_dir} has no {path.name}: the run has not finished (resume it with the same "
            f"`zoo train` command) or this is not a run directory."
        )
    config = TrainConfig.from_json(json.loads((run_dir / "config.json").read_text()))
    info = json.loads((run_dir / "dataset.json").read_text())
    # Importing the model families registers their custom layers (PaddingMask, ...), which
    # a fresh process (`zoo export RUN`) must have before the .keras file deserializes.
    registry.list_models()
    return keras.saving.load_model(path), config, info


def evaluate(run_dir: str | os.PathLike, split: str = "test", which: str = "model") -> dict:
    """Evaluates a finished run on `split`; writes and returns eval metrics.

    Example:
        >>> import zoo
        >>> zoo.evaluate("runs/simple_cnn-digits")
        {'accuracy': 0.98, 'loss': 0.06, 'split': 'test'}
    """
    net, config, info = load_run(run_dir, which)
    task = tasks.get_task(info["task"])
    # Preprocess as the run was trained (a text run's vocabulary, say).
    options = task.read_run_assets(pathlib.Path(run_dir), info)
    ds = load_dataset(config.dataset, split, batch_size=config.batch_size,
                      image_size=config.image_size, data_dir=config.data_dir, **options)
    metrics = {k: float(v) for k, v in net.evaluate(ds, verbose=0, return_dict=True).items()}
    metrics.update(task.report_metrics(net, ds, list(info.get("label_names") or ())))
    metrics["split"] = split
    _write_json(pathlib.Path(run_dir) / f"eval-{split.replace('/', '_')}.json", metrics)
    return metrics
