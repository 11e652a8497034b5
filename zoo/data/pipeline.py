"""`load_dataset`: a cached, shuffled, batched, prefetched tf.data pipeline.

A registered source yields raw `(input, label)` examples; the dataset's task turns
them into model features (resize, tokenize, ...) before the cache, and into named
batches after it. Nothing here knows which task it is feeding.
"""

from __future__ import annotations

import tensorflow as tf

from zoo import tasks
from zoo.data import registry
from zoo.data.info import DatasetInfo

AUTOTUNE = tf.data.AUTOTUNE


def _check(split, batch_size):
    if not isinstance(split, str) or not split:
        raise ValueError(f"split must be a string such as 'train' or 'test', got {split!r}.")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")


def task_options(task, name: str, options: dict) -> dict:
    """The options a dataset's task understands; a clear error for any other."""
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(task.data_options))
    if unknown:
        known = ", ".join(task.data_options) or "none"
        raise ValueError(f"{', '.join(unknown)} {'is not an option' if len(unknown) == 1 else 'are not options'} "
                         f"of {name!r}, a {task.name} dataset; its options: {known}.")
    return given


def load_dataset(
    name: str,
    split: str = "train",
    batch_size: int = 64,
    *,
    shuffle: bool | None = None,
    data_dir: str | None = None,
    download: bool = True,
    cache: bool = True,
    seed: int = 0,
    drop_remainder: bool = False,
    with_info: bool = False,
    **options,
):
    """Loads `split` of dataset `name` as batches of `(features, labels)`.

    Features are a dict keyed by the task's model inputs: `{"image": float32 [B,H,W,C]}`
    (0-255; the models scale them) for images, `{"token_ids": int32 [B, T]}` for text.
    Registered sets (`zoo datasets`) include offline ones that need no network; any
    TFDS name loads from the TFDS data dir, or is downloaded when reachable.

    Args:
        name: a registered dataset or a TFDS name.
        split: "train", "validation", "test" or a TFDS split such as "train[:90%]".
        batch_size: examples per batch.
        shuffle: shuffle each epoch; default True for splits starting with "train".
        data_dir: TFDS data dir.
        download: allow a TFDS download when the data is not in the data dir.
        cache: cache preprocessed examples in memory after the first epoch.
        seed: shuffle seed.
        drop_remainder: drop the last partial batch.
        with_info: also return the `DatasetInfo`.
        **options: the task's data options: image sets take `image_size=(height, width)`;
            text sets `sequence_length` (tokens per example) and `vocabulary` (a list of
            words or a vocab.txt path; default: from the set's training split).

    Example:
        >>> import zoo
        >>> ds, info = zoo.load_dataset("digits", "train", batch_size=32, with_info=True)
        >>> info.num_classes
        10
    """
    _check(split, batch_size)
    if shuffle is None:
        shuffle = split.startswith("train")
    source = registry.get_dataset(name)
    info = source.info(data_dir, download)
    task = tasks.get_task(info.task)
    options = dict(source.options, **task_options(task, name, options))
    ds = source.examples(split, data_dir=data_dir, download=download, shuffle_files=shuffle)
    # Per example, before the cache: later epochs read preprocessed examples from memory.
    ds, info = task.prepare_examples(ds, info, data_dir=data_dir, download=download, **options)
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(info.num_examples.get(split) or 10_000, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    # Per batch: one vectorized cast instead of one per example.
    ds = ds.map(task.batch_features, num_parallel_calls=AUTOTUNE)
    ds = ds.prefetch(AUTOTUNE)
    return (ds, info) if with_info else ds


def dataset_info(name: str, data_dir: str | None = None, download: bool = True) -> DatasetInfo:
    """Metadata of dataset `name` without building a pipeline."""
    return registry.get_dataset(name).info(data_dir, download)
