"""Tasks, models and datasets from other packages: the `zoo.plugins` entry points.

A package that adds to the zoo declares a module that registers its tasks, models and
datasets when imported:

    # pyproject.toml of the user's package
    [project.entry-points."zoo.plugins"]
    my_regression = "my_package.zoo_plugin"

Every process then finds them the way it finds the project's own (`zoo train`,
`zoo export` and `zoo.load` of a run of that task, in a fresh process): the registries
load the entry points the first time they are asked for a name. A plugin that fails to
import is an error naming the entry point, never a silently smaller zoo.

Without a package, the `ZOO_PLUGINS` environment variable names modules (comma
separated, importable from the working directory or PYTHONPATH) to load the same way,
such as a file that registers one's own dataset:

    # my_data.py
    @zoo.register_dataset(task="image_classification", label_names=("cat", "dog"))
    def pets(split):
        return images[split], labels[split]

    ZOO_PLUGINS=my_data zoo train simple_cnn --dataset pets
"""

from __future__ import annotations

import importlib.metadata
import os
import sys

GROUP = "zoo.plugins"
ENVIRONMENT = "ZOO_PLUGINS"
_loaded = False


class PluginError(RuntimeError):
    """A `zoo.plugins` entry point could not be loaded."""


def load_plugins() -> list[str]:
    """Imports every `zoo.plugins` entry point once; returns their names."""
    global _loaded
    points = list(importlib.metadata.entry_points(group=GROUP))
    if _loaded:
        return [p.name for p in points]
    _loaded = True  # before loading: a plugin's own lookups must not load it again
    for point in points:
        try:
            point.load()
        except Exception as e:
            _loaded = False
            raise PluginError(f"The {GROUP} entry point {point.name!r} ({point.value}) failed to load: "
                              f"{type(e).__name__}: {e}. Fix or uninstall the package that declares it.") from e
    modules = [m.strip() for m in os.environ.get(ENVIRONMENT, "").split(",") if m.strip()]
    if modules and "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # console scripts do not put the working directory on the path
    for module in modules:
        try:
            importlib.metadata.EntryPoint(name=module, value=module, group=ENVIRONMENT).load()
        except Exception as e:
            _loaded = False
            raise PluginError(f"{ENVIRONMENT} names module {module!r}, which failed to import: "
                              f"{type(e).__name__}: {e}. Fix it, or remove it from {ENVIRONMENT}.") from e
    return [p.name for p in points] + modules
