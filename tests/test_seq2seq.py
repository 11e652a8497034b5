"""Seq2seq: the Transformer encoder-decoder, with its whole decode inside the served graph.

Learning on the offline translation and summarization sets (each well under two
minutes of CPU), the in-graph greedy and beam-search decoders against a plain Python
decode of the Keras model, padding invariance, the export's ops (no Xla*), a served
round trip with hostile text and out-of-range requests, and the TFDS loaders (mocked).
"""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import zoo
from zoo.data import registry as datasets, sequences, tfds_source
from zoo.tasks import decoding
from zoo.tasks.base import as_text
from zoo.tasks.seq2seq import python_greedy

pytestmark = pytest.mark.slow  # minutes: learning or the README's commands (-m "not slow" leaves it out)

TINY = dict(size="tiny", dropout=0.0)


def _train(name, tmp_path_factory):
    return zoo.train("transformer_seq2seq", name, epochs=6, batch_size=64, learning_rate=3e-3, lr_schedule="cosine",
                     model_kwargs=TINY, out_dir=tmp_path_factory.mktemp(name) / "run", verbose=0)


@pytest.fixture(scope="module")
def translation_run(tmp_path_factory):
    return _train("synthetic_translation", tmp_path_factory)


def _source_ids(run, texts):
    info = json.loads((run / "dataset.json").read_text())
    vocabulary = sequences.read_vocabulary(run / info["vocabulary_file"])
    return sequences.SequenceTokenizer(vocabulary, info["source_length"]).encode(tf.constant(texts)).numpy()


def test_translation_between_word_orders_learns(translation_run):
    metrics = json.loads((translation_run / "metrics.json").read_text())
    # Test sentences pair words in ways training never did (unseen subject-verb and
    # adjective-noun pairs), and the target reorders them (SOV, postpositions, agreement).
    assert metrics["bleu"] >= 90 and metrics["exact_match"] >= 0.8, metrics
    sources, targets = datasets.get_dataset("synthetic_translation").arrays("test")
    answers = zoo.load(translation_run)(list(sources[:20]))
    assert np.mean([a == t for a, t in zip(as_text(answers["output_text"]), targets[:20])]) >= 0.8


def test_in_graph_decoding_equals_a_python_decode(translation_run):
    model = keras.saving.load_model(translation_run / "model.keras")
    sources, _ = datasets.get_dataset("synthetic_translation").arrays("test")
    ids = _source_ids(translation_run, list(sources[:12]) + [""])
    decoder = decoding.CachedDecoder(model)
    length = decoder.target_length
    greedy = decoding.greedy(decoder, ids, length).numpy()
    np.testing.assert_array_equal(greedy, python_greedy(model, ids))  # token for token
    assert (greedy[-1] != 0).any(), "an empty source still decodes (the export answers it with '')"

    one, one_scores = decoding.beam_search(decoder, ids, 1, length)
    np.testing.assert_array_equal(one.numpy()[:, 0], greedy)  # beam size 1 is greedy
    beams, scores = decoding.beam_search(decoder, ids, 4, length)
    scores = scores.numpy()
    assert beams.shape == (len(ids), 4, length) and (np.diff(scores, axis=1) <= 1e-5).all(), "best first"
    # The best beam scores no worse than greedy's path, on average.
    assert scores[:, 0].mean() >= one_scores.numpy()[:, 0].mean() - 1e-4

    # A sentence alone decodes as beside a much longer one: padding does not leak in.
    long = " ".join(sources[np.argmax([len(s.split()) for s in sources])].split())
    pair = _source_ids(translation_run, [sources[0], long])
    np.testing.assert_array_equal(decoding.greedy(decoder, pair[:1], length).numpy()[0],
                                  decoding.greedy(decoder, pair, length).numpy()[0])


def test_a_decoding_step_is_matrix_products_and_element_wise_ops(translation_run):
    """The loop body holds no BatchMatMul, Softmax or Einsum: TensorFlow's oneDNN kernels for them cost
    20-50 us per call on one row, several times the rest of a step (benchmarks/RESULTS-seq2seq.md)."""
    model = keras.saving.load_model(translation_run / "model.keras")
    decoder = decoding.CachedDecoder(model)
    greedy = tf.function(lambda ids: decoding.greedy(decoder, ids, decoder.target_length)).get_concrete_function(
        tf.TensorSpec([None, model.inputs[0].shape[1]], tf.int32))
    bodies = [f for f in greedy.graph.as_graph_def().library.function if "while_body" in f.signature.name]
    assert bodies
    ops = {node.op for f in bodies for node in f.node_def}
    assert "MatMul" in ops and not ops & {"BatchMatMulV2", "BatchMatMulV3", "Softmax", "Einsum"}, sorted(ops)


def test_summaries_beat_the_lead_sentence(tmp_path_factory):
    from rouge_score import rouge_scorer

    run = _train("synthetic_summaries", tmp_path_factory)
    metrics = json.loads((run / "metrics.json").read_text())
    documents, summaries = datasets.get_dataset("synthetic_summaries").arrays("test")
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    lead = np.mean([scorer.score(s, d.split(" . ")[0])["rougeL"].fmeasure for d, s in zip(documents, summaries)])
    # The summary picks facts from several sentences past distractors and reorders them.
    assert lead < 0.4 and metrics["rougeL"] >= 0.6 and metrics["rougeL"] >= lead + 0.3, (metrics, lead)


def test_served_translation_answers_text_and_refuses_what_it_cannot_do(translation_run, tmp_path, capsys):
    from export.model_card import read_saved_model
    from serving import Client, ModelServer
    from serving.client import ServingError
    from zoo import cli

    # The command line in a fresh process, as a user runs it: the run's custom layers must
    # register there before model.keras loads.
    done = subprocess.run([sys.executable, "-m", "zoo.cli", "export", str(translation_run), "--base-path",
                           str(tmp_path / "models"), "--model-name", "translate"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    path = tmp_path / "models" / "translate" / "1"
    graph = read_saved_model(path).meta_graphs[0].graph_def
    ops = {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}
    assert "While" in ops or "StatelessWhile" in ops
    assert not [op for op in ops if op.startswith("Xla")], "TF Serving runs with XLA off"
    card = json.loads((path / "assets.extra" / "model_card.json").read_text())
    assert card["serving"]["checked"] and card["max_output_words"] == card["target_length"] - 1

    sources, _ = datasets.get_dataset("synthetic_translation").arrays("test")
    model = keras.saving.load_model(translation_run / "model.keras")
    info = json.loads((translation_run / "dataset.json").read_text())
    target = sequences.read_vocabulary(translation_run / info["target_vocabulary_file"])
    expected = sequences.as_text(python_greedy(model, _source_ids(translation_run, list(sources[:3]))), target)
    hostile = ["", "   ", " ".join(["the"] * 5_000), b"\xff\xfe the \xc3 man"]
    with ModelServer(model_config_file=str(tmp_path / "models" / "models.config"), port=0, host="127.0.0.1") as server:
        with Client(f"127.0.0.1:{server.grpc_port}", "translate") as client:
            texts = np.array([s.encode() for s in sources[:3]] + [h if isinstance(h, bytes) else h.encode()
                                                                   for h in hostile], dtype=object)
            answer = as_text(client.predict({"text": texts})["output_text"])
            assert answer[:3] == expected
            assert answer[3] == answer[4] == "", "no words in, no words out"
            assert isinstance(answer[5], str) and isinstance(answer[6], str)  # cut to the first words; defined
            assert client.predict({"text": np.array([], dtype=object)})["output_text"].shape == (0,)

            beams = client.predict({"text": texts[[0, 1, 3]]}, signature="beam_search")  # defaults: 4 beams
            assert beams["output_text"].shape == (3, 4) and beams["scores"].shape == (3, 4)
            assert as_text(beams["output_text"][:2, 0]) == expected[:2]
            assert not any(as_text(beams["output_text"][2])) and not beams["scores"][2].any()
            short = client.predict({"text": texts[:2], "beam_size": np.int32(2), "max_length": np.int32(2)},
                                   signature="beam_search")
            assert short["output_text"].shape == (2, 2)
            assert all(len(t.split()) <= 2 for t in as_text(short["output_text"]))
            for inputs, words in (({"beam_size": np.int32(9)}, "beam_size must be at most 8"),
                                  ({"beam_size": np.int32(0)}, "beam_size must be at least 1"),
                                  ({"max_length": np.int32(10_000)}, "max_length must be at most")):
                with pytest.raises(ServingError) as e:
                    client.predict(dict(inputs, text=texts[:1]), signature="beam_search")
                assert e.value.code.name == "INVALID_ARGUMENT" and words in str(e.value)
            with pytest.raises(ServingError) as e:
                client.predict({"text": np.array([1.0], np.float32)})
            assert e.value.code.name == "INVALID_ARGUMENT"
            # The server keeps serving after the refusals.
            assert as_text(client.predict({"text": texts[:1]})["output_text"]) == expected[:1]
        capsys.readouterr()
        assert cli.main(["predict", "--server", f"127.0.0.1:{server.grpc_port}", "--model", "translate",
                         sources[0]]) == 0
        assert expected[0] in capsys.readouterr().out


@pytest.mark.parametrize("name, source_key", [("ted_hrlr_translate/pt_to_en", "pt"), ("cnn_dailymail", "article")])
def test_tfds_seq2seq_sets_with_mock_data(monkeypatch, name, source_key):
    monkeypatch.setattr(tfds_source, "download_reachable", lambda timeout=3.0: True)
    with tfds.testing.mock_data(num_examples=12):
        ds, info = zoo.load_dataset(name, "train", batch_size=4, with_info=True, source_length=10, target_length=8)
        x, y = next(iter(ds))
    assert info.task == "seq2seq" and info.tokenizer == "sequences"
    assert x["source_ids"].shape == (4, 10) and x["target_ids"].shape == (4, 8) and y.shape == (4, 8)
    assert (x["target_ids"][:, 0] == sequences.START).numpy().all()
    # The labels are the decoder's input one position ahead, [END] after the words, -1 past it.
    labels, reads = y.numpy(), x["target_ids"].numpy()
    real = labels[:, :-1] >= 0
    np.testing.assert_array_equal(np.where(real, labels[:, :-1], 0), np.where(real, reads[:, 1:], 0))
    assert ((labels == sequences.END).sum(axis=1) <= 1).all()


def test_tokenizer_round_trips_words_and_cuts_long_text():
    vocabulary = sequences.compute_vocabulary(["the cat sat .", "a dog , the cat"], max_tokens=100)
    tokenizer = sequences.SequenceTokenizer(vocabulary, length=4)
    ids = tokenizer.encode(tf.constant(["the dog sat .", "", "zebra the cat sat on a mat", b"\xff the"]))
    assert ids.shape == (4, 4) and (ids.numpy()[1] == 0).all()
    assert as_text(tokenizer.decode(ids)) == ["the dog sat .", "", "the cat sat", "the"]
    assert ids.numpy()[2, 0] == sequences.UNK and ids.numpy()[3, 0] == sequences.UNK
    ended = tokenizer.encode(tf.constant(["the cat sat on a mat"]), end=True).numpy()[0]
    assert list(ended[-1:]) == [sequences.END], "[END] stays when the words are cut"
    with pytest.raises(ValueError, match="starts with"):
        sequences.SequenceTokenizer(["the", "cat"], length=4)
