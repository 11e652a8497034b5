"""Package names that import their module on first use.

Importing TensorFlow takes seconds; a package `__init__` that names its API lazily lets
`zoo --help` and the light modules (registries, metadata) import in milliseconds.

    __getattr__ = lazy_attributes("zoo.data", {"load_dataset": "zoo.data.pipeline"})
"""

import importlib


def lazy_attributes(package: str, exports: dict):
    """A module `__getattr__` that imports `exports[name]` and returns its `name`."""

    def __getattr__(name):
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
