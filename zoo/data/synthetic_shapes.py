"""`synthetic_shapes`: 32x32 RGB images of six shapes in random colours, sizes and
places on noisy backgrounds. The label is the shape, so a CNN must learn shape, not
colour or position. Offline, generated deterministically.
"""

from __future__ import annotations

import functools

import numpy as np

from zoo.data.registry import register_dataset

SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond")


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


@register_dataset(task="image_classification", label_names=SHAPES)
def synthetic_shapes(split):
    """Six shapes in random colours, sizes and places (32x32 RGB), offline."""
    return _synthetic_shapes()[split]
