"""Spoken commands: WAV bytes or samples in, a label out, features computed in the graph.

Learning on the offline spoken-command set (voices held out of training), the clip
rule, `audio_bytes` against `waveform`, and a served model given what a client should
not send (not a WAV, truncated, 8- and 24-bit PCM, 44.1 kHz, a ten-minute clip, an
empty one).
"""

import json

import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.data import registry as datasets
from zoo.tasks import audio_codec
from zoo.tasks.base import as_text
from tests.wav_files import wav_bytes

pytestmark = pytest.mark.slow  # minutes: learning or the README's commands (-m "not slow" leaves it out)


@pytest.fixture(scope="module")
def commands_run(tmp_path_factory):
    return zoo.train("ds_cnn", "spoken_commands", epochs=8, batch_size=32, learning_rate=3e-3, lr_schedule="cosine",
                     out_dir=tmp_path_factory.mktemp("commands") / "run", verbose=0)


def test_spoken_commands_are_recognised_in_voices_never_heard(commands_run):
    metrics = json.loads((commands_run / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.90, metrics  # the test split's voices are not in training
    card = zoo.load(commands_run)
    clips, labels = next(iter(datasets.get_dataset("spoken_commands").examples("test").batch(16)))
    answers = card(clips.numpy())
    names = datasets.get_dataset("spoken_commands").info().label_names
    assert np.mean([a == names[y] for a, y in zip(as_text(answers["label"]), labels.numpy())]) >= 0.75


def test_the_clip_rule_and_wav_decoding():
    rng = np.random.default_rng(0)
    half = rng.uniform(-0.5, 0.5, 8_000).astype(np.float32)
    padded = audio_codec.fit_clip(tf.constant(half)).numpy()
    assert padded.shape == (16_000,) and (padded[:8_000] == half).all() and not padded[8_000:].any()
    long = rng.uniform(-0.5, 0.5, 40_000).astype(np.float32)
    assert (audio_codec.fit_clip(tf.constant(long[None])).numpy()[0] == long[:16_000]).all()
    # A WAV of 16-bit samples decodes to exactly them; stereo is the channels' mean.
    pcm = audio_codec.as_pcm16(half)
    assert (audio_codec.decode_wav(tf.constant(audio_codec.encode_wav(pcm)), 16_000).numpy() == pcm).all()
    stereo = np.stack([np.full(100, 1000), np.full(100, -3000)], axis=1)
    mono = audio_codec.decode_wav(tf.constant(wav_bytes(stereo, channels=2)), 16_000).numpy()
    np.testing.assert_allclose(mono, -1000 / 32768, atol=1e-7)
    assert audio_codec.decode_wav(tf.constant(wav_bytes(np.zeros(0))), 16_000).numpy().shape == (0,)


def test_served_commands_take_wav_bytes_and_refuse_bad_audio(commands_run, tmp_path, capsys):
    from export import export_saved_model
    from serving import Client, ModelServer
    from serving.client import ServingError
    from zoo import cli

    path = export_saved_model(commands_run, tmp_path / "models", "commands")
    card = json.loads((path / "assets.extra" / "model_card.json").read_text())
    assert card["sample_rate"] == 16_000 and card["clip_seconds"] == 1.0
    capsys.readouterr()
    assert cli.main(["info", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "sample_rate" in shown and "16000" in shown and "clip_rule" in shown
    clips = np.stack([x for x, _ in datasets.get_dataset("spoken_commands").examples("test").take(3)
                      .as_numpy_iterator()])
    clips = audio_codec.as_pcm16(clips)
    wavs = np.array([audio_codec.encode_wav(c) for c in clips], dtype=object)
    ten_minutes = wav_bytes(np.zeros(16_000 * 600, np.int16))
    with ModelServer(model_config_file=str(tmp_path / "models" / "models.config"), port=0, host="127.0.0.1") as server:
        with Client(f"127.0.0.1:{server.grpc_port}", "commands") as client:
            samples = client.predict({"waveform": clips})
            decoded = client.predict({"audio_bytes": wavs}, signature="audio_bytes")
            np.testing.assert_allclose(decoded["probabilities"], samples["probabilities"], atol=1e-5)
            assert as_text(decoded["label"]) == as_text(samples["label"])
            # Any length: cut or padded to a second by the clip rule, like training.
            short = client.predict({"waveform": clips[:, :4_000]})
            assert short["probabilities"].shape == (3, 10)
            empty = client.predict({"audio_bytes": np.array([wav_bytes(np.zeros(0))], dtype=object)},
                                   signature="audio_bytes")
            assert np.isfinite(empty["probabilities"]).all()  # an empty clip is silence: a defined answer
            bad = {
                "not a WAV": (b"ID3\x03 this is an mp3", "Header mismatch"),
                "truncated": (wavs[0][:30], "too short"),
                "8-bit": (wav_bytes(np.full(800, 128), width=1), "16-bit"),
                "24-bit": (wav_bytes(np.zeros(800, np.int32), width=3), "16-bit"),
                "44.1 kHz": (wav_bytes(np.zeros(4_410, np.int16), rate=44_100), "44100"),
                "ten minutes": (ten_minutes, "more than this model takes"),
            }
            for what, (data, words) in bad.items():
                with pytest.raises(ServingError) as e:
                    client.predict({"audio_bytes": np.array([data], dtype=object)}, signature="audio_bytes")
                assert e.value.code.name == "INVALID_ARGUMENT" and words in str(e.value), (what, str(e.value))
            again = client.predict({"audio_bytes": wavs}, signature="audio_bytes")  # still serving
            np.testing.assert_allclose(again["probabilities"], decoded["probabilities"], atol=1e-6)
        files = []
        for i, data in enumerate(wavs[:2]):
            files.append(tmp_path / f"clip{i}.wav")
            files[-1].write_bytes(data)
        capsys.readouterr()
        assert cli.main(["predict", "--server", f"127.0.0.1:{server.grpc_port}", "--model", "commands",
                         *map(str, files)]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        assert [line.split("\t")[1] for line in lines] == as_text(decoded["label"][:2])
        # Locally, without a server: the export answers the same files in this process.
        assert cli.main(["predict", "--local", str(tmp_path / "models" / "commands"), *map(str, files)]) == 0
        local = capsys.readouterr().out.strip().splitlines()
        assert [line.split("\t")[1] for line in local] == as_text(decoded["label"][:2])
        assert cli.main(["predict", "--local", str(commands_run), str(files[0])]) != 0
        assert "is a run; --local takes an export" in capsys.readouterr().err
        (tmp_path / "notes.txt").write_text("hello")
        assert cli.main(["predict", "--server", f"127.0.0.1:{server.grpc_port}", "--model", "commands",
                         str(tmp_path / "notes.txt")]) != 0
        assert "not a WAV file" in capsys.readouterr().err
