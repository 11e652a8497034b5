"""COCO's detection metrics (pycocotools' `COCOeval`) of boxes in pixels.

`coco_metrics` takes, per image, the ground truth and the detections as arrays and
returns the numbers `COCOeval.summarize()` prints: mean average precision over IoU
0.50:0.95 (`map`), at IoU 0.50 (`map_50`, PASCAL VOC's measure) and 0.75, by object
size, and recall at 100 detections.

    >>> coco_metrics([{"boxes": gt_boxes, "classes": gt_classes}],
    ...              [{"boxes": boxes, "classes": classes, "scores": scores}], label_names, (128, 128))
    {"map": 0.71, "map_50": 0.93, ...}
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

# COCOeval.stats, in the order summarize() computes them.
_STATS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "recall_1", "recall_10", "recall_100",
          "recall_small", "recall_medium", "recall_large")


def _xywh(boxes) -> np.ndarray:
    """[N, 4] yxyx pixels -> COCO's [x, y, width, height]."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.stack([b[:, 1], b[:, 0], b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]], axis=1)


def coco_metrics(truths: list[dict], detections: list[dict], label_names, image_shape) -> dict:
    """COCO mAP of `detections` against `truths`, one dict per image.

    A truth holds `boxes` [N, 4] ([ymin, xmin, ymax, xmax] pixels) and `classes` [N]
    (class ids; negative ids are padding and skipped); a detection also `scores` [M].
    `image_shape` is (height, width) of the images the pixels refer to.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    height, width = int(image_shape[0]), int(image_shape[1])
    images, annotations, rows = [], [], []
    for image_id, (truth, found) in enumerate(zip(truths, detections)):
        images.append({"id": image_id, "height": height, "width": width})
        keep = np.asarray(truth["classes"]).reshape(-1) >= 0
        for box, cls in zip(_xywh(truth["boxes"])[keep], np.asarray(truth["classes"]).reshape(-1)[keep]):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(cls) + 1,
                                "bbox": box.tolist(), "area": float(box[2] * box[3]), "iscrowd": 0})
        keep = np.asarray(found["classes"]).reshape(-1) >= 0
        for box, cls, score in zip(_xywh(found["boxes"])[keep], np.asarray(found["classes"]).reshape(-1)[keep],
                                   np.asarray(found["scores"]).reshape(-1)[keep]):
            rows.append([image_id, *box, float(score), int(cls) + 1])
    if not annotations:
        raise ValueError("coco_metrics: the ground truth has no objects; mAP is undefined.")
    if not rows:  # nothing detected: every precision is 0 (pycocotools refuses an empty result)
        return {name: 0.0 for name in _STATS}
    ground_truth = COCO()
    ground_truth.dataset = {"images": images, "annotations": annotations,
                            "categories": [{"id": i + 1, "name": str(n)} for i, n in enumerate(label_names)]}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        ground_truth.createIndex()
        evaluation = COCOeval(ground_truth, ground_truth.loadRes(np.asarray(rows, np.float64)), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    # -1 where a size has no objects: reported as 0 would read as a failure, so it is left out.
    return {name: float(v) for name, v in zip(_STATS, evaluation.stats) if v >= 0}
