"""zoo-model-server on TF Serving's own test model, as TF Serving answers it.

half_plus_two (y = 0.5 x + 2) is built here the way TF Serving's testdata builds it,
once with a TF1 SavedModelBuilder (predict, classify and regress signatures, an asset,
a main op) and once with tf.saved_model.save, each in a version folder named with
leading zeros (`00000123`), and served over gRPC and REST with the requests TF
Serving's documentation shows.
"""

import http.client
import json

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

import serving_models as sm
from serving import ModelServer, tensors

MODELS = {"half_plus_two_tf1": sm.write_half_plus_two_tf1, "half_plus_two_tf2": sm.write_half_plus_two_tf2}
VERSION = 123


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("tf_serving_testdata")
    for name, write in MODELS.items():
        write(base, name, version_dir="00000123")
    config = "model_config_list {" + "".join(
        f' config {{ name: "{name}" base_path: "{base / name}" model_platform: "tensorflow" }}'
        for name in MODELS) + " }"
    srv = ModelServer(config=config, host="127.0.0.1", port=0, rest_api_port=0).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def stubs(server):
    channel = grpc.insecure_channel(server.address)
    yield (prediction_service_pb2_grpc.PredictionServiceStub(channel),
           model_service_pb2_grpc.ModelServiceStub(channel))
    channel.close()


def rest(server, method, path, body=None):
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
    connection.request(method, path, body=json.dumps(body) if body is not None else None)
    response = connection.getresponse()
    doc = json.loads(response.read())
    connection.close()
    return response.status, doc


def predict(stub, name, x):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.inputs["x"].CopyFrom(tensors.from_ndarray(np.asarray(x, np.float32)))
    return stub.Predict(request, timeout=30)


@pytest.mark.parametrize("name", MODELS)
def test_predict_answers_in_float_val_from_a_zero_padded_version(stubs, name):
    response = predict(stubs[0], name, [[1.0], [2.0], [5.0]])
    y = response.outputs["y"]
    assert list(y.float_val) == [2.5, 3.0, 4.5] and not y.tensor_content
    assert [d.size for d in y.tensor_shape.dim] == [3, 1]
    assert response.model_spec.version.value == VERSION


@pytest.mark.parametrize("name", MODELS)
def test_an_input_of_another_shape_than_the_signatures_is_fed_as_is(stubs, name):
    # The signature says [-1,1]; TF Serving lets the graph decide, and this graph takes [3].
    y = predict(stubs[0], name, [2.0, 3.0, 4.0]).outputs["y"]
    assert list(y.float_val) == [3.0, 3.5, 4.0] and [d.size for d in y.tensor_shape.dim] == [3]


@pytest.mark.parametrize("name", MODELS)
def test_rest_instances_of_scalars_answer(server, name):
    status, doc = rest(server, "POST", f"/v1/models/{name}:predict", {"instances": [2.0, 3.0, 4.0]})
    assert status == 200 and doc == {"predictions": [3.0, 3.5, 4.0]}
    status, doc = rest(server, "POST", f"/v1/models/{name}/versions/123:predict", {"instances": [[1.0]]})
    assert status == 200 and doc == {"predictions": [[2.5]]}


@pytest.mark.parametrize("name", MODELS)
def test_multi_inference_classify_and_regress_answer(stubs, name):
    request = inference_pb2.MultiInferenceRequest()
    for signature, method in (("classify_x_to_y", "tensorflow/serving/classify"),
                              ("regress_x_to_y", "tensorflow/serving/regress")):
        task = request.tasks.add(method_name=method)
        task.model_spec.name = name
        task.model_spec.signature_name = signature
    for x in (1.0, 4.0):
        request.input.example_list.examples.add().ParseFromString(sm.half_plus_two_example(x))
    response = stubs[0].MultiInference(request, timeout=30)
    classify, regress = response.results
    assert [c.classes[0].score for c in classify.classification_result.classifications] == [2.5, 4.0]
    assert [r.value for r in regress.regression_result.regressions] == [2.5, 4.0]
    assert {r.model_spec.version.value for r in response.results} == {VERSION}


@pytest.mark.parametrize("name", MODELS)
def test_metadata_and_status_name_the_padded_version(server, stubs, name):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = name
    request.model_spec.version.value = VERSION
    response = stubs[0].GetModelMetadata(request, timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert response.model_spec.version.value == VERSION
    assert {"serving_default", "regress_x_to_y", "classify_x_to_y"} <= set(signatures.signature_def)

    status = stubs[1].GetModelStatus(get_model_status_pb2.GetModelStatusRequest(
        model_spec={"name": name}), timeout=30)
    assert [(v.version, v.state) for v in status.model_version_status] == [
        (VERSION, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]
    code, doc = rest(server, "GET", f"/v1/models/{name}/versions/123")
    assert code == 200 and doc["model_version_status"][0]["version"] == "123"
    assert doc["model_version_status"][0]["state"] == "AVAILABLE"
