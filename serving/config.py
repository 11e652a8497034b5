"""TF Serving's config files, read and written with TF Serving's own protos.

`--model_config_file` holds a `tensorflow.serving.ModelServerConfig` (from
tensorflow-serving-api), `--batching_parameters_file` a `BatchingParameters`,
`--monitoring_config_file` a `MonitoringConfig` and `--ssl_config_file` an
`SSLConfig` (declared in serving/protos with TF Serving's package, names and
numbers), `--tensorflow_session_config_file` a TensorFlow `ConfigProto`, all in
protobuf text format. A file that
does not parse is reported as tensorflow_model_server reports it: protobuf's
"Error parsing text-format <message>: <line>:<column>: <what>" and then the status
INVALID_ARGUMENT "Invalid protobuf file: '<path>'".

This module is also the one writer of the two files beside a base path of exports
(`export` and `zoo serve` call it; it imports nothing of either, so serving still
stands alone), so what is written is parsed back by the same protos:

    tensorflow_model_server --model_config_file=models/models.config \\
        --enable_batching --batching_parameters_file=models/batching_parameters.txt

`models.config` is a `ModelServerConfig` (`model_config_list`, text format) with one
entry per model folder in the base path; entries already in the file are kept as
they are (a hand-edited policy or label survives the next export), new model folders
are added, and the model just exported gets the version policy asked for.
`batching_parameters.txt` is a `BatchingParameters` message (TF Serving's
session_bundle_config.proto) in text format, written once with defaults for a small
CPU server and never overwritten unless asked, because it is the file an operator
tunes. Both are written atomically (a temporary file beside the target, renamed over
it), so a polling server never reads half a file.

Example:
    >>> config = read_model_server_config("/models/models.config")
    >>> [m.name for m in config.model_config_list.config]
    >>> write_models_config("models", model_name="digits", version_policy="latest:2")
    PosixPath('models/models.config')
"""

import os
import pathlib
import ssl
import tempfile
import threading

import grpc
from google.protobuf import text_format
from tensorflow.core.protobuf import config_pb2
from tensorflow_serving.config import model_server_config_pb2

from serving.errors import ServingError
from serving.protos import tf_serving_config_pb2

ModelServerConfig = model_server_config_pb2.ModelServerConfig
BatchingParameters = tf_serving_config_pb2.BatchingParameters
MonitoringConfig = tf_serving_config_pb2.MonitoringConfig
SSLConfig = tf_serving_config_pb2.SSLConfig
SessionConfig = config_pb2.ConfigProto

MODELS_CONFIG = "models.config"
BATCHING_FILE = "batching_parameters.txt"
POLICIES = ("latest", "all", "specific")

# BatchingParameters defaults. A batch of 32 keeps latency per request near one
# model call; 1 ms of waiting is about one gRPC round trip on this class of machine.
BATCHING_DEFAULTS = {"max_batch_size": 32, "batch_timeout_micros": 1000, "max_enqueued_batches": 100}

MODELS_CONFIG_HEADER = (
    "# TF Serving model config (ModelServerConfig, text format), written by `zoo export`.\n"
    "# Use: tensorflow_model_server --model_config_file=<this file>. Edits are kept.\n"
)
BATCHING_HEADER = (
    "# TF Serving batching (BatchingParameters, text format), written by `zoo export`.\n"
    "# Use: --enable_batching --batching_parameters_file=<this file>. Tune freely; not overwritten.\n"
)
# A header line too when num_batch_threads is left to the server: where to set it.
BATCHING_THREADS_HINT = "# num_batch_threads { value: 4 }  # default: the serving machine's core count\n"


class ConfigError(ServingError):
    """A config file that cannot be read or parsed.

    `str(error)` is the status ("INVALID_ARGUMENT: Invalid protobuf file: '...'");
    `detail` is protobuf's parse message ("Error parsing text-format ...: 3:5: ...").
    """

    def __init__(self, code, message, detail=""):
        super().__init__(code, message)
        self.detail = detail


def parse_text(text, message, path="<string>"):
    """Parse protobuf text into a new `message` instance (a message class)."""
    proto = message()
    try:
        text_format.Parse(text, proto)
    except text_format.ParseError as e:
        # Python's ParseError reads "3:5 : what"; C++ protobuf prints "3:5: what".
        what, location = str(e), ""
        if e.GetLine() is not None and " : " in what:
            location, what = what.split(" : ", 1)
            # Python quotes the offending line before the message; C++ does not.
            lines = text.splitlines()
            if 0 < e.GetLine() <= len(lines):
                what = what.removeprefix(f"'{lines[e.GetLine() - 1]}': ")
        detail = f"Error parsing text-format {proto.DESCRIPTOR.full_name}: "
        detail += f"{location}: {what}" if location else what
        raise ConfigError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid protobuf file: '{path}'", detail) from e
    return proto


def read_text_file(path, message):
    """Read a text-format file into a new `message` instance; raise ConfigError."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError as e:
        raise ConfigError(grpc.StatusCode.NOT_FOUND, f"{path}; No such file or directory") from e
    except OSError as e:
        raise ConfigError(grpc.StatusCode.FAILED_PRECONDITION, f"{path}; {e.strerror}") from e
    return parse_text(text, message, path)


def read_model_server_config(path):
    """The `ModelServerConfig` of a --model_config_file."""
    return read_text_file(path, ModelServerConfig)


def read_batching_parameters(path):
    """The `BatchingParameters` of a --batching_parameters_file."""
    return read_text_file(path, BatchingParameters)


def read_monitoring_config(path):
    """The `MonitoringConfig` of a --monitoring_config_file."""
    return read_text_file(path, MonitoringConfig)


def read_ssl_config(path):
    """The `SSLConfig` of a --ssl_config_file, checked (see `check_ssl_config`)."""
    config = read_text_file(path, SSLConfig)
    check_ssl_config(config, path)
    return config


def read_session_config(path):
    """The TensorFlow `ConfigProto` of a --tensorflow_session_config_file."""
    return read_text_file(path, SessionConfig)


def _pem_error(path, field, text, what):
    """A ConfigError for a PEM field of an SSLConfig that cannot be used."""
    if text and "-----BEGIN" not in text and os.path.exists(text.strip()):
        what = (f"it names a file ({text.strip()!r}); the field holds the PEM text itself, "
                "as in TF Serving's SSLConfig")
    return ConfigError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid SSL config in '{path}': {field}: {what}")


def check_ssl_config(config, path="<ssl config>"):
    """Check that an SSLConfig's PEM texts load, before gRPC is handed them.

    gRPC only says "Failed to bind" for a key it cannot use; this names the file
    and the field instead. The key and certificate are loaded together with
    Python's ssl module (so a key that does not match its certificate is caught
    too), through files in a private temporary folder removed at once.

    Raises:
        ConfigError: INVALID_ARGUMENT "Invalid SSL config in '<path>': <field>: <what>".
    """
    for field in ("server_key", "server_cert"):
        text = getattr(config, field)
        if "-----BEGIN" not in text:
            raise _pem_error(path, field, text, "empty" if not text.strip() else "no PEM block in it")
    if config.client_verify and not config.custom_ca.strip():
        raise _pem_error(path, "custom_ca", "", "client_verify is true, so custom_ca must hold the CA "
                         "certificate(s) that client certificates are checked against")
    for field in ("server_cert", "custom_ca"):
        text = getattr(config, field)
        if text.strip():
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=text)
            except (ssl.SSLError, ValueError) as e:
                raise _pem_error(path, field, text, f"not usable PEM certificates ({_reason(e)})") from e

    def no_password():
        raise ValueError("encrypted key")

    with tempfile.TemporaryDirectory(prefix="zoo-ssl-") as folder:  # mode 0700
        key_file = os.path.join(folder, "key.pem")
        cert_file = os.path.join(folder, "cert.pem")
        with open(os.open(key_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(config.server_key)
        with open(cert_file, "w") as f:
            f.write(config.server_cert)
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_file, key_file, password=no_password)
        except ValueError as e:
            raise _pem_error(path, "server_key", config.server_key,
                             "the key is encrypted; gRPC needs an unencrypted PEM key") from e
        except ssl.SSLError as e:
            if "KEY_VALUES_MISMATCH" in str(e):
                raise _pem_error(path, "server_key", "", "the key does not match server_cert") from e
            raise _pem_error(path, "server_key", config.server_key, f"not a usable PEM private key ({_reason(e)})") from e


def _reason(error):
    return getattr(error, "reason", None) or str(error)


def single_model_config(model_name, base_path):
    """The config --model_name/--model_base_path stand for (BuildSingleModelConfig)."""
    config = ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = model_name
    model.base_path = base_path
    model.model_platform = "tensorflow"
    return config



# ---------------------------------------------------------------------------
# Writing: models.config and batching_parameters.txt beside the exports
# ---------------------------------------------------------------------------


def write_text_file(path, message, header=""):
    """Write `message` in protobuf text format to `path`, after `header` (comment lines).

    Atomic: the text goes to a temporary file beside `path`, which is renamed over it,
    so a server polling the file sees the old content or the new, never a part; if
    anything fails, the old file is left as it was and the temporary file is removed.

    Example:
        >>> write_text_file("models/batching_parameters.txt", batching_parameters(max_batch_size=8))
        PosixPath('models/batching_parameters.txt')
    """
    path = pathlib.Path(path)
    text = header + text_format.MessageToString(message)
    # Beside the target (same file system, so the rename is atomic), hidden, and named
    # per writer so that two writers never share one.
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def parse_version_policy(text: str) -> tuple[str, list[int]]:
    """'latest', 'latest:2', 'all' or 'specific:1,3' -> (policy, numbers).

    Example:
        >>> parse_version_policy("specific:1,3")
        ('specific', [1, 3])
    """
    kind, _, rest = str(text).partition(":")
    try:
        numbers = [int(n) for n in rest.split(",") if n.strip()]
    except ValueError:
        numbers = None
    ok = (numbers is not None and kind in POLICIES
          and (kind != "all" or not numbers) and (kind != "specific" or numbers)
          and (kind != "latest" or len(numbers) <= 1) and all(n >= 1 for n in numbers))
    if not ok:
        raise ValueError(
            f"Version policy {text!r} is not one of 'latest' (newest version), 'latest:N' "
            f"(newest N), 'all', or 'specific:1,3' (those versions)."
        )
    return kind, numbers


def _set_policy(entry, policy: str) -> None:
    kind, numbers = parse_version_policy(policy)
    entry.model_version_policy.Clear()
    if kind == "latest":
        entry.model_version_policy.latest.num_versions = numbers[0] if numbers else 1
    elif kind == "all":
        entry.model_version_policy.all.SetInParent()
    else:
        entry.model_version_policy.specific.versions.extend(numbers)


def is_model_folder(path) -> bool:
    """True when `path` holds a numeric version folder with a saved_model.pb (TF Serving
    only looks at all-digit folder names)."""
    path = pathlib.Path(path)
    try:
        return path.is_dir() and any(v.name.isdigit() and (v / "saved_model.pb").exists() for v in path.iterdir())
    except OSError:  # a folder this user cannot list holds no model it could serve
        return False


def served_models(base_path) -> list[str]:
    """Model folders under `base_path` that hold at least one numeric version folder
    with a saved_model.pb (TF Serving only looks at all-digit folder names)."""
    base = pathlib.Path(base_path)
    if not base.is_dir():
        return []
    return sorted(d.name for d in base.iterdir() if not d.name.startswith(".") and is_model_folder(d))


def models_config(base_path, *, model_name=None, version_policy=None, serving_base_path=None, models=None):
    """The `ModelServerConfig` for `base_path`: `<base_path>/models.config` as it is, plus
    an entry for every model folder it does not list yet.

    Args:
        base_path: the folder holding `<model_name>/<version>/` exports.
        model_name: the model whose policy `version_policy` sets (others keep theirs).
        version_policy: see `parse_version_policy`; new entries default to 'latest'.
        serving_base_path: the base path as the server sees it, e.g. "/models" inside
            the TF Serving container; when given, every model folder's entry points
            under it. Default: the absolute local path, for new entries only.
        models: only these model folders' entries (e.g. the models `zoo serve --model`
            names); default: every entry.

    Raises:
        ValueError: a name in `models` is not a model folder of `base_path`.
        ConfigError: `<base_path>/models.config` does not parse.

    Example:
        >>> config = models_config("models", serving_base_path="/models")
        >>> [(m.name, m.base_path) for m in config.model_config_list.config]
        [('digits', '/models/digits')]
    """
    base = pathlib.Path(base_path)
    path = base / MODELS_CONFIG
    config = read_model_server_config(path) if path.exists() else ModelServerConfig()
    entries = {entry.name: entry for entry in config.model_config_list.config}
    root = (serving_base_path or str(base.resolve())).rstrip("/")
    names = served_models(base)
    for name in names:
        entry = entries.get(name)
        if entry is None:
            entry = entries[name] = config.model_config_list.config.add()
            entry.name = name
            entry.base_path = f"{root}/{name}"
            entry.model_platform = "tensorflow"
            _set_policy(entry, "latest")
        elif serving_base_path:
            entry.base_path = f"{root}/{name}"
        if name == model_name and version_policy:
            _set_policy(entry, version_policy)
    if models is not None:
        unknown = sorted(set(models) - set(names))
        if unknown:
            raise ValueError(f"no model {', '.join(unknown)} under {base}; found: {', '.join(names) or 'none'}")
        wanted = set(models)
        kept = [entry for entry in config.model_config_list.config if entry.name in wanted]
        del config.model_config_list.config[:]
        config.model_config_list.config.extend(kept)
    return config


def write_models_config(base_path, *, model_name=None, version_policy=None, serving_base_path=None):
    """Writes `<base_path>/models.config` listing every model folder in `base_path`.

    Args:
        base_path: the folder holding `<model_name>/<version>/` exports.
        model_name: the model whose policy `version_policy` sets (others keep theirs).
        version_policy: see `parse_version_policy`; new entries default to 'latest'.
        serving_base_path: the base path as the server sees it, e.g. "/models" inside
            the TF Serving container; default: the absolute local path.

    Example:
        >>> write_models_config("models", model_name="digits", version_policy="all")
        PosixPath('models/models.config')
    """
    config = models_config(base_path, model_name=model_name, version_policy=version_policy,
                           serving_base_path=serving_base_path)
    return write_text_file(pathlib.Path(base_path) / MODELS_CONFIG, config, MODELS_CONFIG_HEADER)


def batching_parameters(max_batch_size=BATCHING_DEFAULTS["max_batch_size"],
                        batch_timeout_micros=BATCHING_DEFAULTS["batch_timeout_micros"],
                        max_enqueued_batches=BATCHING_DEFAULTS["max_enqueued_batches"],
                        num_batch_threads=None):
    """A `BatchingParameters` with these values (defaults for a small CPU server).

    num_batch_threads: default unset, so the server uses the machine's core count.

    Example:
        >>> batching_parameters(max_batch_size=8).max_batch_size.value
        8
    """
    for name, value in (("max_batch_size", max_batch_size), ("batch_timeout_micros", batch_timeout_micros),
                        ("max_enqueued_batches", max_enqueued_batches)):
        if not isinstance(value, int) or value < (0 if name == "batch_timeout_micros" else 1):
            raise ValueError(f"{name} must be a positive int, got {value!r}.")
    params = BatchingParameters()
    params.max_batch_size.value = max_batch_size
    params.batch_timeout_micros.value = batch_timeout_micros
    params.max_enqueued_batches.value = max_enqueued_batches
    if num_batch_threads:
        params.num_batch_threads.value = num_batch_threads
    return params


def write_batching_parameters(base_path, params=None, *, overwrite=False):
    """Writes `<base_path>/batching_parameters.txt` unless it exists (or `overwrite`).

    Args:
        base_path: the folder of exports.
        params: a `BatchingParameters`; default `batching_parameters()`.
        overwrite: replace an existing file (an operator's tuning) too.

    Example:
        >>> write_batching_parameters("models", batching_parameters(max_batch_size=64), overwrite=True)
        PosixPath('models/batching_parameters.txt')
    """
    path = pathlib.Path(base_path) / BATCHING_FILE
    if overwrite or not path.exists():
        params = batching_parameters() if params is None else params
        hint = "" if params.HasField("num_batch_threads") else BATCHING_THREADS_HINT
        write_text_file(path, params, BATCHING_HEADER + hint)
    return path


def write_server_config(base_path, **kwargs):
    """`models.config` (see `write_models_config`) and `batching_parameters.txt`."""
    return write_models_config(base_path, **kwargs), write_batching_parameters(base_path)
