"""Keras model zoo: build, train with fit, export for TF Serving, serve, query.

    import zoo
    zoo.list_models()
    ds, info = zoo.load_dataset("digits", split="train", with_info=True)
    run_dir = zoo.train("simple_cnn", dataset="digits", epochs=5)
"""

import os as _os

# TensorFlow's C++ start-up chatter hides the progress bars a user came for.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from zoo.data import load_dataset  # noqa: E402
from zoo.registry import build_model, list_models, register_model  # noqa: E402
from zoo.training import evaluate, train  # noqa: E402

__all__ = ["build_model", "evaluate", "list_models", "load_dataset", "register_model", "train"]
__version__ = "0.1.0"
