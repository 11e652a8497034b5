"""tensorflow_model_server's command-line flags, with the same names and meanings.

Flags are written as TF Serving takes them: `--port=8500`, `--model_name=mnist`,
booleans as `--enable_batching`, `--enable_batching=true` or `--enable_batching=0`
(`--port 8500` works too). An unknown flag is an error ("unknown argument: ..."),
as there, so a typo is not silently ignored. A few TF Serving tuning flags that have
no counterpart here are accepted and have no effect, so existing launch scripts
run unchanged; they say so in `--help`.

Two flags are additions: `--host` (the address gRPC binds, `localhost` unless told
otherwise) and `--rest_api_host` (the REST address, `--host` by default).

Example:
    >>> options = parse_flags(["--model_base_path=/models/mnist", "--enable_batching"])
    >>> options.enable_batching
    True
"""

import argparse
import os


class FlagError(Exception):
    """Bad command line. `str(error)` is the message, `usage` the full flag list."""

    def __init__(self, message, usage):
        super().__init__(message)
        self.usage = usage


def _bool(text):
    value = str(text).strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"invalid bool value: {text!r} (expected true, false, 1 or 0)")


_NO_EFFECT = "Accepted for compatibility with tensorflow_model_server; no effect here."

# (name, type, default, help), in TF Serving's order where it has the flag.
FLAGS = [
    ("port", int, 8500, "TCP port to listen on for gRPC API. 0 picks a free port."),
    ("grpc_socket_path", str, "", "If non-empty, listen to a UNIX socket for gRPC API on the given "
     "path. Can be either relative or absolute path."),
    ("host", str, "localhost", "Address to bind the gRPC API to (and the REST API, unless "
     "--rest_api_host is given). Use 0.0.0.0 to listen on every interface."),
    ("rest_api_port", int, 0, "Port to listen on for HTTP/REST API. If set to zero HTTP/REST API "
     "will not be exported. This port must be different than the one specified in --port."),
    ("rest_api_host", str, None, "Address to bind the HTTP/REST API to (default: --host)."),
    ("rest_api_num_threads", int, 0, _NO_EFFECT),
    ("rest_api_timeout_in_ms", int, 30000, "Timeout for HTTP/REST API calls."),
    ("rest_api_enable_cors_support", _bool, False, _NO_EFFECT),
    ("enable_batching", _bool, False, "enable batching"),
    ("allow_version_labels_for_unavailable_models", _bool, False, "If true, allows assigning "
     "unused version labels to models that are not available yet."),
    ("batching_parameters_file", str, "", "If non-empty, read an ascii BatchingParameters protobuf "
     "from the supplied file name and use the contained values instead of the defaults."),
    ("model_config_file", str, "", "If non-empty, read an ascii ModelServerConfig protobuf from the "
     "supplied file name, and serve the models in that file. This config file can be used to "
     "specify multiple models to serve and other advanced parameters including non-default "
     "version policy. (If used, --model_name, --model_base_path are ignored.)"),
    ("model_config_file_poll_wait_seconds", int, 0, "Interval in seconds between each poll of the "
     "filesystem for model_config_file. If unset or set to zero, poll will be done exactly once "
     "and not periodically."),
    ("model_name", str, "default", "name of model (ignored if --model_config_file flag is set)"),
    ("model_base_path", str, "", "path to export (ignored if --model_config_file flag is set, "
     "otherwise required)"),
    ("num_load_threads", int, 0, "The number of threads in the thread-pool used to load "
     "servables. If set as 0, servables are loaded one at a time."),
    ("num_unload_threads", int, 0, _NO_EFFECT),
    ("max_num_load_retries", int, 5, "maximum number of times it retries loading a model after "
     "the first failure, before giving up. If set to 0, a load is attempted only once."),
    ("load_retry_interval_micros", int, 60_000_000, "The interval, in microseconds, between each "
     "servable load retry. If set negative, it doesn't wait."),
    ("file_system_poll_wait_seconds", int, 1, "Interval in seconds between each poll of the "
     "filesystem for new model version. If set to zero poll will be exactly done once and not "
     "periodically. A negative value disables polling entirely."),
    ("flush_filesystem_caches", _bool, True, _NO_EFFECT),
    ("tensorflow_session_parallelism", int, 0, "Number of threads to use for running a Tensorflow "
     "session. Auto-configured by default."),
    ("tensorflow_intra_op_parallelism", int, 0, "Number of threads to use to parallelize the "
     "execution of an individual op. Auto-configured by default."),
    ("tensorflow_inter_op_parallelism", int, 0, "Controls the number of operators that can be "
     "executed simultaneously. Auto-configured by default."),
    ("per_process_gpu_memory_fraction", float, 0.0, _NO_EFFECT),
    ("saved_model_tags", str, "serve", "Comma-separated set of tags corresponding to the meta "
     "graph def to load from SavedModel."),
    ("grpc_channel_arguments", str, "", "A comma separated list of arguments to be passed to the "
     "grpc server. (e.g. grpc.max_connection_age_ms=2000)"),
    ("grpc_max_threads", int, 0, "Max grpc server threads to handle grpc messages "
     "(0: 4 per CPU, at least 32)."),
    ("enable_model_warmup", _bool, True, "Enables model warmup, which triggers lazy "
     "initializations (such as TF optimizations) at load time, to reduce first request latency."),
    ("num_request_iterations_for_warmup", int, 0, "Number of times a request is iterated during "
     "warmup replay. This value is used only if > 0."),
    ("version", _bool, False, "Display version"),
    ("monitoring_config_file", str, "", "If non-empty, read an ascii MonitoringConfig protobuf "
     "from the supplied file name"),
    ("enable_signature_method_name_check", _bool, False, "Enable method_name check for "
     "SignatureDef. Disable this if serving native TF2 regression/classification models."),
]


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise FlagError(message, self.format_help())


def build_parser(prog="zoo-model-server"):
    """The argparse parser for tensorflow_model_server's flags."""
    parser = _Parser(
        prog=prog,
        description="A drop-in for tensorflow_model_server: serves SavedModels over TF Serving's "
        "gRPC (and REST) API.",
        epilog="example: zoo-model-server --port=8500 --rest_api_port=8501 "
        "--model_name=mnist --model_base_path=/models/mnist",
        allow_abbrev=False,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for name, kind, default, help_text in FLAGS:
        if kind is _bool:
            parser.add_argument(f"--{name}", type=_bool, nargs="?", const=True, default=default,
                                metavar="BOOL", help=help_text)
        else:
            parser.add_argument(f"--{name}", type=kind, default=default, help=help_text)
    return parser


def parse_flags(argv):
    """Parse a command line (without the program name) into an argparse Namespace.

    Raises:
        FlagError: an unknown flag ("unknown argument: --x") or a bad value.
    """
    parser = build_parser()
    options, unknown = parser.parse_known_args(list(argv))
    if unknown:
        raise FlagError(f"unknown argument: {unknown[0]}", parser.format_help())
    return options


def grpc_max_threads(options_value):
    """The gRPC worker count a --grpc_max_threads value stands for."""
    if options_value and options_value > 0:
        return options_value
    return max(32, 4 * (os.cpu_count() or 1))
