"""zoo.load: a run or an export answers in-process what the served model answers."""

import numpy as np
import pytest

import zoo
from export import export_saved_model
from serving import Client, ModelServer
from zoo.data.digits import digits


@pytest.fixture(scope="module")
def served(digits_run, tmp_path_factory):
    base = tmp_path_factory.mktemp("predictor") / "models"
    version_dir = export_saved_model(digits_run, base, "digits")
    with ModelServer(str(base / "digits"), "digits", port=0, rest_api_port=0, host="127.0.0.1") as server:
        yield version_dir, server


def test_run_and_export_answer_as_the_served_model_over_grpc_and_rest(digits_run, served):
    version_dir, server = served
    images = digits("test")[0][:6].astype(np.float32)
    answers = {"run": zoo.load(digits_run)(images), "export": zoo.load(version_dir.parent)(images)}
    for protocol, port in (("grpc", server.grpc_port), ("rest", server.rest_port)):
        with Client(f"127.0.0.1:{port}", "digits", protocol=protocol) as client:
            answers[protocol] = client.predict({"image": images})
    want = answers["grpc"]
    for name, got in answers.items():
        np.testing.assert_allclose(got["probabilities"], want["probabilities"], atol=1e-5, err_msg=name)
        assert got["class_id"].tolist() == want["class_id"].tolist(), name
        assert [str(label) for label in got["label"]] == [str(label) for label in want["label"]], name
    # Labels are str in-process.
    assert all(isinstance(label, str) for label in answers["run"]["label"])


def test_a_predictor_takes_a_dict_keywords_or_another_signature(digits_run, served):
    version_dir, _ = served
    images = digits("test")[0][:2].astype(np.float32)
    predictor = zoo.load(version_dir)
    assert predictor.inputs == ["image"] and "image_bytes" in predictor.signature_names
    a, b = predictor({"image": images}), predictor(image=images)
    np.testing.assert_array_equal(a["probabilities"], b["probabilities"])
    with pytest.raises(ValueError, match="missing \\['image'\\]"):
        predictor({"pixels": images})
    with pytest.raises(ValueError, match="has no signature 'nope'"):
        predictor(images, signature="nope")


def test_nothing_loadable_says_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a run directory"):
        zoo.load(tmp_path)
