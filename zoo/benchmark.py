"""Throughput of training and of the input pipeline that feeds it, measured the same way.

Both numbers are samples per second over a fixed number of steps after a warm-up
(the first call traces and compiles), so their ratio says whether `fit` ever waits
on input.
"""

from __future__ import annotations

import time

import keras

from zoo import registry, tasks
from zoo.data.pipeline import load_dataset
from zoo.training import strategy as strategies
from zoo.training.optimizers import fuse_updates
from zoo.training.precision import dtype_policy


class _StepTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.start


def pipeline_throughput(dataset: str = "synthetic_shapes", batch_size: int = 64, batches: int = 400) -> float:
    """Samples/s the cached, prefetched pipeline delivers (after its first pass fills the cache)."""
    ds = load_dataset(dataset, "train", batch_size=batch_size, drop_remainder=True).repeat()
    it = iter(ds)
    for _ in range(20):
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch_size / (time.perf_counter() - start)


def training_throughput(
    model: str, dataset: str = "synthetic_shapes", batch_size: int = 64, steps: int = 200,
    optimizer: str = "sgd", learning_rate: float = 0.01, steps_per_execution: int = 8,
    repeats: int = 3, model_kwargs: dict | None = None, mixed_precision: str = "auto", jit_compile: str = "auto",
    data_options: dict | None = None,
) -> float:
    """Samples/s of `fit` on `dataset`, compiled as `zoo.train` compiles (best of `repeats`),
    in the precision `zoo.train` would pick for `mixed_precision` (zoo.training.precision).
    `data_options` are `load_dataset` options over the model's own (e.g. a text model's
    `vocabulary`; its size then sets vocabulary_size, as in zoo.train)."""
    ds, info = load_dataset(dataset, "train", batch_size=batch_size, drop_remainder=True, with_info=True,
                            **dict(registry.data_options(model, model_kwargs), **(data_options or {})))
    spec = registry.get_model_spec(model)
    task = tasks.get_task(spec.task)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype_policy(mixed_precision))
    try:
        net = registry.build_model(model, compiled=False, **dict(model_kwargs or {}, **task.builder_arguments(info)))
    finally:
        keras.config.set_dtype_policy(previous)
    opt = fuse_updates(keras.optimizers.SGD(learning_rate, momentum=0.9) if optimizer == "sgd"
                       else keras.optimizers.Adam(learning_rate))
    net.compile(optimizer=opt, loss=task.loss(), metrics=task.metrics(),
                jit_compile=strategies.use_xla(jit_compile), steps_per_execution=steps_per_execution)
    timer = _StepTimer()
    for _ in ds:  # fills the cache: a warm-up of `steps` may be shorter than an epoch
        pass
    # Epoch 1 traces; the later epochs are the measurement.
    net.fit(ds.repeat(), steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    best = 0.0
    for _ in range(repeats):
        net.fit(ds.repeat(), steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[timer], shuffle=False)
        best = max(best, steps * batch_size / timer.seconds)
    return best


def benchmark_training(model: str, dataset: str = "synthetic_shapes", batch_size: int = 64, steps: int = 200) -> dict:
    """`zoo bench`: training and pipeline samples/s, and their ratio."""
    train = training_throughput(model, dataset, batch_size, steps)
    pipe = pipeline_throughput(dataset, batch_size)
    return {"model": model, "dataset": dataset, "batch_size": batch_size,
            "train_samples_per_s": round(train, 1), "pipeline_samples_per_s": round(pipe, 1),
            "pipeline_over_training": round(pipe / train, 2)}
