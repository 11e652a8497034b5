"""Task `image_classification`: pixels in, class probabilities and label names out.

Model input `{"image": float32 [B,H,W,C]}`, raw 0-255 pixels (the model scales them),
one output of K logits. Exported signatures:

- `serving_default`: `image` float32 [B,H,W,C] -> `probabilities` [B,K], `class_id`
  [B] int64, `label` [B] string;
- `image_bytes`: JPEG/PNG/GIF/BMP bytes [B], decoded and resized in the graph; an
  image whose header says it has more than `max_image_pixels` pixels is refused
  (INVALID_ARGUMENT) before it is decoded;
- `classify` (TF Serving's Classify API): tf.Examples holding encoded bytes
  (`image/encoded`) or raw pixels (`image`, H*W*C floats).
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib

import numpy as np
import tensorflow as tf

from zoo.data import registry as datasets
from zoo.tasks import image_codec
from zoo.tasks.base import (
    CLASSIFY_METHOD, PREDICT_METHOD, Endpoint, ExportSource, Request, Signatures, model_inputs, register_task,
)
from zoo.tasks.classification import Classification, classify_outputs, label_table, predict_outputs

log = logging.getLogger(__name__)

# The tf.Example features the `classify` signature reads. An example carries either
# encoded image bytes or the raw pixels; bytes win when both are present.
ENCODED_FEATURE = "image/encoded"
PIXELS_FEATURE = "image"
# Leading bytes of the files `zoo predict` sends to image_bytes as they are.
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")


def image_size_option(image_size) -> tuple[int, int]:
    """The `image_size` data option as (height, width); a clear error for anything else."""
    size = tuple(image_size)
    if len(size) != 2 or any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in size):
        raise ValueError(f"image_size must be (height, width) of positive ints, got {image_size!r}.")
    return size


def max_image_pixels_option(options: dict, height: int, width: int) -> int:
    """The `max_image_pixels` export option (default `image_codec.DEFAULT_MAX_IMAGE_PIXELS`):
    an int no smaller than the model's own height x width."""
    max_pixels = options.get("max_image_pixels")
    if max_pixels is None:
        max_pixels = image_codec.DEFAULT_MAX_IMAGE_PIXELS
    if not isinstance(max_pixels, int) or isinstance(max_pixels, bool) or max_pixels < height * width:
        raise ValueError(f"max_image_pixels must be an int >= the model's own {height}x{width} = "
                         f"{height * width} pixels, got {max_pixels!r}.")
    return max_pixels


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


def _pixels(images) -> np.ndarray:
    # Whole 0-255 values, as real images have: then PNG bytes decode to exactly the
    # pixels that serving_default and the Keras reference see.
    return np.clip(np.round(np.asarray(images, np.float32)), 0, 255)


def is_image_file(path) -> bool:
    with open(path, "rb") as f:
        return any(f.read(8).startswith(m) for m in IMAGE_MAGIC)


class ImageClassification(Classification):
    name = "image_classification"
    description = "[B,H,W,C] float32 pixels 0-255 -> K logits"
    input_names = ("image",)
    data_arguments = ("num_classes", "input_shape")
    serving_inputs = ("image",)
    serving_outputs = ("probabilities", "class_id", "label")
    data_options = ("image_size",)
    export_options = ("max_image_pixels",)

    def reads_feature(self, dtype, shape) -> bool:
        return dtype == tf.uint8 and len(shape) == 3

    # --- data ----------------------------------------------------------------
    def builder_arguments(self, info) -> dict:
        return dict(super().builder_arguments(info), input_shape=tuple(info.input_shape))

    def prepare_examples(self, ds, info, data_dir=None, download=True, image_size=None):
        if image_size is not None:
            size = image_size_option(image_size)
            ds = ds.map(lambda x, y: (tf.cast(tf.image.resize(x, size), tf.uint8), y),
                        num_parallel_calls=tf.data.AUTOTUNE)
            info = dataclasses.replace(info, input_shape=size + (info.input_shape[-1],))
        elif any(d is None for d in info.input_shape):
            raise ValueError(
                f"Dataset {info.name!r} has images of varying size {info.input_shape}; pass "
                f"image_size=(height, width) (CLI: --set image_size=160,160) to resize them.")
        return ds, info

    def batch_features(self, x, y):
        return {"image": tf.cast(x, tf.float32)}, tf.cast(y, tf.int64)

    # --- export ----------------------------------------------------------------
    def export_assets(self, source: ExportSource) -> dict:
        shape = tuple(model_inputs(source.model)["image"].shape[1:])
        if len(shape) != 3 or any(d is None for d in shape) or shape[-1] not in (1, 3):
            raise ValueError(
                f"An image classifier must take 'image' [B,H,W,C] with fixed H, W and C in "
                f"(1, 3); this model takes {shape}. Build it with a fixed input_shape.")
        max_pixels = max_image_pixels_option(source.options, shape[0], shape[1])
        return dict(super().export_assets(source), image_shape=shape, max_image_pixels=max_pixels)

    def card(self, assets: dict) -> dict:
        return dict(super().card(assets), image_shape=list(assets["image_shape"]),
                    max_image_pixels=assets["max_image_pixels"])

    def examples(self, source: ExportSource, given, count):
        shape = tuple(model_inputs(source.model)["image"].shape[1:])
        config = source.config or {}
        name = source.dataset_name
        found, origin = None, "random"
        if given is not None:
            found, origin = np.asarray(given, np.float32)[:count], "given"
        elif name:
            try:
                raw = datasets.get_dataset(name).examples("train", data_dir=config.get("data_dir"), download=False)
                images = [x for x, _ in raw.take(count).as_numpy_iterator()]
                if config.get("image_size"):
                    images = [tf.image.resize(x, tuple(config["image_size"])).numpy() for x in images]
                found, origin = np.stack(images).astype(np.float32), f"{name}:train[:{count}]"
            except Exception as e:  # data not on this machine: warn and still export
                log.warning(
                    "Could not read examples of %s (%s); warm-up uses random inputs.", name, e)
        if found is None:
            if not name:
                log.warning("No real examples for %s; pass examples= or dataset= to warm up on real data.",
                            source.architecture)
            found = np.random.default_rng(0).uniform(0, 255, (count,) + shape).astype("float32")
        if found.ndim < 1 or len(found) == 0 or tuple(found.shape[1:]) != shape:
            raise ValueError(
                f"Examples ({origin}) have shape {found.shape}; the model takes image "
                f"[N, {', '.join(map(str, shape))}]. Pass examples (or a dataset) of that shape.")
        return {"image": _pixels(found)}, origin

    def model_inputs(self, examples, assets):
        return {"image": _pixels(examples["image"])}

    def signatures(self, model, assets: dict, staging_dir) -> Signatures:
        height, width, channels = assets["image_shape"]
        max_pixels = assets["max_image_pixels"]
        num_classes = len(assets["label_names"])
        table = label_table(assets["label_names"], staging_dir)
        pixels = tf.TensorSpec((height, width, channels), tf.float32)

        # One traced function that every signature calls: the model graph is stored once
        # in the SavedModel's function library, not once per signature.
        @tf.function(input_signature=[tf.TensorSpec((None, height, width, channels), tf.float32)])
        def predict(image):
            return predict_outputs(model({"image": image}, training=False), table)

        # Traced once and called by image_bytes and classify, so it is stored once.
        @tf.function(input_signature=[tf.TensorSpec((), tf.string)])
        def decode(data):
            return image_codec.decode_image(data, height, width, channels, max_pixels)

        def serving_default(image):
            return predict(image)

        def image_bytes(image_bytes):
            # map_fn decodes one image at a time, so a batch may mix formats and sizes,
            # and (parallel_iterations=1) at most one full-size image is in memory.
            return predict(tf.map_fn(decode, image_bytes, fn_output_signature=pixels, parallel_iterations=1))

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
                lambda args: tf.cond(args[1], lambda: decode(args[0]), lambda: args[2]),
                (encoded, has_bytes, dense), fn_output_signature=pixels, parallel_iterations=1)
            return classify_outputs(predict(images)["probabilities"], table, num_classes)

        return Signatures(
            endpoints={
                "serving_default": Endpoint(serving_default, [
                    tf.TensorSpec((None, height, width, channels), tf.float32, name="image")]),
                "image_bytes": Endpoint(image_bytes, [tf.TensorSpec((None,), tf.string, name="image_bytes")]),
                "classify": Endpoint(classify, [tf.TensorSpec((None,), tf.string, name="inputs")],
                                     CLASSIFY_METHOD),
            },
            resources=[table],
        )

    def requests(self, examples, batch_sizes=(1, None)) -> list[Request]:
        """Requests for every image signature from real images [N,H,W,C] (0-255).

        Each signature gets one request per batch size (None: all N examples). The
        `classify` requests alternate the two tf.Example forms so both are exercised.
        """
        def classify(size, images, encoded):
            return [Request("classify", CLASSIFY_METHOD, size, examples=[
                image_example(encoded=encoded[i]) if i % 2 else image_example(image=images[i]) for i in range(size)])]

        return image_requests(examples["image"], batch_sizes, classify)

    # --- command line ------------------------------------------------------------
    def read_request(self, values, signatures, signature=None):
        return read_image_request(values, signatures, signature)


def image_requests(images, batch_sizes=(1, None), more=None) -> list[Request]:
    """Warm-up and verification requests of real images [N,H,W,C] (0-255): per batch size
    (None: all N), `serving_default` with the pixels and `image_bytes` with them as PNG,
    then what `more(size, pixels, png_bytes)` adds (a task's other signatures)."""
    images = _pixels(images)
    encoded = [image_codec.encode_png(image) for image in images]
    requests = []
    for size in dict.fromkeys(min(b or len(images), len(images)) for b in batch_sizes):
        requests += [
            Request("serving_default", PREDICT_METHOD, size, inputs={"image": images[:size]}),
            Request("image_bytes", PREDICT_METHOD, size,
                    inputs={"image_bytes": np.array(encoded[:size], dtype=object)}),
        ]
        requests += more(size, images, encoded) if more else []
    return requests


def read_image_request(values, signatures: dict, signature: str | None = None) -> tuple[str, dict]:
    """`zoo predict`'s request of image files: sent as they are to `image_bytes`, or
    decoded to pixels when the chosen signature takes [B,H,W,C] pixels of a fixed size."""
    missing = [v for v in values if not pathlib.Path(v).is_file()]
    if missing:
        raise FileNotFoundError(f"no such image file: {', '.join(missing)} (an image model takes "
                                "PNG/JPEG/GIF/BMP files)")
    not_images = [v for v in values if not is_image_file(v)]
    if not_images:
        raise ValueError(f"not a PNG/JPEG/GIF/BMP image: {', '.join(not_images)}")
    if signature in (None, "image_bytes") and "image_bytes" in signatures:
        return "image_bytes", {"image_bytes": np.array([pathlib.Path(v).read_bytes() for v in values],
                                                       dtype=object)}
    signature = signature or "serving_default"
    inputs = signatures.get(signature, {}).get("inputs", {})
    if list(inputs) != ["image"] or len(inputs["image"]["shape"] or ()) != 4:
        raise ValueError(f"signature {signature!r} does not take image [B,H,W,C] pixels; it takes "
                         f"{', '.join(inputs) or 'nothing'}")
    _, height, width, channels = inputs["image"]["shape"]
    if None in (height, width, channels):
        raise ValueError(f"signature {signature!r} takes images of any size; send the files to a signature "
                         "that takes encoded bytes (image_bytes) or use serving.Client")
    images = [image_codec.decode_image(pathlib.Path(v).read_bytes(), height, width, channels).numpy()
              for v in values]
    return signature, {"image": np.stack(images).astype(np.float32)}


TASK = register_task(ImageClassification())
