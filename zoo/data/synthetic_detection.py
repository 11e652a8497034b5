"""`synthetic_detection`: 128x128 RGB scenes of one to five shapes, each boxed and
labelled. Offline, generated deterministically.

The scenes need a real detector, not a classifier with a box head: several objects of
different kinds share an image and may overlap (boxes up to IoU 0.35, later shapes
drawn over earlier ones); sizes run from about 10 to 75 pixels with independent x and
y stretches, so one scale of anchors or one receptive field does not fit all; and the
background is a colour gradient with noise and unlabelled clutter (thin line segments
and small specks) that a model must learn not to box. The six kinds are those of
`synthetic_shapes`, so the label is the shape, never its colour or place.

Examples follow the TFDS detection sets (`voc/2007`, `coco/2017`): the input is a uint8
image and the label is `{"bbox": float32 [N, 4], "label": int64 [N]}`, a box being
[ymin, xmin, ymax, xmax] normalised to 0-1 with the pixel-edge convention (a shape
whose pixels are rows 10..19 has ymin 10/128 and ymax 20/128). A box is the exact
extent of its shape's own pixels, as drawn before any later shape covers part of it.
"""

from __future__ import annotations

import functools

import numpy as np

from zoo.data.info import DatasetInfo
from zoo.data.registry import ArrayDataset, add_dataset
from zoo.data.synthetic_shapes import SHAPES, _shape_masks

MAX_OBJECTS = 5
MAX_IOU = 0.35
# Each object may be moved this many times to keep its overlaps below MAX_IOU, then it is left out.
PLACEMENT_TRIES = 10
SIZE = 128  # the scenes' height and width
SPLITS = {"train": (4000, 1), "validation": (500, 2), "test": (500, 3)}  # split -> (scenes, seed)


def make_scenes(n, seed, size=SIZE, noise=10.0):
    """`n` scenes: images uint8 [n, size, size, 3], and per image its boxes float32 [k, 4]
    ([ymin, xmin, ymax, xmax], 0-1) and labels int64 [k] (index into SHAPES), 1 <= k <= 5.

    Args:
        n: number of images.
        seed: the same seed gives the same scenes.
        size: height and width in pixels.
        noise: standard deviation of the Gaussian pixel noise; 0 leaves every shape one
            flat colour, which lets a test find exactly where it was drawn.

    Example:
        >>> images, boxes, labels = make_scenes(2, seed=0)
        >>> images.shape, boxes[0].shape[1], labels[0].dtype
        ((2, 128, 128, 3), 4, dtype('int64'))
    """
    # The noise has its own stream, so the scenes themselves do not depend on its level.
    layout_rng, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    images = np.empty((n, size, size, 3), np.uint8)
    boxes, labels = [], []
    for i in range(n):
        background = _gradient(layout_rng, xx, yy)
        canvas = background.copy()
        _add_clutter(layout_rng, canvas, background)
        image_boxes, image_labels = _add_objects(layout_rng, canvas, background)
        if noise:
            canvas += noise_rng.standard_normal(canvas.shape, np.float32) * np.float32(noise)
        images[i] = np.clip(canvas, 0, 255)
        boxes.append(np.asarray(image_boxes, np.float32).reshape(-1, 4) / np.float32(size))
        labels.append(np.asarray(image_labels, np.int64))
    return images, boxes, labels


def _gradient(rng, xx, yy):
    """A smooth ramp between two random colours along a random direction, float32 [H, W, 3]."""
    start, end = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
    return start + ramp[..., None] * (end - start)


def _contrasting(rng, local):
    """A colour at least 80 from `local` in every channel (as synthetic_shapes picks it)."""
    offset = rng.uniform(80, 175, 3) * rng.choice([-1, 1], 3)
    colour = np.where(np.abs(local + offset - 127.5) <= 127.5, local + offset, local - offset)
    return np.clip(colour, 0, 255).astype(np.float32)


def _add_clutter(rng, canvas, background):
    """Up to six unlabelled distractors: line segments 1-2 px wide and specks of radius <= 3 px,
    thinner or smaller than any object, so that "small and thin" is learnably not an object."""
    size = canvas.shape[0]
    for _ in range(rng.integers(0, 7)):
        if rng.random() < 0.5:
            length, angle, half_width = rng.uniform(8, 40), rng.uniform(0, np.pi), rng.choice([0.5, 1.0])
            y0, x0 = rng.uniform(0, size - 1, 2)
            y1 = np.clip(y0 + length * np.sin(angle), 0, size - 1)
            x1 = np.clip(x0 + length * np.cos(angle), 0, size - 1)
            top, left = int(min(y0, y1)) - 1, int(min(x0, x1)) - 1
            top, left = max(top, 0), max(left, 0)
            ys = np.arange(top, min(int(max(y0, y1)) + 3, size), dtype=np.float32)[:, None]
            xs = np.arange(left, min(int(max(x0, x1)) + 3, size), dtype=np.float32)[None, :]
            # Distance from each pixel to the segment.
            dy, dx = y1 - y0, x1 - x0
            t = np.clip(((ys - y0) * dy + (xs - x0) * dx) / max(dy * dy + dx * dx, 1e-6), 0, 1)
            mask = (ys - y0 - t * dy) ** 2 + (xs - x0 - t * dx) ** 2 <= half_width ** 2
        else:
            radius = rng.uniform(1, 3)
            cy, cx = rng.uniform(0, size - 1, 2)
            top, left = max(int(cy - radius), 0), max(int(cx - radius), 0)
            ys = np.arange(top, min(int(cy + radius) + 2, size), dtype=np.float32)[:, None]
            xs = np.arange(left, min(int(cx + radius) + 2, size), dtype=np.float32)[None, :]
            mask = (ys - cy) ** 2 + (xs - cx) ** 2 <= radius ** 2
        window = canvas[top:top + mask.shape[0], left:left + mask.shape[1]]
        local = background[top:top + mask.shape[0], left:left + mask.shape[1]].mean((0, 1))
        window[mask] = _contrasting(rng, local)


def _object_mask(rng, kind):
    """The pixels of one shape of random size, stretch and sub-pixel offset, cropped to its extent."""
    r = rng.uniform(14, 56) / 2
    # Log-uniform, so that stretching by s and by 1/s are equally likely.
    sy, sx = np.exp(rng.uniform(np.log(0.75), np.log(1.33), 2))
    # 1.1 r covers every shape (the triangle reaches 1.08 r sideways).
    half_h, half_w = int(np.ceil(1.1 * r * sy)) + 1, int(np.ceil(1.1 * r * sx)) + 1
    fy, fx = rng.uniform(0, 1, 2)
    dy = ((np.arange(2 * half_h + 1) - half_h - fy) / sy)[:, None]
    dx = ((np.arange(2 * half_w + 1) - half_w - fx) / sx)[None, :]
    mask = _shape_masks(kind, dx, dy, r)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _iou(box, boxes):
    """IoU of one pixel box [top, left, bottom, right] with each of `boxes` [k, 4]."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    h = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    w = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return h * w / (area + areas - h * w)


def _add_objects(rng, canvas, background):
    """Draws 1-5 shapes in order; returns their pixel boxes and kinds."""
    size = canvas.shape[0]
    boxes, kinds = [], []
    for _ in range(rng.integers(1, MAX_OBJECTS + 1)):
        kind = int(rng.integers(0, len(SHAPES)))
        mask = _object_mask(rng, kind)
        h, w = mask.shape
        for _ in range(PLACEMENT_TRIES):
            top, left = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
            box = (top, left, top + h, left + w)
            if not boxes or _iou(box, boxes).max() <= MAX_IOU:
                break
        else:
            continue  # no room for it; the first object always fits, so no scene is empty
        local = background[top:top + h, left:left + w].mean((0, 1))
        canvas[top:top + h, left:left + w][mask] = _contrasting(rng, local)
        boxes.append(box)
        kinds.append(kind)
    return boxes, kinds


@functools.lru_cache(maxsize=None)
def _scenes(split):
    # Drawn when a split is first read (about 1 ms a scene), not when the set is listed.
    count, seed = SPLITS[split]
    return make_scenes(count, seed=seed)


class _Scenes(ArrayDataset):
    def _read_info(self) -> DatasetInfo:
        # Known without drawing a scene: `zoo datasets` and a model's size cost nothing.
        return DatasetInfo(name=self.name, task=self.task, num_classes=len(SHAPES), label_names=tuple(SHAPES),
                           input_shape=(SIZE, SIZE, 3), num_examples={k: n for k, (n, _) in SPLITS.items()},
                           source=self.source, input_dtype="uint8")


def synthetic_detection(split):
    """One to five boxed shapes per 128x128 scene, among unlabelled clutter, offline."""
    import tensorflow as tf

    images, boxes, labels = _scenes(split)
    counts = [len(b) for b in boxes]
    objects = {
        "bbox": tf.RaggedTensor.from_row_lengths(np.concatenate(boxes), counts),
        "label": tf.RaggedTensor.from_row_lengths(np.concatenate(labels), counts),
    }
    # A slice of a ragged tensor reaches the map as a dense [N, 4] / [N] tensor, so the
    # examples have the element spec of a TFDS detection set's objects.
    return tf.data.Dataset.from_tensor_slices((images, objects)).map(
        lambda image, objects: (image, {"bbox": objects["bbox"], "label": objects["label"]}))


add_dataset(_Scenes("synthetic_detection", "object_detection", synthetic_detection, tuple(SPLITS), tuple(SHAPES),
                    description=synthetic_detection.__doc__.strip()))
