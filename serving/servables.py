"""The model manager: which versions of which models are loaded, and how they change.

It does what TF Serving's ServerCore + FileSystemStoragePathSource +
AspiredVersionsManager do with the AvailabilityPreservingPolicy:

- every model in the ModelServerConfig has a base path whose numeric subfolders are
  its versions, read as FileSystemStoragePathSource reads them (safe_strto64:
  `00000123/` is version 123, loaded from `00000123/`); the version policy
  (latest N, the default latest 1; all; specific) picks the *aspired* versions
  among them;
- the base paths are polled every `file_system_poll_wait_seconds`; a new aspired
  version is loaded (and warmed up) while the old one keeps serving, and the old
  one is unloaded only once an aspired version is available, so a rollout never
  drops a request;
- a version that fails to load is retried `max_num_load_retries` times, one
  `load_retry_interval_micros` apart, on later polls (LOADING meanwhile), then
  ends in state END with the error, which GetModelStatus shows; the last good
  version keeps serving throughout;
- version labels map names to versions; as in TF Serving a label may only point
  at an AVAILABLE version unless `allow_version_labels_for_unavailable_models`;
- a reload that points a model at a base path that does not exist, or holds no
  version, is refused before anything changes (see `ModelManager.reload_config`).

Every SavedModel, TF1-style (SavedModelBuilder) or TF2 (tf.saved_model.save,
Keras' export), is loaded as TF Serving's C++ loader loads it: a Session over the
MetaGraph of the `serve` tags, variables restored and the init op run
(`tf.compat.v1.saved_model.loader.load`). A signature is run by tensor name, as
TF Serving's Session::Run is: each input is fed to its TensorInfo's tensor and the
graph decides what shapes it takes (half_plus_two's `x` of shape [3] into a
[-1,1] signature answers there and here); the callable for a (signature, inputs,
outputs) triple is made once (`Session.make_callable`) and reused.

Example:
    >>> manager = ModelManager(file_system_poll_wait_seconds=1)
    >>> manager.reload_config(config)
    >>> with manager.handle(model_spec) as servable:
    ...     servable.run("serving_default", {"image": x}, ["probabilities"])
"""

import dataclasses
import errno
import logging
import os
import re
import threading
import time
from concurrent import futures

import grpc
import tensorflow as tf
# TF Serving's model server links tensorflow-text's ops (keras-hub's tokenizers run on
# them); registering them here, before any SavedModel loads, is what linking them does.
import tensorflow_text  # noqa: F401
from tensorflow.core.protobuf import config_pb2, saved_model_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.config import model_server_config_pb2

from serving.errors import ServingError, code_from_int

log = logging.getLogger(__name__)

State = get_model_status_pb2.ModelVersionStatus.State
TENSORFLOW_PLATFORM = "tensorflow"


def as_serving_error(e: BaseException) -> ServingError:
    """A ServingError for whatever a load or a model run raised."""
    if isinstance(e, ServingError):
        return e
    if isinstance(e, tf.errors.OpError):
        # Session runs (every servable's) carry the kernel's own words, as TF Serving's do.
        return ServingError(code_from_int(e.error_code), e.message)
    return ServingError(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")


# Loaded model versions.


class Servable:
    """One loaded version of one model: its SignatureDefs and a way to run them.

    Attributes:
        name: the model name.
        version: the version number.
        path: the version folder.
        signature_defs: dict of signature key -> `SignatureDef` proto, exactly as
            stored in saved_model.pb (what GetModelMetadata returns).
    """

    def __init__(self, name, version, path, signature_defs):
        self.name = name
        self.version = version
        self.path = path
        self.signature_defs = signature_defs
        # What the server derives from a signature once rather than per request
        # (serving.core.ServerCore._plan), by signature key.
        self.plans = {}
        self._refs = 0
        self._retired = False
        self._lock = threading.Lock()

    def run(self, signature_name, inputs, output_keys):
        """Run a signature on numpy inputs (keyed by alias); return the outputs asked for."""
        raise NotImplementedError

    def acquire(self):
        with self._lock:
            self._refs += 1

    def release(self):
        with self._lock:
            self._refs -= 1
            close = self._retired and self._refs == 0
        if close:
            self._close()

    def retire(self):
        """Unload: free the model once the requests still using it have finished."""
        with self._lock:
            self._retired = True
            close = self._refs == 0
        if close:
            self._close()

    def _close(self):
        pass


class _SessionServable(Servable):
    """A SavedModel in a Session, run by tensor names as TF Serving runs it.

    Measured against `tf.saved_model.load` and the signatures' concrete functions
    on a one-image CNN here: 455 µs against 585 µs a run at batch 1, 2.46 ms
    against 2.67 ms at batch 32.
    """

    # TF Serving's runtime_latency label for a Session run (predict_util.cc).
    runtime = "TF1"
    # Callables kept per servable: an output_filter may pick any subset of outputs.
    MAX_CALLABLES = 64

    def __init__(self, name, version, path, signature_defs, tags):
        super().__init__(name, version, path, signature_defs)
        self._graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=self._graph, config=_session_config())
        self._callables = {}
        try:
            with self._graph.as_default():
                tf.compat.v1.saved_model.loader.load(self._session, list(tags), path)
        except BaseException:
            self._session.close()
            raise

    def run(self, signature_name, inputs, output_keys):
        aliases = tuple(inputs)
        key = (signature_name, aliases, tuple(output_keys))
        run = self._callables.get(key)
        if run is None:
            run = self._make_callable(key)
        values = run(*[inputs[alias] for alias in aliases])
        return dict(zip(output_keys, values))

    def _make_callable(self, key):
        signature_name, aliases, output_keys = key
        signature = self.signature_defs[signature_name]
        options = config_pb2.CallableOptions()
        options.feed.extend(signature.inputs[alias].name for alias in aliases)
        options.fetch.extend(signature.outputs[alias].name for alias in output_keys)
        # Session._make_callable_from_options is what Session.make_callable builds on;
        # it takes tensor names, as SignatureDefs give them, with no Python-side checks.
        run = self._session._make_callable_from_options(options)  # noqa: SLF001
        with self._lock:
            if len(self._callables) < self.MAX_CALLABLES:
                run = self._callables.setdefault(key, run)
        return run

    def _close(self):
        self._callables = {}
        self._session.close()


def _session_config():
    # The thread counts set through tf.config (--tensorflow_*_parallelism) are the
    # eager context's; a Session takes its own ConfigProto.
    config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=tf.config.threading.get_intra_op_parallelism_threads(),
        inter_op_parallelism_threads=tf.config.threading.get_inter_op_parallelism_threads(),
        allow_soft_placement=True,
    )
    # Share a GPU with the eager context and the other loaded models.
    config.gpu_options.allow_growth = True
    return config


def read_meta_graph(path, tags):
    """The MetaGraphDef of a SavedModel whose tag set is exactly `tags`, as TF Serving picks it."""
    pb = os.path.join(path, "saved_model.pb")
    pbtxt = os.path.join(path, "saved_model.pbtxt")
    saved_model = saved_model_pb2.SavedModel()
    if os.path.exists(pb):
        with open(pb, "rb") as f:
            saved_model.ParseFromString(f.read())
    elif os.path.exists(pbtxt):
        from google.protobuf import text_format

        with open(pbtxt) as f:
            text_format.Parse(f.read(), saved_model)
    else:
        raise ServingError(
            grpc.StatusCode.NOT_FOUND,
            f"Could not find SavedModel .pb or .pbtxt at supplied export directory path: {path}. "
            "Check that the directory exists and that you have the right permissions for "
            "accessing it.",
        )
    for meta_graph in saved_model.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == set(tags):
            return meta_graph
    raise ServingError(
        grpc.StatusCode.NOT_FOUND,
        "Could not find meta graph def matching supplied tags: { "
        + " ".join(sorted(tags))
        + " }. To inspect available tag-sets in the SavedModel, please use the SavedModel "
        "CLI: `saved_model_cli`",
    )


def load_servable(name, version, path, tags=("serve",)):
    """Load one version folder; raise ServingError if it cannot be loaded."""
    try:
        meta_graph = read_meta_graph(path, tags)
        signature_defs = dict(meta_graph.signature_def)
        return _SessionServable(name, version, path, signature_defs, tags)
    except IndexError as e:
        # TF's pybind layer raises an absl OUT_OF_RANGE status (a truncated
        # variables file: "Read less bytes than requested") as IndexError.
        raise ServingError(grpc.StatusCode.OUT_OF_RANGE, str(e)) from e
    except Exception as e:
        raise as_serving_error(e) from e


# Version folders.

_INT64_MAX = (1 << 63) - 1
# strings::safe_strto64: optional ASCII whitespace around an optional "-" and ASCII digits.
_VERSION_NAME = re.compile(r"[ \t\n\v\f\r]*(-?[0-9]+)[ \t\n\v\f\r]*")


def parse_version(name):
    """The version number a base path's child stands for, or None if it is not one.

    As FileSystemStoragePathSource's ParseVersionNumber (strings::safe_strto64):
    "123", "00000123" and " 123 " are 123, "-1" is -1; "1.0", "v1", "+1", "١٢٣"
    and numbers beyond int64 are not versions.
    """
    match = _VERSION_NAME.fullmatch(name)
    if match is None:
        return None
    version = int(match.group(1))
    return version if -_INT64_MAX <= version <= _INT64_MAX else None


_ERRNO_CODES = {
    errno.ENOENT: grpc.StatusCode.NOT_FOUND,
    errno.EACCES: grpc.StatusCode.PERMISSION_DENIED,
    errno.EPERM: grpc.StatusCode.PERMISSION_DENIED,
    errno.ENOTDIR: grpc.StatusCode.FAILED_PRECONDITION,
}


def list_versions(name, base_path):
    """The version folders under a base path, as FileSystemStoragePathSource sees them.

    Returns:
        ({version: folder name}, None), or (None, ServingError) when the base path
        cannot be read: INVALID_ARGUMENT "Could not find base path <p> for servable
        <name> with error NOT_FOUND: <p> not found" when it does not exist (TF
        Serving's text). When two folders name one version ("123", "00000123"),
        the last in sorted order wins, as in IndexChildrenByVersion.
    """
    versions, _, error = _list_versions(name, base_path)
    return versions, error


def _list_versions(name, base_path):
    # (versions, {version: [ignored duplicate folders]}, error)
    try:
        entries = sorted(os.listdir(base_path))
    except FileNotFoundError:
        return None, {}, ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Could not find base path {base_path} for servable {name} with error "
            f"NOT_FOUND: {base_path} not found",
        )
    except OSError as e:
        code = _ERRNO_CODES.get(e.errno, grpc.StatusCode.UNKNOWN)
        return None, {}, ServingError(
            code, f"Could not read base path {base_path} for servable {name}: {e.strerror or e}"
        )
    versions = {}
    duplicates = {}
    for entry in entries:
        version = parse_version(entry)
        # Only folders: an exporter's temporary ".tmp-..." folder or a stray file is skipped.
        if version is None or not os.path.isdir(os.path.join(base_path, entry)):
            continue
        if version in versions:
            duplicates.setdefault(version, []).append(versions[version])
        versions[version] = entry
    return versions, duplicates, None


def _no_versions_error(name, base_path):
    # FileSystemStoragePathSource's FailIfZeroVersions.
    return ServingError(
        grpc.StatusCode.NOT_FOUND,
        f"Unable to find a numerical version path for servable {name} at: {base_path}",
    )


# The manager.


@dataclasses.dataclass
class VersionStatus:
    """What GetModelStatus reports for one version."""

    version: int
    state: int  # a ModelVersionStatus.State value
    error: ServingError | None = None


@dataclasses.dataclass
class _Model:
    config: model_server_config_pb2.ModelConfig
    serving: dict = dataclasses.field(default_factory=dict)  # version -> Servable
    failed: set = dataclasses.field(default_factory=set)  # versions whose load gave up
    retries: dict = dataclasses.field(default_factory=dict)  # version -> (attempts, retry time)
    last_listing: object = None  # what the last poll found, to log a change once
    dirs: dict = dataclasses.field(default_factory=dict)  # version -> its folder's own name
    listing_error: ServingError | None = None  # why the last poll found no version, if it did not
    logged: set = dataclasses.field(default_factory=set)  # other findings already logged


def _platform(config):
    """TF Serving's GetPlatform: the model_platform, or the deprecated model_type."""
    if config.model_type != model_server_config_pb2.MODEL_TYPE_UNSPECIFIED:
        if config.model_platform:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "Illegal setting both ModelServerConfig::model_type (deprecated) and "
                "ModelServerConfig::model_platform.",
            )
        if config.model_type == model_server_config_pb2.TENSORFLOW:
            return TENSORFLOW_PLATFORM
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"ModelServerConfig::model_type choice {config.model_type} not supported.",
        )
    if not config.model_platform:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
            "ModelServerConfig::model_platform.",
        )
    return config.model_platform


def _is_relative(path):
    return "://" not in path and not os.path.isabs(path)


def validate_config(config):
    """Refuse a ModelServerConfig the way ServerCore::ReloadConfig refuses it."""
    kind = config.WhichOneof("config")
    if kind == "custom_model_config":
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT, "ModelServer does not yet support custom model config."
        )
    names = set()
    for model in config.model_config_list.config:
        if model.name in names:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Illegal to list model {model.name} multiple times in config list",
            )
        names.add(model.name)
        if _is_relative(model.base_path):
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Expected model {model.name} to have an absolute path or URI; "
                f"got base_path()={model.base_path}",
            )
    for model in config.model_config_list.config:
        platform = _platform(model)
        if platform != TENSORFLOW_PLATFORM:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Model {model.name} requests unsupported platform {platform}",
            )


class _Held:
    """`ModelManager.handle`'s context manager (a class: a generator-based one costs
    a few microseconds more on every request)."""

    __slots__ = ("_manager", "_model_spec", "_servable")

    def __init__(self, manager, model_spec):
        self._manager = manager
        self._model_spec = model_spec
        self._servable = None

    def __enter__(self):
        self._servable = self._manager._acquire(self._model_spec)
        return self._servable

    def __exit__(self, *exc):
        self._servable.release()
        self._servable = None
        return False


class ModelManager:
    """Loads, serves and unloads model versions as the config and the disk change.

    Args:
        file_system_poll_wait_seconds: how often to poll the base paths; 0 polls
            once (at start), a negative value never polls.
        num_load_threads: load this many versions at once (0 or 1: one at a time).
        max_num_load_retries: retries after a failed load before giving up (only
            while polling: with polling off a failed load gives up at once).
        load_retry_interval_micros: the wait between retries.
        allow_version_labels_for_unavailable_models: let labels point at versions
            that are not available yet (TF Serving's flag).
        saved_model_tags: the MetaGraphDef tag set to load.
        warmup: called with each newly loaded `Servable` before it serves; an
            exception fails the load (TF Serving's model warmup).
        on_unload: called with each unloaded `Servable`.
    """

    def __init__(
        self,
        *,
        file_system_poll_wait_seconds=1.0,
        num_load_threads=0,
        max_num_load_retries=5,
        load_retry_interval_micros=60_000_000,
        allow_version_labels_for_unavailable_models=False,
        saved_model_tags=("serve",),
        warmup=None,
        on_unload=None,
    ):
        self.file_system_poll_wait_seconds = file_system_poll_wait_seconds
        self.num_load_threads = num_load_threads
        self.max_num_load_retries = max_num_load_retries
        self.load_retry_interval_micros = load_retry_interval_micros
        self.allow_version_labels_for_unavailable_models = allow_version_labels_for_unavailable_models
        self.saved_model_tags = tuple(saved_model_tags)
        self._warmup = warmup
        self._on_unload = on_unload
        self._lock = threading.Lock()  # guards the maps read by requests
        self._control = threading.RLock()  # one reconfiguration or poll at a time
        self._config = model_server_config_pb2.ModelServerConfig()
        self._models = {}  # name -> _Model
        self._labels = {}  # name -> {label: version}
        self._states = {}  # name -> {version: VersionStatus}, kept after unloads
        self._stop = threading.Event()
        self._poller = None

    # Requests.

    def handle(self, model_spec):
        """Hold the servable a ModelSpec resolves to for the length of a request.

        Use as `with manager.handle(spec) as servable:`; the servable is resolved
        (and these errors raised) on entering.

        Raises:
            ServingError: INVALID_ARGUMENT for a missing name or unknown label,
                NOT_FOUND "Servable not found for request: Latest(name)" /
                "Specific(name, version)" when nothing matching is loaded.
        """
        return _Held(self, model_spec)

    def _acquire(self, model_spec):
        name = model_spec.name
        if not name:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified.")
        choice = model_spec.WhichOneof("version_choice")
        with self._lock:
            model = self._models.get(name)
            serving = model.serving if model is not None else {}
            if choice is None:
                servable = serving[max(serving)] if serving else None
                request = f"Latest({name})"
            else:
                if choice == "version_label":
                    label = model_spec.version_label
                    version = self._labels.get(name, {}).get(label)
                    if version is None:
                        raise ServingError(
                            grpc.StatusCode.INVALID_ARGUMENT,
                            f"Unrecognized servable version label: {label}",
                        )
                else:
                    version = model_spec.version.value
                servable = serving.get(version)
                request = f"Specific({name}, {version})"
            if servable is None:
                raise ServingError(
                    grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {request}"
                )
            servable.acquire()
        return servable

    def version_states(self, name):
        """VersionStatus of every version of a model ever seen, highest version first."""
        with self._lock:
            states = self._states.get(name, {})
            return [states[v] for v in sorted(states, reverse=True)]

    @property
    def config(self):
        with self._lock:
            return self._config

    # Configuration.

    def reload_config(self, config, *, require_versions=None):
        """Serve the models of a ModelServerConfig (ServerCore::ReloadConfig).

        Models new to this config are loaded before this returns; models no longer
        listed are unloaded; the others keep serving and pick up their new version
        policy and labels.

        A reload that points a model at versions it cannot have (a model new to
        the config, or one whose base path or version policy it changes, whose
        base path does not exist, cannot be read, or holds none of the versions
        its policy asks for) is refused before anything changes, with the errors
        of TF Serving's FileSystemStoragePathSource::FailIfZeroVersions: INVALID_ARGUMENT
        "Could not find base path <p> for servable <name> with error NOT_FOUND:
        <p> not found", or NOT_FOUND "Unable to find a numerical version path for
        servable <name> at: <p>". (TF Serving, unless run with
        servable_versions_always_present, does not answer such a reload until
        versions appear, and a base path without versions unloads the model.) The
        first config, the one a server starts with, is not held to this: its
        models are served as their versions appear, and the logs say why not yet.

        Args:
            config: the ModelServerConfig.
            require_versions: refuse such a config (True) or take it (False);
                None: refuse unless it is the first (non-empty) config.

        Raises:
            ServingError: the config is invalid, points a model at no versions (see
                above), a label points at an unavailable version, or a new model
                failed to load (UNKNOWN "N model(s) did not become available: ...").
        """
        with self._control:
            if config.WhichOneof("config") is None:
                log.info("Taking no action for empty config.")
                return
            validate_config(config)
            if require_versions is None:
                require_versions = self.config.WhichOneof("config") is not None
            if require_versions:
                self._check_versions_exist(config)
            labels = self._label_map(config)
            added = []
            with self._lock:
                old = self._models
                models = {}
                for model_config in config.model_config_list.config:
                    model = old.get(model_config.name)
                    if model is None:
                        model = _Model(config=model_config)
                        added.append(model_config.name)
                    else:
                        model.config = model_config
                    models[model_config.name] = model
                removed = [old[name] for name in old if name not in models]
                self._models = models
                self._labels = labels
                self._config = config
            for model in removed:
                for version in sorted(model.serving):
                    self._unload(model, version)
            self._reconcile_all()
            self._raise_if_unavailable(added)

    def _check_versions_exist(self, config):
        """Refuse a config that points a model at a base path with none of its versions."""
        with self._lock:
            current = {name: model.config for name, model in self._models.items()}
        for model_config in config.model_config_list.config:
            name, base = model_config.name, model_config.base_path
            before = current.get(name)
            if (before is not None and before.base_path == base
                    and before.model_version_policy == model_config.model_version_policy):
                continue  # unchanged: its state is the polls' business, as in TF Serving
            versions, error = list_versions(name, base)
            if error is None:
                policy = model_config.model_version_policy
                wanted = set(versions)
                if policy.WhichOneof("policy_choice") == "specific":
                    wanted &= set(policy.specific.versions)
                if not wanted:
                    error = _no_versions_error(name, base)
            if error is not None:
                log.error("Refusing the config: %s", error.message)
                raise error

    def listing_error(self, name):
        """Why the last look at a model's base path found no version to serve (a
        ServingError), or None: for GetModelStatus or logs to say why a model has
        no versions."""
        with self._lock:
            model = self._models.get(name)
        return model.listing_error if model is not None else None

    def _label_map(self, config):
        # ServerCore::UpdateModelVersionLabelMap, against the states *before* this
        # config's loads: a label may only name a version that serves now.
        labels = {}
        for model_config in config.model_config_list.config:
            name = model_config.name
            states = {s.version: s for s in self.version_states(name)}
            for label, version in model_config.version_labels.items():
                allow = False
                if self.allow_version_labels_for_unavailable_models:
                    existing = self._labels.get(name, {}).get(label)
                    allow = existing is None or existing == version
                state = states.get(version)
                if not allow and (state is None or state.state != State.AVAILABLE):
                    raise ServingError(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        f"Request to assign label to version {version} of model {name}, "
                        "which is not currently available for inference",
                    )
                labels.setdefault(name, {})[label] = version
        return labels

    def _raise_if_unavailable(self, names):
        failures = []
        for name in names:
            with self._lock:
                model = self._models.get(name)
                serving = bool(model and model.serving)
            if serving:
                continue
            for status in self.version_states(name):
                if status.error is not None:
                    servable_id = f"{{name: {name} version: {status.version}}}"
                    failures.append(f"{{{servable_id} due to error: {status.error}}}, ")
                    break
        if failures:
            raise ServingError(
                grpc.StatusCode.UNKNOWN,
                f"{len(failures)} model(s) did not become available: {{{''.join(failures)}}}",
            )

    # Polling.

    def start(self):
        """Start polling the base paths (reload_config has already done the first pass)."""
        if self.file_system_poll_wait_seconds > 0 and self._poller is None:
            self._poller = threading.Thread(target=self._poll_loop, name="fs_poll", daemon=True)
            self._poller.start()

    def stop(self):
        """Stop polling and unload every version."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
            self._poller = None
        with self._control:
            with self._lock:
                models = list(self._models.values())
            for model in models:
                for version in sorted(model.serving):
                    self._unload(model, version)

    def poll(self):
        """One pass over every base path: load, unload, as the version policies say."""
        with self._control:
            self._reconcile_all()

    def _poll_loop(self):
        while not self._stop.wait(self.file_system_poll_wait_seconds):
            try:
                self.poll()
            except Exception:
                log.exception("Polling the model base paths failed")

    def _reconcile_all(self):
        with self._lock:
            models = list(self._models.values())
        plans = [(model, self._aspired_versions(model)) for model in models]
        now = time.monotonic()
        jobs = []
        for model, aspired in plans:
            if aspired is None:
                continue
            # A version that left the aspired set and comes back is tried afresh.
            model.failed &= aspired
            for version in [v for v in model.retries if v not in aspired]:
                del model.retries[version]
                self._set_state(model.config.name, version, State.END)
            new = [
                v for v in sorted(aspired, reverse=True)
                if v not in model.serving and v not in model.failed
                and model.retries.get(v, (0, now))[1] <= now
            ]
            jobs.extend((model, version) for version in new)
        self._load_all(jobs)
        for model, aspired in plans:
            if aspired is None:
                continue
            unaspired = [v for v in model.serving if v not in aspired]
            # AvailabilityPreservingPolicy: unload only once an aspired version
            # serves (or none is aspired at all), so the model never goes dark.
            if unaspired and (not aspired or any(v in model.serving for v in aspired)):
                for version in sorted(unaspired):
                    self._unload(model, version)

    def _aspired_versions(self, model):
        """The versions the policy wants from what is on disk (None if unreadable)."""
        config = model.config
        name, base = config.name, config.base_path
        versions, duplicates, error = _list_versions(name, base)
        if error is not None:
            model.listing_error = error
            # TF Serving logs this every poll; the first time will do.
            serving = sorted(model.serving)
            self._log_listing(
                model, ("error", error.message), logging.ERROR,
                "FileSystemStoragePathSource encountered a filesystem access error: %s%s", error.message,
                f" (version(s) {serving} keep serving)" if serving else "",
            )
            return None
        model.dirs = versions
        for version, ignored in sorted(duplicates.items()):
            self._log_listing(
                model, ("duplicate", version, tuple(ignored), versions[version]), logging.WARNING,
                "Duplicate version directories detected. Version %d will be loaded from %s, %s will be ignored.",
                version, versions[version], ", ".join(ignored), key="duplicates",
            )
        if not versions:
            model.listing_error = _no_versions_error(name, base)
            self._log_listing(model, ("empty",), logging.WARNING,
                              "No versions of servable %s found under base path %s. Did you forget "
                              "to name your leaf directory as a number (eg. '/1/')?", name, base)
            return set()
        policy = config.model_version_policy
        kind = policy.WhichOneof("policy_choice")
        model.listing_error = None
        if kind == "all":
            aspired = set(versions)
        elif kind == "specific":
            wanted = set(policy.specific.versions)
            aspired = wanted & set(versions)
            if not aspired:
                model.listing_error = _no_versions_error(name, base)
            missing = sorted(wanted - set(versions))
            if missing:
                self._log_listing(model, ("missing", tuple(missing)), logging.WARNING,
                                  "Versions %s of servable %s not found under base path %s",
                                  missing, name, base)
                return aspired
        else:
            num = policy.latest.num_versions if kind == "latest" and policy.latest.num_versions > 0 else 1
            aspired = set(sorted(versions, reverse=True)[:num])
        model.last_listing = ("ok",)
        return aspired

    @staticmethod
    def _log_listing(model, listing, level, message, *args, key=None):
        # Polls repeat every second; say what is wrong once, when it changes.
        if key is not None:  # a separate subject: each distinct finding once
            if (key, listing) not in model.logged:
                log.log(level, message, *args)
                model.logged.add((key, listing))
            return
        if model.last_listing != listing:
            log.log(level, message, *args)
        model.last_listing = listing

    # Loading and unloading.

    def _set_state(self, name, version, state, error=None):
        with self._lock:
            self._states.setdefault(name, {})[version] = VersionStatus(version, state, error)

    def _load_all(self, jobs):
        if not jobs:
            return
        if self.num_load_threads > 1 and len(jobs) > 1:
            with futures.ThreadPoolExecutor(self.num_load_threads, thread_name_prefix="load") as pool:
                list(pool.map(lambda job: self._load(*job), jobs))
        else:
            for job in jobs:
                self._load(*job)

    def _load(self, model, version):
        name = model.config.name
        # The folder's own name: version 123 may live in "00000123".
        path = os.path.join(model.config.base_path, model.dirs.get(version, str(version)))
        attempts, _ = model.retries.pop(version, (0, 0.0))
        if not attempts:
            self._set_state(name, version, State.START)
        self._set_state(name, version, State.LOADING)
        log.info("Loading servable: {name: %s version: %d}", name, version)
        servable = None
        try:
            servable = load_servable(name, version, path, self.saved_model_tags)
            if self._warmup is not None:
                self._warmup(servable)
        except Exception as e:
            error = as_serving_error(e)
            if servable is not None:
                servable.retire()
            log.error("Loading servable: {name: %s version: %d} failed: %s", name, version, error)
            # Retries wait for a later poll rather than holding up this one (and
            # every other model's loads); the version shows LOADING meanwhile.
            if attempts < self.max_num_load_retries and self.file_system_poll_wait_seconds > 0:
                retry_at = time.monotonic() + max(0, self.load_retry_interval_micros) / 1e6
                model.retries[version] = (attempts + 1, retry_at)
                return
            model.failed.add(version)
            self._set_state(name, version, State.END, error)
            return
        with self._lock:
            model.serving[version] = servable
            self._states.setdefault(name, {})[version] = VersionStatus(version, State.AVAILABLE)
        log.info("Successfully loaded servable version {name: %s version: %d}", name, version)

    def _unload(self, model, version):
        name = model.config.name
        with self._lock:
            servable = model.serving.pop(version, None)
            self._states.setdefault(name, {})[version] = VersionStatus(version, State.UNLOADING)
        if servable is not None:
            servable.retire()
            if self._on_unload is not None:
                self._on_unload(servable)
        self._set_state(name, version, State.END)
        log.info("Unloaded servable version {name: %s version: %d}", name, version)
