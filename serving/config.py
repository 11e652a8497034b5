"""TF Serving's config files, read with TF Serving's own protos.

`--model_config_file` holds a `tensorflow.serving.ModelServerConfig` (from
tensorflow-serving-api), `--batching_parameters_file` a `BatchingParameters` and
`--monitoring_config_file` a `MonitoringConfig` (declared in serving/protos with TF
Serving's package, names and numbers), all in protobuf text format. A file that
does not parse is reported as tensorflow_model_server reports it: protobuf's
"Error parsing text-format <message>: <line>:<column>: <what>" and then the status
INVALID_ARGUMENT "Invalid protobuf file: '<path>'".

Example:
    >>> config = read_model_server_config("/models/models.config")
    >>> [m.name for m in config.model_config_list.config]
"""

import grpc
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.errors import ServingError
from serving.protos import tf_serving_config_pb2

ModelServerConfig = model_server_config_pb2.ModelServerConfig
BatchingParameters = tf_serving_config_pb2.BatchingParameters
MonitoringConfig = tf_serving_config_pb2.MonitoringConfig


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


def single_model_config(model_name, base_path):
    """The config --model_name/--model_base_path stand for (BuildSingleModelConfig)."""
    config = ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = model_name
    model.base_path = base_path
    model.model_platform = "tensorflow"
    return config

