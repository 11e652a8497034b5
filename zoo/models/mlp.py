"""A multilayer perceptron over flattened pixels: the baseline every image set gets."""

from __future__ import annotations

import keras

from zoo.models.preprocessing import check_num_classes, image_input, logits
from zoo.registry import register_model


@register_model(task="image_classification", default_dataset="mnist")
def mlp(num_classes=10, input_shape=(28, 28, 1), hidden_units=(256, 128), dropout=0.2):
    """Multilayer perceptron: flatten, Dense+ReLU+Dropout per hidden layer, logits.

    Args:
        num_classes: number of output classes.
        input_shape: (height, width, channels) of the raw 0-255 input.
        hidden_units: width of each hidden layer.
        dropout: dropout rate after each hidden layer.

    Example:
        >>> import zoo
        >>> model = zoo.build_model("mlp", num_classes=10, input_shape=(8, 8, 1))
    """
    check_num_classes(num_classes, "mlp")
    inputs, x = image_input(input_shape, model="mlp")
    x = keras.layers.Flatten(name="flatten")(x)
    for i, units in enumerate(hidden_units):
        x = keras.layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
    return keras.Model(inputs, logits(x, num_classes), name="mlp")
