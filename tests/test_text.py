"""Text classification end to end: offline and TFDS data, training that learns,
export with an in-graph tokenizer, verification, and gRPC serving."""

import http.client
import json

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_serving.apis import classification_pb2, prediction_service_pb2_grpc

import zoo
from export import export_saved_model
from export.model_card import read_signatures
from export.archive import plan_export
from export.verify import verify_in_subprocess
from zoo.tasks import CLASSIFY_METHOD, PREDICT_METHOD
from zoo.tasks.base import model_inputs
from zoo.tasks.text_classification import text_example
from model_checks import tiny_model
from serving import Client, ModelServer
from serving.client import ClientError
from zoo.data import synthetic_topics, tfds_source
from zoo.data.tokenizer import make_tokenizer, read_vocabulary

TEXT_METHODS = {"serving_default": PREDICT_METHOD, "classify": CLASSIFY_METHOD}
SENTENCES = ["The striker scored a late goal in the final match.",
             "Researchers saw the galaxy through a new telescope.",
             "Investors cheered the merger as the stock rose.",
             "The band played every ballad from the album at the concert.",
             "",  # an empty request is still answered
             "Quantum chemistry!!! of the molecule, said they."]


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "text_cnn-topics"
    return zoo.train("text_cnn", "synthetic_topics", epochs=3, out_dir=out, verbose=0,
                     model_kwargs={"embedding_dim": 32, "filters": 32})


def keras_labels(run_dir, texts):
    """What the trained Keras model answers, tokenizing as the training pipeline did."""
    model, _, info = zoo.training.load_run(run_dir)
    tokenizer = make_tokenizer(read_vocabulary(run_dir / info["vocabulary_file"]), info["sequence_length"])
    logits = model.predict_on_batch({"token_ids": tf.cast(tokenizer(tf.constant(texts)), tf.int32).numpy()})
    return [info["label_names"][i] for i in np.argmax(logits, axis=-1)]


def test_offline_text_set_is_deterministic_tokenized_and_balanced():
    ds, info = zoo.load_dataset("synthetic_topics", "train", batch_size=32, with_info=True, shuffle=False)
    x, y = next(iter(ds))
    assert info.task == "text_classification" and info.label_names == synthetic_topics.LABELS
    assert x["token_ids"].shape == (32, 32) and x["token_ids"].dtype == tf.int32
    assert y.dtype == tf.int64 and info.input_shape == (32,)
    assert int(tf.reduce_min(x["token_ids"])) == 0  # short sentences are padded with 0
    assert int(tf.reduce_max(x["token_ids"])) < len(info.vocabulary) + 2
    again, labels = synthetic_topics.make_sentences(*synthetic_topics.SPLITS["train"])
    assert list(again) == list(synthetic_topics.synthetic_topics("train")[0])
    assert list(labels) == list(synthetic_topics.synthetic_topics("train")[1])
    counts = np.bincount(synthetic_topics.synthetic_topics("train")[1])
    assert counts.min() > 0.2 * counts.sum()
    # Every split shares the training vocabulary, so ids mean the same words.
    _, test_info = zoo.load_dataset("synthetic_topics", "test", with_info=True)
    assert test_info.vocabulary == info.vocabulary


def test_text_cnn_learns_the_offline_set(text_run):
    metrics = json.loads((text_run / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["accuracy"] >= 0.9  # chance: 0.25
    info = json.loads((text_run / "dataset.json").read_text())
    assert info["task"] == "text_classification" and info["vocabulary_file"] == "vocab.txt"
    assert len(read_vocabulary(text_run / "vocab.txt")) + 2 == info["vocabulary_size"]
    config = json.loads((text_run / "config.json").read_text())
    assert "vocabulary_size" not in config["model_kwargs"]  # it comes from the data
    assert zoo.evaluate(text_run)["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-6)


def test_transformer_ignores_padding():
    model = tiny_model("transformer_classifier")
    ids = np.zeros((1, 16), np.int32)
    ids[0, :5] = [5, 6, 7, 8, 9]
    before = model({"token_ids": ids}, training=False).numpy()
    # Padding is masked: changing the embedding of id 0 changes no prediction.
    table = model.get_layer("embedding").token_embedding.embeddings
    table.assign(tf.tensor_scatter_nd_update(table, [[0]], tf.random.normal((1, table.shape[1]))))
    np.testing.assert_allclose(model({"token_ids": ids}, training=False), before, atol=1e-5)


@pytest.mark.parametrize("name, classes", [("imdb_reviews", 2), ("ag_news_subset", 4)])
def test_tfds_text_sets_with_mock_data(monkeypatch, name, classes):
    monkeypatch.setattr(tfds_source, "download_reachable", lambda timeout=3.0: True)
    with tfds.testing.mock_data(num_examples=24):
        ds, info = zoo.load_dataset(name, "train", batch_size=8, with_info=True, sequence_length=20)
        x, y = next(iter(ds))
    assert info.source == "tfds" and info.task == "text_classification" and info.num_classes == classes
    assert x["token_ids"].shape == (8, 20) and x["token_ids"].dtype == tf.int32
    assert len(info.vocabulary) > 0


def test_tfds_text_training_run_with_mock_data(monkeypatch, tmp_path):
    monkeypatch.setattr(tfds_source, "download_reachable", lambda timeout=3.0: True)
    with tfds.testing.mock_data(num_examples=48):
        run = zoo.train("text_cnn", "ag_news_subset", epochs=1, batch_size=16, out_dir=tmp_path / "run",
                        verbose=0, model_kwargs={"sequence_length": 16, "embedding_dim": 8, "filters": 8})
    info = json.loads((run / "dataset.json").read_text())
    assert info["sequence_length"] == 16 and (run / "vocab.txt").exists()
    assert model_inputs(keras.saving.load_model(run / "model.keras"))["token_ids"].shape == (None, 16)


def test_every_text_model_exports_and_verifies(tmp_path):
    """Each text architecture, untrained, exported with synthetic_topics' tokenizer and
    verified in ONE fresh process (each pays seconds for importing TensorFlow)."""
    jobs = []
    for name in zoo.list_models("text_classification"):
        model = tiny_model(name)
        path = export_saved_model(model, tmp_path / "models", name, dataset="synthetic_topics", verify=False)
        # The same plan the exporter made: the Keras answers the export must reproduce.
        plan = plan_export(model, dataset="synthetic_topics")
        assert plan.example_source == "synthetic_topics:train[:4]" and len(plan.examples["text"]) == 4
        jobs.append(plan.verification_job(path, TEXT_METHODS))
    for job, report in zip(jobs, verify_in_subprocess(jobs)):
        path = job.export_dir
        assert report["ok"], (path, report["errors"])
        assert set(report["max_abs_diff"]) == set(TEXT_METHODS) and report["records"] == 4
        # A WordPiece tokenizer (BERT) holds its vocabulary inside the graph.
        words = json.loads((path / "assets.extra/model_card.json").read_text())["tokenizer"] == "words"
        assert sorted(p.name for p in (path / "assets").iterdir()) == ["labels.txt"] + ["vocab.txt"] * words
        assert read_signatures(path)["serving_default"]["inputs"] == {"text": {"dtype": "string", "shape": [None]}}


def test_trained_text_run_exports_verifies_and_serves_over_grpc(text_run, tmp_path):
    version = export_saved_model(text_run, tmp_path / "models", "topics")
    card = json.loads((version / "assets.extra" / "model_card.json").read_text())
    assert card["verification"]["max_abs_diff"]["serving_default"] <= 1e-4
    assert card["warmup"]["source"] == "synthetic_topics:train[:4]"

    expected = keras_labels(text_run, SENTENCES)
    assert expected[:4] == ["sports", "science", "business", "music"]
    with ModelServer(tmp_path / "models" / "topics", "topics", port=0) as server:
        with Client(f"127.0.0.1:{server.grpc_port}", "topics", protocol="grpc", timeout=30) as client:
            out = client.predict({"text": np.array([s.encode() for s in SENTENCES], dtype=object)})
            rows = client.classify([text_example(s) for s in SENTENCES[:4]])
    labels = [v.decode() if isinstance(v, bytes) else str(v) for v in out["label"]]
    assert labels == expected
    assert out["probabilities"].shape == (len(SENTENCES), 4) and out["class_id"].dtype == np.int64
    np.testing.assert_allclose(out["probabilities"].sum(axis=-1), 1.0, atol=1e-5)
    best = [max(row, key=lambda c: c[1])[0] for row in rows]
    assert [b.decode() if isinstance(b, bytes) else b for b in best] == expected[:4]


@pytest.fixture(scope="module")
def served_transformer(tmp_path_factory):
    base = tmp_path_factory.mktemp("transformer") / "models"
    export_saved_model(tiny_model("transformer_classifier"), base, "tr", dataset="synthetic_topics")
    with ModelServer(base / "tr", "tr", port=0, rest_api_port=0, host="127.0.0.1") as server:
        yield server


GOOD = "The striker scored a late goal in the final match."


@pytest.mark.parametrize("text", ["", "   \t ", "qqqzz xxyyw vvvkk"], ids=["empty", "whitespace", "unknown words"])
def test_empty_and_unknown_texts_get_finite_probabilities(served_transformer, text):
    # All padding (or all out-of-vocabulary) once gave NaN: every position was masked.
    with Client(f"127.0.0.1:{served_transformer.grpc_port}", "tr") as client:
        out = client.predict({"text": np.array([text.encode(), GOOD.encode()], dtype=object)})
    assert np.isfinite(out["probabilities"]).all()
    np.testing.assert_allclose(out["probabilities"].sum(axis=-1), 1.0, atol=1e-5)


def test_classify_without_the_text_feature_names_it_and_the_server_goes_on(served_transformer):
    wrong = tf.train.Example(features=tf.train.Features(feature={"txt": tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[b"a goal"]))}))
    for protocol, port in (("grpc", served_transformer.grpc_port), ("rest", served_transformer.rest_port)):
        with Client(f"127.0.0.1:{port}", "tr", protocol=protocol) as client:
            with pytest.raises(ClientError) as e:
                client.classify([wrong], signature="classify")
            assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT, protocol
            assert "Feature: text (data type: string) is required" in e.value.message, protocol
            rows = client.classify([text_example(GOOD)], signature="classify")
            assert len(rows) == 1 and np.isfinite([score for _, score in rows[0]]).all()


def test_classify_without_a_signature_name_uses_the_classify_signature(served_transformer):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "tr"
    request.input.example_list.examples.add().CopyFrom(text_example(GOOD))
    with grpc.insecure_channel(f"127.0.0.1:{served_transformer.grpc_port}") as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Classify(request, timeout=30)
    assert response.model_spec.signature_name == "classify"
    assert len(response.result.classifications[0].classes) == 3  # the tiny model's classes
    connection = http.client.HTTPConnection("127.0.0.1", served_transformer.rest_port, timeout=30)
    connection.request("POST", "/v1/models/tr:classify", json.dumps({"examples": [{"text": GOOD}]}))
    reply = connection.getresponse()
    assert reply.status == 200 and len(json.loads(reply.read())["results"][0]) == 3
    connection.close()
