"""Built-in offline datasets: every task trains and serves with no network.

- `digits`: the 1,797 real 8x8 handwritten digits that scikit-learn ships (UCI,
  CC BY 4.0; see LICENSE-digits.txt), scaled to 0-255.
- `synthetic_shapes`: 32x32 RGB images of six shapes in random colours, sizes and
  places on noisy backgrounds. The label is the shape, so a CNN must learn shape,
  not colour or position.
"""

from __future__ import annotations

import functools
import gzip
import pathlib

import numpy as np

from zoo.data.info import DatasetInfo

_HERE = pathlib.Path(__file__).parent
SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond")


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
def _digits():
    with gzip.open(_HERE / "digits.csv.gz", "rt") as f:
        data = np.loadtxt(f, delimiter=",", dtype=np.float32)
    images = np.round(data[:, :64] * (255.0 / 16.0)).astype(np.uint8).reshape(-1, 8, 8, 1)
    labels = data[:, 64].astype(np.int64)
    idx = _split(len(labels), seed=0, test_fraction=0.2, validation_fraction=0.1)
    return {k: (images[v], labels[v]) for k, v in idx.items()}


def _shape_masks(kind, dx, dy, r):
    dist2 = dx * dx + dy * dy
    if kind == 0:
        return dist2 <= r * r
    if kind == 1:
        return np.maximum(np.abs(dx), np.abs(dy)) <= 0.8 * r
    if kind == 2:
        return (dy <= 0.8 * r) & (np.abs(dx) <= (dy + r) * 0.6)
    if kind == 3:
        arm = np.maximum(r / 4, 1.0)
        return ((np.abs(dx) <= arm) & (np.abs(dy) <= r)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= r))
    if kind == 4:
        return (dist2 <= r * r) & (dist2 >= (0.55 * r) ** 2)
    return np.abs(dx) + np.abs(dy) <= r


def make_shapes(n, seed, size=32):
    """`n` images [n, size, size, 3] uint8 and labels [n] int64 (index into SHAPES)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(SHAPES), n)
    r = rng.uniform(size * 0.2, size * 0.4, (n, 1, 1))
    cx = rng.uniform(r[:, 0, 0], size - 1 - r[:, 0, 0])[:, None, None]
    cy = rng.uniform(r[:, 0, 0], size - 1 - r[:, 0, 0])[:, None, None]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = xx[None] - cx, yy[None] - cy
    mask = np.zeros((n, size, size), bool)
    for k in range(len(SHAPES)):
        sel = labels == k
        mask[sel] = _shape_masks(k, dx[sel], dy[sel], r[sel])
    background = rng.uniform(0, 255, (n, 1, 1, 3))
    # Keep the shape visible: its colour is pushed at least 80 away from the background.
    offset = rng.uniform(80, 175, (n, 1, 1, 3)) * rng.choice([-1, 1], (n, 1, 1, 3))
    foreground = np.where(np.abs(background + offset - 127.5) <= 127.5, background + offset, background - offset)
    images = np.where(mask[..., None], foreground, background)
    images = images + rng.normal(0, 12, images.shape)
    return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.int64)


@functools.lru_cache(maxsize=None)
def _synthetic_shapes():
    return {
        "train": make_shapes(6000, seed=1),
        "validation": make_shapes(1000, seed=2),
        "test": make_shapes(1000, seed=3),
    }


_LOADERS = {"digits": _digits, "synthetic_shapes": _synthetic_shapes}
_INFO = {
    "digits": dict(
        num_classes=10, label_names=tuple(str(i) for i in range(10)), input_shape=(8, 8, 1),
        citation="E. Alpaydin, C. Kaynak. Optical Recognition of Handwritten Digits. UCI, 1998. CC BY 4.0.",
    ),
    "synthetic_shapes": dict(num_classes=len(SHAPES), label_names=SHAPES, input_shape=(32, 32, 3)),
}
NAMES = tuple(sorted(_LOADERS))


def info(name: str) -> DatasetInfo:
    arrays = _LOADERS[name]()
    return DatasetInfo(
        name=name, task="image_classification", source="offline",
        num_examples={k: len(v[1]) for k, v in arrays.items()}, **_INFO[name],
    )


def arrays(name: str, split: str):
    """(images uint8 [N,H,W,C], labels int64 [N]) for one split."""
    splits = _LOADERS[name]()
    if split not in splits:
        raise ValueError(
            f"Dataset {name!r} has no split {split!r}; its splits are {', '.join(splits)}."
        )
    return splits[split]
