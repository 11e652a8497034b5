"""MobileNetV2 (Sandler et al. 2018): inverted residuals with linear bottlenecks."""

from __future__ import annotations

import keras

from zoo.models.batch_norm import FusedBatchNormalization
from zoo.models.preprocessing import check_num_classes, image_input, logits
from zoo.registry import register_model

# (expansion t, output channels c, repeats n, first stride s), the paper's Table 2.
_BLOCKS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _make_divisible(v, divisor=8):
    # Channel counts stay multiples of 8, as in the reference implementation.
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def inverted_residual(x, expansion, filters, strides, name):
    in_channels = x.shape[-1]
    y = x
    if expansion != 1:
        y = keras.layers.Conv2D(in_channels * expansion, 1, use_bias=False, name=f"{name}_expand")(y)
        y = FusedBatchNormalization(momentum=0.9, name=f"{name}_expand_bn")(y)
        y = keras.layers.ReLU(6.0, name=f"{name}_expand_relu")(y)
    y = keras.layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False, name=f"{name}_dw")(y)
    y = FusedBatchNormalization(momentum=0.9, name=f"{name}_dw_bn")(y)
    y = keras.layers.ReLU(6.0, name=f"{name}_dw_relu")(y)
    # Linear bottleneck: no activation after the projection.
    y = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_project")(y)
    y = FusedBatchNormalization(momentum=0.9, name=f"{name}_project_bn")(y)
    if strides == 1 and in_channels == filters:
        y = keras.layers.Add(name=f"{name}_add")([x, y])
    return y


@register_model(task="image_classification", default_dataset="imagenette/160px")
def mobilenet_v2(num_classes=1000, input_shape=(224, 224, 3), alpha=1.0, dropout=0.2):
    """MobileNetV2: 3.5M parameters at alpha=1.0 and 1000 classes.

    Args:
        num_classes: number of output classes.
        input_shape: (height, width, channels) of the raw 0-255 input; >= 32x32.
        alpha: width multiplier (0.35, 0.5, 0.75, 1.0, 1.3, 1.4 in the paper).
        dropout: dropout rate before the classifier.

    Example:
        >>> import zoo
        >>> model = zoo.build_model("mobilenet_v2", num_classes=10, input_shape=(32, 32, 3), alpha=0.35)
    """
    check_num_classes(num_classes, "mobilenet_v2")
    if not isinstance(alpha, (int, float)) or alpha <= 0:
        raise ValueError(f"mobilenet_v2: alpha must be a positive number, got {alpha!r}.")
    inputs, x = image_input(input_shape, min_size=32, model="mobilenet_v2")
    x = keras.layers.Conv2D(_make_divisible(32 * alpha), 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = FusedBatchNormalization(momentum=0.9, name="stem_bn")(x)
    x = keras.layers.ReLU(6.0, name="stem_relu")(x)
    for i, (t, c, n, s) in enumerate(_BLOCKS):
        for j in range(n):
            x = inverted_residual(x, t, _make_divisible(c * alpha), s if j == 0 else 1, f"block{i + 1}_{j + 1}")
    # The last conv is not thinned below 1280 channels for alpha < 1, as in the paper.
    x = keras.layers.Conv2D(_make_divisible(1280 * max(alpha, 1.0)), 1, use_bias=False, name="head_conv")(x)
    x = FusedBatchNormalization(momentum=0.9, name="head_bn")(x)
    x = keras.layers.ReLU(6.0, name="head_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, logits(x, num_classes), name="mobilenet_v2")
