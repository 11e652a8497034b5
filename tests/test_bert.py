"""BERT on keras-hub: learning with an in-graph WordPiece tokenizer, the keras-hub preset
round trip (offline), serving from a fresh zoo-model-server process, hostile text."""

import json
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from export import export_saved_model
from serving import Client
from serving_models import free_port, server_process
from zoo.data.tokenizer import read_vocabulary
from zoo.data.wordpiece import preset_vocabulary
from zoo.tasks.base import as_text

pytestmark = pytest.mark.slow  # minutes: learning or the README's commands (-m "not slow" leaves it out)

HOSTILE_TEXTS = ["", b"\xff\xfe not \xc3 UTF-8", "x" * 100_000, "The plot was not bad at all."]


@pytest.fixture(scope="module")
def bert_run(tmp_path_factory):
    return zoo.train("bert_classifier", "synthetic_sentiment", epochs=20, batch_size=32, learning_rate=3e-4,
                     out_dir=tmp_path_factory.mktemp("bert") / "run", verbose=0,
                     model_kwargs={"size": "bert_tiny", "sequence_length": 40})


def test_bert_tiny_learns_negation_and_contrast(bert_run):
    metrics = json.loads((bert_run / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.90, metrics  # a bag of words scores 68% on this set
    dataset = json.loads((bert_run / "dataset.json").read_text())
    vocabulary = (bert_run / "vocab.txt").read_text().split("\n")
    # keras-hub's WordPiece vocabulary, learned from the training split: BERT's reserved tokens first.
    assert dataset["tokenizer"] == "wordpiece" and vocabulary[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert any(piece.startswith("##") for piece in vocabulary)


def test_bert_sizes_are_the_published_shapes():
    from zoo.models.bert import SIZES

    counts = {size: zoo.build_model("bert_classifier", size=size, vocabulary_size=30_522, sequence_length=512,
                                    compiled=False).get_layer("backbone").count_params() for size in SIZES}
    # keras-hub's BertBackbone of each shape (Turc et al. 2019; Devlin et al. 2018).
    assert counts == {"bert_tiny": 4_385_920, "bert_small": 28_763_648, "bert_base": 109_482_240}


def test_a_preset_that_cannot_be_had_says_how_to_get_one(monkeypatch):
    # A built-in name needs Kaggle; offline (ZOO_OFFLINE=1 in the tests) that is said at once.
    started = time.perf_counter()
    with pytest.raises(ValueError, match="downloaded from Kaggle .* cannot be reached.*--preset DIR"):
        zoo.build_model("bert_classifier", preset="bert_tiny_en_uncased", vocabulary_size=100, sequence_length=16)
    assert time.perf_counter() - started < 5
    with pytest.raises(ValueError, match="neither a directory .* Did you mean 'bert_tiny_en_uncased'"):
        zoo.build_model("bert_classifier", preset="bert_tiny_en_uncase", vocabulary_size=100, sequence_length=16)
    # A name when the host answers goes to keras-hub as it is.
    from zoo import presets

    monkeypatch.setattr(presets, "reachable", lambda address, timeout=3.0: address == presets.PRESET_HOST)
    assert presets.resolve_preset("bert_tiny_en_uncased") == "bert_tiny_en_uncased"


def test_preset_round_trip_fine_tune_export_and_serve(bert_run, tmp_path):
    import keras_hub

    preset = zoo.save_preset(bert_run, tmp_path / "preset")
    assert (preset / "config.json").exists() and (preset / "tokenizer.json").exists()
    # Plain keras-hub loads it, tokenizer included, and answers as the run does.
    texts = ["The plot was not bad at all.", "Good food but far too expensive."]
    hub = keras_hub.models.TextClassifier.from_preset(str(preset))
    ours = zoo.load(bert_run)(texts)["probabilities"]
    np.testing.assert_allclose(tf.nn.softmax(hub.predict(texts, verbose=0)).numpy(), ours, atol=1e-4)

    # Fine-tune from it with another number of classes (four topics), then export and serve.
    run = zoo.train("bert_classifier", "synthetic_topics", epochs=2, batch_size=32, learning_rate=1e-3,
                    out_dir=tmp_path / "topics", verbose=0, model_kwargs={"preset": str(preset), "sequence_length": 32})
    model = keras.saving.load_model(run / "model.keras")
    backbone = keras_hub.models.Backbone.from_preset(str(preset))
    assert model.output.shape[-1] == 4 and backbone.vocabulary_size == model.get_layer("backbone").vocabulary_size
    # The data was tokenized with the preset's own word pieces.
    assert read_vocabulary(run / "vocab.txt") == preset_vocabulary(str(preset))
    base = tmp_path / "models"
    version = export_saved_model(run, base, "topics")
    # No variable written twice (keras issue 23553): the export holds the model's variables
    # (weights and dropout seeds) once each.
    reader = tf.train.load_checkpoint(str(version / "variables/variables"))
    saved = [tuple(shape) for key, shape in reader.get_variable_to_shape_map().items() if key.endswith("VALUE")]
    assert sorted(saved) == sorted(tuple(v.shape) for v in model.variables)

    # A fresh server process: it registers tensorflow-text's ops itself before loading.
    port = free_port()
    with server_process(f"--port={port}", "--model_name=topics", f"--model_base_path={base / 'topics'}"), \
            Client(f"localhost:{port}", "topics") as client:
        client.wait_until_available(timeout=120)
        answer = client.predict({"text": np.array(texts + HOSTILE_TEXTS, dtype=object)})
    expected = zoo.load(run)(texts)["probabilities"]
    np.testing.assert_allclose(answer["probabilities"][:2], expected, atol=1e-5)
    assert np.isfinite(answer["probabilities"]).all() and answer["probabilities"].shape == (6, 4)
    np.testing.assert_allclose(answer["probabilities"][5], zoo.load(run)(HOSTILE_TEXTS[3:])["probabilities"][0],
                               atol=1e-5)
    assert set(as_text(answer["label"])) <= {"sports", "science", "business", "music"}


def test_bert_tagger_aligns_pieces_to_words_and_tags_unseen_names(tmp_path):
    from zoo.data import synthetic_entities as entities

    run = zoo.train("bert_tagger", "synthetic_entities", epochs=12, batch_size=32, learning_rate=5e-4,
                    out_dir=tmp_path / "run", verbose=0, model_kwargs={"sequence_length": 40, "piece_length": 96})
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["entity_f1"] >= 0.85, metrics  # test names never occur in training
    tokens, tags = entities.make_sentences(20, entities.SPLITS["test"][1], "test")
    predictor = zoo.load(run)
    texts = [entities.tokens_to_text(t) for t in tokens]
    answer = predictor(texts + ["x" * 100_000, "", b"\xff\xfe bad"])
    for i, words in enumerate(tokens):  # one tag per word, whatever its pieces
        assert [w for w in as_text(answer["tokens"][i]) if w] == words
        assert len([t for t in as_text(answer["tags"][i]) if t]) == len(words)
    alone = predictor(texts[:1])
    assert as_text(alone["tags"][0]) == as_text(answer["tags"][0])
    np.testing.assert_allclose(alone["scores"][0], answer["scores"][0], atol=1e-5)
    assert np.isfinite(answer["scores"]).all() and not any(as_text(answer["tags"][len(texts) + 1]))


def test_exporting_with_a_vocabulary_larger_than_the_embedding_says_so(tmp_path):
    from export.errors import ExportError

    model = zoo.build_model("bert_classifier", vocabulary_size=100, sequence_length=16, num_classes=4)
    with pytest.raises(ExportError, match=r"vocabulary \(244 ids\) does not fit the model's embedding of 100 ids"):
        export_saved_model(model, tmp_path / "models", dataset="synthetic_topics", verify=False)
