"""Residual networks: the CIFAR ResNets (He et al. 2016, section 4.2) and ResNet-50.

`resnet()` is the generic builder; the registered variants only pick its depth.
"""

from __future__ import annotations

import keras

from zoo.models.batch_norm import FusedBatchNormalization
from zoo.models.preprocessing import check_num_classes, image_input, logits
from zoo.registry import register_model

# ImageNet-style depths: blocks per stage and whether blocks are bottlenecks.
_IMAGENET_STAGES = {
    18: ((2, 2, 2, 2), False),
    34: ((3, 4, 6, 3), False),
    50: ((3, 4, 6, 3), True),
    101: ((3, 4, 23, 3), True),
    152: ((3, 8, 36, 3), True),
}


def _conv_bn(x, filters, kernel, strides, name, activation=True):
    x = keras.layers.Conv2D(
        filters, kernel, strides=strides, padding="same", use_bias=False,
        kernel_initializer="he_normal", kernel_regularizer=None, name=f"{name}_conv",
    )(x)
    # momentum 0.9 as in the reference implementations: small data, few steps.
    x = FusedBatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
    if activation:
        x = keras.layers.Activation("relu", name=f"{name}_relu")(x)
    return x


def _shortcut(x, filters, strides, name):
    if strides == 1 and x.shape[-1] == filters:
        return x
    # Projection shortcut (option B) where the shape changes.
    return _conv_bn(x, filters, 1, strides, f"{name}_proj", activation=False)


def basic_block(x, filters, strides, name):
    """3x3 -> 3x3 residual block."""
    shortcut = _shortcut(x, filters, strides, name)
    y = _conv_bn(x, filters, 3, strides, f"{name}_1")
    y = _conv_bn(y, filters, 3, 1, f"{name}_2", activation=False)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.Activation("relu", name=f"{name}_out")(y)


def bottleneck_block(x, filters, strides, name, expansion=4):
    """1x1 reduce -> 3x3 -> 1x1 expand residual block (stride on the 3x3, v1.5)."""
    shortcut = _shortcut(x, filters * expansion, strides, name)
    y = _conv_bn(x, filters, 1, 1, f"{name}_1")
    y = _conv_bn(y, filters, 3, strides, f"{name}_2")
    y = _conv_bn(y, filters * expansion, 1, 1, f"{name}_3", activation=False)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.Activation("relu", name=f"{name}_out")(y)


def resnet(depth, num_classes=10, input_shape=(32, 32, 3), width=16, stem="cifar", name=None):
    """Generic ResNet.

    Args:
        depth: with `stem="cifar"`, 6n+2 (20, 32, 44, 56, 110): three stages of n basic
            blocks at width, 2*width, 4*width filters. With `stem="imagenet"`, one of
            18, 34, 50, 101, 152: a 7x7/2 conv and 3x3/2 max-pool stem, then four stages.
        num_classes: number of output classes.
        input_shape: (height, width, channels) of the raw 0-255 input.
        width: filters of the first stage (16 for CIFAR, 64 for ImageNet).
        stem: "cifar" or "imagenet".

    Example:
        >>> from zoo.models.resnet import resnet
        >>> model = resnet(20, num_classes=10, input_shape=(32, 32, 3))
    """
    name = name or f"resnet{depth}"
    check_num_classes(num_classes, name)
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"{name}: width must be a positive int, got {width!r}.")
    if stem == "cifar":
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(f"{name}: a CIFAR ResNet needs depth = 6n+2 (20, 56, ...), got {depth!r}.")
        stages = (((depth - 2) // 6,) * 3, False)
        inputs, x = image_input(input_shape, min_size=4, model=name)
        x = _conv_bn(x, width, 3, 1, "stem")
    elif stem == "imagenet":
        if depth not in _IMAGENET_STAGES:
            raise ValueError(f"{name}: an ImageNet ResNet depth is one of {sorted(_IMAGENET_STAGES)}, got {depth!r}.")
        stages = _IMAGENET_STAGES[depth]
        inputs, x = image_input(input_shape, min_size=32, model=name)
        x = _conv_bn(x, width, 7, 2, "stem")
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    else:
        raise ValueError(f"{name}: stem must be 'cifar' or 'imagenet', got {stem!r}.")

    blocks, bottleneck = stages
    block = bottleneck_block if bottleneck else basic_block
    for s, n in enumerate(blocks):
        for b in range(n):
            # The first stage of an ImageNet net is already downsampled by the stem.
            strides = 2 if (b == 0 and s > 0) else 1
            x = block(x, width * 2 ** s, strides, f"stage{s + 1}_block{b + 1}")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, logits(x, num_classes), name=name)


@register_model(task="image_classification", default_dataset="cifar10")
def resnet20(num_classes=10, input_shape=(32, 32, 3), width=16):
    """ResNet-20 for 32x32 images (0.27M parameters), He et al. 2016.

    Example:
        >>> import zoo
        >>> model = zoo.build_model("resnet20", num_classes=10)
    """
    return resnet(20, num_classes, input_shape, width, stem="cifar", name="resnet20")


@register_model(task="image_classification", default_dataset="cifar10")
def resnet56(num_classes=10, input_shape=(32, 32, 3), width=16):
    """ResNet-56 for 32x32 images (0.86M parameters), He et al. 2016.

    Example:
        >>> import zoo
        >>> model = zoo.build_model("resnet56", num_classes=10)
    """
    return resnet(56, num_classes, input_shape, width, stem="cifar", name="resnet56")


@register_model(task="image_classification", default_dataset="imagenette/160px")
def resnet50(num_classes=1000, input_shape=(224, 224, 3), width=64):
    """ResNet-50 (ImageNet-style bottleneck, v1.5 strides), 25.6M parameters at defaults.

    Example:
        >>> import zoo
        >>> model = zoo.build_model("resnet50", num_classes=10, input_shape=(64, 64, 3))
    """
    return resnet(50, num_classes, input_shape, width, stem="imagenet", name="resnet50")
