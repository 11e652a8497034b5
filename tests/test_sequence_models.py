"""Sequence models: recurrent classifiers and the named-entity tagger.

Padding invariance, the cuDNN-compatible settings, the word tokenizer on hostile text,
the readable entity spans, the TFDS loaders (mocked), and learning on the offline
sets (each in well under two minutes of CPU).
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import zoo
from zoo.data import tfds_source, words
from zoo.tasks.base import as_text
from zoo.tasks.token_classification import entity_spans

pytestmark = pytest.mark.slow  # minutes: learning or the README's commands (-m "not slow" leaves it out)

RNN_CLASSIFIERS = ["lstm_classifier", "gru_classifier", "bilstm_classifier"]
SMALL = dict(embedding_dim=8, units=8)


def _same_weights_longer(name, **kwargs):
    """The model at sequence_length 12 and at 40 with the same weights."""
    short = zoo.build_model(name, sequence_length=12, **kwargs)
    long = zoo.build_model(name, sequence_length=40, **kwargs)
    long.set_weights(short.get_weights())
    return short, long


@pytest.mark.parametrize("name", RNN_CLASSIFIERS)
def test_recurrent_classifiers_ignore_padding(name):
    short, long = _same_weights_longer(name, num_classes=3, vocabulary_size=50, **SMALL)
    ids = np.zeros((3, 12), "int32")
    ids[0, :3] = [5, 6, 7]
    ids[1, :] = np.arange(2, 14)  # a full row beside a short one
    padded = np.zeros((3, 40), "int32")
    padded[:, :12] = ids
    np.testing.assert_allclose(short.predict_on_batch(ids), long.predict_on_batch(padded), atol=1e-5)
    alone = short.predict_on_batch(ids[:1])
    np.testing.assert_allclose(alone, short.predict_on_batch(ids)[:1], atol=1e-5)
    # An empty text is one padding token read: a defined answer, not NaN.
    assert np.isfinite(short.predict_on_batch(np.zeros((1, 12), "int32"))).all()


@pytest.mark.parametrize("name", RNN_CLASSIFIERS + ["bilstm_tagger"])
def test_recurrent_layers_keep_the_settings_cudnn_needs(name):
    model = zoo.build_model(name, num_classes=3, vocabulary_size=50, sequence_length=8, **SMALL)
    cells = [layer.forward_layer if isinstance(layer, keras.layers.Bidirectional) else layer
             for layer in model.layers if isinstance(layer, (keras.layers.RNN, keras.layers.Bidirectional))]
    assert cells
    for cell in cells:
        config = cell.get_config()
        assert config["activation"] == "tanh" and config["recurrent_activation"] == "sigmoid"
        assert config["recurrent_dropout"] == 0 and not config["unroll"] and config["use_bias"]
        if isinstance(cell, keras.layers.GRU):
            assert config["reset_after"]


def test_tagger_ignores_padding_and_tags_each_word():
    short, long = _same_weights_longer("bilstm_tagger", num_classes=5, vocabulary_size=50, word_length=6,
                                       char_embedding_dim=4, char_filters=4, **SMALL)
    text = tf.constant(["Ada Lovelace met Babbage .", "A much longer sentence with many more words in it , really ."])
    table = words.word_table(["ada", "met", "a", "with"])
    x12 = words.features(words.split_words(text), table, 12, 6)
    x40 = words.features(words.split_words(text), table, 40, 6)
    a, b = short.predict_on_batch(x12), long.predict_on_batch(x40)
    np.testing.assert_allclose(a[0, :5], b[0, :5], atol=1e-5)
    alone = short.predict_on_batch({k: v[:1] for k, v in x12.items()})
    np.testing.assert_allclose(alone[0, :5], a[0, :5], atol=1e-5)
    assert a.shape == (2, 12, 5)


def test_split_words_splits_punctuation_off_words_only():
    got = words.split_words(tf.constant(['Paris, France. ("U.S." 3.5 Jean-Luc!)', "", "   ", "a\tb\nc"]))
    assert [[w.decode() for w in row] for row in got.to_list()] == [
        ["Paris", ",", "France", ".", "(", '"', "U.S", ".", '"', "3.5", "Jean-Luc", "!", ")"], [], [], ["a", "b", "c"]]


def test_features_of_hostile_text_are_defined():
    table = words.word_table(["paris"])
    text = tf.constant([b"", b"\xff\xfe bad \xc3", "x" * 100_000, "Paris PARIS paris"])
    x = words.features(words.split_words(text), table, 8, 5)
    ids, chars = x["token_ids"].numpy(), x["char_ids"].numpy()
    assert ids.shape == (4, 8) and chars.shape == (4, 8, 5)
    assert (ids[0] == 0).all() and (chars[0] == 0).all()
    assert list(ids[1, :3]) == [1, 1, 1] and (chars[1, :3, 0] > 0).all()  # invalid UTF-8: unknown, defined
    assert ids[2, 0] == 1 and (chars[2, 0] > 0).all() and (ids[2, 1:] == 0).all()
    assert list(ids[3, :3]) == [2, 2, 2], "words are looked up lower-cased"
    assert len({tuple(c) for c in chars[3, :3]}) == 3, "characters keep their case"
    assert chars.max() < words.CHAR_VOCABULARY_SIZE


def test_entity_spans_follow_the_conll_rules():
    tokens = tf.constant([["Ada", "Lovelace", "met", "Charles", "Babbage", "in", "London", "."],
                          ["The", "UN", "Paris", "Summit", "x", "", "", ""]])
    tags = tf.constant([["B-PER", "I-PER", "O", "B-PER", "I-PER", "O", "B-LOC", "O"],
                        ["O", "I-ORG", "B-MISC", "I-MISC", "I-LOC", "", "", ""]])
    got = [[e.decode() for e in row if e] for row in entity_spans(tokens, tags).numpy()]
    assert got == [["PER: Ada Lovelace", "PER: Charles Babbage", "LOC: London"],
                   ["ORG: UN", "MISC: Paris Summit", "LOC: x"]]


def test_tfds_conll2003_with_mock_data(monkeypatch):
    monkeypatch.setattr(tfds_source, "download_reachable", lambda timeout=3.0: True)
    with tfds.testing.mock_data(num_examples=12):
        ds, info = zoo.load_dataset("conll2003", "validation", batch_size=4, with_info=True, sequence_length=10)
        x, y = next(iter(ds))
    assert info.task == "token_classification" and info.label_names[:3] == ("O", "B-PER", "I-PER")
    assert tfds_source.TfdsDataset("conll2003").splits == {} and zoo.data.registry.get_dataset("conll2003").splits == {
        "validation": "dev"}, "CoNLL's validation split is called dev"
    assert x["token_ids"].shape == (4, 10) and x["char_ids"].shape[:2] == (4, 10)
    assert y.shape == (4, 10) and y.dtype == tf.int64 and int(tf.reduce_max(y)) < 9


def test_tfds_glue_sst2_with_mock_data(monkeypatch):
    monkeypatch.setattr(tfds_source, "download_reachable", lambda timeout=3.0: True)
    with tfds.testing.mock_data(num_examples=12):
        ds, info = zoo.load_dataset("glue/sst2", "test", batch_size=4, with_info=True, sequence_length=16)
        x, y = next(iter(ds))
    assert info.task == "text_classification" and info.label_names == ("negative", "positive")
    # The published test split has no labels (-1); the validation split stands in for it.
    assert zoo.data.registry.get_dataset("glue/sst2").splits == {"test": "validation"}
    assert x["token_ids"].shape == (4, 16) and set(np.unique(y)) <= {0, 1}


# --- learning on the offline sets ----------------------------------------------------


@pytest.fixture(scope="module")
def tagger_run(tmp_path_factory):
    return zoo.train("bilstm_tagger", "synthetic_entities", epochs=8, batch_size=32, learning_rate=3e-3,
                     out_dir=tmp_path_factory.mktemp("tagger") / "run", verbose=0)


@pytest.fixture(scope="module")
def sentiment_run(tmp_path_factory):
    return zoo.train("bilstm_classifier", "synthetic_sentiment", epochs=12, batch_size=32, learning_rate=3e-3,
                     out_dir=tmp_path_factory.mktemp("sentiment") / "run", verbose=0)


def test_bilstm_classifier_reads_negation_and_contrast(sentiment_run):
    run = sentiment_run
    metrics = json.loads((run / "metrics.json").read_text())
    # A bag of words scores 68% here (unigram logistic regression; 75% with bigrams).
    assert metrics["accuracy"] >= 0.90, metrics
    predictor = zoo.load(run)
    answers = predictor(["The plot was not bad at all.", "The food was good but the service was far too slow."])
    assert as_text(answers["label"]) == ["positive", "negative"]


def test_bilstm_tagger_tags_names_it_never_saw(tagger_run):
    metrics = json.loads((tagger_run / "metrics.json").read_text())
    # Test names are drawn from pools no training sentence uses; memorising the training
    # tags scores 3% entity F1 here.
    assert metrics["entity_f1"] >= 0.90 and metrics["accuracy"] > 0.95, metrics
    assert zoo.evaluate(tagger_run, "test")["entity_f1"] == pytest.approx(metrics["entity_f1"], abs=1e-6)

    from zoo.data import synthetic_entities as entities

    tokens, tags = entities.make_sentences(50, entities.SPLITS["test"][1], "test")
    vocabulary = set((tagger_run / "vocab.txt").read_text().split())
    # A test sentence whose person is unknown to the vocabulary.
    i = next(i for i, (ws, ts) in enumerate(zip(tokens, tags))
             if any(t == "B-PER" and w.lower() not in vocabulary for w, t in zip(ws, ts)))
    answer = zoo.load(tagger_run)([entities.tokens_to_text(tokens[i])])
    got = [t for t in as_text(answer["tags"][0]) if t]
    assert [w for w in as_text(answer["tokens"][0]) if w] == tokens[i]
    assert got == tags[i]
    assert any(e.startswith("PER: ") for e in as_text(answer["entities"][0]))

    # What `zoo predict` prints for it: the entities, then each word with its tag.
    from zoo.tasks import get_task

    line = get_task("token_classification").format_answer({k: v[0] for k, v in answer.items()})
    assert line.startswith("PER: ") or "; PER: " in line
    assert f"{tokens[i][0]}/{tags[i][0]}" in line.split("\t")[1]


HOSTILE_TEXTS = ["", b"\xff\xfe not \xc3 UTF-8", "x" * 100_000, "Ada Lovelace met Charles Babbage in London ."]


def test_served_text_models_answer_hostile_text(sentiment_run, tagger_run, tmp_path, capsys):
    from export import export_saved_model
    from serving import Client, ModelServer
    from serving.client import ServingError

    base = tmp_path / "models"
    for name, run in (("sentiment", sentiment_run), ("entities", tagger_run)):
        export_saved_model(run, base, name)
    with ModelServer(model_config_file=str(base / "models.config"), port=0, host="127.0.0.1") as server:
        with Client(f"127.0.0.1:{server.grpc_port}", "sentiment") as client:
            answer = client.predict({"text": np.array(HOSTILE_TEXTS, dtype=object)})
            assert np.isfinite(answer["probabilities"]).all() and answer["probabilities"].shape == (4, 2)
            alone = client.predict({"text": np.array(HOSTILE_TEXTS[3:], dtype=object)})
            np.testing.assert_allclose(alone["probabilities"][0], answer["probabilities"][3], atol=1e-5)
            empty = client.predict({"text": np.array([], dtype=object)})
            assert empty["probabilities"].shape == (0, 2)
        with Client(f"127.0.0.1:{server.grpc_port}", "entities") as client:
            answer = client.predict({"text": np.array(HOSTILE_TEXTS, dtype=object)})
            tags = [as_text(row) for row in answer["tags"]]
            assert not any(tags[0]) and tags[1][:1] and tags[2][0] and not any(tags[2][1:])
            assert np.isfinite(answer["scores"]).all()
            # The same words get the same tags alone as beside a 100,000-character text.
            alone = client.predict({"text": np.array(HOSTILE_TEXTS[3:], dtype=object)})
            assert as_text(alone["tags"][0]) == tags[3]
            np.testing.assert_allclose(alone["scores"][0], answer["scores"][3], atol=1e-5)
            assert client.predict({"text": np.array([], dtype=object)})["tags"].shape[0] == 0
            with pytest.raises(ServingError) as e:
                client.predict({"text": np.array([1.0, 2.0], dtype=np.float32)})
            assert e.value.code.name == "INVALID_ARGUMENT"
        # `zoo predict` tells a served tagger from a classifier by its outputs.
        from zoo import cli

        capsys.readouterr()
        assert cli.main(["predict", "--server", f"127.0.0.1:{server.grpc_port}", "--model", "entities",
                         HOSTILE_TEXTS[3]]) == 0
        line = capsys.readouterr().out
        assert "Ada/" in line and "London/" in line and "\t" in line
        assert cli.main(["predict", "--server", f"127.0.0.1:{server.grpc_port}", "--model", "sentiment",
                         "not bad at all"]) == 0
        assert capsys.readouterr().out.split("\t")[1] in ("positive", "negative")
