"""TF Serving's config files, read with TF Serving's own protos.

`--model_config_file` holds a `tensorflow.serving.ModelServerConfig` (from
tensorflow-serving-api), `--batching_parameters_file` a `BatchingParameters`,
`--monitoring_config_file` a `MonitoringConfig` and `--ssl_config_file` an
`SSLConfig` (declared in serving/protos with TF Serving's package, names and
numbers), `--tensorflow_session_config_file` a TensorFlow `ConfigProto`, all in
protobuf text format. A file that
does not parse is reported as tensorflow_model_server reports it: protobuf's
"Error parsing text-format <message>: <line>:<column>: <what>" and then the status
INVALID_ARGUMENT "Invalid protobuf file: '<path>'".

Example:
    >>> config = read_model_server_config("/models/models.config")
    >>> [m.name for m in config.model_config_list.config]
"""

import os
import ssl
import tempfile

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

