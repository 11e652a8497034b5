"""zoo-model-server's flags, config files, version policies, labels and warmup.

These drive `ModelServer` and its `ServerCore` in-process (the same methods the gRPC
servicers and the REST API call), so they need no client.
"""

import os
import time

import grpc
import numpy as np
import pytest
from google.protobuf import text_format
from tensorflow_serving.apis import get_model_status_pb2, predict_pb2, prediction_log_pb2

import serving_models as sm
from serving import ModelServer, tensors
from serving import config as server_config
from serving.config import ConfigError, read_batching_parameters, read_model_server_config, read_monitoring_config
from serving.errors import ServingError
from serving.flags import FlagError, parse_flags

AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
END = get_model_status_pb2.ModelVersionStatus.END
IMAGE = np.full([1, 2, 2, 1], 0.5, np.float32)


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    """Versions 1, 2 and 3 of the image classifier, written once."""
    root = tmp_path_factory.mktemp("versions")
    return {v: sm.write_image_classifier(root, "tiny", v) for v in (1, 2, 3)}


@pytest.fixture
def base(versions, tmp_path):
    """A base path holding tiny/1, tiny/2, tiny/3."""
    for v, path in versions.items():
        sm.copy_version(path, tmp_path, "tiny", v)
    return tmp_path


def _request(version=None, label=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tiny"
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    request.inputs["image"].CopyFrom(tensors.from_ndarray(IMAGE))
    return request


def _states(server, name="tiny"):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    return {s.version: s.state for s in server.core.get_model_status(request).model_version_status}


def _config(base, body=""):
    return f'model_config_list {{ config {{ name: "tiny" base_path: "{base}/tiny" model_platform: "tensorflow" {body} }} }}'


def _server(**kwargs):
    kwargs.setdefault("port", 0)
    kwargs.setdefault("file_system_poll_wait_seconds", 0)
    return ModelServer(**kwargs)


# Flags.


def test_flags_take_tf_serving_syntax():
    options = parse_flags(["--port=9000", "--model_name=m", "--model_base_path=/x", "--enable_batching",
                           "--enable_model_warmup=false", "--allow_version_labels_for_unavailable_models=1",
                           "--rest_api_port", "9001", "--grpc_channel_arguments=grpc.max_connection_age_ms=2000"])
    assert (options.port, options.rest_api_port, options.model_name) == (9000, 9001, "m")
    assert options.enable_batching is True and options.enable_model_warmup is False
    assert options.allow_version_labels_for_unavailable_models is True
    # TF Serving's defaults.
    defaults = parse_flags([])
    assert (defaults.port, defaults.rest_api_port, defaults.rest_api_timeout_in_ms) == (8500, 0, 30000)
    assert (defaults.model_name, defaults.file_system_poll_wait_seconds) == ("default", 1)
    assert defaults.host == "localhost" and defaults.enable_batching is False


@pytest.mark.parametrize("argv, message", [
    (["--no_such_flag=1"], "unknown argument: --no_such_flag=1"),
    (["--enable_batch"], "unknown argument: --enable_batch"),  # no prefix matching
    (["positional"], "unknown argument: positional"),
    (["--port=abc"], "argument --port: invalid int value: 'abc'"),
    (["--enable_batching=maybe"], "invalid bool value"),
])
def test_bad_flags_are_errors(argv, message):
    with pytest.raises(FlagError) as info:
        parse_flags(argv)
    assert message in str(info.value)
    assert "--model_base_path" in info.value.usage


# Config files.


def test_config_files_parse_with_tf_serving_protos(tmp_path):
    (tmp_path / "models.config").write_text(
        'model_config_list { config { name: "a" base_path: "/m/a" model_platform: "tensorflow" '
        "model_version_policy { specific { versions: 1 versions: 3 } } "
        'version_labels { key: "stable" value: 1 } } }'
    )
    config = read_model_server_config(tmp_path / "models.config")
    entry = config.model_config_list.config[0]
    assert list(entry.model_version_policy.specific.versions) == [1, 3] and entry.version_labels["stable"] == 1

    (tmp_path / "batching.txt").write_text(
        "max_batch_size { value: 32 }\nbatch_timeout_micros { value: 1000 }\n"
        "num_batch_threads { value: 2 }\nallowed_batch_sizes: 16\nallowed_batch_sizes: 32\n"
        "pad_variable_length_inputs: true\n"
    )
    params = read_batching_parameters(tmp_path / "batching.txt")
    assert params.max_batch_size.value == 32 and list(params.allowed_batch_sizes) == [16, 32]
    assert params.DESCRIPTOR.full_name == "tensorflow.serving.BatchingParameters"

    (tmp_path / "monitoring.txt").write_text('prometheus_config { enable: true path: "/metrics" }')
    monitoring = read_monitoring_config(tmp_path / "monitoring.txt")
    assert monitoring.prometheus_config.enable and monitoring.prometheus_config.path == "/metrics"


@pytest.mark.parametrize("reader, text, detail", [
    (read_model_server_config, "model_config_list { config { name: 3 }",
     "Error parsing text-format tensorflow.serving.ModelServerConfig: 1:36: Expected string but found: '3'"),
    (read_batching_parameters, "max_batch_size: 32",
     'Error parsing text-format tensorflow.serving.BatchingParameters: 1:17: Expected "{".'),
    (read_monitoring_config, "prometheus_config { enable: yes }",
     'Error parsing text-format tensorflow.serving.MonitoringConfig: 1:29: Expected "true" or "false".'),
])
def test_malformed_config_files(tmp_path, reader, text, detail):
    path = tmp_path / "config.txt"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        reader(path)
    assert info.value.detail.startswith(detail), info.value.detail
    assert str(info.value) == f"INVALID_ARGUMENT: Invalid protobuf file: '{path}'"


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        read_model_server_config(tmp_path / "nope.config")
    assert info.value.code == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("kwargs, message", [
    ({}, "Both server_options.model_base_path and server_options.model_config_file are empty!"),
    ({"model_base_path": "/m", "batching_parameters": "max_batch_size { value: 4 }"},
     "server_options.batching_parameters_file is set without setting server_options.enable_batching to true."),
    ({"model_base_path": "/m", "enable_batching": True,
      "batching_parameters": "max_batch_size { value: 4 } allowed_batch_sizes: 2 allowed_batch_sizes: 3"},
     "final entry in allowed_batch_sizes must equal max_batch_size"),
    ({"config": 'model_config_list { config { name: "a" base_path: "/m/a" } }'},
     "Illegal setting neither ModelServerConfig::model_type (deprecated) nor ModelServerConfig::model_platform."),
    ({"config": 'model_config_list { config { name: "a" base_path: "/m/a" model_platform: "pytorch" } }'},
     "Model a requests unsupported platform pytorch"),
    ({"config": 'model_config_list { config { name: "a" base_path: "/m/a" model_platform: "tensorflow" } '
                'config { name: "a" base_path: "/m/b" model_platform: "tensorflow" } }'},
     "Illegal to list model a multiple times in config list"),
])
def test_start_refuses_what_tf_serving_refuses(kwargs, message):
    with pytest.raises(ServingError) as info:
        _server(**kwargs).start()
    assert info.value.message == message



# Writing the config files (export and `zoo serve` write them with serving.config).


def _model_folders(base, *names):
    """Model folders the writer lists (a version folder with a saved_model.pb), no model."""
    for name in names:
        (base / name / "1").mkdir(parents=True)
        (base / name / "1" / "saved_model.pb").write_bytes(b"")
    return base


def test_written_batching_parameters_parse_back_the_same(tmp_path):
    path = server_config.write_batching_parameters(tmp_path)
    assert path == tmp_path / "batching_parameters.txt"
    text = path.read_text()
    assert text.startswith(server_config.BATCHING_HEADER) and "# num_batch_threads { value: 4 }" in text
    params = read_batching_parameters(path)
    assert params == server_config.batching_parameters()
    assert (params.max_batch_size.value, params.batch_timeout_micros.value,
            params.max_enqueued_batches.value) == (32, 1000, 100)

    tuned = server_config.BatchingParameters()
    text_format.Parse("max_batch_size { value: 8 } batch_timeout_micros { value: 0 } num_batch_threads { value: 2 } "
                      'thread_pool_name { value: "pool" } allowed_batch_sizes: 4 allowed_batch_sizes: 8 '
                      "pad_variable_length_inputs: true", tuned)
    server_config.write_batching_parameters(tmp_path, tuned)
    assert path.read_text() == text  # an operator's file is not overwritten
    server_config.write_batching_parameters(tmp_path, tuned, overwrite=True)
    assert read_batching_parameters(path) == tuned
    assert "# num_batch_threads" not in path.read_text()  # set, so no hint
    with pytest.raises(ValueError, match="max_batch_size must be a positive int"):
        server_config.batching_parameters(max_batch_size=0)


def test_written_models_config_parses_back_and_keeps_hand_edits(tmp_path):
    base = _model_folders(tmp_path / "models", "a", "b")
    (base / "c" / ".tmp-1-99").mkdir(parents=True)  # only a temp folder: not served
    path = server_config.write_models_config(base, model_name="a", version_policy="specific:1,2")
    assert path.read_text().startswith(server_config.MODELS_CONFIG_HEADER)
    config = {c.name: c for c in read_model_server_config(path).model_config_list.config}
    assert sorted(config) == ["a", "b"]
    assert {(c.base_path, c.model_platform) for c in config.values()} == {
        (str(base.resolve() / "a"), "tensorflow"), (str(base.resolve() / "b"), "tensorflow")}
    assert list(config["a"].model_version_policy.specific.versions) == [1, 2]
    assert config["b"].model_version_policy.latest.num_versions == 1

    # An operator edits the file by hand: a label, another policy, a model kept elsewhere.
    edited = path.read_text().replace('name: "b"', 'name: "b" version_labels { key: "stable" value: 1 }', 1)
    edited = edited.replace("model_config_list {", 'model_config_list {\n  config { name: "elsewhere" '
                            'base_path: "/srv/elsewhere" model_platform: "tensorflow" }', 1)
    path.write_text(edited)
    _model_folders(base, "d")
    server_config.write_models_config(base, model_name="b", version_policy="all")
    config = {c.name: c for c in read_model_server_config(path).model_config_list.config}
    assert list(config) == ["elsewhere", "a", "b", "d"]  # the file's order, new folders after
    assert list(config["a"].model_version_policy.specific.versions) == [1, 2]
    assert dict(config["b"].version_labels) == {"stable": 1} and config["b"].model_version_policy.HasField("all")
    assert config["elsewhere"].base_path == "/srv/elsewhere"
    assert config["d"].base_path == str(base.resolve() / "d")

    # The base path as the container sees it; `zoo serve --model` picks entries.
    server_config.write_models_config(base, serving_base_path="/models/")
    config = {c.name: c for c in read_model_server_config(path).model_config_list.config}
    assert [config[n].base_path for n in "abd"] == ["/models/a", "/models/b", "/models/d"]
    assert config["elsewhere"].base_path == "/srv/elsewhere"
    picked = server_config.models_config(base, models=["d", "b"])
    assert [c.name for c in picked.model_config_list.config] == ["b", "d"]
    with pytest.raises(ValueError, match="no model zz under"):
        server_config.models_config(base, models=["zz"])


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    base = _model_folders(tmp_path, "a")
    config_path = server_config.write_models_config(base)
    batching_path = server_config.write_batching_parameters(base)
    before = {p.name: p.read_text() for p in base.iterdir() if p.is_file()}

    def fail(*args):
        raise OSError(28, "No space left on device")

    for failing in ("fsync", "replace"):  # while writing the text, and at the rename
        with monkeypatch.context() as patch:
            patch.setattr(os, failing, fail)
            with pytest.raises(OSError, match="No space left"):
                server_config.write_models_config(base, model_name="a", version_policy="all")
            with pytest.raises(OSError, match="No space left"):
                server_config.write_batching_parameters(base, server_config.batching_parameters(max_batch_size=4),
                                                        overwrite=True)
        # The old files are whole and nothing else is left behind.
        assert {p.name: p.read_text() for p in base.iterdir() if p.is_file()} == before
    assert read_model_server_config(config_path).model_config_list.config[0].model_version_policy.HasField("latest")
    assert read_batching_parameters(batching_path).max_batch_size.value == 32


def test_the_server_reads_what_the_writer_writes(base):
    config_file, batching_file = server_config.write_server_config(base, model_name="tiny", version_policy="all")
    with _server(model_config_file=str(config_file), enable_batching=True,
                 batching_parameters_file=str(batching_file)) as server:
        assert {v for v, s in _states(server).items() if s == AVAILABLE} == {1, 2, 3}
        assert server.core.predict(_request(version=2)).model_spec.version.value == 2


# Version policies and labels.


@pytest.mark.parametrize("policy, expected", [
    ("", {3}),
    ("model_version_policy { latest { num_versions: 2 } }", {2, 3}),
    ("model_version_policy { all {} }", {1, 2, 3}),
    ("model_version_policy { specific { versions: 1 versions: 3 } }", {1, 3}),
])
def test_version_policies(base, policy, expected):
    with _server(config=_config(base, policy)) as server:
        assert {v for v, s in _states(server).items() if s == AVAILABLE} == expected
        assert server.core.predict(_request()).model_spec.version.value == max(expected)
        for v in expected:
            response = server.core.predict(_request(version=v))
            np.testing.assert_allclose(tensors.to_ndarray(response.outputs["probabilities"]),
                                       sm.expected_probabilities(IMAGE, v), rtol=1e-5)


def test_labels_need_available_versions_as_in_tf_serving(base):
    labels = 'model_version_policy { all {} } version_labels { key: "stable" value: 2 }'
    # At start-up nothing is available yet when labels are checked: TF Serving refuses.
    with pytest.raises(ServingError) as info:
        _server(config=_config(base, labels)).start()
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert info.value.message == ("Request to assign label to version 2 of model tiny, which is not "
                                  "currently available for inference")

    with _server(config=_config(base, labels), allow_version_labels_for_unavailable_models=True) as server:
        assert server.core.predict(_request(label="stable")).model_spec.version.value == 2
        # Once versions serve, a reload may point a label at any available one.
        from serving.config import ModelServerConfig, parse_text
        from tensorflow_serving.apis import model_management_pb2

        request = model_management_pb2.ReloadConfigRequest(config=parse_text(
            _config(base, 'model_version_policy { all {} } version_labels { key: "stable" value: 3 }'),
            ModelServerConfig))
        server.core.handle_reload_config(request)
        assert server.core.predict(_request(label="stable")).model_spec.version.value == 3
        with pytest.raises(ServingError) as info:
            server.core.predict(_request(label="canary"))
        assert info.value.message == "Unrecognized servable version label: canary"


def test_config_file_is_polled(base, tmp_path):
    path = tmp_path / "models.config"
    path.write_text(_config(base))
    with _server(model_config_file=str(path), model_config_file_poll_wait_seconds=1) as server:
        assert set(_states(server)) == {3}
        path.write_text("model_config_list { this does not parse")
        time.sleep(1.5)  # a broken file is logged, and the models keep serving
        assert server.core.predict(_request()).model_spec.version.value == 3
        path.write_text(_config(base, "model_version_policy { all {} }"))
        deadline = time.monotonic() + 20
        while {v for v, s in _states(server).items() if s == AVAILABLE} != {1, 2, 3}:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_start_fails_when_the_latest_version_cannot_load(base):
    sm.corrupt_variables(base / "tiny" / "3")
    with pytest.raises(ServingError) as info:
        _server(config=_config(base), max_num_load_retries=0).start()
    assert info.value.code == grpc.StatusCode.UNKNOWN
    assert info.value.message.startswith(
        "1 model(s) did not become available: {{{name: tiny version: 3} due to error: OUT_OF_RANGE: ")


def test_failed_loads_are_retried_on_later_polls(versions, tmp_path):
    sm.copy_version(versions[1], tmp_path, "tiny", 1)
    with _server(model_base_path=str(tmp_path / "tiny"), model_name="tiny", file_system_poll_wait_seconds=0.05,
                 max_num_load_retries=2, load_retry_interval_micros=300_000) as server:
        staging = tmp_path / "staging"
        sm.copy_version(versions[2], staging, "tiny", 2)
        sm.corrupt_variables(staging / "tiny" / "2")
        (staging / "tiny" / "2").rename(tmp_path / "tiny" / "2")
        start = time.monotonic()
        seen = []
        deadline = time.monotonic() + 20
        while _states(server).get(2) != END:
            assert time.monotonic() < deadline
            seen.append(_states(server).get(2))
            # Version 1 serves all along.
            assert server.core.predict(_request()).model_spec.version.value == 1
            time.sleep(0.02)
        assert get_model_status_pb2.ModelVersionStatus.LOADING in seen  # while retries were pending
        # Three attempts, the two retries 0.3 s after the failure before them.
        assert time.monotonic() - start >= 0.6


def test_missing_base_path_serves_nothing_until_versions_appear(versions, tmp_path):
    with _server(model_base_path=str(tmp_path / "tiny"), model_name="tiny",
                 file_system_poll_wait_seconds=0.1) as server:
        with pytest.raises(ServingError) as info:
            server.core.predict(_request())
        assert info.value.code == grpc.StatusCode.NOT_FOUND
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "tiny"
        with pytest.raises(ServingError) as info:
            server.core.get_model_status(request)
        assert info.value.message == "Could not find any versions of model tiny"
        sm.copy_version(versions[1], tmp_path, "tiny", 1)
        deadline = time.monotonic() + 20
        while _states_or_none(server) != {1: AVAILABLE}:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def _states_or_none(server):
    try:
        return _states(server)
    except ServingError:
        return None


# Warmup.


def _predict_log(signature="", image=IMAGE):
    log = prediction_log_pb2.PredictionLog()
    request = log.predict_log.request
    request.model_spec.name = "ignored"
    request.model_spec.signature_name = signature
    request.inputs["image"].CopyFrom(tensors.from_ndarray(image))
    return log


def test_warmup_requests_are_replayed(tmp_path):
    path = sm.write_image_classifier(tmp_path, "tiny", 1, warmup_requests=[_predict_log()] * 3)
    with _server(model_base_path=str(tmp_path / "tiny"), model_name="tiny",
                 num_request_iterations_for_warmup=2) as server:
        # Warmup runs each record twice, straight on the model (not counted as requests).
        runtime = server.metrics.registry.get_sample_value(
            ":tensorflow:serving:runtime_latency_count", {"model_name": "tiny", "API": "Predict", "runtime": "TF1"})
        assert runtime == 6
        assert server.core.predict(_request()).model_spec.version.value == 1
    assert path.endswith("1")


def test_failing_warmup_fails_the_load(tmp_path):
    sm.write_image_classifier(tmp_path, "tiny", 1, warmup_requests=[_predict_log(signature="nope")])
    with pytest.raises(ServingError) as info:
        _server(model_base_path=str(tmp_path / "tiny"), model_name="tiny", max_num_load_retries=0).start()
    assert 'Serving signature key \\"nope\\" not found.' in info.value.message or \
        'Serving signature key "nope" not found.' in info.value.message
    # With warmup off the same model loads.
    with _server(model_base_path=str(tmp_path / "tiny"), model_name="tiny", enable_model_warmup=False) as server:
        assert server.core.predict(_request()).model_spec.version.value == 1


def test_metrics_count_requests_by_status(base):
    with _server(config=_config(base)) as server:
        server.core.predict(_request(), entrypoint="REST")
        with pytest.raises(ServingError):
            server.core.predict(_request(version=99))
        content_type, body = server.core.metrics_exposition()
        text = body.decode()
        assert content_type.startswith("text/plain")
        assert ':tensorflow:serving:request_count{model_name="tiny",status="OK"} 1.0' in text
        assert ':tensorflow:serving:request_count{model_name="tiny",status="NOT_FOUND"} 1.0' in text
        assert 'entrypoint="REST"' in text


def test_resolve_signature_for_rest(base):
    with _server(config=_config(base)) as server:
        request = _request(version=3)
        request.model_spec.signature_name = "classify"
        spec, signature = server.core.resolve_signature(request.model_spec)
        assert (spec.name, spec.version.value, spec.signature_name) == ("tiny", 3, "classify")
        assert list(signature.inputs) == ["inputs"]
        text_format.MessageToString(signature)
