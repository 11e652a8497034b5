"""The offline speech sets: spoken_commands and spoken_sentences, spoken by espeak-ng.

The validation and test splits are synthesized once (into the usual cache, so later
sessions read them); the train splits are checked through their plans and a few clips.
"""

import collections

import numpy as np
import pytest

from zoo.data import speech
from zoo.data.info import DatasetUnavailableError
from zoo.data.registry import get_dataset

NAMES = tuple(speech.RECIPES)
SPLITS = ("train", "validation", "test")
PLANS = {"spoken_commands": speech.command_clips, "spoken_sentences": speech.sentence_clips}


@pytest.fixture(scope="session")
def held_splits():
    """(name, split) -> the arrays of the validation and test splits of both sets."""
    return {(name, split): speech.load_split(name, split) for name in NAMES for split in ("validation", "test")}


def _clips(arrays):
    ends = np.cumsum(arrays["lengths"])
    return [arrays["audio"][end - n:end].astype(np.float32) / 32768 for end, n in zip(ends, arrays["lengths"])]


def _without_espeak(monkeypatch, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", str(empty))


@pytest.mark.parametrize("name, shape", [("spoken_commands", (16000,)), ("spoken_sentences", (None,))])
def test_info_is_known_without_synthesizing(name, shape, monkeypatch, tmp_path):
    # `zoo datasets` asks every offline set for its info: that must not synthesize anything.
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path))
    _without_espeak(monkeypatch, tmp_path)
    info = get_dataset(name).info()
    assert info.input_shape == shape and info.input_dtype == "float32" and info.source == "offline"
    assert info.num_examples == {split: n for split, (n, _) in speech.RECIPES[name].splits.items()}
    assert info.label_names == (speech.COMMANDS if name == "spoken_commands" else ())
    assert not (tmp_path / "speech").exists()


@pytest.mark.parametrize("name", NAMES)
def test_examples_are_float_waveforms_in_range(name, held_splits):
    import tensorflow as tf

    ds = get_dataset(name).examples("validation")
    audio_spec, label_spec = ds.element_spec
    assert audio_spec.dtype == tf.float32 and audio_spec.shape.as_list() == [speech.RECIPES[name].length]
    assert label_spec.dtype == (tf.int64 if name == "spoken_commands" else tf.string)
    assert int(ds.cardinality()) == speech.RECIPES[name].splits["validation"][0]
    for waveform, label in ds.take(20):
        waveform = waveform.numpy()
        assert -1 <= waveform.min() and waveform.max() <= 1 and len(waveform) <= 4 * speech.SAMPLE_RATE
    for split in ("validation", "test"):
        arrays = held_splits[name, split]
        rms = np.array([np.sqrt(np.mean(clip ** 2)) for clip in _clips(arrays)])
        assert rms.min() > 0.003, "a clip is all but silent"
        # The speech is where the metadata says: louder there than in the noise around it.
        clip, start, n = _clips(arrays)[0], arrays["speech_offset"][0], arrays["speech_length"][0]
        outside = np.concatenate([clip[:start], clip[start + n:]])
        assert np.sqrt(np.mean(clip[start:start + n] ** 2)) > 2 * np.sqrt(np.mean(outside ** 2))


def test_command_words_sit_at_varied_offsets(held_splits):
    arrays = held_splits["spoken_commands", "validation"]
    assert set(arrays["lengths"]) == {speech.SAMPLE_RATE}
    offsets = arrays["speech_offset"]
    assert offsets.std() > 1000 and offsets.min() < 2000 and offsets.max() > 8000
    assert (offsets + arrays["speech_length"] <= speech.SAMPLE_RATE).all()
    assert len(set(arrays["noise"])) == len(speech.NOISES) and arrays["snr_db"].min() >= 10


@pytest.mark.parametrize("name", NAMES)
def test_voices_of_validation_and_test_are_never_heard_in_train(name, held_splits):
    voices = {split: {clip.voice for clip in PLANS[name](split)} for split in SPLITS}
    variants = {split: {v.split("+")[1] for v in vs} for split, vs in voices.items()}
    assert len(voices["train"]) >= 15 and len(voices["validation"]) >= 2 and len(voices["test"]) >= 3
    assert not variants["train"] & variants["validation"] and not variants["train"] & variants["test"]
    assert not variants["validation"] & variants["test"]
    for split in ("validation", "test"):
        assert set(held_splits[name, split]["voice"]) == voices[split]


def test_commands_are_balanced(held_splits):
    for split in SPLITS:
        n = speech.COMMAND_SPLITS[split][0]
        counts = collections.Counter(clip.label for clip in speech.command_clips(split))
        assert counts == {label: n // 10 for label in range(10)}
    labels = held_splits["spoken_commands", "test"]["labels"]
    assert collections.Counter(labels.tolist()) == {label: 30 for label in range(10)}
    assert all(text == speech.COMMANDS[label] for text, label in zip(held_splits["spoken_commands", "test"]["text"],
                                                                     labels))


def test_sentences_come_from_the_grammar(held_splits):
    vocabulary, grammar = set(speech.vocabulary()), set(speech.sentences())
    assert 60 <= len(vocabulary) <= 110
    texts = {split: [clip.text for clip in speech.sentence_clips(split)] for split in SPLITS}
    for split, sentences in texts.items():
        assert set(sentences) <= grammar and all(3 <= len(s.split()) <= 6 for s in sentences)
        assert all(s == s.lower().strip() and set(s) <= set("abcdefghijklmnopqrstuvwxyz ") for s in sentences)
    train_words = {w for s in texts["train"] for w in s.split()}
    for split in ("validation", "test"):
        assert not set(texts[split]) & set(texts["train"])  # unseen sentences...
        assert {w for s in texts[split] for w in s.split()} <= train_words  # ...of known words
        assert list(held_splits["spoken_sentences", split]["labels"]) == texts[split]
    assert len(set(texts["train"])) > 500 and len(set(texts["test"])) > 100


def test_synthesis_is_deterministic():
    assert speech.command_clips("train", 5) == speech.command_clips("train")[:5]
    assert speech.sentence_clips("test", 3) == speech.sentence_clips("test")[:3]
    for clip, length in [(speech.command_clips("train", 1)[0], speech.SAMPLE_RATE),
                         (speech.sentence_clips("train", 1)[0], None)]:
        first, second = speech.render(clip, length), speech.render(clip, length)
        assert np.array_equal(first[0], second[0]) and first[1:] == second[1:]
    assert speech.RECIPES["spoken_commands"].key() == speech.RECIPES["spoken_commands"].key()


def test_cache_is_written_atomically_and_follows_the_recipe(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path))
    monkeypatch.setitem(speech.COMMAND_SPLITS, "validation", (6, 602))  # the recipe shares this dict
    path = speech.cache_path("spoken_commands", "validation")
    assert path.parent == tmp_path / "speech"

    # A writer killed mid-write leaves no file behind, and its temporary is cleaned up.
    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(np, "savez", killed)
        with pytest.raises(KeyboardInterrupt):
            speech.load_split("spoken_commands", "validation")
    assert list(path.parent.iterdir()) == []
    stale = path.parent / f".{path.stem}.tmp999999999.npz"  # left by a process that is gone
    stale.write_bytes(b"half a file")

    first = speech.load_split("spoken_commands", "validation")
    assert len(first["lengths"]) == 6 and str(first["recipe"]) == speech.RECIPES["spoken_commands"].key()
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    # Synthesized again, the split is identical; once cached it loads without espeak-ng.
    path.unlink()
    second = speech.load_split("spoken_commands", "validation")
    assert all(np.array_equal(first[k], second[k]) for k in first)
    with monkeypatch.context() as m:
        _without_espeak(m, tmp_path)
        assert np.array_equal(speech.load_split("spoken_commands", "validation")["audio"], first["audio"])

    # A changed recipe is a new key: synthesized again, and the old file goes.
    monkeypatch.setitem(speech.COMMAND_SPLITS, "validation", (4, 602))
    new_path = speech.cache_path("spoken_commands", "validation")
    assert new_path != path
    third = speech.load_split("spoken_commands", "validation")
    assert len(third["lengths"]) == 4
    assert sorted(p.name for p in path.parent.iterdir()) == [new_path.name]


def test_missing_espeak_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path))
    _without_espeak(monkeypatch, tmp_path)
    with pytest.raises(DatasetUnavailableError, match="espeak-ng") as caught:
        speech.load_split("spoken_sentences", "test")
    message = str(caught.value)
    assert "apt-get install espeak-ng" in message and "brew install espeak-ng" in message and "make test" in message
    assert not list(tmp_path.glob("speech/*"))


def test_prebuild_command_says_what_it_built(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path))
    for splits in (speech.COMMAND_SPLITS, speech.SENTENCE_SPLITS):
        for split, (_, seed) in list(splits.items()):
            monkeypatch.setitem(splits, split, (2, seed))
    speech.main()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and all("2 clips" in line and "synthesized in" in line for line in lines)
    speech.main()
    assert all("cached" in line for line in capsys.readouterr().out.splitlines())
