"""The dataset registry: every source registers itself under its name and task.

    @register_dataset(task="image_classification", label_names=SHAPES)
    def synthetic_shapes(split):
        return images[split], labels[split]        # numpy arrays, or a tf.data.Dataset

A registered dataset yields raw `(input, label)` examples; its task turns them into
model features (`zoo.tasks`). Names that are not registered are looked up in TFDS
(`zoo.data.tfds_source`), so any TFDS set of a known task loads.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Callable

import numpy as np

from zoo.data.info import DatasetInfo
from zoo.plugins import load_plugins

_DATASETS: dict[str, "Dataset"] = {}


class Dataset:
    """One registered source of examples."""

    name: str
    task: str
    offline: bool
    source: str  # "offline", "memory" or "tfds", as `zoo datasets` shows it
    description: str = ""
    # load_dataset options this set defaults to (e.g. a short sequence_length for short texts).
    options: dict = {}

    def info(self, data_dir=None, download=True) -> DatasetInfo:
        raise NotImplementedError

    def examples(self, split: str, data_dir=None, download=True, shuffle_files=False):
        """Raw `(input, label)` examples of `split` as an unbatched tf.data.Dataset."""
        raise NotImplementedError


@dataclasses.dataclass(eq=False)
class ArrayDataset(Dataset):
    """A dataset held in memory: `load(split) -> (inputs, labels)` arrays or a tf.data.Dataset."""

    name: str
    task: str
    load: Callable
    splits: tuple = ("train", "validation", "test")
    label_names: tuple = ()
    citation: str = ""
    description: str = ""
    offline: bool = True
    options: dict = dataclasses.field(default_factory=dict)
    _loaded: dict = dataclasses.field(default_factory=dict, init=False, repr=False)
    _info: DatasetInfo | None = dataclasses.field(default=None, init=False, repr=False)

    @property
    def source(self) -> str:
        return "offline" if self.offline else "memory"

    def arrays(self, split: str):
        """What `load(split)` returns, loaded once per dataset."""
        if split not in self.splits:
            raise ValueError(f"Dataset {self.name!r} has no split {split!r}; its splits are "
                             f"{', '.join(self.splits)}.")
        if split not in self._loaded:
            self._loaded[split] = self.load(split)
        return self._loaded[split]

    def info(self, data_dir=None, download=True) -> DatasetInfo:
        if self._info is None:
            self._info = self._read_info()
        return self._info

    def _read_info(self) -> DatasetInfo:
        import tensorflow as tf

        sizes, shape, dtype = {}, None, None
        for split in self.splits:
            data = self.arrays(split)
            if isinstance(data, tf.data.Dataset):
                if not isinstance(data.element_spec, tuple) or len(data.element_spec) != 2:
                    raise ValueError(f"Dataset {self.name!r} split {split!r} must yield (input, label) pairs; it "
                                     f"yields {data.element_spec}.")
                spec = data.element_spec[0]
                shape, dtype = tuple(spec.shape), spec.dtype.name
                sizes[split] = int(data.cardinality()) if data.cardinality() >= 0 else None
            else:
                x, y = data
                if len(x) != len(y):
                    raise ValueError(f"Dataset {self.name!r} split {split!r}: {len(x)} inputs but {len(y)} labels.")
                shape, dtype = tuple(np.shape(x)[1:]), np.asarray(x[:1]).dtype.name
                sizes[split] = len(y)
        return DatasetInfo(
            name=self.name, task=self.task, num_classes=len(self.label_names),
            label_names=tuple(self.label_names), input_shape=shape, num_examples=sizes,
            source=self.source, citation=self.citation, input_dtype=dtype)

    def examples(self, split: str, data_dir=None, download=True, shuffle_files=False):
        import tensorflow as tf

        data = self.arrays(split)
        if isinstance(data, tf.data.Dataset):
            return data
        x, y = data
        if np.asarray(x[:1]).dtype == object:  # strings
            x = np.asarray(x).astype(str)
        return tf.data.Dataset.from_tensor_slices((x, y))


def register_dataset(task: str, *, splits=("train", "validation", "test"), label_names=(),
                     citation: str = "", offline: bool = True, options: dict | None = None):
    """Registers `fn(split) -> (inputs, labels)` as a dataset named after the function.

    Args:
        task: the task whose models train on it (its examples follow that task's input).
        splits: the split names `fn` answers.
        label_names: class names, for classification tasks.
        citation: where the data comes from.
        offline: True when it needs no network.
        options: `load_dataset` options it defaults to, e.g. {"sequence_length": 32}.

    Example:
        >>> @register_dataset(task="image_classification", label_names=("no", "yes"))
        ... def tiny_images(split):
        ...     return images[split], labels[split]
    """
    def decorate(fn):
        add_dataset(ArrayDataset(fn.__name__, task, fn, tuple(splits), tuple(label_names), citation,
                                 (fn.__doc__ or "").strip().split("\n")[0], offline, dict(options or {})))
        return fn

    return decorate


def add_dataset(dataset: Dataset) -> Dataset:
    """Registers a `Dataset` object (a source that is not a function of the split)."""
    _ensure_registered()  # a name taken by a built-in set is refused here, not at its import
    old = _DATASETS.get(dataset.name)
    if old is not None and not _same_source(old, dataset):
        raise ValueError(f"A dataset named {dataset.name!r} is already registered.")
    _DATASETS[dataset.name] = dataset
    return dataset


def _same_source(a: Dataset, b: Dataset) -> bool:
    # The same definition seen twice (a module imported again) replaces the old entry.
    if a is b:
        return True
    if isinstance(a, ArrayDataset) and isinstance(b, ArrayDataset):
        return (a.task, a.load.__module__, a.load.__qualname__) == (b.task, b.load.__module__, b.load.__qualname__)
    return False


def get_dataset(name: str) -> Dataset:
    """The registered dataset `name`, or a TFDS source for any other name."""
    _ensure_registered()
    if not isinstance(name, str) or not name:
        raise ValueError(f"Dataset name must be a non-empty string, got {name!r}.")
    if name in _DATASETS:
        return _DATASETS[name]
    from zoo.data.tfds_source import TfdsDataset

    return TfdsDataset(name)


def list_datasets(task: str | None = None) -> list[str]:
    """Sorted names of the registered datasets, optionally of one task."""
    _ensure_registered()
    return sorted(n for n, d in _DATASETS.items() if task is None or d.task == task)


def closest(name: str) -> str:
    _ensure_registered()
    close = difflib.get_close_matches(name, list(_DATASETS), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def registered_offline() -> list[str]:
    _ensure_registered()
    return sorted(n for n, d in _DATASETS.items() if d.offline)


def _ensure_registered():
    # Importing the sources runs their registrations.
    import zoo.data.digits  # noqa: F401
    import zoo.data.speech  # noqa: F401
    import zoo.data.synthetic_detection  # noqa: F401
    import zoo.data.synthetic_entities  # noqa: F401
    import zoo.data.synthetic_sentiment  # noqa: F401
    import zoo.data.synthetic_shapes  # noqa: F401
    import zoo.data.synthetic_summaries  # noqa: F401
    import zoo.data.synthetic_topics  # noqa: F401
    import zoo.data.synthetic_translation  # noqa: F401
    import zoo.data.tfds_source  # noqa: F401

    load_plugins()  # other packages' datasets
