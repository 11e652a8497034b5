"""`export_saved_model`: a trained model -> a verified, versioned SavedModel for TF Serving.

Layout, as TF Serving's file-system source expects it:

    <base_path>/models.config                 model_config_list, one entry per model
    <base_path>/batching_parameters.txt
    <base_path>/<model_name>/<version>/saved_model.pb, variables/, assets/labels.txt
    <base_path>/<model_name>/<version>/assets.extra/tf_serving_warmup_requests
    <base_path>/<model_name>/<version>/assets.extra/model_card.json

A version is written into `<base_path>/<model_name>/.tmp-<version>-<pid>` and renamed
into place only after it has been verified. TF Serving only loads all-digit folder
names, so a server never sees a half-written or unverified version, and an export
that fails at any point leaves no version folder behind.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import re
import shutil
import tempfile
import time

import keras
import numpy as np

from export import model_card, serving_ops, verify as verification, warmup
from export.fold import fold_batch_norms
from export.errors import ExportError, VerificationError
from serving import config as server_config  # the one writer of models.config and batching_parameters.txt
from zoo import registry, tasks
from zoo.tasks import ExportSource
from zoo.stale_files import remove_stale
from zoo.training import load_run
from zoo.training.precision import float32_model, model_policy

log = logging.getLogger(__name__)

# A model trained in mixed precision and exported in float32 may answer this far from
# itself (a probability's absolute difference); bfloat16 keeps 8 bits of mantissa.
PRECISION_TOLERANCE = 0.05

# A folder name that is also safe in TF Serving's REST path /v1/models/<name>.
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _check_model_name(name) -> str:
    if not isinstance(name, str) or not _MODEL_NAME.match(name) or ".." in name:
        raise ExportError(
            f"Model name {name!r} must be one folder name of letters, digits, '.', '_' or '-' "
            f"(no '/' or '..'): it becomes <base_path>/<name>/ and the REST path "
            f"/v1/models/<name>. Example: --model-name simple_cnn_digits."
        )
    return name


def _check_base_path(base_path) -> pathlib.Path:
    base = pathlib.Path(base_path)
    if base.exists() and not base.is_dir():
        raise ExportError(f"Base path {base} is a file; pass --base-path a directory (it is created if missing).")
    return base


def _versions(model_dir: pathlib.Path) -> list[int]:
    if not model_dir.is_dir():
        return []
    return sorted(int(d.name) for d in model_dir.iterdir() if d.is_dir() and d.name.isdigit())


def _choose_version(model_dir: pathlib.Path, version, overwrite: bool) -> int:
    if model_dir.exists() and not model_dir.is_dir():
        raise ExportError(f"{model_dir} is a file; remove it or choose another --model-name.")
    existing = _versions(model_dir)
    if version is None:
        # TF Serving serves the highest number by default, so a new export goes above all.
        return (existing[-1] + 1) if existing else 1
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ExportError(f"Version must be a positive int (TF Serving versions are numbers), got {version!r}.")
    if version in existing and not overwrite:
        raise ExportError(
            f"{model_dir / str(version)} already exists. Pass --overwrite (overwrite=True) to replace "
            f"it, or omit --version to write the next one ({existing[-1] + 1})."
        )
    return version


def _read_json(path: pathlib.Path):
    return json.loads(path.read_text()) if path.exists() else None


def _load_source(model_or_run_dir, checkpoint: str, label_names, task) -> tuple[ExportSource, "tasks.Task"]:
    """(what is exported, its task). The task comes from the caller, the run directory
    or the model registry, never from guessing at the model's structure."""
    if task is not None and not isinstance(task, (str, tasks.Task)):
        raise ExportError(f"task must be a task name such as 'image_classification', got {task!r}.")
    if isinstance(model_or_run_dir, keras.Model):
        model = model_or_run_dir
        source = ExportSource(model, model.name, label_names=label_names)
        if model.name in registry.list_models():
            spec = registry.get_model_spec(model.name)
            source.data_options = dict(spec.data_options)
            task = task if task is not None else spec.task
        elif task is None:
            raise ExportError(
                f"Cannot tell the task of model {model.name!r}, which is not a registered "
                f"architecture; pass task=... (one of: {', '.join(tasks.list_tasks())})."
            )
    else:
        run_dir = pathlib.Path(model_or_run_dir)
        if checkpoint not in ("model", "best"):
            raise ExportError(f"checkpoint must be 'model' or 'best', got {checkpoint!r}.")
        model, config, info = load_run(run_dir, which=checkpoint)  # clear FileNotFoundError if unfinished
        source = ExportSource(model, config.model, run_dir=run_dir.resolve(), config=config.to_json(),
                              dataset=info, metrics=_read_json(run_dir / "metrics.json"), label_names=label_names)
        # The run records its task (config.json; dataset.json for runs that predate that).
        task = task or config.task or info.get("task")
    try:
        task = task if isinstance(task, tasks.Task) else tasks.get_task(task)
        task.check_model(source.model)
    except ValueError as e:
        raise ExportError(str(e)) from None
    return source, task


@dataclasses.dataclass
class ExportPlan:
    """What an export will hold and must answer, before anything is written."""

    source: ExportSource
    task: tasks.Task
    assets: dict  # what the task's signatures need beyond the model
    examples: dict  # real examples, keyed like serving_default's inputs
    example_source: str  # where they came from
    reference: dict  # the Keras model's answers on them (computing in float32, as the export does)
    requests: list  # one per signature and batch size: warm-up records and verification calls
    precision: dict | None = None  # a model trained in mixed precision: its float32 copy against it

    @property
    def num_examples(self) -> int:
        return len(next(iter(self.examples.values())))

    def verification_job(self, export_dir, methods: dict) -> verification.Job:
        return verification.Job(export_dir, methods, self.task, self.reference, self.assets)


def plan_export(model_or_run_dir, *, task=None, label_names=None, checkpoint: str = "model", examples=None,
                dataset: str | None = None, num_examples: int = 4, task_options: dict | None = None) -> ExportPlan:
    """Works out an export of a Keras model or a run: its task, the task's assets, real
    examples, the Keras reference answers and the warm-up requests (`export_saved_model`
    arguments, same meaning).

    Example:
        >>> plan = plan_export(model, task="image_classification", examples=images)
        >>> plan.reference["probabilities"].shape
        (4, 10)
    """
    if not isinstance(num_examples, int) or isinstance(num_examples, bool) or num_examples < 1:
        raise ExportError(f"num_examples must be a positive int, got {num_examples!r}.")
    source, task = _load_source(model_or_run_dir, checkpoint, label_names, task)
    task_options = dict(task_options or {})
    unknown = sorted(set(task_options) - set(task.export_options))
    if unknown:
        raise ExportError(f"{', '.join(unknown)}: not an export option of a {task.name} model; its options: "
                          f"{', '.join(task.export_options) or 'none'}.")
    source.options, source.example_dataset = task_options, dataset
    # An export computes in float32 whatever the run trained in (zoo.training.precision).
    trained = source.model
    source.model = float32_model(trained)
    try:
        # What the signatures need beyond the model (labels, tokenizer, limits) and real
        # examples for the warm-up records and the verification.
        assets = task.export_assets(source)
        inputs, origin = task.examples(source, examples, num_examples)
    except ValueError as e:
        raise ExportError(str(e)) from None
    # The reference is the model as trained (in float32), so verification also checks any folding.
    reference = task.reference(source.model, inputs, assets)
    precision = None
    if source.model is not trained:
        exported = task.precision_outputs(source.model, inputs, assets)
        if exported is None:
            exported, mixed = reference, task.reference(trained, inputs, assets)
        else:
            mixed = task.precision_outputs(trained, inputs, assets)
        diff = task.precision_difference(exported, mixed)
        precision = {"trained": model_policy(trained), "exported": "float32", "max_abs_diff_vs_trained": diff}
        if diff > PRECISION_TOLERANCE:
            raise ExportError(f"The float32 export of this {precision['trained']} model answers up to {diff:.3g} "
                              f"away from it (more than {PRECISION_TOLERANCE}); train in float32 "
                              f"(--set mixed_precision=off).")
    return ExportPlan(source, task, assets, inputs, origin, reference, task.requests(inputs), precision)


def _set_method_names(signature_defs, endpoints: dict) -> None:
    """TF Serving's method names (classify): `ExportArchive` (like `tf.saved_model.save`)
    marks every signature tensorflow/serving/predict, and TF Serving's Classify API
    requires tensorflow/serving/classify."""
    for key, endpoint in endpoints.items():
        signature_defs[key].method_name = endpoint.method_name


def _set_defaults(signature_defs, endpoints: dict) -> None:
    """The values TF Serving feeds for inputs a Predict request leaves out (its
    GetInputValues reads SignatureDef.defaults, which `ExportArchive` never writes)."""
    import tensorflow as tf

    for key, endpoint in endpoints.items():
        signature_def = signature_defs[key]
        for name, value in endpoint.defaults.items():
            if name not in signature_def.inputs:
                raise ExportError(f"Signature {key!r} has no input {name!r} to give a default; its inputs: "
                                  f"{', '.join(sorted(signature_def.inputs))}.")
            info = signature_def.inputs[name]
            dtype, shape = tf.dtypes.as_dtype(info.dtype), tf.TensorShape(info.tensor_shape)
            try:
                proto = tf.make_tensor_proto(value, dtype=dtype)
            except (TypeError, ValueError) as e:
                raise ExportError(f"Default of input {name!r} of signature {key!r} is no {dtype.name} "
                                  f"tensor ({e}).") from None
            if not shape.is_compatible_with(tf.TensorShape(proto.tensor_shape)):
                raise ExportError(f"Default of input {name!r} of signature {key!r} has shape "
                                  f"{tf.TensorShape(proto.tensor_shape)}; the input takes {shape}.")
            signature_def.defaults[name].CopyFrom(proto)


def _edit_signature_defs(export_dir: pathlib.Path, endpoints: dict) -> None:
    """Writes what `ExportArchive` cannot into the SignatureDefs of saved_model.pb in
    the temp folder: method names and input defaults."""
    saved_model = model_card.read_saved_model(export_dir)
    for meta_graph in saved_model.meta_graphs:
        written = {k: e for k, e in endpoints.items() if k in meta_graph.signature_def}
        _set_method_names(meta_graph.signature_def, written)
        _set_defaults(meta_graph.signature_def, written)
    path = export_dir / "saved_model.pb"
    tmp = path.with_name("saved_model.pb.tmp")
    tmp.write_bytes(saved_model.SerializeToString(deterministic=True))
    os.replace(tmp, path)
    # fingerprint.pb holds a checksum of saved_model.pb: recompute it for the edited file.
    try:
        from tensorflow.python.saved_model import fingerprinting_utils

        fingerprinting_utils.write_fingerprint(str(export_dir))
    except Exception as e:  # the fingerprint is optional; a stale one is worse than none
        log.warning("Could not rewrite fingerprint.pb (%s); removing it.", e)
        (export_dir / "fingerprint.pb").unlink(missing_ok=True)


def _write_saved_model(model: keras.Model, signatures, export_dir: pathlib.Path) -> None:
    archive = keras.export.ExportArchive()
    archive.track(model)
    # Keras issue 23553: track() lists the keras.Variable wrappers while the endpoints
    # capture the tf.Variables inside them, so every weight is saved (and loaded by
    # TF Serving) twice. Tracking the tf.Variables themselves lets the SavedModel
    # writer see one object per weight (the fix proposed in keras PR 23563).
    for collection in ("variables", "trainable_variables", "non_trainable_variables"):
        archive.add_variable_collection(collection, [v.value for v in getattr(archive, collection)])
    for resource in signatures.resources:  # lookup tables: ExportArchive does not find them alone
        archive.track(resource)
    for key, endpoint in signatures.endpoints.items():
        archive.add_endpoint(key, endpoint.fn, endpoint.input_signature)
    archive.write_out(str(export_dir), verbose=False)
    _edit_signature_defs(export_dir, signatures.endpoints)


def _publish(tmp: pathlib.Path, final: pathlib.Path, overwrite: bool) -> None:
    """Renames the verified temp folder to its version number (atomic on one file system)."""
    if final.exists() and not overwrite:
        raise ExportError(f"{final} appeared while exporting (another export?). Export again.")
    if final.exists():  # move the old version aside first; TF Serving ignores ".old-*"
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        os.rename(final, old)
        try:
            os.rename(tmp, final)
        except OSError:
            os.rename(old, final)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return
    try:
        os.rename(tmp, final)
    except OSError as e:
        raise ExportError(f"{final} appeared while exporting (another export?): {e}. Export again.") from e


def export_saved_model(
    model_or_run_dir,
    base_path="models",
    model_name: str | None = None,
    version: int | None = None,
    *,
    overwrite: bool = False,
    verify: bool = True,
    label_names=None,
    task: str | None = None,
    checkpoint: str = "model",
    examples=None,
    dataset: str | None = None,
    num_examples: int = 4,
    version_policy: str | None = None,
    serving_base_path: str | None = None,
    verify_timeout: float = 600,
    fold_batch_norm: bool = True,
    task_options: dict | None = None,
    target_serving_version: str = serving_ops.DEFAULT_SERVING_VERSION,
) -> pathlib.Path:
    """Exports a Keras model or a training run as `<base_path>/<model_name>/<version>/`.

    The SavedModel takes raw input and returns named outputs (DESIGN.md task table);
    for an image classifier: `serving_default` (image -> probabilities, class_id,
    label), `image_bytes` (JPEG/PNG/GIF/BMP bytes) and `classify` (tf.Example, TF
    Serving's Classify API). It carries warm-up records and a model card, is verified
    in a fresh process against the Keras model, and is renamed into place only then.
    `models.config` and `batching_parameters.txt` in `base_path` are updated.

    Args:
        model_or_run_dir: a `zoo.train` run directory, or a Keras model.
        base_path: folder of model folders (TF Serving's model base paths).
        model_name: the served name; default: the architecture name.
        version: version number; default: one above the highest existing version.
        overwrite: replace an existing `version`.
        verify: verify before publishing (turn off only to debug an export).
        label_names: class names; default: the run's dataset labels, or "0".."K-1".
        task: the model's task (a name or a `zoo.tasks.Task`); default: from the run
            directory or, for a registered architecture, the model registry. A model of
            your own exports with `task=` when its inputs and outputs follow the task's
            contract (`zoo.tasks`).
        checkpoint: for a run directory, "model" (final) or "best".
        examples: raw inputs [N, ...] for warm-up and verification; default: the first
            `num_examples` of the run's (or `dataset`'s) training data.
        dataset: dataset to take examples from when exporting a Keras model.
        num_examples: how many real examples warm-up and verification use.
        version_policy: the model's policy in models.config ('latest', 'latest:2',
            'all', 'specific:1,2'); default: keep the current one ('latest' if new).
        serving_base_path: base path as the server sees it (e.g. "/models" in the
            TF Serving container), written into models.config.
        verify_timeout: seconds allowed for verification.
        fold_batch_norm: fold each BatchNormalization into the convolution before it
            (`export.fold.fold_batch_norms`): the same outputs from fewer ops and
            variables. Verification still compares against the unfolded model.
        task_options: the task's export options (`Task.export_options`), e.g.
            `{"max_image_pixels": 20_000_000}` for an image classifier's `image_bytes` and `classify`
            (images over it are refused before they are decoded; default 40,000,000).
        target_serving_version: the TF Serving release ("2.20") that must run the export:
            an op it lacks, or any Xla op (TF Serving runs with XLA off), fails the
            export before anything is published (`export.serving_ops`).

    Returns:
        The version folder.

    Example:
        >>> from export import export_saved_model
        >>> export_saved_model("runs/simple_cnn-digits", "models", "digits")
        PosixPath('models/digits/1')
    """
    base = _check_base_path(base_path)
    serving_ops.resolve_version(target_serving_version, warn=False)  # a bad target fails before any work
    if model_name is not None:
        _check_model_name(model_name)
    if version_policy is not None:
        try:
            server_config.parse_version_policy(version_policy)
        except ValueError as e:
            raise ExportError(str(e)) from None
    plan = plan_export(model_or_run_dir, task=task, label_names=label_names, checkpoint=checkpoint,
                       examples=examples, dataset=dataset, num_examples=num_examples,
                       task_options=task_options)
    source, task, assets, requests = plan.source, plan.task, plan.assets, plan.requests
    model_name = _check_model_name(model_name or source.architecture)
    model_dir = base / model_name
    version = _choose_version(model_dir, version, overwrite)

    started = time.perf_counter()
    serving_model = source.model
    if fold_batch_norm:
        try:
            serving_model = fold_batch_norms(source.model)
        except Exception as e:
            raise ExportError(f"Could not fold BatchNormalization in {source.architecture} ({e}); "
                              f"export with fold_batch_norm=False (--no-fold-batch-norm).") from e

    created = [d for d in (base, model_dir) if not d.exists()]
    model_dir.mkdir(parents=True, exist_ok=True)
    # What killed exports left: their staging folders here and in the temp dir.
    remove_stale(model_dir, r"\.tmp-\d+-(\d+)")
    remove_stale(tempfile.gettempdir(), r"zoo-export-(\d+)-.*")
    tmp = model_dir / f".tmp-{version}-{os.getpid()}"
    final = model_dir / str(version)
    try:
        with tempfile.TemporaryDirectory(prefix=f"zoo-export-{os.getpid()}-") as staging:
            signatures = task.signatures(serving_model, assets, staging)
            _write_saved_model(serving_model, signatures, tmp)
        serving = serving_ops.check(tmp, target_serving_version)
        if not serving.ok:
            raise ExportError(f"TF Serving {target_serving_version} cannot load this export of {model_name}, so "
                              f"nothing was published:\n  " + "\n  ".join(serving.problems))
        # The staging copy of labels.txt is gone now: the export must use its own asset.
        warmup.write_warmup_requests(tmp, requests, model_name)
        card = model_card.build_model_card(
            export_dir=tmp, model_name=model_name, version=version, task=task.name,
            architecture=source.architecture, task_fields=task.card(assets), model=source.model,
            source={"run_dir": str(source.run_dir) if source.run_dir else None,
                    "checkpoint": checkpoint if source.run_dir else None},
            examples={"source": plan.example_source, "examples": plan.num_examples, "records": len(requests)},
            metrics=source.metrics, training=source.config, dataset=source.dataset,
        )
        card["serving"] = serving.card()
        if plan.precision is not None:
            card["precision"] = plan.precision
        card["fold_batch_norm"] = {"enabled": bool(fold_batch_norm),
                                   "folded_layers": len(source.model.layers) - len(serving_model.layers)}
        model_card.write_model_card(tmp, card)
        if verify:
            methods = {k: e.method_name for k, e in signatures.endpoints.items()}
            verify_started = time.perf_counter()
            report = verification.verify_in_subprocess([plan.verification_job(tmp, methods)], verify_timeout)[0]
            if not report["ok"]:
                raise VerificationError(
                    f"Export of {model_name} version {version} failed verification, nothing was "
                    f"published:\n  " + "\n  ".join(report["errors"])
                )
            card["verification"] = {k: report[k] for k in ("loaders", "max_abs_diff", "records")}
            card["verification"].update(seconds=round(time.perf_counter() - verify_started, 2))
            model_card.write_model_card(tmp, card)
        _publish(tmp, final, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for d in reversed(created):  # folders this export made, if still empty
            try:
                d.rmdir()
            except OSError:
                pass
        raise
    server_config.write_server_config(base, model_name=model_name, version_policy=version_policy,
                                      serving_base_path=serving_base_path)
    log.info("Exported %s version %d to %s in %.1f s", model_name, version, final, time.perf_counter() - started)
    return final
