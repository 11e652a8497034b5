"""Checks written once and applied to every registered model."""

import numpy as np

import zoo
from zoo import registry

# Small enough that every check runs in seconds on two CPU cores.
TINY = {
    "image_classification": dict(num_classes=3, input_shape=(32, 32, 3)),
}
TINY_BY_MODEL = {
    "resnet50": dict(width=4),
    "mobilenet_v2": dict(alpha=0.35),
    "simple_cnn": dict(filters=(8, 16), dense_units=16),
    "mlp": dict(hidden_units=(16,)),
    "resnet20": dict(width=4),
    "resnet56": dict(width=2),
}


def tiny_kwargs(name):
    spec = registry.get_model_spec(name)
    return dict(TINY[spec.task], **TINY_BY_MODEL.get(name, {}))


def tiny_model(name):
    return zoo.build_model(name, **tiny_kwargs(name))


def example_batch(model, batch=4, seed=0):
    """Random raw inputs matching `model`'s named inputs (pixels 0-255 for images)."""
    rng = np.random.default_rng(seed)
    return {
        k: rng.uniform(0, 255, (batch,) + tuple(t.shape[1:])).astype("float32")
        for k, t in model.input.items()
    }
