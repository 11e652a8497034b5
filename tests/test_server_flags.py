"""Every tensorflow_model_server flag is accepted; those that cannot apply here warn once.

`TF_SERVING_FLAGS` is tensorflow_model_server 2.x's flag list as its main.cc
declares it (tensorflow_serving/model_servers/main.cc, in its order, plus
use_tflite_model of 2.2-2.3), each with a value a launch script might give.
"""

import logging
import os
import signal
import socket
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

import serving_models as sm
from serving import ModelServer, tensors
from serving.flags import FLAGS, FlagError, build_parser, ignored_flag_warnings, parse_flags
from serving.server_main import _apply_tensorflow_options, _parallelism, _set_fields
from serving.server_main import main as server_main

TF_SERVING_FLAGS = {
    "port": "8500",
    "grpc_socket_path": "/tmp/tfs.sock",
    "rest_api_port": "8501",
    "rest_api_num_threads": "16",
    "rest_api_timeout_in_ms": "30000",
    "rest_api_enable_cors_support": "true",
    "enable_batching": "true",
    "allow_version_labels_for_unavailable_models": "true",
    "batching_parameters_file": "/models/batching.txt",
    "enable_per_model_batching_parameters": "true",
    "model_config_file": "/models/models.config",
    "model_config_file_poll_wait_seconds": "60",
    "model_name": "m",
    "model_base_path": "/models/m",
    "num_load_threads": "2",
    "num_unload_threads": "2",
    "max_num_load_retries": "3",
    "load_retry_interval_micros": "1000",
    "file_system_poll_wait_seconds": "5",
    "flush_filesystem_caches": "false",
    "tensorflow_session_parallelism": "2",
    "tensorflow_session_config_file": "/models/session.config",
    "tensorflow_intra_op_parallelism": "2",
    "tensorflow_inter_op_parallelism": "2",
    "use_alts_credentials": "false",
    "ssl_config_file": "/models/ssl.config",
    "platform_config_file": "/models/platform.config",
    "per_process_gpu_memory_fraction": "0.5",
    "saved_model_tags": "serve",
    "grpc_channel_arguments": "grpc.max_connection_age_ms=2000",
    "grpc_max_threads": "64",
    "enable_model_warmup": "true",
    "num_request_iterations_for_warmup": "2",
    "version": "false",
    "monitoring_config_file": "/models/monitoring.config",
    "remove_unused_fields_from_bundle_metagraph": "true",
    "prefer_tflite_model": "true",
    "num_tflite_pools": "4",
    "num_tflite_interpreters_per_pool": "2",
    "enable_signature_method_name_check": "true",
    "xla_cpu_compilation_enabled": "false",
    "xla_gpu_compilation_enabled": "false",
    "enable_profiler": "true",
    "thread_pool_factory_config_file": "/models/thread_pool.config",
    "mixed_precision": "bfloat16",
    "skip_initialize_tpu": "false",
    "enable_grpc_healthcheck_service": "true",
    "enable_serialization_as_tensor_content": "false",
    "use_tflite_model": "true",
}

# What each ignored flag above says at start-up: one line each, in FLAGS order.
EXPECTED_WARNINGS = [
    "--rest_api_num_threads=16 is ignored: the REST API serves every connection on one asyncio event loop "
    "(aiohttp) and runs models on the server's model-run threads, so there is no REST thread pool to size.",
    "--rest_api_enable_cors_support=true is ignored: the REST API sends no CORS headers; put a proxy that "
    "adds them in front of it.",
    "--enable_per_model_batching_parameters=true is ignored: a model's own batching_params.pbtxt is not "
    "read; every model batches with --batching_parameters_file (or the defaults).",
    "--num_unload_threads=2 is ignored: models are unloaded one at a time by the manager (unloading drops "
    "a model's Python objects); there is no unload thread pool.",
    "--flush_filesystem_caches=false is ignored: TensorFlow's Python API has no call to flush its file "
    "system caches after a load.",
    "--platform_config_file=/models/platform.config is ignored: a PlatformConfigMap configures TF "
    "Serving's C++ platforms, which this server does not have; it serves TensorFlow SavedModels as the "
    "other flags say (--enable_batching, --batching_parameters_file, --saved_model_tags and "
    "--tensorflow_* still apply).",
    "--per_process_gpu_memory_fraction=0.5 is ignored: TensorFlow's Python runtime cannot cap its GPU "
    "memory by a fraction once it has started; set TF_FORCE_GPU_ALLOW_GROWTH=true to allocate GPU memory "
    "as needed instead.",
    "--remove_unused_fields_from_bundle_metagraph=true is ignored: it trims the MetaGraphDef that TF "
    "Serving's C++ SavedModel bundle keeps, which this server does not use.",
    "--prefer_tflite_model=true is ignored: TensorFlow Lite models are not served here; the SavedModel is "
    "loaded, as TF Serving does when there is no model.tflite.",
    "--num_tflite_pools=4 is ignored: TensorFlow Lite models are not served here.",
    "--num_tflite_interpreters_per_pool=2 is ignored: TensorFlow Lite models are not served here.",
    "--xla_cpu_compilation_enabled=false is ignored: XLA JIT cannot be turned off in TensorFlow's Python "
    "runtime, so a model compiled with jit_compile runs with XLA here instead of failing.",
    "--xla_gpu_compilation_enabled=false is ignored: XLA JIT cannot be turned off in TensorFlow's Python "
    "runtime, so a model compiled with jit_compile runs with XLA here instead of failing.",
    "--enable_profiler=true is ignored: no TensorFlow ProfilerService is served on the gRPC port, so "
    "TensorBoard cannot capture a profile from this server.",
    "--thread_pool_factory_config_file=/models/thread_pool.config is ignored: custom per-request thread "
    "pools are not supported; size TensorFlow's pools with --tensorflow_intra_op_parallelism and "
    "--tensorflow_inter_op_parallelism.",
    "--mixed_precision=bfloat16 is ignored: the mixed-precision graph rewrite is not applied; models run "
    "in the precision they were exported with.",
    "--skip_initialize_tpu=false is ignored: this server does no TPU system initialization (TF Serving "
    "does only in its TPU builds).",
    "--enable_serialization_as_tensor_content=false is ignored: Predict responses always carry numeric "
    "tensors in tensor_content here (strings in string_val).",
    "--use_tflite_model=true is ignored: TensorFlow Lite models are not served here; the SavedModel is "
    "loaded.",
]


def _argv(flags):
    return [f"--{name}={value}" for name, value in flags.items()]


# The flag table.


def test_every_tf_serving_flag_is_accepted():
    options = parse_flags(_argv(TF_SERVING_FLAGS))
    assert options.given_flags == set(TF_SERVING_FLAGS)
    assert options.ssl_config_file == "/models/ssl.config" and options.per_process_gpu_memory_fraction == 0.5
    assert options.enable_profiler is True and options.xla_cpu_compilation_enabled is False
    assert options.mixed_precision == "bfloat16" and options.num_tflite_pools == 4
    # One table: the parser's flags are FLAGS', TF Serving's in its order plus four additions.
    names = [flag.name for flag in FLAGS]
    assert [n for n in names if n in TF_SERVING_FLAGS] == list(TF_SERVING_FLAGS)
    assert set(names) - set(TF_SERVING_FLAGS) == {"host", "rest_api_host", "max_request_tensor_bytes",
                                                     "worker_processes"}
    parser_flags = {a.dest for a in build_parser()._actions if a.dest != "help"}
    assert parser_flags == set(names)


def test_one_warning_per_flag_that_cannot_apply():
    assert ignored_flag_warnings(parse_flags(_argv(TF_SERVING_FLAGS))) == EXPECTED_WARNINGS


@pytest.mark.parametrize("argv", [
    [],  # defaults are never warned about, TF Serving's enable_profiler=true included
    ["--enable_profiler=false", "--xla_cpu_compilation_enabled", "--xla_gpu_compilation_enabled=1",
     "--enable_serialization_as_tensor_content=true", "--skip_initialize_tpu", "--prefer_tflite_model=false",
     "--rest_api_enable_cors_support=false", "--per_process_gpu_memory_fraction=0", "--num_unload_threads=0",
     "--platform_config_file=", "--mixed_precision=", "--enable_per_model_batching_parameters=false"],
])
def test_values_this_server_honours_anyway_are_not_warned_about(argv):
    assert ignored_flag_warnings(parse_flags(argv)) == []


def test_help_says_which_flags_have_no_effect():
    text = " ".join(build_parser().format_help().split())  # unwrapped
    for flag in FLAGS:
        assert f"--{flag.name}" in text
    assert text.count("[No effect here:") == sum(1 for flag in FLAGS if flag.ignored)


def test_unknown_flags_are_still_errors():
    with pytest.raises(FlagError, match="unknown argument: --ssl_config"):
        parse_flags(["--ssl_config=x"])


# TensorFlow runtime flags.


def _options(**flags):
    return parse_flags([f"--{k}={v}" for k, v in flags.items()])


def test_parallelism_is_picked_as_tf_serving_picks_it(tmp_path):
    from serving.config import SessionConfig

    assert _parallelism(_options(), None) == (0, 0)
    assert _parallelism(_options(tensorflow_session_parallelism=3), None) == (3, 3)
    # Either intra/inter flag: both taken from those two, session parallelism unused.
    assert _parallelism(_options(tensorflow_intra_op_parallelism=4, tensorflow_session_parallelism=3),
                        None) == (4, 0)
    # The session config file's counts, where no flag sets one.
    config = SessionConfig(intra_op_parallelism_threads=5, inter_op_parallelism_threads=6)
    assert _parallelism(_options(), config) == (5, 6)
    assert _parallelism(_options(tensorflow_inter_op_parallelism=2), config) == (5, 2)
    # A negative inter-op count (ops in the calling thread) counts beside a positive intra-op
    # count; alone, TF Serving takes --tensorflow_session_parallelism instead.
    assert _parallelism(_options(tensorflow_intra_op_parallelism=2, tensorflow_inter_op_parallelism=-1),
                        None) == (2, -1)
    assert _parallelism(_options(tensorflow_inter_op_parallelism=-1), None) == (0, 0)
    assert _parallelism(_options(tensorflow_session_parallelism=-1), None) == (-1, -1)


def test_a_lone_negative_inter_op_count_is_named_as_ignored():
    warnings = _apply_tensorflow_options(_options(tensorflow_inter_op_parallelism=-1))
    assert any("--tensorflow_inter_op_parallelism=-1 ignored" in w and "--tensorflow_intra_op_parallelism=2" in w
               for w in warnings), warnings


def test_all_three_parallelism_flags_are_refused(capsys):
    argv = ["--model_base_path=/m", "--tensorflow_session_parallelism=1", "--tensorflow_intra_op_parallelism=1",
            "--tensorflow_inter_op_parallelism=1"]
    assert server_main(argv) == 255
    assert ("Failed to start server. Error: INVALID_ARGUMENT: Either configure "
            "server_options.tensorflow_session_parallelism or") in capsys.readouterr().err


def test_session_config_fields_that_do_not_apply_are_named():
    from serving.config import SessionConfig

    config = SessionConfig(intra_op_parallelism_threads=2, allow_soft_placement=True)
    config.gpu_options.allow_growth = True
    config.gpu_options.per_process_gpu_memory_fraction = 0.5
    config.device_count["GPU"] = 1
    assert sorted(_set_fields(config)) == ["allow_soft_placement", "device_count", "gpu_options.allow_growth",
                                           "gpu_options.per_process_gpu_memory_fraction",
                                           "intra_op_parallelism_threads"]


def test_malformed_session_config_names_the_file(tmp_path, capsys):
    bad = tmp_path / "session.config"
    bad.write_text("intra_op_parallelism_threads: lots\n")
    assert server_main(["--model_base_path=/m", f"--tensorflow_session_config_file={bad}"]) == 255
    err = capsys.readouterr().err
    assert "Error parsing text-format tensorflow.ConfigProto: 1:31:" in err
    assert f"Failed to start server. Error: INVALID_ARGUMENT: Invalid protobuf file: '{bad}'" in err


# The health service flag.


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("flag_models")
    sm.write_image_classifier(root, "tiny", 1)
    return root / "tiny"


@pytest.mark.parametrize("enable_batching", [False, True], ids=["threads", "asyncio"])
def test_health_service_can_be_turned_off(base, enable_batching):
    options = parse_flags([f"--model_base_path={base}", "--model_name=tiny", "--port=0",
                           "--enable_grpc_healthcheck_service=false", f"--enable_batching={enable_batching}"])
    with ModelServer.from_flags(options) as server, grpc.insecure_channel(f"localhost:{server.grpc_port}") as ch:
        with pytest.raises(grpc.RpcError) as info:
            health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "tiny"
        request.inputs["image"].CopyFrom(tensors.from_ndarray(np.ones([1, 2, 2, 1], np.float32)))
        assert "probabilities" in prediction_service_pb2_grpc.PredictionServiceStub(ch).Predict(request, timeout=30).outputs


# The console script, with every flag.


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_console_script_starts_with_every_flag_and_warns_once_each(base, tmp_path):
    """zoo-model-server given all of TF Serving's flags serves, with one warning per ignored flag."""
    (tmp_path / "batching.txt").write_text("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 1000 }\n")
    (tmp_path / "monitoring.config").write_text("prometheus_config { enable: true }\n")
    (tmp_path / "session.config").write_text("inter_op_parallelism_threads: 2\n"
                                             "gpu_options { per_process_gpu_memory_fraction: 0.25 }\n")
    port, rest_port = _free_port(), _free_port()
    flags = dict(TF_SERVING_FLAGS)
    flags.update({
        "port": port, "rest_api_port": rest_port, "grpc_socket_path": tmp_path / "grpc.sock",
        "batching_parameters_file": tmp_path / "batching.txt", "model_config_file": "",
        "model_name": "tiny", "model_base_path": base, "monitoring_config_file": tmp_path / "monitoring.config",
        "tensorflow_session_config_file": tmp_path / "session.config", "ssl_config_file": "",
        # TF Serving refuses all three at once; two of them, as a script would set.
        "tensorflow_session_parallelism": 0, "load_retry_interval_micros": 0,
        "file_system_poll_wait_seconds": 0,
    })
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen([sys.executable, "-m", "serving.server_main", *_argv(flags)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        channel = grpc.insecure_channel(f"localhost:{port}")
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.RpcError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.25)
        channel.close()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 0, output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    lines = output.splitlines()
    for warning in EXPECTED_WARNINGS:
        assert sum(line.endswith(f"W serving.server_main] {warning}") for line in lines) == 1, (warning, output)
    session = (f"--tensorflow_session_config_file={tmp_path / 'session.config'}: "
               "gpu_options.per_process_gpu_memory_fraction ignored: only intra_op_parallelism_threads, "
               "inter_op_parallelism_threads, allow_soft_placement, log_device_placement, "
               "gpu_options.allow_growth apply in TensorFlow's Python runtime.")
    assert sum(line.endswith(session) for line in lines) == 1, output
    warned = [line for line in lines if " W serving.server_main] " in line]
    assert len(warned) == len(EXPECTED_WARNINGS) + 1, "\n".join(warned)


def test_warnings_are_logged_before_the_start(caplog, tmp_path):
    # The console script in-process: the warnings come even when the start then fails.
    bad = tmp_path / "models.config"
    bad.write_text("model_config_list {")
    with caplog.at_level(logging.WARNING, logger="serving.server_main"):
        assert server_main([f"--model_config_file={bad}", "--port=0", "--mixed_precision=bfloat16",
                            "--enable_profiler"]) == 255
    assert [r.getMessage() for r in caplog.records if r.name == "serving.server_main"][:2] == [
        "--enable_profiler=true is ignored: no TensorFlow ProfilerService is served on the gRPC port, so "
        "TensorBoard cannot capture a profile from this server.",
        "--mixed_precision=bfloat16 is ignored: the mixed-precision graph rewrite is not applied; models run "
        "in the precision they were exported with.",
    ]


# One options object, from one flag table.


def test_one_options_object_from_the_command_line_or_keywords():
    from serving.flags import ServerOptions, options_from_flags

    options = options_from_flags(parse_flags(["--model_base_path=models/m", "--port=0", "--rest_api_port=0"]))
    assert isinstance(options, ServerOptions)
    assert options.model_base_path == os.path.abspath("models/m") and options.rest_api_port is None
    server = ModelServer.from_flags(parse_flags(["--model_base_path=/m", "--enable_batching",
                                                 "--max_request_tensor_bytes=4096"]))
    assert server.options.enable_batching and server.options.max_request_tensor_bytes == 4096
    # Keywords override a whole options object; every flag has a field, and nothing else does.
    assert ModelServer(options=options, port=9).options.port == 9
    assert {f.name for f in FLAGS} - {"version", "worker_processes"} == set(ServerOptions.__dataclass_fields__)


def test_an_unknown_option_names_the_closest_flag():
    with pytest.raises(TypeError, match="Did you mean 'rest_api_timeout_in_ms'"):
        ModelServer("/m", rest_api_timeout_ms=100)


def test_max_request_tensor_bytes_is_enforced_by_the_server(base):
    with ModelServer(str(base), "tiny", port=0, host="127.0.0.1",
                     max_request_tensor_bytes=4 * 2 * 2 * 1 * 4) as server:  # four 2x2 images
        with grpc.insecure_channel(server.address) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "tiny"
            request.inputs["image"].CopyFrom(tensors.from_ndarray(np.zeros([4, 2, 2, 1], np.float32)))
            assert len(stub.Predict(request, timeout=30).outputs["probabilities"].float_val) == 4 * 3
            request.inputs["image"].CopyFrom(tensors.from_ndarray(np.zeros([5, 2, 2, 1], np.float32)))
            with pytest.raises(grpc.RpcError) as info:
                stub.Predict(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "needs 80 bytes, more than the 64 this server accepts" in info.value.details()
