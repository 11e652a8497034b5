"""`load_dataset`: a cached, shuffled, batched, prefetched tf.data pipeline."""

from __future__ import annotations

import dataclasses
import difflib

import tensorflow as tf

from zoo.data import offline, tfds_source
from zoo.data.info import DatasetInfo

AUTOTUNE = tf.data.AUTOTUNE


def _check(name, split, batch_size, image_size):
    if not isinstance(name, str) or not name:
        raise ValueError(f"Dataset name must be a non-empty string, got {name!r}.")
    if not isinstance(split, str) or not split:
        raise ValueError(f"split must be a string such as 'train' or 'test', got {split!r}.")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
    if image_size is not None and (
        len(tuple(image_size)) != 2 or any(not isinstance(d, int) or d < 1 for d in image_size)
    ):
        raise ValueError(f"image_size must be (height, width) of positive ints, got {image_size!r}.")


def load_dataset(
    name: str,
    split: str = "train",
    batch_size: int = 64,
    *,
    shuffle: bool | None = None,
    image_size: tuple[int, int] | None = None,
    data_dir: str | None = None,
    download: bool = True,
    cache: bool = True,
    seed: int = 0,
    drop_remainder: bool = False,
    with_info: bool = False,
):
    """Loads `split` of dataset `name` as batches of `({"image": float32}, label)`.

    Pixels stay 0-255 (the models scale them), labels are int64 class ids. Offline
    datasets (`digits`, `synthetic_shapes`) need no network; any TFDS image
    classification name (`mnist`, `fashion_mnist`, `cifar10`, ...) loads from the
    TFDS data dir, or is downloaded when reachable.

    Args:
        name: an offline dataset or a TFDS name.
        split: "train", "validation", "test" or a TFDS split such as "train[:90%]".
        batch_size: examples per batch.
        shuffle: shuffle each epoch; default True for splits starting with "train".
        image_size: (height, width) to resize to; needed for sets of varying sizes.
        data_dir: TFDS data dir.
        download: allow a TFDS download when the data is not in the data dir.
        cache: cache decoded examples in memory after the first epoch.
        seed: shuffle seed.
        drop_remainder: drop the last partial batch.
        with_info: also return the `DatasetInfo`.

    Example:
        >>> import zoo
        >>> ds, info = zoo.load_dataset("digits", "train", batch_size=32, with_info=True)
        >>> info.num_classes
        10
    """
    _check(name, split, batch_size, image_size)
    if shuffle is None:
        shuffle = split.startswith("train")

    if name in offline.NAMES:
        info = offline.info(name)
        images, labels = offline.arrays(name, split)
        ds = tf.data.Dataset.from_tensor_slices((images, labels))
        n = len(labels)
    else:
        try:
            b = tfds_source.builder(name, data_dir=data_dir, download=download)
        except ValueError as e:
            if "/" not in name and "Unknown dataset" in str(e):
                close = difflib.get_close_matches(name, offline.NAMES, n=1)
                if close:
                    raise ValueError(f"{e} Did you mean {close[0]!r}?") from None
            raise
        info = tfds_source.info(b, name)
        ds = b.as_dataset(split=split, as_supervised=True, shuffle_files=shuffle)
        n = None

    if image_size is not None:
        size = tuple(image_size)
        ds = ds.map(
            lambda x, y: (tf.cast(tf.image.resize(x, size), tf.uint8), y), num_parallel_calls=AUTOTUNE
        )
        info = dataclasses.replace(info, input_shape=size + (info.input_shape[-1],))
    elif any(d is None for d in info.input_shape):
        raise ValueError(
            f"Dataset {name!r} has images of varying size {info.input_shape}; pass "
            f"image_size=(height, width) (CLI: --set image_size=160,160) to resize them."
        )

    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(n or 10_000, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    # Cast a whole batch at once: one vectorized op instead of one per example.
    ds = ds.map(
        lambda x, y: ({"image": tf.cast(x, tf.float32)}, tf.cast(y, tf.int64)),
        num_parallel_calls=AUTOTUNE,
    )
    ds = ds.prefetch(AUTOTUNE)
    return (ds, info) if with_info else ds


def dataset_info(name: str, data_dir: str | None = None, download: bool = True) -> DatasetInfo:
    """Metadata of dataset `name` without building a pipeline."""
    if name in offline.NAMES:
        return offline.info(name)
    return tfds_source.info(tfds_source.builder(name, data_dir, download), name)


def list_datasets() -> dict[str, str]:
    """Offline datasets and the TFDS names the zoo is tested with."""
    out = {n: "offline" for n in offline.NAMES}
    out.update({n: "tfds" for n in ("mnist", "fashion_mnist", "cifar10")})
    return out
