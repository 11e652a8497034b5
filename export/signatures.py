"""Serving signatures per task: raw input in, named and meaningful outputs out.

The task, not the architecture, decides the signatures (DESIGN.md, "Contracts"). Each
task has one `TaskSignatures` entry in `TASKS`:

- `build(model, label_names, staging_dir)` returns the endpoints (signature key ->
  function + input signature + method name) and the resources they use (lookup
  tables), all of which the exporter tracks in a `keras.export.ExportArchive`;
- `requests(examples)` turns real examples into the inputs each signature takes
  (the same data as pixels, as encoded bytes, as tf.Examples). Warm-up records and
  export verification are both built from these;
- `reference(model, examples)` is what the Keras model answers on those examples,
  the numbers every signature must reproduce.

A new task (text, audio) adds a builder, a request maker and a reference function
here; the writer, the warm-up, the model card and the verification stay as they are.

    from export.signatures import get_task_signatures
    task = get_task_signatures("image_classification")
    sigs = task.build(model, ["cat", "dog"], staging_dir)
    sorted(sigs.endpoints)            # ['classify', 'image_bytes', 'serving_default']
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Callable

import numpy as np
import tensorflow as tf

PREDICT_METHOD = "tensorflow/serving/predict"
# TF Serving's Classify API requires this method name, exactly one input "inputs"
# (serialized tf.Example strings) and outputs "classes" and/or "scores", each
# [batch, num_classes] (tensorflow_serving/servables/tensorflow/classifier.cc).
CLASSIFY_METHOD = "tensorflow/serving/classify"

# The tf.Example features the `classify` signature reads. An example carries either
# encoded image bytes or the raw pixels; bytes win when both are present.
ENCODED_FEATURE = "image/encoded"
PIXELS_FEATURE = "image"


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One signature: `fn(**inputs) -> dict of named outputs`."""

    fn: Callable
    input_signature: list  # tf.TensorSpec per argument of fn, named like the argument
    method_name: str = PREDICT_METHOD


@dataclasses.dataclass(frozen=True)
class Signatures:
    """What a task builder hands the exporter."""

    endpoints: dict  # signature key -> Endpoint; "serving_default" first
    resources: list  # lookup tables and other trackables the endpoints use


@dataclasses.dataclass(frozen=True)
class Request:
    """Inputs for one call of one signature, built from the first `size` examples.

    `inputs` maps the signature's input keys to arrays; for a classify signature,
    `examples` holds the `tf.train.Example` protos instead (TF Serving's Classify
    request carries protos and serializes them into the "inputs" tensor itself).
    """

    signature: str
    method_name: str
    size: int
    inputs: dict = dataclasses.field(default_factory=dict)
    examples: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class TaskSignatures:
    build: Callable  # (model, label_names, staging_dir) -> Signatures
    requests: Callable  # (examples dict, batch_sizes) -> list[Request]
    reference: Callable  # (model, examples dict) -> np.ndarray [N, K] probabilities
    example_key: str  # the serving_default input that real examples fill
    # Tasks whose signatures need more than the model (text: the run's tokenizer):
    # (source, examples, dataset, count) -> (bound TaskSignatures, examples dict, origin).
    prepare: Callable | None = None


# --- image classification ------------------------------------------------------


def _image_shape(model) -> tuple[int, int, int]:
    shape = tuple(model.input["image"].shape[1:])
    if len(shape) != 3 or any(d is None for d in shape) or shape[-1] not in (1, 3):
        raise ValueError(
            f"An image classifier must take 'image' [B,H,W,C] with fixed H, W and C in "
            f"(1, 3); this model takes {shape}. Build it with a fixed input_shape."
        )
    return shape


def _label_table(label_names, staging_dir) -> tf.lookup.StaticHashTable:
    """A class id -> label name table read from labels.txt.

    The file becomes a SavedModel asset (assets/labels.txt), so the names travel with
    the model and TF Serving's loader initializes the table from the exported copy.
    """
    for name in label_names:
        if "\n" in name or "\r" in name:
            raise ValueError(f"Label names cannot contain line breaks: {name!r}.")
    path = pathlib.Path(staging_dir) / "labels.txt"
    path.write_text("".join(f"{name}\n" for name in label_names), encoding="utf-8")
    initializer = tf.lookup.TextFileInitializer(
        str(path),
        key_dtype=tf.int64, key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
        value_dtype=tf.string, value_index=tf.lookup.TextFileIndex.WHOLE_LINE,
    )
    return tf.lookup.StaticHashTable(initializer, default_value="")


def decode_image(data, height: int, width: int, channels: int):
    """One encoded image (JPEG, PNG, GIF, BMP) -> float32 [height, width, channels], 0-255.

    The image is decoded with its own channel count and converted here, because
    `tf.io.decode_image` refuses some conversions (a GIF is always RGB), then resized
    like the training pipeline resizes (bilinear, aspect ratio not kept).
    """
    image = tf.io.decode_image(data, channels=0, dtype=tf.uint8, expand_animations=False)
    found = tf.shape(image)[-1]  # 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA
    if channels == 3:
        image = tf.cond(found < 3, lambda: tf.image.grayscale_to_rgb(image[..., :1]),
                        lambda: image[..., :3])
    else:
        image = tf.cond(found < 3, lambda: image[..., :1],
                        lambda: tf.image.rgb_to_grayscale(image[..., :3]))
    image = tf.image.resize(tf.cast(image, tf.float32), (height, width))
    return tf.ensure_shape(image, (height, width, channels))


def image_classification(model, label_names, staging_dir) -> Signatures:
    """`serving_default`, `image_bytes` and `classify` for an image classifier.

    Args:
        model: Keras model with input {"image": [B,H,W,C] float32 0-255} and logits [B,K].
        label_names: K class names; output `label` and `classes` use them.
        staging_dir: folder for asset source files (labels.txt) until the SavedModel
            writer copies them into assets/.

    Example:
        >>> sigs = image_classification(model, ["circle", "square"], "/tmp/stage")
        >>> sigs.endpoints["serving_default"].input_signature
        [TensorSpec(shape=(None, 32, 32, 3), dtype=tf.float32, name='image')]
    """
    height, width, channels = _image_shape(model)
    num_classes = len(label_names)
    table = _label_table(label_names, staging_dir)
    pixels = tf.TensorSpec((height, width, channels), tf.float32)

    # One traced function that every signature calls: the model graph is stored once
    # in the SavedModel's function library, not once per signature.
    @tf.function(input_signature=[tf.TensorSpec((None, height, width, channels), tf.float32)])
    def predict(image):
        logits = model({"image": image}, training=False)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
        return {"probabilities": probabilities, "class_id": class_id, "label": table.lookup(class_id)}

    def decode_all(encoded):
        return tf.map_fn(lambda data: decode_image(data, height, width, channels), encoded,
                         fn_output_signature=pixels)

    def serving_default(image):
        return predict(image)

    def image_bytes(image_bytes):
        # map_fn decodes one image at a time, so a batch may mix formats and sizes.
        return predict(decode_all(image_bytes))

    def classify(inputs):
        size = height * width * channels
        parsed = tf.io.parse_example(inputs, {
            ENCODED_FEATURE: tf.io.FixedLenFeature([], tf.string, default_value=""),
            PIXELS_FEATURE: tf.io.RaggedFeature(tf.float32),
        })
        encoded, flat = parsed[ENCODED_FEATURE], parsed[PIXELS_FEATURE]
        has_bytes = tf.strings.length(encoded) > 0
        well_formed = tf.logical_or(has_bytes, tf.equal(flat.row_lengths(), size))
        check = tf.debugging.Assert(tf.reduce_all(well_formed), [
            # No quotes: the assertion message is C-escaped on its way to the client.
            f"Each tf.Example needs feature {ENCODED_FEATURE} (JPEG/PNG/GIF/BMP bytes) or "
            f"feature {PIXELS_FEATURE} ({size} floats: {height}x{width}x{channels} pixels, 0-255)."])
        with tf.control_dependencies([check]):
            dense = tf.reshape(flat.to_tensor(0.0, shape=(None, size)), (-1, height, width, channels))
        images = tf.map_fn(
            lambda args: tf.cond(args[1], lambda: decode_image(args[0], height, width, channels),
                                 lambda: args[2]),
            (encoded, has_bytes, dense), fn_output_signature=pixels)
        scores = predict(images)["probabilities"]
        names = table.lookup(tf.range(num_classes, dtype=tf.int64))
        classes = tf.tile(names[tf.newaxis], (tf.shape(scores)[0], 1))
        return {"classes": classes, "scores": scores}

    return Signatures(
        endpoints={
            "serving_default": Endpoint(serving_default, [
                tf.TensorSpec((None, height, width, channels), tf.float32, name="image")]),
            "image_bytes": Endpoint(image_bytes, [tf.TensorSpec((None,), tf.string, name="image_bytes")]),
            "classify": Endpoint(classify, [tf.TensorSpec((None,), tf.string, name="inputs")], CLASSIFY_METHOD),
        },
        resources=[table],
    )


def _pixels(examples) -> np.ndarray:
    # Whole 0-255 values, as real images have: then PNG bytes decode to exactly the
    # pixels that serving_default and the Keras reference see.
    return np.clip(np.round(np.asarray(examples["image"], np.float32)), 0, 255)


def encode_png(image) -> bytes:
    """[H,W,C] 0-255 pixels -> PNG bytes (lossless, so decoding gives the pixels back)."""
    return tf.io.encode_png(np.clip(np.round(image), 0, 255).astype(np.uint8)).numpy()


def image_example(image=None, encoded: bytes | None = None) -> tf.train.Example:
    """A tf.Example for `classify`: raw pixels (float list, HWC order) or encoded bytes.

    Example:
        >>> ex = image_example(encoded=open("cat.jpg", "rb").read())
        >>> ex.SerializeToString()  # one element of the `inputs` tensor
    """
    feature = {}
    if encoded is not None:
        feature[ENCODED_FEATURE] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded]))
    if image is not None:
        values = np.asarray(image, np.float32).ravel()
        feature[PIXELS_FEATURE] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
    return tf.train.Example(features=tf.train.Features(feature=feature))


def image_requests(examples, batch_sizes=(1, None)) -> list[Request]:
    """Requests for every image signature from real images [N,H,W,C] (0-255).

    Each signature gets one request per batch size (None: all N examples). The
    `classify` requests alternate the two tf.Example forms so both are exercised.
    """
    images = _pixels(examples)
    encoded = [encode_png(image) for image in images]
    requests = []
    for size in dict.fromkeys(min(b or len(images), len(images)) for b in batch_sizes):
        requests += [
            Request("serving_default", PREDICT_METHOD, size, inputs={"image": images[:size]}),
            Request("image_bytes", PREDICT_METHOD, size,
                    inputs={"image_bytes": np.array(encoded[:size], dtype=object)}),
            Request("classify", CLASSIFY_METHOD, size, examples=[
                image_example(encoded=encoded[i]) if i % 2 else image_example(image=images[i])
                for i in range(size)]),
        ]
    return requests


def image_reference(model, examples) -> np.ndarray:
    """Keras' softmax probabilities on whole-valued pixels, the numbers to reproduce."""
    logits = model.predict_on_batch({"image": _pixels(examples)})
    return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1).numpy()


# Imported here, after the types it builds on, to keep one module per task.
from export import text_signatures  # noqa: E402

TASKS = {
    "image_classification": TaskSignatures(
        build=image_classification, requests=image_requests, reference=image_reference,
        example_key="image"),
    "text_classification": text_signatures.TEXT_CLASSIFICATION,
}


def get_task_signatures(task: str) -> TaskSignatures:
    if task not in TASKS:
        raise ValueError(
            f"Export has no signatures for task {task!r} yet; supported tasks: "
            f"{', '.join(sorted(TASKS))}. Add a builder to export/signatures.py TASKS."
        )
    return TASKS[task]
