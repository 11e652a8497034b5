"""Version folders as TF Serving's FileSystemStoragePathSource reads them, and reloads
that point a model at folders it cannot serve from."""

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc, predict_pb2

import serving_models as sm
from serving import ModelServer, tensors
from serving.config import ModelServerConfig, parse_text
from serving.errors import ServingError
from serving.servables import list_versions, parse_version

IMAGE = np.full([1, 2, 2, 1], 0.5, np.float32)


@pytest.mark.parametrize("name, version", [
    ("123", 123), ("00000123", 123), (" 7 ", 7), ("0", 0), ("-1", -1), (str(2**63 - 1), 2**63 - 1),
    ("1.0", None), ("v1", None), ("+1", None), ("١٢٣", None), ("", None), (str(2**63), None),
    (".tmp-123", None),
])
def test_version_names_parse_as_safe_strto64(name, version):
    assert parse_version(name) == version


def test_a_version_keeps_its_folders_own_name_and_duplicates_resolve_as_tf_serving(tmp_path):
    for folder in ("00000123", "7", "007", "notes", ".tmp-9"):
        (tmp_path / folder).mkdir()
    (tmp_path / "42").write_text("a file is not a version")
    versions, error = list_versions("m", str(tmp_path))
    # "007" and "7" both name 7: the last in sorted order wins (IndexChildrenByVersion).
    assert error is None and versions == {123: "00000123", 7: "7"}


def test_a_missing_base_path_is_tf_servings_error(tmp_path):
    versions, error = list_versions("m", str(tmp_path / "nope"))
    assert versions is None and error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.message == (f"Could not find base path {tmp_path / 'nope'} for servable m with error "
                             f"NOT_FOUND: {tmp_path / 'nope'} not found")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("reload")
    path = sm.write_image_classifier(base, "tiny", 1)
    config = (f'model_config_list {{ config {{ name: "tiny" base_path: "{base}/tiny" '
              'model_platform: "tensorflow" } }')
    with ModelServer(config=config, port=0, host="127.0.0.1", file_system_poll_wait_seconds=0) as server:
        yield server, base, path


def _predict(server):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tiny"
    request.inputs["image"].CopyFrom(tensors.from_ndarray(IMAGE))
    return server.core.predict(request).model_spec.version.value


def _reload(server, base_path, name="tiny"):
    channel = grpc.insecure_channel(server.address)
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    config = parse_text(f'model_config_list {{ config {{ name: "{name}" base_path: "{base_path}" '
                        'model_platform: "tensorflow" } }', ModelServerConfig)
    try:
        return stub.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=config), timeout=30)
    finally:
        channel.close()


@pytest.mark.parametrize("where, code, text", [
    ("missing", grpc.StatusCode.INVALID_ARGUMENT, "Could not find base path"),
    ("empty", grpc.StatusCode.NOT_FOUND, "Unable to find a numerical version path for servable tiny at"),
])
def test_a_reload_to_a_path_without_versions_is_refused_and_changes_nothing(served, tmp_path, where, code, text):
    server, _, _ = served
    target = tmp_path / where
    if where == "empty":
        target.mkdir()
    with pytest.raises(grpc.RpcError) as info:
        _reload(server, target)
    assert info.value.code() == code and text in info.value.details()
    # The old config keeps serving.
    assert _predict(server) == 1


def test_a_reload_that_adds_a_model_without_versions_is_refused_too(served, tmp_path):
    server, _, _ = served
    with pytest.raises(ServingError) as info:
        server.core.manager.reload_config(parse_text(
            f'model_config_list {{ config {{ name: "other" base_path: "{tmp_path}/nope" '
            'model_platform: "tensorflow" } }', ModelServerConfig))
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert _predict(server) == 1
