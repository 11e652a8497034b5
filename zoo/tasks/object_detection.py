"""Task `object_detection`: an image in, boxes, classes and scores out.

Examples are (image uint8 [H, W, 3], {"bbox": float32 [N, 4], "label": int64 [N]}), the
structure of TFDS' detection sets (voc/2007, coco/2017) and of `synthetic_detection`;
boxes are normalised [ymin, xmin, ymax, xmax] (0..1) of the image. Objects flagged
`is_crowd` (COCO) or `is_difficult` (VOC) are left out, as those sets' metrics leave
them. Images are resized to the model's size (`image_size`; bilinear, the aspect ratio
is not kept, which leaves normalised boxes unchanged), and the boxes become pixels of
that size.

Model input `{"image": float32 [B, H, W, 3]}`, raw 0-255 pixels; the models are keras-hub
RetinaNets (`zoo.models.retinanet.Detector`): outputs `bbox_regression` [B, A, 4] and
`cls_logits` [B, A, K] for the A anchors of their `anchor_generator`. Labels are
`{"boxes": [B, N, 4] pixels, "labels": [B, N]}`, -1 past each image's objects; keras-hub's
`compute_loss` matches them to anchors (`label_encoder`) and applies the task's losses
(focal loss on the classes, Huber on the matched boxes' offsets).

Exported signatures (boxes decoded and non-max suppressed in the graph by TensorFlow's
`CombinedNonMaxSuppression`, a core op; any batch size):
- `serving_default`: `image` float32 [B, H, W, 3] pixels of any size (resized to the
  model's; an image without pixels or with NaN or infinite values is INVALID_ARGUMENT) ->
  `boxes` [B, N, 4] float32, normalised [ymin, xmin, ymax, xmax] of the image sent
  (multiply by its height and width for pixels), `classes` [B, N] int64, `labels` [B, N]
  string, `scores` [B, N] float32, best first, and `num_detections` [B] int32; rows past
  an image's `num_detections` hold class -1, label "", score 0 and a zero box.
  N is `max_detections` (export option, default 100); detections below
  `score_threshold` (0.05) are dropped and boxes of one class overlapping by more than
  `iou_threshold` (0.5) suppressed. An empty batch answers empty outputs.
- `image_bytes`: JPEG/PNG/GIF/BMP bytes [B] of any size, decoded and resized in the graph
  with the image task's pixel limit (`max_image_pixels`) -> the same outputs.
Metrics: COCO mAP (pycocotools) on the test split in metrics.json and `zoo evaluate`.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from zoo.tasks import image_codec
from zoo.tasks.base import (
    Endpoint, ExportSource, Request, Signatures, Task, as_text, model_inputs, one_row, register_task,
    training_inputs,
)
from zoo.tasks.classification import label_names, label_table
from zoo.tasks.image_classification import (
    image_requests, image_size_option, max_image_pixels_option, read_image_request,
)

BOX_FORMAT = "normalised [ymin, xmin, ymax, xmax] of the image sent (0..1)"
MAX_DETECTIONS = 100
SCORE_THRESHOLD = 0.05
IOU_THRESHOLD = 0.5
SCORE_TOLERANCE = 1e-4  # max |difference| of exported scores from Keras'
BOX_TOLERANCE = 1e-4  # ... and of normalised box coordinates
SHOWN_SCORE = 0.5  # zoo predict prints and draws the detections scoring at least this
IGNORED_OBJECTS = ("is_crowd", "is_difficult")  # TFDS object flags of objects training skips
OUTPUTS = ("boxes", "classes", "labels", "scores", "num_detections")


def model_size(model) -> tuple[int, int]:
    height, width, _ = model_inputs(model)["image"].shape[1:]
    return int(height), int(width)


def anchor_boxes(model) -> np.ndarray:
    """The model's anchors [A, 4] in its box format, in the order of its outputs."""
    height, width = model_size(model)
    anchors = model.anchor_generator(np.zeros((1, height, width, 3), np.float32))
    return np.concatenate([np.asarray(a) for a in anchors.values()], axis=0).astype(np.float32)


def anchor_detections(model, anchors, predictions):
    """The model's outputs -> every anchor's box [B, A, 4] (yxyx, 0-1 of the image, clipped)
    and class scores [B, A, K], before non-max suppression, with core TF ops only."""
    height, width = model_size(model)
    boxes = keras.utils.bounding_boxes.decode_deltas_to_boxes(
        anchors=anchors, boxes_delta=tf.cast(predictions["bbox_regression"], tf.float32),
        encoded_format="center_xywh", anchor_format=model.anchor_generator.bounding_box_format,
        box_format="yxyx", image_shape=(height, width, 3))
    boxes = tf.clip_by_value(boxes / tf.constant([height, width, height, width], tf.float32), 0.0, 1.0)
    # A box wholly outside the image is empty once clipped: it is no detection.
    inside = (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])
    scores = tf.sigmoid(tf.cast(predictions["cls_logits"], tf.float32)) * tf.cast(inside, tf.float32)[..., tf.newaxis]
    return boxes, scores


def decode(model, anchors, predictions, max_detections=MAX_DETECTIONS, score_threshold=SCORE_THRESHOLD,
           iou_threshold=IOU_THRESHOLD) -> dict:
    """The model's outputs -> detections (see the module docstring), with core TF ops only."""
    boxes, scores = anchor_detections(model, anchors, predictions)
    found = tf.image.combined_non_max_suppression(
        boxes[:, :, tf.newaxis, :], scores, max_output_size_per_class=max_detections,
        max_total_size=max_detections, iou_threshold=iou_threshold, score_threshold=score_threshold,
        clip_boxes=True)
    valid = tf.range(max_detections)[tf.newaxis, :] < found.valid_detections[:, tf.newaxis]
    return {
        "boxes": tf.where(valid[..., tf.newaxis], found.nmsed_boxes, 0.0),
        "classes": tf.where(valid, tf.cast(found.nmsed_classes, tf.int64), tf.constant(-1, tf.int64)),
        "scores": tf.where(valid, found.nmsed_scores, 0.0),
        "num_detections": found.valid_detections,
    }


def detect(model, images, **thresholds) -> dict:
    """Detections (numpy) of images [B, H, W, 3] at the model's size, as the export answers."""
    predictions = model(tf.convert_to_tensor(images, tf.float32), training=False)
    return {k: v.numpy() for k, v in decode(model, anchor_boxes(model), predictions, **thresholds).items()}


class ObjectDetection(Task):
    name = "object_detection"
    description = "[B,H,W,3] float32 pixels 0-255 -> per-anchor box offsets and class logits (RetinaNet)"
    input_names = ("image",)
    data_arguments = ("num_classes", "input_shape")
    serving_inputs = ("image",)
    serving_outputs = OUTPUTS
    data_options = ("image_size",)
    export_options = ("max_image_pixels", "max_detections", "score_threshold", "iou_threshold")

    # --- training ------------------------------------------------------------
    def loss(self):
        # keras-hub's ObjectDetector defaults; its compute_loss normalises by the matched anchors.
        return {"bbox_regression": keras.losses.Huber(reduction="sum"),
                "cls_logits": keras.losses.BinaryFocalCrossentropy(from_logits=True, reduction="sum")}

    def check_model(self, model) -> None:
        super().check_model(model)
        outputs = model.output if isinstance(model.output, dict) else {}
        if sorted(outputs) != ["bbox_regression", "cls_logits"] or not hasattr(model, "anchor_generator") \
                or not hasattr(model, "label_encoder"):
            raise ValueError("An object_detection model is a keras-hub RetinaNet (zoo.models.retinanet.Detector, "
                             "or keras_hub.models.RetinaNetObjectDetector with its input named 'image'): outputs "
                             f"bbox_regression and cls_logits, an anchor_generator and a label_encoder; this model "
                             f"returns {sorted(outputs) or model.output}.")
        shape = tuple(model_inputs(model)["image"].shape[1:])
        if len(shape) != 3 or None in shape or shape[-1] != 3:
            raise ValueError(f"An object_detection model takes image [B,H,W,3] of a fixed size; this one takes "
                             f"{shape}.")

    # --- data ----------------------------------------------------------------
    def builder_arguments(self, info) -> dict:
        if info.num_classes < 1:
            raise ValueError(f"Dataset {info.name!r} has no class names; a detection set needs them "
                             "(label_names=[...]).")
        return {"num_classes": info.num_classes, "input_shape": tuple(info.input_shape[:2]) + (3,)}

    def prepare_examples(self, ds, info, data_dir=None, download=True, image_size=None):
        if image_size is not None:
            size = image_size_option(image_size)
        elif any(d is None for d in info.input_shape[:2]):
            raise ValueError(f"Dataset {info.name!r} has images of varying size {info.input_shape}; pass "
                             "image_size=(height, width) (CLI: --set image_size=384,384) to resize them.")
        else:
            size = tuple(info.input_shape[:2])
        scale = tf.constant([size[0], size[1], size[0], size[1]], tf.float32)

        def convert(image, objects):
            if image.shape[-1] == 1:
                image = tf.tile(image, (1, 1, 3))
            if tuple(image.shape[:2]) != size:
                image = tf.cast(tf.round(tf.clip_by_value(tf.image.resize(image, size), 0, 255)), tf.uint8)
            boxes = tf.clip_by_value(tf.cast(tf.reshape(objects["bbox"], (-1, 4)), tf.float32), 0.0, 1.0)
            labels = tf.cast(tf.reshape(objects["label"], (-1,)), tf.float32)
            count = tf.minimum(tf.shape(boxes)[0], tf.shape(labels)[0])  # equal, but in TFDS' mock data
            keep = tf.range(count) >= 0
            for flag in IGNORED_OBJECTS:  # COCO's crowds, VOC's difficult objects: left out, as their metrics do
                if flag in objects:
                    flags = tf.cast(tf.reshape(objects[flag], (-1,)), tf.bool)
                    keep &= tf.logical_not(tf.concat([flags, tf.zeros([count], tf.bool)], 0)[:count])
            boxes, labels = tf.boolean_mask(boxes[:count], keep), tf.boolean_mask(labels[:count], keep)
            # [min, min, max, max] whichever order the corners came in.
            boxes = tf.concat([tf.minimum(boxes[:, :2], boxes[:, 2:]), tf.maximum(boxes[:, :2], boxes[:, 2:])], 1)
            boxes = boxes * scale
            return tf.ensure_shape(image, size + (3,)), {"boxes": one_row(boxes), "labels": one_row(labels)}

        ds = ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
        return ds, dataclasses.replace(info, input_shape=size + (3,))

    def batch_features(self, x, y):
        boxes = y["boxes"].merge_dims(1, 2).to_tensor(default_value=0.0)
        labels = y["labels"].merge_dims(1, 2).to_tensor(default_value=-1.0)
        return {"image": tf.cast(x, tf.float32)}, {"boxes": tf.ensure_shape(boxes, (None, None, 4)), "labels": labels}

    def report_metrics(self, model, ds, label_names) -> dict:
        from zoo.tasks.detection_metrics import coco_metrics

        anchors = anchor_boxes(model)
        height, width = model_size(model)
        run = tf.function(lambda images: decode(model, anchors, model(images, training=False)))
        scale = np.array([height, width, height, width], np.float32)
        truths, found = [], []
        for features, labels in ds:
            out = {k: v.numpy() for k, v in run(features["image"]).items()}
            for i in range(len(out["scores"])):
                truths.append({"boxes": labels["boxes"][i].numpy(), "classes": labels["labels"][i].numpy()})
                found.append({"boxes": out["boxes"][i] * scale, "classes": out["classes"][i],
                              "scores": out["scores"][i]})
        return coco_metrics(truths, found, label_names or [str(i) for i in range(model.num_classes)],
                            (height, width))

    # --- export ----------------------------------------------------------------
    def export_assets(self, source: ExportSource) -> dict:
        self.check_model(source.model)
        names = label_names(source, int(source.model.output["cls_logits"].shape[-1]))
        height, width = model_size(source.model)
        options = dict(source.options)
        max_pixels = max_image_pixels_option(options, height, width)
        max_detections = options.get("max_detections")
        max_detections = MAX_DETECTIONS if max_detections is None else max_detections
        if not isinstance(max_detections, int) or isinstance(max_detections, bool) or not 1 <= max_detections <= 10_000:
            raise ValueError(f"max_detections must be an int in 1..10000, got {max_detections!r}.")
        thresholds = {}
        for key, default in (("score_threshold", SCORE_THRESHOLD), ("iou_threshold", IOU_THRESHOLD)):
            value = options.get(key)
            value = default if value is None else value
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{key} must be a number in 0..1, got {value!r}.")
            thresholds[key] = float(value)
        return dict(label_names=names, image_shape=(height, width, 3), max_image_pixels=max_pixels,
                    max_detections=max_detections, **thresholds)

    def card(self, assets: dict) -> dict:
        return {"labels": list(assets["label_names"]), "box_format": BOX_FORMAT,
                "image_shape": list(assets["image_shape"]), "max_image_pixels": assets["max_image_pixels"],
                "max_detections": assets["max_detections"], "score_threshold": assets["score_threshold"],
                "iou_threshold": assets["iou_threshold"]}

    def _thresholds(self, assets) -> dict:
        return {k: assets[k] for k in ("max_detections", "score_threshold", "iou_threshold")}

    def examples(self, source: ExportSource, given, count):
        height, width = model_size(source.model)
        if given is not None:
            images, origin = list(np.asarray(given, np.float32)[:count]), "given"
        else:
            images, origin = training_inputs(source, count)
        if not images:
            from zoo.data.synthetic_detection import make_scenes

            images, origin = list(make_scenes(count, seed=0, size=max(height, width))[0]), "synthetic_detection"
        resized = [tf.image.resize(np.asarray(i, np.float32), (height, width)).numpy()
                   if np.shape(i)[:2] != (height, width) else np.asarray(i, np.float32) for i in images]
        if any(np.shape(i) != (height, width, 3) for i in resized):
            raise ValueError(f"Examples ({origin}) must be images [N, H, W, 3]; got {[np.shape(i) for i in images]}.")
        return {"image": np.clip(np.round(np.stack(resized)), 0, 255).astype(np.float32)}, origin

    def signatures(self, model, assets: dict, staging_dir) -> Signatures:
        height, width, _ = assets["image_shape"]
        max_pixels = assets["max_image_pixels"]
        table = label_table(assets["label_names"], staging_dir)
        anchors = tf.constant(anchor_boxes(model))
        thresholds = self._thresholds(assets)
        count = thresholds["max_detections"]

        def nothing():  # the answer to an empty batch, which the model itself cannot take
            return {"boxes": tf.zeros((0, count, 4)), "classes": tf.zeros((0, count), tf.int64),
                    "scores": tf.zeros((0, count)), "num_detections": tf.zeros((0,), tf.int32)}

        # One traced function that both signatures call: the model is stored once.
        @tf.function(input_signature=[tf.TensorSpec((None, height, width, 3), tf.float32)])
        def predict(image):
            found = tf.cond(tf.shape(image)[0] > 0,
                            lambda: decode(model, anchors, model(image, training=False), **thresholds), nothing)
            return dict(found, labels=table.lookup(found["classes"]))

        @tf.function(input_signature=[tf.TensorSpec((), tf.string)])
        def decode_one(data):
            return image_codec.decode_image(data, height, width, 3, max_pixels)

        def serving_default(image):
            shape = tf.shape(image)
            # No quotes in the messages: TF Serving C-escapes them on the way to a client.
            checks = [
                tf.debugging.Assert(tf.logical_and(shape[1] > 0, shape[2] > 0), [
                    "image has no pixels: its height or width is 0."]),
                tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(image)), [
                    "image holds NaN or infinite values; pixels are numbers 0-255."]),
            ]
            with tf.control_dependencies(checks):
                same = tf.logical_and(tf.equal(shape[1], height), tf.equal(shape[2], width))
                resized = tf.cond(same, lambda: tf.reshape(image, (-1, height, width, 3)),
                                  lambda: tf.image.resize(image, (height, width)))
            return predict(resized)

        def image_bytes(image_bytes):
            # One image at a time: a batch may mix formats and sizes, and at most one
            # full-size image is in memory (as the image task's signature).
            pixels = tf.TensorSpec((height, width, 3), tf.float32)
            return predict(tf.map_fn(decode_one, image_bytes, fn_output_signature=pixels, parallel_iterations=1))

        return Signatures(
            endpoints={
                "serving_default": Endpoint(serving_default, [tf.TensorSpec((None, None, None, 3), tf.float32,
                                                                            name="image")]),
                "image_bytes": Endpoint(image_bytes, [tf.TensorSpec((None,), tf.string, name="image_bytes")]),
            },
            resources=[table])

    def requests(self, examples, batch_sizes=(1, None)) -> list[Request]:
        return image_requests(examples["image"], batch_sizes)

    def reference(self, model, examples: dict, assets: dict) -> dict:
        return detect(model, examples["image"], **self._thresholds(assets))

    def precision_outputs(self, model, examples: dict, assets: dict) -> dict:
        """Every anchor's box and class scores, before non-max suppression: NMS chooses
        between overlapping boxes of nearly equal score, so its detections can jump (one
        box for another) where these move by a rounding."""
        predictions = model(tf.convert_to_tensor(examples["image"], tf.float32), training=False)
        boxes, scores = anchor_detections(model, anchor_boxes(model), predictions)
        return {"boxes": boxes.numpy(), "scores": scores.numpy()}

    def precision_difference(self, reference: dict, other: dict) -> float:
        """Over the anchors whose class score the float32 export puts above 0.3: max
        |difference| of those scores and of those anchors' box coordinates (0-1)."""
        confident = reference["scores"] > 0.3  # [B, A, K]
        if not confident.any():
            return 0.0
        anchors = confident.any(axis=-1)  # [B, A]
        return float(max(np.max(np.abs(reference["scores"] - other["scores"])[confident]),
                         np.max(np.abs(reference["boxes"] - other["boxes"])[anchors])))

    def compare(self, request, outputs: dict, reference: dict, assets: dict) -> tuple[list, float]:
        key = request.signature
        missing = [k for k in OUTPUTS if k not in outputs]
        if missing:
            return [f"{key}: no {', '.join(missing)} output"], float("inf")
        labels, threshold = list(assets["label_names"]), assets["score_threshold"]
        errors, worst = [], 0.0
        for i in range(request.size):
            got = {k: np.asarray(outputs[k][i]) for k in OUTPUTS}
            want = {k: np.asarray(reference[k][i]) for k in ("boxes", "classes", "scores", "num_detections")}
            count = int(got["num_detections"])
            if int(np.sum(got["classes"] >= 0)) != count or as_text(got["labels"][:count]) != \
                    [labels[c] for c in got["classes"][:count]] or any(as_text(got["labels"][count:])):
                errors.append(f"{key}[{i}]: num_detections, classes and labels disagree")
            # Detections clear of the score threshold must match one for one; one within the
            # tolerance of it may be kept on one side and dropped on the other.
            problem, diff = _match(got, want, threshold + SCORE_TOLERANCE)
            worst = max(worst, diff)
            if problem:
                errors.append(f"{key}[{i}]: {problem}")
        return errors, worst

    # --- command line ------------------------------------------------------------
    def read_request(self, values, signatures, signature=None):
        return read_image_request(values, signatures, signature)

    draws = True

    def draw(self, source, row, target) -> None:
        """The image file `source` with the box, label and score of each detection that
        `zoo predict` shows (score >= SHOWN_SCORE) drawn on it, as PNG."""
        from PIL import Image, ImageDraw

        with Image.open(source) as opened:
            image = opened.convert("RGB")
        width, height = image.size
        canvas = ImageDraw.Draw(image)
        line = max(1, round(min(width, height) / 200))
        for i in _shown(row):
            ymin, xmin, ymax, xmax = row["boxes"][i]
            colour = _PALETTE[int(row["classes"][i]) % len(_PALETTE)]
            box = (xmin * width, ymin * height, xmax * width, ymax * height)
            canvas.rectangle(box, outline=colour, width=line)
            text = f"{row['labels'][i]} {row['scores'][i]:.2f}"
            left, top, right, bottom = canvas.textbbox((box[0], box[1]), text)
            top_edge = max(0, box[1] - (bottom - top) - 2)
            canvas.rectangle((box[0], top_edge, box[0] + right - left + 4, top_edge + bottom - top + 2), fill=colour)
            canvas.text((box[0] + 2, top_edge), text, fill=(0, 0, 0))
        image.save(target, format="PNG")

    def format_answer(self, row: dict) -> str:
        """The detections scoring at least SHOWN_SCORE, one per line (--json gives them all)."""
        shown = _shown(row)
        rest = int(row.get("num_detections", 0)) - len(shown)
        found = [f"{row['labels'][i]} {row['scores'][i]:.2f} [{', '.join(f'{v:.3f}' for v in row['boxes'][i])}]"
                 for i in shown]
        more = f" ({rest} more under {SHOWN_SCORE}: --json shows them)" if rest else ""
        return f"{len(shown)} detection{'s' if len(shown) != 1 else ''}{more}" + "".join(f"\n  {f}" for f in found)


def _shown(row: dict) -> list[int]:
    return [i for i in range(int(row.get("num_detections", 0))) if row["scores"][i] >= SHOWN_SCORE]


# Box colours by class: bright enough for the black label text on them.
_PALETTE = ((255, 99, 71), (60, 179, 113), (65, 150, 255), (255, 215, 0), (238, 130, 238), (0, 206, 209),
            (255, 165, 0), (154, 205, 50))


def _difference(a: dict, i, b: dict, j) -> float:
    """max |difference| of box coordinates and score between detection `i` of `a` and `j` of `b`."""
    return max(float(np.max(np.abs(a["boxes"][i] - b["boxes"][j]))), abs(float(a["scores"][i] - b["scores"][j])))


def _match(got: dict, want: dict, clear: float) -> tuple[str, float]:
    """(what differs, max |difference|) between two images' detections above `clear`."""
    g = np.flatnonzero(got["scores"] > clear)
    w = np.flatnonzero(want["scores"] > clear)
    if len(g) != len(w):
        return f"{len(g)} detections above the threshold, Keras gives {len(w)}", float("inf")
    worst, used = 0.0, set()
    for j in w:
        best, best_diff = None, float("inf")
        for k in g:
            if k in used or got["classes"][k] != want["classes"][j]:
                continue
            diff = _difference(got, k, want, j)
            if diff < best_diff:
                best, best_diff = k, diff
        if best is None or best_diff > max(SCORE_TOLERANCE, BOX_TOLERANCE):
            return (f"Keras' detection of class {want['classes'][j]} score {want['scores'][j]:.4f} has no match "
                    f"(closest differs by {best_diff:.3g})"), float("inf")
        used.add(best)
        worst = max(worst, best_diff)
    return "", worst


TASK = register_task(ObjectDetection())
