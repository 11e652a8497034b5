"""Keras model zoo: build, train with fit, export for TF Serving, serve, query.

    import zoo
    zoo.list_models()
    ds, info = zoo.load_dataset("digits", split="train", with_info=True)
    run_dir = zoo.train("simple_cnn", "digits", epochs=5)      # or (x, y) arrays, a tf.data.Dataset
    predictor = zoo.load(run_dir)                               # answers as the served model does
"""

import os as _os

from zoo.lazy import lazy_attributes

# TensorFlow's C++ start-up chatter hides the progress bars a user came for.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

# Importing TensorFlow takes seconds; names resolve on first use so `zoo --help` is quick.
_EXPORTS = {
    "build_model": "zoo.registry",
    "list_models": "zoo.registry",
    "register_model": "zoo.registry",
    "load_dataset": "zoo.data.pipeline",
    "list_datasets": "zoo.data.registry",
    "register_dataset": "zoo.data.registry",
    "train": "zoo.training",
    "evaluate": "zoo.training",
    "load": "zoo.predictor",
    "save_preset": "zoo.training.presets",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes('zoo', _EXPORTS)
