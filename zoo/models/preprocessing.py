"""The input stems the models share: named raw-pixel input scaled in the graph, named
token ids and their padding mask, float32 logits."""

from __future__ import annotations

import keras


def image_input(input_shape, min_size: int = 1, model: str = "model"):
    """Returns `(inputs, x)`: the `{"image": ...}` input and pixels scaled to [-1, 1].

    The model takes raw 0-255 pixels so no client or exporter needs to know the
    normalization. `min_size` is the smallest height/width the architecture's
    downsampling can take.
    """
    shape = tuple(input_shape)
    if len(shape) != 3 or any(not isinstance(d, int) or d <= 0 for d in shape):
        raise ValueError(
            f"{model}: input_shape must be (height, width, channels) of positive ints, "
            f"got {input_shape!r}."
        )
    if min(shape[:2]) < min_size:
        raise ValueError(
            f"{model}: input_shape {shape} is too small; this architecture downsamples "
            f"and needs height and width >= {min_size}. Resize the images "
            f"(load_dataset(..., image_size=...)) or choose a smaller model."
        )
    image = keras.Input(shape=shape, name="image", dtype="float32")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale_pixels")(image)
    # A list of one named input: fit/predict take plain arrays and {"image": x} alike,
    # without Keras' "structure of inputs doesn't match" warning.
    return [image], x


def check_num_classes(num_classes, model: str):
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(f"{model}: num_classes must be an int >= 2, got {num_classes!r}.")


def logits(x, num_classes: int):
    # float32 logits keep the softmax/loss stable under mixed_float16 (Keras' advice).
    return keras.layers.Dense(num_classes, name="logits", dtype="float32")(x)


def token_input(vocabulary_size, sequence_length, model: str = "model"):
    """The `{"token_ids": int32 [B, sequence_length]}` input of a text model (0 pads).

    Text models take token ids; the tokenizer lives in the data pipeline for
    training and in the serving signature for export, so both feed the same ids.
    """
    for arg, value, low in (("vocabulary_size", vocabulary_size, 3), ("sequence_length", sequence_length, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{model}: {arg} must be an int >= {low}, got {value!r}.")
    return keras.Input(shape=(sequence_length,), name="token_ids", dtype="int32")


@keras.saving.register_keras_serializable(package="zoo")
class PaddingMask(keras.layers.Layer):
    """True where a token is not padding (id 0), and always at the first position."""

    def call(self, token_ids):
        real = keras.ops.not_equal(token_ids, 0)
        first = keras.ops.equal(keras.ops.arange(keras.ops.shape(token_ids)[1]), 0)
        return keras.ops.logical_or(real, keras.ops.expand_dims(first, 0))

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, token_ids):
        return keras.KerasTensor(token_ids.shape, dtype="bool")
