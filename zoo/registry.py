"""The model registry: builders keyed by their own function name.

    @register_model(task="image_classification", default_dataset="cifar10")
    def simple_cnn(num_classes=10, input_shape=(32, 32, 3)):
        ...

    model = build_model("simple_cnn", num_classes=5)
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from typing import Any, Callable

from zoo import tasks
from zoo.plugins import load_plugins

_MODELS: dict[str, "ModelSpec"] = {}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one builder."""

    name: str
    task: str
    default_dataset: str
    builder: Callable[..., Any]
    # load_dataset options the architecture needs (BERT models: {"tokenizer": "wordpiece"}).
    data_options: dict = dataclasses.field(default_factory=dict)

    @property
    def defaults(self) -> dict[str, Any]:
        """The builder's keyword arguments and their defaults."""
        return {
            p.name: p.default
            for p in inspect.signature(self.builder).parameters.values()
            if p.default is not inspect.Parameter.empty
        }

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.builder) or ""
        return doc.split("\n", 1)[0]


def register_model(task: str, default_dataset: str, data_options: dict | None = None):
    """Registers a builder under its function name for `task`.

    `data_options` are the `load_dataset` options its data needs whatever the builder's
    arguments (BERT models: {"tokenizer": "wordpiece"}); training and export use them.
    """
    tasks.get_task(task)  # fail at import time on a typo, not at build time

    def decorate(builder):
        name = builder.__name__
        if name in _MODELS and _MODELS[name].builder is not builder:
            raise ValueError(f"A model named {name!r} is already registered.")
        _MODELS[name] = ModelSpec(name, task, default_dataset, builder, dict(data_options or {}))
        return builder

    return decorate


def _closest(name: str, choices) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def get_model_spec(name: str) -> ModelSpec:
    _ensure_registered()
    if not isinstance(name, str) or name not in _MODELS:
        raise ValueError(
            f"Unknown model {name!r}.{_closest(str(name), _MODELS)} "
            f"Known models: {', '.join(sorted(_MODELS))}."
        )
    return _MODELS[name]


def list_models(task: str | None = None) -> list[str]:
    """Sorted names of the registered models, optionally of one task."""
    _ensure_registered()
    if task is not None:
        tasks.get_task(task)
    return sorted(n for n, s in _MODELS.items() if task is None or s.task == task)


def data_options(name: str, model_kwargs: dict | None = None) -> dict:
    """The `load_dataset` options model `name` built with `model_kwargs` needs: its
    registration's (a BERT model's WordPiece tokenizer) and those its task derives from
    the arguments (sequence_length, a preset's vocabulary)."""
    spec = get_model_spec(name)
    derived = tasks.get_task(spec.task).data_options_for(dict(model_kwargs or {}))
    return dict(spec.data_options, **{k: v for k, v in derived.items() if v is not None})


def _type_ok(value, default) -> bool:
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, (tuple, list)):
        return isinstance(value, (tuple, list))
    return isinstance(value, type(default))


def check_model_kwargs(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Validates keyword arguments for builder `name`; returns them normalized."""
    spec = get_model_spec(name)
    defaults = spec.defaults
    valid = ", ".join(f"{k}={v!r}" for k, v in defaults.items())
    out = {}
    for key, value in kwargs.items():
        if key not in defaults:
            raise TypeError(
                f"{name}() got an unknown argument {key!r}.{_closest(key, defaults)} "
                f"Valid arguments: {valid}."
            )
        if not _type_ok(value, defaults[key]):
            raise TypeError(
                f"{name}() argument {key!r} must be {type(defaults[key]).__name__} "
                f"like its default {defaults[key]!r}, got {value!r} "
                f"({type(value).__name__})."
            )
        out[key] = tuple(value) if isinstance(value, list) else value
    return out


# What `zoo train` compiles with unless told otherwise (TrainConfig's defaults).
DEFAULT_LEARNING_RATE = 1e-3


def build_model(name: str, *, compiled: bool = True, **kwargs):
    """Builds the registered model `name` with keyword overrides of its defaults.

    The model comes compiled with its task's defaults, the loss, metrics and
    optimizer `zoo train` uses (for classifiers: sparse categorical cross-entropy
    on the logits, accuracy, Adam at 1e-3), as keras-hub's task models do: plain
    `model.fit(x, y)` trains it, and `model.compile(...)` replaces them.

    Args:
        name: a registered model (`zoo.list_models()`).
        compiled: compile it with the task's defaults (False: leave it uncompiled).
        **kwargs: the builder's arguments (`zoo info MODEL` lists them).

    Example:
        >>> import zoo
        >>> model = zoo.build_model("simple_cnn", num_classes=10, input_shape=(8, 8, 1))
        >>> model.output_names
        ['logits']
        >>> model.fit(images, labels, epochs=10)   # images [N,8,8,1] 0-255, labels [N]
    """
    spec = get_model_spec(name)
    model = spec.builder(**check_model_kwargs(name, kwargs))
    if compiled:
        import keras

        task = tasks.get_task(spec.task)
        model.compile(optimizer=keras.optimizers.Adam(DEFAULT_LEARNING_RATE), loss=task.loss(),
                      metrics=task.metrics())
    return model


def _ensure_registered():
    # Importing the families runs their @register_model decorators; other packages'
    # models register when their entry points load.
    import zoo.models  # noqa: F401

    load_plugins()
