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
"""

from __future__ import annotations

import importlib.metadata

GROUP = "zoo.plugins"
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
    return [p.name for p in points]
