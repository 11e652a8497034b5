"""The classic CIFAR-10 CNN of the PyTorch tutorial, with the flatten size derived."""

from __future__ import annotations

import keras

from zoo.models.preprocessing import check_num_classes, image_input, logits
from zoo.registry import register_model


@register_model(task="image_classification", default_dataset="cifar10")
def simple_cnn(num_classes=10, input_shape=(32, 32, 3), filters=(32, 64), dense_units=128):
    """Two conv+pool blocks, dense 128, dense K: the classic CIFAR-10 CNN.

    Conv2D(32, 3)/MaxPool/Conv2D(64, 3)/MaxPool/Dense(128)/Dense(K); on 32x32 inputs
    the flattened size is 64*8*8, on other sizes whatever the input gives.

    Args:
        num_classes: number of output classes.
        input_shape: (height, width, channels) of the raw 0-255 input; >= 4x4.
        filters: filters of each conv block (one 2x2 pool per block).
        dense_units: width of the hidden dense layer.

    Example:
        >>> import zoo
        >>> model = zoo.build_model("simple_cnn", num_classes=10, input_shape=(8, 8, 1))
    """
    check_num_classes(num_classes, "simple_cnn")
    inputs, x = image_input(input_shape, min_size=2 ** len(filters), model="simple_cnn")
    for i, f in enumerate(filters):
        x = keras.layers.Conv2D(f, 3, padding="same", activation="relu", name=f"conv_{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool_{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(dense_units, activation="relu", name="dense")(x)
    return keras.Model(inputs, logits(x, num_classes), name="simple_cnn")
