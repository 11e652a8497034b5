"""tensorflow_model_server's command-line flags, with the same names and meanings.

`FLAGS` is the one definition: every flag of tensorflow_model_server 2.x's
main.cc, in its order, plus this server's two additions. Each entry says whether
the flag is honoured here; a flag that cannot apply to this server is still
accepted, so a launch script written for TF Serving runs unchanged, and
`ignored_flag_warnings` gives one warning for it, naming it and saying why, when
a command line sets it to a value this server cannot honour (the console script
logs them at start-up; `--help` says the same).

Flags are written as TF Serving takes them: `--port=8500`, `--model_name=mnist`,
booleans as `--enable_batching`, `--enable_batching=true` or `--enable_batching=0`
(`--port 8500` works too). An unknown flag is an error ("unknown argument: ..."),
so a typo is not silently ignored.

Four flags are additions: `--host` (the address gRPC binds, `localhost` unless told
otherwise), `--rest_api_host` (the REST address, `--host` by default),
`--max_request_tensor_bytes` (what one request tensor may ask for by its shape) and
`--worker_processes` (several server processes on the same ports). One
default differs: the standard gRPC health service is on unless
`--enable_grpc_healthcheck_service=false` (TF Serving's flag is off by default).

Example:
    >>> options = parse_flags(["--model_base_path=/models/mnist", "--enable_batching"])
    >>> options.enable_batching
    True
    >>> ignored_flag_warnings(parse_flags(["--model_base_path=/m", "--rest_api_num_threads=8"]))
    ['--rest_api_num_threads=8 is ignored: ...']
"""

import argparse
import dataclasses
import difflib
import os
from typing import Callable, NamedTuple


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


def _always(value):
    return True


def _true(value):
    return value is True


def _false(value):
    return value is False


def _set(value):
    return bool(value)


class Flag(NamedTuple):
    """One flag: its name, type and default (TF Serving's), its help, and, for a
    flag that cannot apply here, why (`ignored`) and for which values
    (`ignored_when(value)`; a value it does not cover is what this server does
    anyway)."""

    name: str
    kind: Callable
    default: object
    help: str
    ignored: str = ""
    ignored_when: Callable[[object], bool] = _always


_TFLITE = "TensorFlow Lite models are not served here"
_XLA = ("XLA JIT cannot be turned off in TensorFlow's Python runtime, so a model compiled with "
        "jit_compile runs with XLA here instead of failing")

FLAGS = [
    Flag("port", int, 8500, "TCP port to listen on for gRPC API. 0 picks a free port."),
    Flag("grpc_socket_path", str, "", "If non-empty, listen to a UNIX socket for gRPC API on the given "
         "path. Can be either relative or absolute path."),
    Flag("host", str, "localhost", "Address to bind the gRPC API to (and the REST API, unless "
         "--rest_api_host is given). Use 0.0.0.0 to listen on every interface. (Not a TF Serving flag.)"),
    Flag("rest_api_port", int, 0, "Port to listen on for HTTP/REST API. If set to zero HTTP/REST API "
         "will not be exported. This port must be different than the one specified in --port."),
    Flag("rest_api_host", str, None, "Address to bind the HTTP/REST API to (default: --host). "
         "(Not a TF Serving flag.)"),
    Flag("max_request_tensor_bytes", int, 1 << 30, "The most bytes one request tensor may ask for "
         "by its shape, whatever its encoding, checked before anything is allocated (0: no limit). "
         "(Not a TF Serving flag.)"),
    Flag("worker_processes", int, 1, "Serve from this many processes, each loading every model, "
         "all on the same gRPC and REST ports (SO_REUSEPORT spreads client connections over them), "
         "so that more cores serve requests than one Python process keeps busy. 0: one per CPU core. "
         "HandleReloadConfigRequest is refused with more than one. (Not a TF Serving flag; see "
         "serving/workers.py.)"),
    Flag("rest_api_num_threads", int, 0, "Number of threads for HTTP/REST API processing.",
         "the REST API serves every connection on one asyncio event loop (aiohttp) and runs models on "
         "the server's model-run threads, so there is no REST thread pool to size"),
    Flag("rest_api_timeout_in_ms", int, 30000, "Timeout for HTTP/REST API calls."),
    Flag("rest_api_enable_cors_support", _bool, False, "Enable CORS headers in response",
         "the REST API sends no CORS headers; put a proxy that adds them in front of it", _true),
    Flag("enable_batching", _bool, False, "enable batching"),
    Flag("allow_version_labels_for_unavailable_models", _bool, False, "If true, allows assigning "
         "unused version labels to models that are not available yet."),
    Flag("batching_parameters_file", str, "", "If non-empty, read an ascii BatchingParameters protobuf "
         "from the supplied file name and use the contained values instead of the defaults."),
    Flag("enable_per_model_batching_parameters", _bool, False, "Enables model specific batching params "
         "read from the `batching_params.pbtxt` file in the SavedModel dir of the model.",
         "a model's own batching_params.pbtxt is not read; every model batches with "
         "--batching_parameters_file (or the defaults)", _true),
    Flag("model_config_file", str, "", "If non-empty, read an ascii ModelServerConfig protobuf from the "
         "supplied file name, and serve the models in that file. This config file can be used to "
         "specify multiple models to serve and other advanced parameters including non-default "
         "version policy. (If used, --model_name, --model_base_path are ignored.)"),
    Flag("model_config_file_poll_wait_seconds", int, 0, "Interval in seconds between each poll of the "
         "filesystem for model_config_file. If unset or set to zero, poll will be done exactly once "
         "and not periodically."),
    Flag("model_name", str, "default", "name of model (ignored if --model_config_file flag is set)"),
    Flag("model_base_path", str, "", "path to export (ignored if --model_config_file flag is set, "
         "otherwise required)"),
    Flag("num_load_threads", int, 0, "The number of threads in the thread-pool used to load "
         "servables. If set as 0, servables are loaded one at a time."),
    Flag("num_unload_threads", int, 0, "The number of threads in the thread-pool used to unload "
         "servables.",
         "models are unloaded one at a time by the manager (unloading drops a model's Python "
         "objects); there is no unload thread pool", _set),
    Flag("max_num_load_retries", int, 5, "maximum number of times it retries loading a model after "
         "the first failure, before giving up. If set to 0, a load is attempted only once."),
    Flag("load_retry_interval_micros", int, 60_000_000, "The interval, in microseconds, between each "
         "servable load retry. If set negative, it doesn't wait."),
    Flag("file_system_poll_wait_seconds", int, 1, "Interval in seconds between each poll of the "
         "filesystem for new model version. If set to zero poll will be exactly done once and not "
         "periodically. A negative value disables polling entirely."),
    Flag("flush_filesystem_caches", _bool, True, "Flush filesystem caches after the initial load of "
         "all servables.",
         "TensorFlow's Python API has no call to flush its file system caches after a load"),
    Flag("tensorflow_session_parallelism", int, 0, "Number of threads to use for running a Tensorflow "
         "session. Auto-configured by default."),
    Flag("tensorflow_session_config_file", str, "", "If non-empty, read an ascii TensorFlow Session "
         "ConfigProto protobuf from the supplied file name. Its thread counts, allow_soft_placement, "
         "log_device_placement and gpu_options.allow_growth apply (the parallelism flags override the "
         "thread counts); other fields are reported as ignored at start-up."),
    Flag("tensorflow_intra_op_parallelism", int, 0, "Number of threads to use to parallelize the "
         "execution of an individual op. Auto-configured by default."),
    Flag("tensorflow_inter_op_parallelism", int, 0, "Controls the number of operators that can be "
         "executed simultaneously. Auto-configured by default."),
    Flag("use_alts_credentials", _bool, False, "Use Google ALTS credentials for gRPC (Google Cloud "
         "only; not with --ssl_config_file)."),
    Flag("ssl_config_file", str, "", "If non-empty, read an ascii SSLConfig protobuf from the supplied "
         "file name and set up a secure gRPC channel (server_key, server_cert, custom_ca: PEM texts; "
         "client_verify: require client certificates signed by custom_ca). The REST API stays plain "
         "HTTP, as in TF Serving."),
    Flag("platform_config_file", str, "", "If non-empty, read an ascii PlatformConfigMap protobuf "
         "from the supplied file name, and use that platform config instead of the Tensorflow "
         "platform.",
         "a PlatformConfigMap configures TF Serving's C++ platforms, which this server does not "
         "have; it serves TensorFlow SavedModels as the other flags say (--enable_batching, "
         "--batching_parameters_file, --saved_model_tags and --tensorflow_* still apply)", _set),
    Flag("per_process_gpu_memory_fraction", float, 0.0, "Fraction that each process occupies of the "
         "GPU memory space (0.0: TensorFlow selects).",
         "TensorFlow's Python runtime cannot cap its GPU memory by a fraction once it has started; "
         "set TF_FORCE_GPU_ALLOW_GROWTH=true to allocate GPU memory as needed instead", _set),
    Flag("saved_model_tags", str, "serve", "Comma-separated set of tags corresponding to the meta "
         "graph def to load from SavedModel."),
    Flag("grpc_channel_arguments", str, "", "A comma separated list of arguments to be passed to the "
         "grpc server. (e.g. grpc.max_connection_age_ms=2000)"),
    Flag("grpc_max_threads", int, 0, "Max grpc server threads to handle grpc messages "
         "(0: 4 per CPU, at least 32)."),
    Flag("enable_model_warmup", _bool, True, "Enables model warmup, which triggers lazy "
         "initializations (such as TF optimizations) at load time, to reduce first request latency."),
    Flag("num_request_iterations_for_warmup", int, 0, "Number of times a request is iterated during "
         "warmup replay. This value is used only if > 0."),
    Flag("version", _bool, False, "Display version"),
    Flag("monitoring_config_file", str, "", "If non-empty, read an ascii MonitoringConfig protobuf "
         "from the supplied file name"),
    Flag("remove_unused_fields_from_bundle_metagraph", _bool, True, "Removes unused fields from "
         "MetaGraphDef proto message to save memory.",
         "it trims the MetaGraphDef that TF Serving's C++ SavedModel bundle keeps, which this server "
         "does not use"),
    Flag("prefer_tflite_model", _bool, False, "Prefer TensorFlow Lite model from `model.tflite` file "
         "in SavedModel directory.",
         f"{_TFLITE}; the SavedModel is loaded, as TF Serving does when there is no model.tflite", _true),
    Flag("num_tflite_pools", int, 0, "Number of TFLite interpreter pools.", _TFLITE),
    Flag("num_tflite_interpreters_per_pool", int, 1, "Number of TFLite interpreters per pool.", _TFLITE),
    Flag("enable_signature_method_name_check", _bool, False, "Enable method_name check for "
         "SignatureDef. Disable this if serving native TF2 regression/classification models."),
    Flag("xla_cpu_compilation_enabled", _bool, False, "Enable XLA:CPU JIT (TF Serving disables it by "
         "default). Always enabled here.", _XLA, _false),
    Flag("xla_gpu_compilation_enabled", _bool, False, "Enable both XLA:CPU JIT and XLA:GPU JIT. Always "
         "enabled here.", _XLA, _false),
    Flag("enable_profiler", _bool, True, "Enable profiler service.",
         "no TensorFlow ProfilerService is served on the gRPC port, so TensorBoard cannot capture a "
         "profile from this server", _true),
    Flag("thread_pool_factory_config_file", str, "", "If non-empty, read an ascii ThreadPoolConfig "
         "protobuf from the supplied file name.",
         "custom per-request thread pools are not supported; size TensorFlow's pools with "
         "--tensorflow_intra_op_parallelism and --tensorflow_inter_op_parallelism", _set),
    Flag("mixed_precision", str, "", "specify mixed_precision mode",
         "the mixed-precision graph rewrite is not applied; models run in the precision they were "
         "exported with", _set),
    Flag("skip_initialize_tpu", _bool, False, "Whether to skip auto initializing TPU.",
         "this server does no TPU system initialization (TF Serving does only in its TPU builds)",
         _false),
    Flag("enable_grpc_healthcheck_service", _bool, True, "Serve the standard gRPC health service "
         "(grpc.health.v1.Health). On by default here (TF Serving: off)."),
    Flag("enable_serialization_as_tensor_content", _bool, False, "Enable serialization of predict "
         "response as tensor content. Always on here for numeric tensors.",
         "Predict responses always carry numeric tensors in tensor_content here (strings in "
         "string_val)", _false),
    # Removed from TF Serving after 2.3 (prefer_tflite_model replaced it); still accepted.
    Flag("use_tflite_model", _bool, False, "Load and use TensorFlow Lite model from `model.tflite` "
         "file in SavedModel directory (TF Serving 2.2-2.3).",
         f"{_TFLITE}; the SavedModel is loaded", _true),
]

_BY_NAME = {flag.name: flag for flag in FLAGS}


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise FlagError(message, self.format_help())


def build_parser(prog="zoo-model-server", *, defaults=True):
    """The argparse parser for tensorflow_model_server's flags.

    With `defaults=False`, flags not on the command line are left out of the
    Namespace (how `parse_flags` tells which flags were given).
    """
    parser = _Parser(
        prog=prog,
        description="A drop-in for tensorflow_model_server: serves SavedModels over TF Serving's "
        "gRPC (and REST) API. Every tensorflow_model_server flag is accepted; those marked "
        "'No effect here' log a warning saying why when set.",
        epilog="example: zoo-model-server --port=8500 --rest_api_port=8501 "
        "--model_name=mnist --model_base_path=/models/mnist",
        allow_abbrev=False,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        argument_default=None if defaults else argparse.SUPPRESS,
    )
    for flag in FLAGS:
        help_text = flag.help
        if flag.ignored:
            help_text += f" [No effect here: {flag.ignored}.]"
        default = flag.default if defaults else argparse.SUPPRESS
        if flag.kind is _bool:
            parser.add_argument(f"--{flag.name}", type=_bool, nargs="?", const=True, default=default,
                                metavar="BOOL", help=help_text)
        else:
            parser.add_argument(f"--{flag.name}", type=flag.kind, default=default, help=help_text)
    return parser


def parse_flags(argv):
    """Parse a command line (without the program name) into an argparse Namespace.

    The Namespace has one attribute per flag, plus `given_flags`: the names of the
    flags the command line set.

    Raises:
        FlagError: an unknown flag ("unknown argument: --x") or a bad value.
    """
    argv = list(argv)
    parser = build_parser()
    options, unknown = parser.parse_known_args(argv)
    if unknown:
        raise FlagError(f"unknown argument: {unknown[0]}", parser.format_help())
    given, _ = build_parser(defaults=False).parse_known_args(argv)
    options.given_flags = frozenset(vars(given))
    return options


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def ignored_flag_warnings(options):
    """One warning per flag the command line set that cannot apply here.

    "--<flag>=<value> is ignored: <why>", in `FLAGS` order, for each flag in
    `options.given_flags` whose value this server cannot honour (a value that asks
    for what this server does anyway, e.g. `--enable_profiler=false`, is not
    warned about).
    """
    warnings = []
    for name in sorted(getattr(options, "given_flags", ()), key=list(_BY_NAME).index):
        flag = _BY_NAME[name]
        value = getattr(options, name)
        if flag.ignored and flag.ignored_when(value):
            warnings.append(f"--{name}={_text(value)} is ignored: {flag.ignored}.")
    return warnings


# The Python API's defaults where they differ from the command line's: there the REST
# API is off unless a port is given (None), and 0 asks for a free port, as `port=0`
# does for gRPC; a model base path is None when not given.
_API_DEFAULTS = {"rest_api_port": None, "model_base_path": None}
# Answered by the console script before any server exists (--worker_processes starts
# several servers, each a process).
_NOT_OPTIONS = {"version", "worker_processes"}


def _field(flag):
    kind = bool if flag.kind is _bool else flag.kind
    default = _API_DEFAULTS.get(flag.name, flag.default)
    return flag.name, kind | None if default is None else kind, dataclasses.field(default=default)


ServerOptions = dataclasses.make_dataclass(
    "ServerOptions", [_field(flag) for flag in FLAGS if flag.name not in _NOT_OPTIONS], frozen=True)
ServerOptions.__doc__ = """Every flag of the server, by its flag name, with TF Serving's defaults.

The one options object: built from the command line (`options_from_flags`) or by
`ModelServer(**flags)`, and passed whole to what needs it.

Example:
    >>> ServerOptions(port=0, enable_batching=True).rest_api_timeout_in_ms
    30000
"""
OPTION_NAMES = frozenset(field.name for field in dataclasses.fields(ServerOptions))


def check_option_names(names):
    """Raise TypeError naming an unknown option and the closest flag name."""
    for name in names:
        if name in _NOT_OPTIONS:
            raise TypeError(f"{name!r} is a flag of the zoo-model-server console script, not a server option: "
                            "a ModelServer is one server in this process.")
        if name not in OPTION_NAMES:
            close = difflib.get_close_matches(name, sorted(OPTION_NAMES), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise TypeError(f"Unknown server option {name!r}: options are tensorflow_model_server's "
                            f"flag names (see `zoo-model-server --help`).{hint}")


def options_from_flags(namespace) -> "ServerOptions":
    """The ServerOptions of a parsed command line (`parse_flags`)."""
    values = {name: getattr(namespace, name) for name in OPTION_NAMES}
    values["rest_api_port"] = values["rest_api_port"] or None  # --rest_api_port=0: no REST API
    base_path = values["model_base_path"]
    # A relative path is the caller's working directory's; "gs://..." and the like stay.
    values["model_base_path"] = (os.path.abspath(base_path) if base_path and "://" not in base_path
                                 else base_path or None)
    return ServerOptions(**values)


def grpc_max_threads(options_value):
    """The gRPC worker count a --grpc_max_threads value stands for."""
    if options_value and options_value > 0:
        return options_value
    return max(32, 4 * (os.cpu_count() or 1))
