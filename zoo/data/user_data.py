"""A user's own data for `zoo.train`: `(x, y)` arrays or a `tf.data.Dataset`.

The data becomes a dataset like any registered one (an in-memory `ArrayDataset`), so
it goes through the same pipeline, tokenizer, run directory, resume, curves and
metrics as a named set. Its name is a fingerprint of the data (`arrays-<hash>` for
arrays, `dataset-<hash>` for a tf.data.Dataset, hashed from its element spec and
size): training again on the same arrays resumes the same run.

    run_dir = zoo.train("simple_cnn", (x_train, y_train), validation_data=(x_val, y_val),
                        label_names=["zero", "one", ...])
"""

from __future__ import annotations

import hashlib

import numpy as np

from zoo.data.registry import ArrayDataset, add_dataset

# Arrays given without validation data: this share, picked at random (seeded), is held out.
VALIDATION_SHARE = 0.1


def in_memory_dataset(task: str, data, validation_data=None, label_names=None, *, seed: int = 0) -> str:
    """Registers `data` (and `validation_data`) as an in-memory dataset; returns its name.

    Args:
        task: the task of the model that trains on it.
        data: `(x, y)` (numpy arrays or lists: inputs as the task takes them raw, e.g.
            images [N,H,W,C] 0-255 or texts [N]; integer labels [N]), or a
            `tf.data.Dataset` of `(input, label)` pairs, batched or not.
        validation_data: the same for validation. Default: 10% of arrays held out at
            random; none for a tf.data.Dataset.
        label_names: class names, label i is `label_names[i]`; default "0", "1", ...
        seed: the hold-out's seed.

    Raises:
        TypeError, ValueError: data that is not one of these, with what was given.
    """
    import tensorflow as tf

    if isinstance(data, tf.data.Dataset):
        splits = {"train": _unbatched(data, "data")}
        if validation_data is not None:
            splits["validation"] = _as_split(validation_data, "validation_data")
        name = "dataset-" + _digest(*(_key(s) for s in splits.values()))
        labels = None
    else:
        x, y = _arrays(data, "data")
        if validation_data is None:
            order = np.random.default_rng(seed).permutation(len(y))
            held = max(1, int(len(y) * VALIDATION_SHARE))
            val, train = order[:held], order[held:]
            splits = {"train": (x[train], y[train]), "validation": (x[val], y[val])}
        else:
            splits = {"train": (x, y), "validation": _as_split(validation_data, "validation_data")}
        name = "arrays-" + _digest(*(_key(s) for s in splits.values()), repr(seed))
        labels = y
    names = _label_names(label_names, splits, labels)
    add_dataset(ArrayDataset(
        name, task, splits.__getitem__, tuple(splits), names,
        description="data given to zoo.train", offline=False))
    return name


def _arrays(data, what):
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"{what} must be a dataset name, (x, y) arrays or a tf.data.Dataset of (input, label) "
                        f"pairs; got {type(data).__name__}.")
    x, y = (np.asarray(part) for part in data)
    if x.dtype.kind in "US":  # texts: TensorFlow takes them as bytes or str objects
        x = x.astype(object)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError(f"{what}: labels must be a 1-D array of integer class ids; got shape {list(y.shape)} "
                         f"of {y.dtype}.")
    if len(x) != len(y):
        raise ValueError(f"{what}: {len(x)} inputs but {len(y)} labels.")
    if len(y) < 2:
        raise ValueError(f"{what}: {len(y)} example(s); training needs at least 2.")
    if y.min() < 0:
        raise ValueError(f"{what}: label {int(y.min())} is negative; labels are class ids 0..K-1.")
    return x, y


def _as_split(data, what):
    import tensorflow as tf

    return _unbatched(data, what) if isinstance(data, tf.data.Dataset) else _arrays(data, what)


def _unbatched(ds, what):
    spec = ds.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise TypeError(f"{what}: a tf.data.Dataset for zoo.train yields (input, label) pairs; this one yields "
                        f"{spec}.")
    import tensorflow as tf

    # A batched dataset has a label per example along its first axis; the pipeline batches itself.
    if spec[1].shape.rank:
        ds = ds.unbatch()
    if ds.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise ValueError(f"{what}: the tf.data.Dataset repeats forever; pass it without .repeat() "
                         "(epochs= repeats it).")
    if ds.cardinality() == tf.data.UNKNOWN_CARDINALITY:
        # Counted once, so that fit knows an epoch's length (and the run its size).
        ds = ds.apply(tf.data.experimental.assert_cardinality(int(ds.reduce(0, lambda n, _: n + 1))))
    return ds


def _label_names(given, splits, labels):
    if given is not None:
        names = tuple(str(n) for n in given)
        if len(set(names)) != len(names):
            raise ValueError(f"label_names has duplicates: {list(names)}.")
    else:
        names = None
    top = _max_label(splits, labels)
    if names is None:
        return tuple(str(i) for i in range(top + 1))
    if top >= len(names):
        raise ValueError(f"A label is {top} but label_names has {len(names)} names (labels are 0..{len(names) - 1}).")
    return names


def _max_label(splits, labels):
    import tensorflow as tf

    top = -1
    for split in splits.values():
        if isinstance(split, tf.data.Dataset):
            # One pass over the labels: the number of classes decides the model's head.
            top = max(top, int(split.map(lambda x, y: tf.cast(y, tf.int64)).reduce(
                tf.constant(-1, tf.int64), tf.maximum)))
        else:
            top = max(top, int(split[1].max()))
    return top


def _key(split):
    import tensorflow as tf

    if isinstance(split, tf.data.Dataset):
        # Its contents cannot be hashed without reading it all: its spec and size stand in.
        return repr((split.element_spec, int(split.cardinality())))
    x, y = split
    h = hashlib.sha1()
    for part in (x, y):
        h.update(repr((part.shape, part.dtype.str)).encode())
        h.update(repr(part.tolist()).encode() if part.dtype == object else np.ascontiguousarray(part).tobytes())
    return h.hexdigest()


def _digest(*parts):
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:12]
