"""`zoo.load`: a run or an export as an in-process predictor that answers what the
served `serving_default` answers.

    predictor = zoo.load("runs/simple_cnn-digits")      # or "models/digits" or "models/digits/3"
    predictor(images)          # {"probabilities": [N,K], "class_id": [N], "label": [N] str}
    predictor({"text": ["a fine film"]})

A run is answered by the signature functions its task builds for an export (the same
code, traced in this process); an export by its own SavedModel's signatures. An input
with a default (SignatureDef.defaults, or the task endpoint's for a run) may be left
out, as from a Predict request. Strings come back as `str`, numbers as numpy arrays.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import tempfile
import weakref

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from zoo import tasks
from zoo.tasks.base import ExportSource
from zoo.training.precision import float32_model

SERVING_DEFAULT = "serving_default"


class Predictor:
    """Calls one signature in-process, as TF Serving's Predict would.

    Attributes:
        signature_names: the signatures this predictor can call.
        inputs: the called signature's input names.
        version_dir: the export's version folder (None for a run).
    """

    version_dir = None

    def __init__(self, functions: dict, signature: str, source: str, defaults: dict | None = None):
        if signature not in functions:
            raise ValueError(f"{source} has no signature {signature!r}; it has {', '.join(sorted(functions))}.")
        self._functions = functions
        self._signature = signature
        self._source = source
        # signature key -> {input name: array} fed when a call leaves that input out.
        self._defaults = defaults or {}
        self.signature_names = sorted(functions)
        self.inputs = list(functions[signature][1])

    def __repr__(self):
        return f"Predictor({self._source!r}, signature={self._signature!r}, inputs={self.inputs})"

    def __call__(self, inputs=None, /, *, signature: str | None = None, **named) -> dict:
        """Answers `inputs`: a dict of the signature's inputs, or one array (or list) for a
        signature with one input (or one without a default), or the inputs as keywords.
        An input with a default may be left out.

        Returns:
            {output name: numpy array}, strings as str.
        """
        key = signature or self._signature
        if key not in self._functions:
            raise ValueError(f"{self._source} has no signature {key!r}; it has {', '.join(self.signature_names)}.")
        fn, specs = self._functions[key]
        if inputs is not None and named:
            raise TypeError("Pass the inputs as one dict (or array) or as keywords, not both.")
        if inputs is None:
            inputs = named
        defaults = self._defaults.get(key, {})
        if not isinstance(inputs, dict):
            required = [name for name in specs if name not in defaults]
            if len(specs) != 1 and len(required) != 1:
                raise TypeError(f"Signature {key!r} takes {len(specs)} inputs ({', '.join(specs)}): pass a dict.")
            inputs = {next(iter(specs)) if len(specs) == 1 else required[0]: inputs}
        inputs = {**{name: value for name, value in defaults.items() if name in specs}, **inputs}
        missing, unknown = sorted(set(specs) - set(inputs)), sorted(set(inputs) - set(specs))
        if missing or unknown:
            raise ValueError(f"Signature {key!r} takes inputs {sorted(specs)}; missing {missing}, unknown {unknown}.")
        tensors = {name: tf.convert_to_tensor(_as_array(value, specs[name]), specs[name]) for name, value in inputs.items()}
        return {name: _as_numpy(value) for name, value in fn(**tensors).items()}


def _as_array(value, dtype):
    if dtype == tf.string:
        return np.asarray(value, dtype=object)
    return np.asarray(value, dtype=dtype.as_numpy_dtype)


def _as_numpy(tensor):
    value = tensor.numpy()
    if value.dtype == object:
        return np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(value) if value.size else value
    return value


def load(path, *, signature: str = SERVING_DEFAULT, checkpoint: str = "model") -> Predictor:
    """A predictor for a finished run or an export.

    Args:
        path: a run directory (`zoo train`'s), a model folder of an export (its highest
            version is loaded, as TF Serving would) or one version folder.
        signature: the signature to call by default.
        checkpoint: for a run, "model" (the final weights) or "best".

    Raises:
        FileNotFoundError: nothing loadable at `path`, saying what was expected.

    Example:
        >>> predictor = zoo.load("runs/simple_cnn-digits")
        >>> predictor(images)["label"]
        array(['3', '7'], dtype=object)
    """
    path = pathlib.Path(path)
    if (path / "config.json").exists() and (path / "dataset.json").exists():
        return _from_run(path, signature, checkpoint)
    version_dir = _version_dir(path)
    if version_dir is None:
        raise FileNotFoundError(
            f"{path} is neither a run directory (config.json, model.keras) nor an export (a folder with "
            f"saved_model.pb, or numbered version folders holding one).")
    import tensorflow_text  # noqa: F401 - the ops of exported keras-hub tokenizers, as TF Serving links them

    loaded = tf.saved_model.load(str(version_dir))
    functions = {}
    for key, fn in loaded.signatures.items():
        specs = {name: spec.dtype for name, spec in fn.structured_input_signature[1].items()}
        functions[key] = (fn, specs)
    predictor = Predictor(functions, signature, str(version_dir), _signature_defaults(version_dir))
    predictor._loaded = loaded  # keeps the variables alive
    predictor.version_dir = version_dir
    return predictor


def _signature_defaults(version_dir: pathlib.Path) -> dict:
    """{signature key: {input name: default array}} from the SignatureDefs of the `serve`
    meta graph: the loaded signature functions require every input, while TF Serving's
    Predict feeds these defaults for inputs a request leaves out."""
    saved_model = saved_model_pb2.SavedModel.FromString((version_dir / "saved_model.pb").read_bytes())
    serve = [m for m in saved_model.meta_graphs if set(m.meta_info_def.tags) == {"serve"}]
    meta_graph = serve[0] if serve else saved_model.meta_graphs[0]
    return {key: {name: tf.make_ndarray(proto) for name, proto in sig.defaults.items()}
            for key, sig in meta_graph.signature_def.items() if sig.defaults}


def _version_dir(path: pathlib.Path):
    if (path / "saved_model.pb").exists():
        return path
    if not path.is_dir():
        return None
    versions = [p for p in path.iterdir() if p.name.isdigit() and (p / "saved_model.pb").exists()]
    return max(versions, key=lambda p: int(p.name)) if versions else None


def _from_run(run_dir: pathlib.Path, signature: str, checkpoint: str) -> Predictor:
    from zoo.training.trainer import load_run

    model, config, info = load_run(run_dir, which=checkpoint)
    model = float32_model(model)  # as an export of the run computes
    task = tasks.get_task(config.task or info["task"])
    source = ExportSource(model, config.model, run_dir=run_dir.resolve(), config=config.to_json(), dataset=info,
                          metrics=_read_json(run_dir / "metrics.json"))
    # The signature functions an export of this run would hold, traced here; their
    # assets (label and vocabulary files) live in a folder kept as long as the predictor.
    staging = tempfile.mkdtemp(prefix="zoo-predictor-")
    try:
        endpoints = task.signatures(model, task.export_assets(source), staging).endpoints
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    functions = {key: (endpoint.fn, {spec.name: spec.dtype for spec in endpoint.input_signature})
                 for key, endpoint in endpoints.items()}
    # The defaults the export would write into its SignatureDefs.
    defaults = {key: dict(endpoint.defaults) for key, endpoint in endpoints.items() if endpoint.defaults}
    predictor = Predictor(functions, signature, str(run_dir), defaults)
    weakref.finalize(predictor, shutil.rmtree, staging, True)
    return predictor


def _read_json(path: pathlib.Path):
    return json.loads(path.read_text()) if path.exists() else None
