"""DS-CNN (Zhang et al., 2017, "Hello Edge: Keyword Spotting on Microcontrollers"):
depthwise-separable convolutions over the log-mel spectrogram, the keyword spotter
that beats a plain CNN of the same size.

A strided 10x4 convolution over [frames, mel bins], then blocks of a 3x3 depthwise
convolution and a 1x1 pointwise one (each with batch normalisation and ReLU), global
average pooling and logits. The log-mel features are computed inside the model, as in
`speech_cnn`.
"""

from __future__ import annotations

import keras

from zoo.models.preprocessing import check_num_classes, logits
from zoo.models.speech_cnn import log_mel_image
from zoo.registry import register_model


def _bn_relu(x, name):
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


@register_model(task="audio_classification", default_dataset="spoken_commands")
def ds_cnn(num_classes=10, samples=16_000, num_mel_bins=40, width=64, num_blocks=4, dropout=0.2):
    """DS-CNN keyword spotter: conv 10x4 /2 -> [depthwise 3x3, pointwise 1x1] x num_blocks -> logits.

    Args:
        num_classes: number of commands.
        samples: waveform samples per clip (16,000: one second at 16 kHz).
        num_mel_bins: log-mel energies per 10 ms frame.
        width: channels of every convolution (64 is Zhang et al.'s DS-CNN-S).
        num_blocks: depthwise-separable blocks.
        dropout: dropout rate before the logits.

    Example:
        >>> import zoo
        >>> model = zoo.build_model("ds_cnn", num_classes=10, width=32)
    """
    check_num_classes(num_classes, "ds_cnn")
    for arg, value in (("width", width), ("num_blocks", num_blocks)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"ds_cnn: {arg} must be a positive int, got {value!r}.")
    waveform, x = log_mel_image(samples, num_mel_bins, "ds_cnn")
    x = keras.layers.Conv2D(width, (10, 4), strides=2, padding="same", use_bias=False, name="conv")(x)
    x = _bn_relu(x, "conv")
    for i in range(num_blocks):
        x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"block_{i}_depthwise")(x)
        x = _bn_relu(x, f"block_{i}_depthwise")
        x = keras.layers.Conv2D(width, 1, use_bias=False, name=f"block_{i}_pointwise")(x)
        x = _bn_relu(x, f"block_{i}_pointwise")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    return keras.Model([waveform], logits(x, num_classes), name="ds_cnn")
