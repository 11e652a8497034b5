"""Speech to text: the CTC recogniser, with its decoding inside the served graph.

Learning on the offline spoken sentences (voices and sentences unheard in training) in
about two minutes of CPU, the in-graph greedy decoder against a plain Python decode of
the Keras model's logits, padding invariance, WAV bytes against the same samples as a
waveform, a served export with hostile audio, and LibriSpeech's loader (mocked TFDS).
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import zoo
from zoo.data import dataset_info, registry as datasets, tfds_source
from zoo.tasks import audio_codec, speech_to_text as stt
from zoo.tasks.base import as_text
from tests.wav_files import wav_bytes

pytestmark = pytest.mark.slow  # minutes: learning or the README's commands (-m "not slow" leaves it out)

# The recipe the learning test holds to: 12 epochs of 7-10 s on two cores.
RECIPE = dict(epochs=12, batch_size=32, learning_rate=2e-3, mixed_precision="off")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return zoo.train("ctc_recognizer", "spoken_sentences", out_dir=tmp_path_factory.mktemp("stt") / "run", verbose=0,
                     **RECIPE)


@pytest.fixture(scope="module")
def model(run):
    return keras.saving.load_model(run / "model.keras")


@pytest.fixture(scope="module")
def test_clips():
    """(clips, texts) of the test split: float32 [N] each, varying lengths."""
    ds = datasets.get_dataset("spoken_sentences").examples("test")
    pairs = [(x, y.decode()) for x, y in ds.take(12).as_numpy_iterator()]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _batch(clips, length=None):
    """Clips zero-padded at the end to one batch [B, N]."""
    waveform = np.zeros((len(clips), length or max(len(c) for c in clips)), np.float32)
    for row, clip in zip(waveform, clips):
        row[:len(clip)] = clip
    return waveform


def _keras_text(model, waveform):
    logits = model({"waveform": waveform}, training=False)
    return stt.python_greedy(logits, stt.frame_lengths(logits)), logits


def test_recognizes_unheard_voices_and_sentences(run):
    metrics = json.loads((run / "metrics.json").read_text())
    # Test voices (espeak variants) and sentences never occur in training; every word does.
    assert metrics["wer"] <= 0.15 and metrics["cer"] <= 0.06, metrics
    print(f"\nctc_recognizer on spoken_sentences: WER {metrics['wer']:.3f}, CER {metrics['cer']:.3f}, "
          f"sentences {metrics['sentence_accuracy']:.2f}, {metrics['train_seconds_this_process']:.0f} s training")
    assert zoo.evaluate(run)["wer"] == pytest.approx(metrics["wer"])


def test_in_graph_greedy_decoding_equals_a_python_decode(run, model, test_clips):
    clips, _ = test_clips
    waveform = _batch(clips + [np.zeros(0, np.float32), np.zeros(3000, np.float32)])
    expected, logits = _keras_text(model, waveform)
    lengths = stt.frame_lengths(logits)
    assert as_text(stt.greedy_text(logits, lengths)) == expected
    assert sum(map(bool, expected)) >= 10  # a trained model: texts, not blanks
    beams = as_text(stt.beam_text(logits, lengths))
    assert len(beams) == len(expected) and np.mean([b == e for b, e in zip(beams, expected)]) >= 0.5
    # The run's predictor answers what serving_default answers; silence answers "".
    assert list(zoo.load(run)(waveform)["text"]) == expected[:-2] + ["", ""]


def test_a_clip_answers_the_same_alone_and_beside_a_much_longer_one(model, test_clips):
    clips, _ = test_clips
    short = min(clips, key=len)
    long = np.concatenate(clips[:4])  # several seconds longer
    alone_text, alone = _keras_text(model, short[None])
    batch_text, batch = _keras_text(model, _batch([short, long]))
    frames = int(stt.frame_lengths(alone)[0])
    assert int(stt.frame_lengths(batch)[0]) == frames and batch.shape[1] > 2 * frames
    np.testing.assert_allclose(batch[0, :frames], alone[0], atol=1e-4)
    assert batch_text[0] == alone_text[0] and alone_text[0]
    # Trailing zeros are padding wherever they come from.
    padded_text, padded = _keras_text(model, _batch([short], len(short) + 16000))
    np.testing.assert_allclose(padded[0, :frames], alone[0], atol=1e-4)
    assert padded_text == alone_text


def test_wav_bytes_decode_to_the_samples_a_waveform_gives(model, test_clips):
    clip = test_clips[0][0]
    samples = audio_codec.as_pcm16(clip)  # what a 16-bit WAV of the clip holds
    decoded = audio_codec.decode_wav(tf.constant(audio_codec.encode_wav(clip)), 16000 * 30).numpy()
    np.testing.assert_array_equal(decoded, samples)
    text, logits = _keras_text(model, samples[None])
    wav_text, wav_logits = _keras_text(model, decoded[None])
    np.testing.assert_allclose(wav_logits, logits, atol=1e-5)
    assert wav_text == text


def test_text_normalization_and_labels():
    texts = tf.constant(["Turn OFF the lights!", "Don\u2019t stop-now, 42 times", "   ", "caf\u00e9 au lait"])
    assert as_text(stt.normalize_text(texts)) == ["turn off the lights", "don't stop now times", "", "caf au lait"]
    ids = stt.encode_text(stt.normalize_text(tf.constant("It's a b")))
    assert list(ids.numpy()) == [9, 20, 27, 19, 0, 1, 0, 2]
    assert stt.ids_text(list(ids.numpy()) + [stt.BLANK, -1]) == "it's a b"
    # The task's CTC loss reads each clip's frames from the logits' mask.
    logits = tf.random.stateless_normal([2, 6, stt.NUM_CLASSES], [1, 2])
    labels = tf.constant([[1, 2, -1], [3, -1, -1]])
    full = stt.ctc_losses(labels, logits, tf.constant([6, 6]))
    short = stt.ctc_losses(labels, logits, tf.constant([6, 3]))
    logits._keras_mask = tf.sequence_mask([6, 3], 6)
    np.testing.assert_allclose(stt.CTCLoss(reduction=None)(labels, logits), short, rtol=1e-6)
    assert not np.isclose(full[1], short[1])


def test_served_export_answers_text_and_refuses_what_it_cannot_read(run, model, test_clips, tmp_path, capsys):
    from export import export_saved_model
    from export.model_card import read_saved_model
    from serving import Client, ModelServer
    from serving.client import ServingError
    from zoo import cli

    path = export_saved_model(run, tmp_path / "models", "stt")
    ops = {n.op for f in read_saved_model(path).meta_graphs[0].graph_def.library.function for n in f.node_def}
    assert {"CTCGreedyDecoder", "CTCBeamSearchDecoder", "DecodeWav"} <= ops
    assert not [op for op in ops if op.startswith("Xla")], "TF Serving runs with XLA off"
    card = json.loads((path / "assets.extra" / "model_card.json").read_text())
    assert card["characters"] == " abcdefghijklmnopqrstuvwxyz'" and card["max_seconds"] == 30

    clips, _ = test_clips
    waveform = audio_codec.as_pcm16(_batch(clips[:3]))
    expected, _ = _keras_text(model, waveform)
    wav = audio_codec.encode_wav(clips[0])
    pcm = np.round(clips[0] * 20000).astype("<i2")
    bad = {
        "not a WAV": b"hello, this is not audio",
        "truncated header": wav[:30],
        "truncated data": wav[:len(wav) // 2],
        "8-bit": wav_bytes((pcm // 256 + 128).astype(np.uint8).tobytes(), 1),
        "24-bit": wav_bytes(b"".join((int(s) * 256).to_bytes(3, "little", signed=True) for s in pcm[:4000]), 3),
        "8 kHz": wav_bytes(pcm.tobytes(), 2, rate=8000),
        "31 s": wav_bytes(np.zeros(31 * 16000, "<i2").tobytes(), 2),
    }
    with ModelServer(model_config_file=str(tmp_path / "models" / "models.config"), port=0, host="127.0.0.1") as server:
        with Client(f"127.0.0.1:{server.grpc_port}", "stt") as client:
            assert as_text(client.predict({"waveform": waveform})["text"]) == expected
            wavs = np.array([audio_codec.encode_wav(c) for c in clips[:3]], dtype=object)
            assert as_text(client.predict({"audio_bytes": wavs}, signature="audio_bytes")["text"]) == expected
            beams = as_text(client.predict({"waveform": waveform}, signature="beam_search")["text"])
            assert len(beams) == 3 and all(isinstance(b, str) for b in beams)
            # Nothing, or silence, answers "": an empty WAV, an empty clip, zeros.
            empty = np.array([wav_bytes(b"", 2), wav], dtype=object)
            assert as_text(client.predict({"audio_bytes": empty}, signature="audio_bytes")["text"]) == \
                ["", expected[0]]
            assert as_text(client.predict({"waveform": np.zeros((2, 0), np.float32)})["text"]) == ["", ""]
            assert as_text(client.predict({"waveform": np.zeros((1, 8000), np.float32)})["text"]) == [""]
            assert client.predict({"waveform": np.zeros((0, 100), np.float32)})["text"].shape == (0,)
            for what, data in bad.items():
                with pytest.raises(ServingError) as e:
                    client.predict({"audio_bytes": np.array([data], dtype=object)}, signature="audio_bytes")
                assert e.value.code.name == "INVALID_ARGUMENT", what
            for what, samples in (("too long", np.zeros((1, 31 * 16000), np.float32)),
                                  ("NaN", np.full((1, 1600), np.nan, np.float32))):
                with pytest.raises(ServingError) as e:
                    client.predict({"waveform": samples})
                assert e.value.code.name == "INVALID_ARGUMENT", what
            # The server keeps answering after the refusals.
            assert as_text(client.predict({"waveform": waveform[:1]})["text"]) == expected[:1]
        (tmp_path / "clip.wav").write_bytes(wav)
        capsys.readouterr()
        assert cli.main(["predict", "--server", f"127.0.0.1:{server.grpc_port}", "--model", "stt",
                         str(tmp_path / "clip.wav")]) == 0
        assert expected[0] in capsys.readouterr().out


def test_tfds_speech_sets_with_mock_data(monkeypatch):
    monkeypatch.setattr(tfds_source, "download_reachable", lambda timeout=3.0: True)
    with tfds.testing.mock_data(num_examples=8):
        ds, info = zoo.load_dataset("librispeech", "train", batch_size=4, with_info=True)
        x, y = next(iter(ds))
        commands = dataset_info("speech_commands")
    assert info.task == "speech_to_text" and commands.task == "audio_classification"
    waveform, labels = x["waveform"].numpy(), y.numpy()
    # int16 speech scaled to -1..1; batches padded to their longest clip, labels with -1.
    assert waveform.dtype == np.float32 and waveform.shape[0] == 4 and np.abs(waveform).max() <= 1.0
    assert labels.dtype == np.int32 and labels.min() >= stt.PAD_LABEL and labels.max() < stt.BLANK
    assert ((labels == stt.PAD_LABEL).sum(axis=1) < labels.shape[1]).any()
