"""`load_dataset`: a cached, shuffled, batched, prefetched tf.data pipeline."""

from __future__ import annotations

import dataclasses
import difflib
import functools

import numpy as np
import tensorflow as tf

from zoo.data import offline, synthetic_text, tfds_source, tokenizer as tokenizers
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
    sequence_length: int | None = None,
    vocabulary=None,
):
    """Loads `split` of dataset `name` as batches of `({"image": float32}, label)`,
    or `({"token_ids": int32 [B, T]}, label)` for a text set.

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
        sequence_length: text sets: tokens per example (padded or cut); default 32
            for synthetic_topics, 128 for TFDS sets.
        vocabulary: text sets: the tokenizer's words (a list or a vocab.txt path);
            default: computed from the set's training split (`text_vocabulary`).

    Example:
        >>> import zoo
        >>> ds, info = zoo.load_dataset("digits", "train", batch_size=32, with_info=True)
        >>> info.num_classes
        10
    """
    _check(name, split, batch_size, image_size)
    if shuffle is None:
        shuffle = split.startswith("train")

    if name == synthetic_text.NAME:
        info = synthetic_text.info()
        texts, labels = synthetic_text.arrays(split)
        ds = tf.data.Dataset.from_tensor_slices((texts.astype(str), labels))
        n = len(labels)
    elif name in offline.NAMES:
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

    if info.task == "text_classification":
        ds, info = _tokenize(ds, info, name, data_dir, download, sequence_length, vocabulary)
    elif image_size is not None:
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
    if info.task == "text_classification":
        ds = ds.map(lambda x, y: ({"token_ids": x}, tf.cast(y, tf.int64)), num_parallel_calls=AUTOTUNE)
    else:
        # Cast a whole batch at once: one vectorized op instead of one per example.
        ds = ds.map(
            lambda x, y: ({"image": tf.cast(x, tf.float32)}, tf.cast(y, tf.int64)),
            num_parallel_calls=AUTOTUNE,
        )
    ds = ds.prefetch(AUTOTUNE)
    return (ds, info) if with_info else ds


def _raw_text(name, split, data_dir=None, download=True) -> tf.data.Dataset:
    """(text, label) examples of a text set, untokenized."""
    if name == synthetic_text.NAME:
        texts, labels = synthetic_text.arrays(split)
        return tf.data.Dataset.from_tensor_slices((texts.astype(str), labels))
    b = tfds_source.builder(name, data_dir=data_dir, download=download)
    return b.as_dataset(split=split, as_supervised=True, shuffle_files=False)


@functools.lru_cache(maxsize=16)
def text_vocabulary(name: str, data_dir: str | None = None, download: bool = True,
                    max_tokens: int = 20_000) -> tuple[str, ...]:
    """The tokenizer vocabulary of text set `name`: the most frequent words of its
    training split, so every split of a set (and every run on it) shares one."""
    texts = _raw_text(name, "train", data_dir, download).map(lambda x, y: x)
    return tuple(tokenizers.compute_vocabulary(texts, max_tokens))


def _tokenize(ds, info, name, data_dir, download, sequence_length, vocabulary):
    if sequence_length is None:
        sequence_length = 32 if name == synthetic_text.NAME else 128
    if vocabulary is None:
        vocabulary = text_vocabulary(name, data_dir, download)
    elif isinstance(vocabulary, str) or hasattr(vocabulary, "read_text"):
        vocabulary = tokenizers.read_vocabulary(vocabulary)
    tokenizer = tokenizers.make_tokenizer(vocabulary, sequence_length)
    # Tokenized once per example, before the cache: later epochs read ids from memory.
    ds = ds.map(lambda x, y: (tf.cast(tokenizer(x[tf.newaxis])[0], tf.int32), y), num_parallel_calls=AUTOTUNE)
    info = dataclasses.replace(info, input_shape=(sequence_length,), vocabulary=tuple(vocabulary))
    return ds, info


def text_examples(name: str, split: str = "train", count: int = 4, data_dir: str | None = None,
                  download: bool = True) -> np.ndarray:
    """The first `count` raw texts of a text set (object array of bytes), e.g. for warm-up."""
    ds = _raw_text(name, split, data_dir, download).map(lambda x, y: x).take(count)
    return np.array(list(ds.as_numpy_iterator()), dtype=object)


def dataset_info(name: str, data_dir: str | None = None, download: bool = True) -> DatasetInfo:
    """Metadata of dataset `name` without building a pipeline."""
    if name == synthetic_text.NAME:
        return synthetic_text.info()
    if name in offline.NAMES:
        return offline.info(name)
    return tfds_source.info(tfds_source.builder(name, data_dir, download), name)


def list_datasets() -> dict[str, str]:
    """Offline datasets and the TFDS names the zoo is tested with."""
    out = {n: "offline" for n in offline.NAMES + (synthetic_text.NAME,)}
    out.update({n: "tfds" for n in ("mnist", "fashion_mnist", "cifar10", "imdb_reviews", "ag_news_subset")})
    return out
