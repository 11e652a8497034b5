"""What a task is: the one object that owns everything task-specific.

The task, not the architecture, decides the data format, the loss and metrics, the
export signatures, the warm-up requests, how an export is checked against the Keras
model, and how a request is read and an answer shown (DESIGN.md, "Contracts"). Each
task is one registered `Task` instance in one module of `zoo/tasks/`; the trainer,
the data pipeline, the exporter and the command line ask the registry for it and call
its methods, and never compare a task's name. A new task is one module (its models and
datasets register themselves): subclass `Task`, fill in the methods, `register_task`.

    from zoo.tasks import get_task
    task = get_task("image_classification")
    model.compile(loss=task.loss(), metrics=task.metrics())
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import pathlib
from typing import Any, Callable

import numpy as np

from zoo.plugins import GROUP as PLUGIN_GROUP, load_plugins

# TF Serving's method names (tensorflow_serving/servables/tensorflow/*.cc): Classify and
# Regress requests are refused by signatures that do not carry theirs.
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"

_TASKS: dict[str, "Task"] = {}
log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One signature: `fn(**inputs) -> dict of named outputs`.

    `defaults` maps an input name to the value (a numpy array or Python scalar of the
    input's dtype and shape) that TF Serving feeds when a Predict request leaves that
    input out; the export writes it into the SignatureDef's `defaults`.

    Example:
        >>> Endpoint(generate, [tf.TensorSpec([None], tf.string, name="text"),
        ...                     tf.TensorSpec([], tf.int32, name="beam_size")], defaults={"beam_size": 1})
    """

    fn: Callable
    input_signature: list  # tf.TensorSpec per argument of fn, named like the argument
    method_name: str = PREDICT_METHOD
    defaults: dict = dataclasses.field(default_factory=dict)  # input name -> value fed when a request omits it


@dataclasses.dataclass(frozen=True)
class Signatures:
    """What a task hands the exporter."""

    endpoints: dict  # signature key -> Endpoint; "serving_default" first
    resources: list = dataclasses.field(default_factory=list)  # lookup tables, tokenizers


@dataclasses.dataclass(frozen=True)
class Request:
    """Inputs for one call of one signature, built from the first `size` examples.

    `inputs` maps the signature's input keys to arrays; for a classify or regress
    signature `examples` holds the `tf.train.Example` protos instead (TF Serving's
    Classify/Regress request carries protos and serializes them into "inputs" itself).
    """

    signature: str
    method_name: str
    size: int
    inputs: dict = dataclasses.field(default_factory=dict)
    examples: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ExportSource:
    """A model on its way to an export, and what is known about where it came from."""

    model: Any  # keras.Model
    architecture: str
    run_dir: pathlib.Path | None = None
    config: dict | None = None  # the run's config.json
    dataset: dict | None = None  # the run's dataset.json
    metrics: dict | None = None
    label_names: list | None = None  # given by the caller; tasks without labels ignore them
    options: dict = dataclasses.field(default_factory=dict)  # the task's export options (max_image_pixels)
    example_dataset: str | None = None  # the dataset the caller named for examples
    data_options: dict = dataclasses.field(default_factory=dict)  # the architecture's (ModelSpec.data_options)

    @property
    def dataset_name(self) -> str | None:
        """The dataset to read examples (and, for text, the vocabulary) from."""
        return self.example_dataset or (self.config or {}).get("dataset")


class Task:
    """Base class of the registered task objects.

    Subclasses set `name`, `description` and `input_names` (the model's input keys, a
    contract) and implement the methods below that raise NotImplementedError.
    """

    name: str = ""
    description: str = ""
    input_names: tuple = ()
    # Builder arguments the data decides (`builder_arguments`), which `--set` cannot change.
    data_arguments: tuple = ()
    # serving_default's input keys (the exported contract; raw input, not model input).
    serving_inputs: tuple = ()
    # Output keys every serving_default of this task has (tells tasks with the same inputs apart).
    serving_outputs: tuple = ()
    # load_dataset keyword options this task's data understands (e.g. image_size).
    data_options: tuple = ()
    # export_saved_model keyword options this task's export understands.
    export_options: tuple = ()

    def __repr__(self) -> str:
        return f"<task {self.name}>"

    # --- training ------------------------------------------------------------
    def loss(self):
        raise NotImplementedError

    def metrics(self) -> list:
        return []

    def check_model(self, model) -> None:
        """Raises ValueError unless `model` takes and returns what this task needs."""
        inputs = model_inputs(model)
        names = sorted(inputs) if inputs is not None else None
        if names != sorted(self.input_names):
            raise ValueError(
                f"A {self.name} model takes the named inputs {list(self.input_names)}; this model takes "
                f"{names or _describe_inputs(model)}. Build it with keras.Input(name=...) per input and "
                f"call keras.Model(inputs=[input, ...] or {{name: input}}, outputs=...).")

    # --- data ----------------------------------------------------------------
    def builder_arguments(self, info) -> dict:
        """The builder arguments the data decides (num_classes, input_shape, ...)."""
        return {}

    def prepare_examples(self, ds, info, data_dir=None, download=True, **options):
        """Per-example (before cache) map of raw (input, label) examples; returns (ds, info).

        `options` are the `data_options` the caller or the dataset's registration gave."""
        return ds, info

    def batch_features(self, x, y):
        """Per-batch map to (features dict keyed by input_names, labels)."""
        return {self.input_names[0]: x}, y

    def reads_feature(self, dtype, shape) -> bool:
        """True when this task's models read a TFDS input feature of `dtype` and `shape`
        (an unregistered TFDS name takes the first task that does)."""
        return False

    def data_options_for(self, model_kwargs: dict) -> dict:
        """load_dataset options that follow from builder arguments (e.g. sequence_length)."""
        return {}

    def report_metrics(self, model, ds, label_names) -> dict:
        """Metrics beyond the compiled ones, computed over batches `ds` of (features, labels)
        (e.g. entity-level F1); they join metrics.json and `zoo evaluate`'s answer."""
        return {}

    def write_run_assets(self, run_dir: pathlib.Path, info) -> dict:
        """Writes what a run needs beyond the model (a vocabulary); returns dataset.json extras."""
        return {}

    def read_run_assets(self, run_dir: pathlib.Path, dataset_json: dict) -> dict:
        """load_dataset options that reproduce the run's preprocessing (from write_run_assets)."""
        return {}

    # --- export ----------------------------------------------------------------
    def export_assets(self, source: ExportSource) -> dict:
        """What the signatures need beyond the model (labels, tokenizer, limits)."""
        return {}

    def examples(self, source: ExportSource, given, count: int) -> tuple[dict, str]:
        """(real examples keyed like the serving_default inputs, where they came from):
        `given` ones, else the first `count` of `source.dataset_name`'s training split."""
        raise NotImplementedError

    def signatures(self, model, assets: dict, staging_dir) -> Signatures:
        raise NotImplementedError

    def requests(self, examples: dict, batch_sizes=(1, None)) -> list[Request]:
        raise NotImplementedError

    def reference(self, model, examples: dict, assets: dict) -> dict:
        """What the Keras model answers on `examples`: the numbers every signature must reproduce."""
        raise NotImplementedError

    def compare(self, request: Request, outputs: dict, reference: dict, assets: dict) -> tuple[list, float]:
        """(errors, max |difference|) of one exported call's outputs against the reference."""
        raise NotImplementedError

    def precision_outputs(self, model, examples: dict, assets: dict) -> dict | None:
        """What `precision_difference` compares between a model trained in mixed precision
        and its float32 export, or None (the default) for their answers (`reference`)."""
        return None

    def precision_difference(self, reference: dict, other: dict) -> float:
        """How far `other` (the `precision_outputs` of the model as trained in mixed
        precision) is from `reference` (its float32 export's) on the same examples: max
        |difference| of the float outputs."""
        return max((float(np.max(np.abs(np.asarray(other[k], np.float64) - np.asarray(v, np.float64))))
                    for k, v in reference.items() if np.asarray(v).dtype.kind == "f" and np.size(v)), default=0.0)

    def card(self, assets: dict) -> dict:
        """Task fields of the model card (labels, limits, tokenizer)."""
        return {}

    # --- command line ------------------------------------------------------------
    def read_request(self, values: list[str], signatures: dict, signature: str | None = None) -> tuple[str, dict]:
        """(signature key, inputs) for `zoo predict` VALUES (file paths or strings).

        `signatures` is the served model's (key -> {"inputs": {name: {"dtype", "shape"}}});
        `signature` the one the user asked for, if any.
        """
        raise NotImplementedError

    def serves(self, signatures: dict) -> bool:
        """True when a served model with these signatures is one of this task's exports
        (`zoo predict` asks a server's metadata, which knows no task)."""
        default = signatures.get("serving_default", {})
        inputs, outputs = default.get("inputs", {}), default.get("outputs", {})
        return bool(inputs) and set(inputs) == set(self.serving_inputs) and set(self.serving_outputs) <= set(outputs)

    def format_answer(self, row: dict) -> str:
        """One line for one example's outputs (`zoo predict`)."""
        return " ".join(f"{k}={v}" for k, v in row.items())

    # True when `draw` draws this task's answers on its input (`zoo predict --draw`).
    draws: bool = False

    def draw(self, source: str, row: dict, target) -> None:
        """Writes the input file `source` with one example's outputs drawn on it to `target` (PNG)."""
        raise NotImplementedError


def training_inputs(source: ExportSource, count: int) -> tuple[list | None, str]:
    """(the first `count` inputs of the training split of the dataset `source` names,
    where they came from), or (None, why not): an export's warm-up reads real examples
    when the data is on this machine and still exports, with a warning, when it is not."""
    name, config = source.dataset_name, source.config or {}
    if not name:
        return None, "no dataset named"
    from zoo.data import registry as datasets

    try:
        raw = datasets.get_dataset(name).examples("train", data_dir=config.get("data_dir"), download=False)
        inputs = [x for x, _ in raw.take(count).as_numpy_iterator()]
    except Exception as e:  # data not on this machine: warn and still export
        log.warning("Could not read examples of %s (%s); the warm-up uses fixed ones.", name, e)
        return None, str(e)
    return (inputs or None), f"{name}:train[:{count}]"


def one_row(values):
    """`values` [N, ...] as a ragged [1, (N), ...]: tf.data's batch stacks examples whose N
    differ (a clip's samples, an image's objects) into a ragged [B, 1, (N), ...], which a
    task's batch_features pads to the batch's longest (`.merge_dims(1, 2).to_tensor()`)."""
    import tensorflow as tf

    return tf.RaggedTensor.from_row_lengths(values, tf.shape(values, out_type=tf.int64)[:1])


def model_inputs(model) -> dict | None:
    """A Keras model's inputs by name ({"image": KerasTensor}), whether it was built
    with a dict or a list of named inputs; None for a model without named inputs."""
    try:
        inputs = model.input
    except (AttributeError, ValueError):  # a subclassed model that was never called
        return None
    if isinstance(inputs, dict):
        return dict(inputs)
    inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    names = [t.name for t in inputs]
    if len(set(names)) != len(names):
        return None
    return dict(zip(names, inputs))


def _describe_inputs(model) -> str:
    try:
        inputs = list(model.inputs or [])
    except (AttributeError, ValueError):
        inputs = []
    return ", ".join(f"{t.name} {tuple(t.shape)}" for t in inputs) or "no named inputs"


def register_task(task: Task) -> Task:
    """Registers a task object under `task.name`; returns it.

    Example:
        >>> TASK = register_task(VectorRegression())
    """
    if not isinstance(task, Task):
        raise TypeError(f"register_task takes a zoo.tasks.Task instance, got {task!r}.")
    if not task.name or not task.name.isidentifier():
        raise ValueError(f"A task's name must be an identifier such as 'image_classification', got {task.name!r}.")
    if not task.input_names:
        raise ValueError(f"Task {task.name!r} must name its model inputs (input_names).")
    old = _TASKS.get(task.name)

    def where(t):
        return type(t).__module__, type(t).__qualname__

    if old is not None and where(old) != where(task):
        raise ValueError(f"A task named {task.name!r} is already registered ({'.'.join(where(old))}).")
    _TASKS[task.name] = task  # the same class again: a module imported twice
    return task


def get_task(name: str) -> Task:
    if isinstance(name, str) and name not in _TASKS:
        load_plugins()  # a task of another package registers when its entry point loads
    if not isinstance(name, str) or name not in _TASKS:
        close = difflib.get_close_matches(str(name), list(_TASKS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown task {name!r}.{hint} Known tasks: {', '.join(sorted(_TASKS))}. A task of "
                         f"another package is found through its {PLUGIN_GROUP!r} entry point (README, Tasks).")
    return _TASKS[name]


def list_tasks() -> list[str]:
    load_plugins()
    return sorted(_TASKS)


def as_text(values) -> list[str]:
    """Strings from a bytes/str array (outputs come back as bytes)."""
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in np.asarray(values).ravel()]
