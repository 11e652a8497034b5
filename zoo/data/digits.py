"""`digits`: the 1,797 real 8x8 handwritten digits that scikit-learn ships (UCI,
CC BY 4.0; see LICENSE-digits.txt), scaled to 0-255. Offline, always available.
"""

from __future__ import annotations

import functools
import gzip
import pathlib

import numpy as np

from zoo.data.registry import register_dataset

_HERE = pathlib.Path(__file__).parent
CITATION = "E. Alpaydin, C. Kaynak. Optical Recognition of Handwritten Digits. UCI, 1998. CC BY 4.0."


def _split(n, seed, test_fraction, validation_fraction):
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_fraction))
    n_val = int(round((n - n_test) * validation_fraction))
    return {
        "test": order[:n_test],
        "validation": order[n_test:n_test + n_val],
        "train": order[n_test + n_val:],
    }


@functools.lru_cache(maxsize=None)
def _splits():
    with gzip.open(_HERE / "digits.csv.gz", "rt") as f:
        data = np.loadtxt(f, delimiter=",", dtype=np.float32)
    images = np.round(data[:, :64] * (255.0 / 16.0)).astype(np.uint8).reshape(-1, 8, 8, 1)
    labels = data[:, 64].astype(np.int64)
    idx = _split(len(labels), seed=0, test_fraction=0.2, validation_fraction=0.1)
    return {k: (images[v], labels[v]) for k, v in idx.items()}


@register_dataset(task="image_classification", label_names=tuple(str(i) for i in range(10)), citation=CITATION)
def digits(split):
    """The real UCI 8x8 handwritten digits (1,797 images, 10 classes), offline."""
    return _splits()[split]
