"""`spoken_commands` and `spoken_sentences`: offline speech, synthesized with espeak-ng.

Real synthesized speech, not tones: espeak-ng (a formant synthesizer packaged by every
Linux distribution and Homebrew) speaks each clip, and the clip is then put in a room:

- Speakers. A speaker is an espeak accent (American, British, Scottish, RP, Lancaster,
  West Midlands, Caribbean, New York) with a voice variant (`m3`, `f2`, `klatt`,
  `belinda`, ...: formants, breathiness, glottal source). Every variant belongs to one
  speaker, and the speakers are split: 20 speak in train only, 2 in validation only and
  3 in test only, so validation and test measure how a model does on voices it never
  heard (as the real Speech Commands split keeps each person in one split).
- Delivery. Each clip draws its speed (120-200 words a minute) and pitch (20-80 of
  espeak's 0-99).
- Room. Speech is mixed with noise at a signal-to-noise ratio of 10-30 dB (speech power
  over the spoken part): white, pink or brown noise, a mains hum (50 or 60 Hz and its
  harmonics over faint pink noise) or a fan (brown noise, a blade tone, a slow wobble).
  Then a random gain sets the clip's peak between -20 and -1 dBFS.

`spoken_commands` (audio_classification) holds the ten core words of Speech Commands
(yes, no, up, down, left, right, on, off, stop, go), balanced, each in a one-second clip
(16,000 samples) at a random offset, as in the real set. `spoken_sentences`
(speech_to_text) holds short spoken commands of 3 to 6 words ("turn off the kitchen
lights", "set a timer for ten minutes", "call my sister at noon") from a small grammar
over 101 words, lower case, at most 4 s each, with 0.05-0.3 s of room before and after.
One sentence in five (by a hash of its text) is kept out of train: validation and test
speak only those, so their sentences are unseen as well as their voices, while every
word they use occurs in train.

Inputs are float32 waveforms at 16 kHz mono in [-1, 1]: [16000] for commands, [N] for
sentences. Clips are synthesized on first use (a few tens of seconds per set on two
cores) and cached as int16 under `$ZOO_DATA_DIR/speech/` (default
`~/.cache/keras-zoo/speech/`), one file per split named by a hash of the recipe below,
so a changed recipe synthesizes again. `python -m zoo.data.speech` builds both sets.
espeak-ng's output is deterministic: the same recipe gives the same clips.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import io
import itertools
import json
import logging
import os
import pathlib
import shutil
import subprocess
import time
import wave
import zlib
from typing import Callable

import numpy as np

from zoo.data.info import DatasetInfo, DatasetUnavailableError
from zoo.data.registry import ArrayDataset, add_dataset
from zoo.stale_files import remove_stale

log = logging.getLogger(__name__)

# Bump when the synthesis or the mixing changes in a way the recipe's fields do not show.
RECIPE_VERSION = 1
SAMPLE_RATE = 16_000
ESPEAK = "espeak-ng"
# Below espeak's default of 100, where some variants clip inside the synthesizer.
AMPLITUDE = 50
PITCHES = (20, 80)
SPEEDS = (120, 200)  # words per minute
NOISES = ("white", "pink", "brown", "hum", "fan")
SNR_DB = (10.0, 30.0)
PEAK_DB = (-20.0, -1.0)
WORKERS = min(4, os.cpu_count() or 1)
INSTALL_HINT = ("install espeak-ng: `apt-get install espeak-ng` (Debian/Ubuntu), `brew install espeak-ng` "
                "(macOS); `make test` / `make demo` install it on Debian")

# (espeak accent, voice variant); no variant is shared between speakers, so no split
# hears another split's voices. Robotic and whispering variants are left out.
SPEAKERS = {
    "train": (
        ("en-us", "m1"), ("en", "m2"), ("en-gb-scotland", "m3"), ("en-gb-x-rp", "m5"),
        ("en-gb-x-gbclan", "m6"), ("en-gb-x-gbcwmd", "m7"), ("en-029", "f1"), ("en-us-nyc", "f2"),
        ("en-us", "f4"), ("en", "f5"), ("en-gb-scotland", "klatt"), ("en-gb-x-rp", "klatt3"),
        ("en-gb-x-gbclan", "Andy"), ("en-gb-x-gbcwmd", "Annie"), ("en-029", "adam"), ("en-us-nyc", "aunty"),
        ("en-us", "belinda"), ("en", "david"), ("en-gb-x-rp", "grandpa"), ("en-us", "linda"),
    ),
    "validation": (("en-gb-scotland", "m4"), ("en-us", "steph")),
    "test": (("en", "f3"), ("en-gb-x-rp", "klatt2"), ("en-029", "norbert")),
}

COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
COMMAND_SPLITS = {"train": (2500, 601), "validation": (300, 602), "test": (300, 603)}
SENTENCE_SPLITS = {"train": (2000, 701), "validation": (200, 702), "test": (200, 703)}
MAX_SENTENCE_SECONDS = 4.0
MARGIN_SECONDS = (0.05, 0.3)  # room before and after a sentence
HOLD_OUT = 5  # one sentence in HOLD_OUT (crc32 of its text) is validation and test only

# The sentence grammar: templates over slots, every expansion of 3 to 6 words.
SLOTS = {
    "switch": "on off",
    "room": "kitchen bedroom bathroom garage hallway garden",
    "device": "light lights fan heater radio oven",
    "color": "red green blue yellow white",
    "count": "two three four five six seven eight nine ten fifteen twenty thirty",
    "unit": "minutes seconds hours",
    "hour": "one two three four five six seven eight nine ten noon midnight",
    "person": "mother father sister brother friend doctor",
    "genre": "jazz rock classical pop",
    "opener": "open close lock",
    "opening": "door window",
    "day": "today tomorrow tonight",
    "change": "warmer cooler brighter darker",
    "media": "music timer alarm",
    "food": "milk eggs bread coffee apples",
    "direction": "up down",
}
TEMPLATES = (
    "turn {switch} the {room} {device}",
    "turn {switch} the {color} {room} {device}",
    "turn the {device} {switch}",
    "turn the {color} light {switch}",
    "turn the {room} {device} {switch}",
    "make the {room} {device} {change}",
    "make the {room} {change}",
    "set a timer for {count} {unit}",
    "set an alarm for {hour}",
    "set an alarm for {hour} {day}",
    "wake me up at {hour}",
    "wake me up at {hour} {day}",
    "call my {person}",
    "call my {person} at {hour}",
    "call my {person} at {hour} {day}",
    "call my {person} {day}",
    "send a message to my {person}",
    "play some {genre} music",
    "play {genre} music in the {room}",
    "play the next song",
    "{opener} the {opening}",
    "{opener} the {room} {opening}",
    "what is the weather {day}",
    "what time is it",
    "stop the {media}",
    "set the {room} temperature to {count}",
    "remind me to buy {food}",
    "add {food} to my list",
    "turn the volume {direction}",
)


@functools.lru_cache(maxsize=None)
def _by_template() -> tuple[tuple[str, ...], ...]:
    """Every sentence of the grammar, one tuple per template."""
    out = []
    for template in TEMPLATES:
        names = [part.split("}")[0] for part in template.split("{")[1:]]
        out.append(tuple(template.format(**dict(zip(names, words)))
                         for words in itertools.product(*(SLOTS[name].split() for name in names))))
    return tuple(out)


def sentences() -> tuple[str, ...]:
    """Every sentence of the grammar, in template order."""
    return tuple(itertools.chain.from_iterable(_by_template()))


def vocabulary() -> tuple[str, ...]:
    """The grammar's words, sorted."""
    return tuple(sorted({word for sentence in sentences() for word in sentence.split()}))


def _held_out(sentence: str) -> bool:
    return zlib.crc32(sentence.encode()) % HOLD_OUT == 0


@dataclasses.dataclass(frozen=True)
class Clip:
    """How one clip is made: what is said, by whom, how, and in what room."""

    text: str
    label: int | str
    voice: str  # espeak's "accent+variant"
    speed: int
    pitch: int
    noise: str
    snr_db: float
    peak_db: float
    seed: int  # the clip's own randomness: where the speech sits, the noise


def _voice(speaker) -> str:
    return f"{speaker[0]}+{speaker[1]}"


def _draw(rng, split, text, label) -> Clip:
    speakers = SPEAKERS[split]
    return Clip(text=text, label=label, voice=_voice(speakers[rng.integers(len(speakers))]),
                speed=int(rng.integers(SPEEDS[0], SPEEDS[1] + 1)), pitch=int(rng.integers(PITCHES[0], PITCHES[1] + 1)),
                noise=NOISES[rng.integers(len(NOISES))], snr_db=round(float(rng.uniform(*SNR_DB)), 2),
                peak_db=round(float(rng.uniform(*PEAK_DB)), 2), seed=int(rng.integers(2**31)))


def command_clips(split: str, count: int | None = None) -> list[Clip]:
    """The plan of `spoken_commands`' split: balanced words, in a seeded order."""
    n, seed = COMMAND_SPLITS[split]
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(COMMANDS))
    return [_draw(rng, split, COMMANDS[label], int(label)) for label in labels[:count]]


def sentence_clips(split: str, count: int | None = None) -> list[Clip]:
    """The plan of `spoken_sentences`' split: sentences of its part of the grammar, template by template."""
    n, seed = SENTENCE_SPLITS[split]
    rng = np.random.default_rng(seed)
    groups = [[s for s in group if _held_out(s) == (split != "train")] for group in _by_template()]
    groups = [group for group in groups if group]
    # A template is drawn with a weight of the square root of its sentences, so that the
    # big ones do not crowd out the rest, nor the small ones repeat a sentence too often.
    weights = np.sqrt([len(group) for group in groups])
    clips = []
    for _ in range(n if count is None else min(count, n)):
        group = groups[rng.choice(len(groups), p=weights / weights.sum())]
        sentence = group[rng.integers(len(group))]
        clips.append(_draw(rng, split, sentence, sentence))
    return clips


# --------------------------------------------------------------------------- synthesis


def espeak_binary() -> str:
    """The espeak-ng executable, or a DatasetUnavailableError that says how to install it."""
    path = shutil.which(ESPEAK)
    if path is None:
        raise DatasetUnavailableError(
            f"The offline speech sets (spoken_commands, spoken_sentences) are synthesized with {ESPEAK}, "
            f"which is not on PATH: {INSTALL_HINT}.")
    return path


def synthesize(text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """`text` spoken by espeak-ng: float32 at SAMPLE_RATE, the silence around it trimmed."""
    command = [espeak_binary(), "-v", voice, "-s", str(speed), "-p", str(pitch), "-a", str(AMPLITUDE),
               "--stdout", text]
    done = subprocess.run(command, capture_output=True, timeout=60, check=False)
    if done.returncode != 0 or len(done.stdout) <= 44:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
    with wave.open(io.BytesIO(done.stdout)) as wav:
        rate = wav.getframerate()
        # Written to a pipe, the header's length is a placeholder: read what is there.
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    x = _resample(pcm.astype(np.float32) / 32768.0, rate)
    loud = np.flatnonzero(np.abs(x) > 0.02 * np.abs(x).max())
    if not len(loud):
        raise RuntimeError(f"{ESPEAK} said nothing for {text!r} ({voice}).")
    keep = int(0.005 * SAMPLE_RATE)  # 5 ms either side: the onset and release of the sound
    return x[max(loud[0] - keep, 0):loud[-1] + keep + 1]


def _resample(x: np.ndarray, rate: int) -> np.ndarray:
    # espeak speaks at 22,050 Hz. Resampling in the frequency domain drops everything
    # above 8 kHz exactly; the clip starts and ends in silence, so its wrap-around is harmless.
    if rate == SAMPLE_RATE:
        return x
    m = int(round(len(x) * SAMPLE_RATE / rate))
    spectrum = np.fft.rfft(x)[:m // 2 + 1]
    return (np.fft.irfft(spectrum, m) * (m / len(x))).astype(np.float32)


def noise(kind: str, n: int, rng) -> np.ndarray:
    """`n` samples of a room noise at unit RMS."""
    t = np.arange(n) / SAMPLE_RATE
    if kind == "white":
        x = rng.standard_normal(n)
    elif kind in ("pink", "brown"):
        x = _coloured(rng, n, 1.0 if kind == "pink" else 2.0)
    elif kind == "hum":  # mains: a fundamental and its harmonics, over faint pink noise
        f0 = rng.choice([50.0, 60.0])
        x = sum(rng.uniform(0.3, 1.0) / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
                for k in range(1, 7))
        x = x / np.std(x) + 0.2 * _coloured(rng, n, 1.0)
    elif kind == "fan":  # broadband rumble, a blade tone and a slow wobble
        blade = np.sin(2 * np.pi * rng.uniform(80, 240) * t)
        wobble = 1 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t + rng.uniform(0, 2 * np.pi))
        x = (_coloured(rng, n, 2.0) + rng.uniform(0.2, 0.6) * blade) * wobble
    else:
        raise ValueError(f"Unknown noise {kind!r}; known: {', '.join(NOISES)}.")
    return (x / (np.std(x) + 1e-12)).astype(np.float32)


def _coloured(rng, n, exponent):
    # Power falling as 1/f**exponent (pink 1, brown 2); below 20 Hz is cut, so no drift.
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum *= np.where(f < 20, 0.0, np.maximum(f, 20) ** (-exponent / 2))
    x = np.fft.irfft(spectrum, n)
    return x / (np.std(x) + 1e-12)


def render(clip: Clip, length: int | None = None) -> tuple[np.ndarray, int, int]:
    """(int16 audio, where the speech starts, how long it is) of `clip`.

    With `length` the speech sits at a random offset inside that many samples (cut to
    fit, if it is longer); without it the clip is the speech with a random margin either
    side, up to MAX_SENTENCE_SECONDS (spoken faster if it would not fit).
    """
    rng = np.random.default_rng(clip.seed)
    speech = synthesize(clip.text, clip.voice, clip.speed, clip.pitch)
    if length is None:
        limit = int(MAX_SENTENCE_SECONDS * SAMPLE_RATE)
        margins = [int(rng.uniform(*MARGIN_SECONDS) * SAMPLE_RATE) for _ in range(2)]
        speed = clip.speed
        while len(speech) + 2 * int(MARGIN_SECONDS[0] * SAMPLE_RATE) > limit:
            speed = int(speed * 1.2)
            speech = synthesize(clip.text, clip.voice, speed, clip.pitch)
        room = limit - len(speech)
        if sum(margins) > room:
            margins = [m * room // sum(margins) for m in margins]
        offset, length = margins[0], margins[0] + len(speech) + margins[1]
    else:
        speech = speech[:length]
        offset = int(rng.integers(length - len(speech) + 1))
    audio = np.zeros(length, np.float32)
    audio[offset:offset + len(speech)] = speech
    speech_power = float(np.mean(speech ** 2))
    audio += noise(clip.noise, length, rng) * np.sqrt(speech_power / 10 ** (clip.snr_db / 10))
    audio *= 10 ** (clip.peak_db / 20) / np.abs(audio).max()
    return np.round(audio * 32767).astype(np.int16), offset, len(speech)


# --------------------------------------------------------------------------- the sets and their cache


@dataclasses.dataclass(frozen=True)
class _Recipe:
    name: str
    splits: dict
    plan: Callable[..., list]
    length: int | None  # samples of every clip, or None for a variable length
    texts: tuple  # what is spoken: the words, or the grammar (for the cache key)

    def key(self) -> str:
        """A hash of everything that decides the clips: a changed recipe is a new cache file."""
        recipe = {"version": RECIPE_VERSION, "name": self.name, "splits": self.splits, "length": self.length,
                  "texts": self.texts, "speakers": SPEAKERS, "sample_rate": SAMPLE_RATE, "amplitude": AMPLITUDE,
                  "pitches": PITCHES, "speeds": SPEEDS, "noises": NOISES, "snr_db": SNR_DB, "peak_db": PEAK_DB,
                  "max_seconds": MAX_SENTENCE_SECONDS, "margin": MARGIN_SECONDS, "hold_out": HOLD_OUT}
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


RECIPES = {
    "spoken_commands": _Recipe("spoken_commands", COMMAND_SPLITS, command_clips, SAMPLE_RATE, COMMANDS),
    "spoken_sentences": _Recipe("spoken_sentences", SENTENCE_SPLITS, sentence_clips, None,
                                (TEMPLATES, tuple(sorted(SLOTS.items())))),
}


def cache_dir() -> pathlib.Path:
    """Where the synthesized sets are kept: $ZOO_DATA_DIR/speech, or ~/.cache/keras-zoo/speech."""
    root = os.environ.get("ZOO_DATA_DIR")
    return (pathlib.Path(root).expanduser() if root else pathlib.Path.home() / ".cache" / "keras-zoo") / "speech"


def cache_path(name: str, split: str) -> pathlib.Path:
    return cache_dir() / f"{name}-{split}-{RECIPES[name].key()}.npz"


def generate(name: str, split: str, count: int | None = None) -> dict:
    """Synthesizes `count` (default all) clips of a split: int16 audio, labels and how each was made."""
    recipe = RECIPES[name]
    clips = recipe.plan(split, count)
    espeak_binary()  # fail before the thread pool, with the install hint
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:  # espeak runs outside the GIL
        rendered = list(pool.map(functools.partial(render, length=recipe.length), clips))
    audio = [a for a, _, _ in rendered]
    return {
        "audio": np.concatenate(audio) if audio else np.zeros(0, np.int16),
        "lengths": np.array([len(a) for a in audio], np.int64),
        "labels": np.array([c.label for c in clips]),
        "text": np.array([c.text for c in clips]),
        "voice": np.array([c.voice for c in clips]),
        "speed": np.array([c.speed for c in clips], np.int64),
        "pitch": np.array([c.pitch for c in clips], np.int64),
        "noise": np.array([c.noise for c in clips]),
        "snr_db": np.array([c.snr_db for c in clips], np.float32),
        "peak_db": np.array([c.peak_db for c in clips], np.float32),
        "speech_offset": np.array([o for _, o, _ in rendered], np.int64),
        "speech_length": np.array([n for _, _, n in rendered], np.int64),
        "recipe": np.array(recipe.key()),
        "espeak": np.array(_espeak_version()),
    }


def _espeak_version() -> str:
    done = subprocess.run([espeak_binary(), "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip()


def load_split(name: str, split: str) -> dict:
    """A split's arrays (as `generate` returns them), from the cache or synthesized into it."""
    path = cache_path(name, split)
    if not path.exists():
        started = time.perf_counter()
        log.info("Synthesizing %s %s with %s (first use; cached in %s)", name, split, ESPEAK, path.parent)
        arrays = generate(name, split)
        _write_atomic(path, arrays)
        log.info("Synthesized %d clips in %.1f s", len(arrays["lengths"]), time.perf_counter() - started)
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def _write_atomic(path: pathlib.Path, arrays: dict):
    # Written beside its final place under a name with our PID, then renamed: a reader sees
    # the whole file or none, and a killed writer's leftover is removed by the next one.
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent, r"\..+\.tmp(\d+)\.npz")
    temporary = path.parent / f".{path.stem}.tmp{os.getpid()}.npz"
    try:
        with open(temporary, "wb") as f:
            np.savez(f, **arrays)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    # Older recipes of the same split are superseded.
    for old in path.parent.glob(f"{path.name.rsplit('-', 1)[0]}-*.npz"):
        if old != path:
            old.unlink(missing_ok=True)


def _examples(name: str, split: str, label_dtype):
    import tensorflow as tf

    arrays = load_split(name, split)
    audio = tf.RaggedTensor.from_row_lengths(arrays["audio"], arrays["lengths"])
    ds = tf.data.Dataset.from_tensor_slices((audio, tf.constant(arrays["labels"], label_dtype)))
    length = RECIPES[name].length
    # Kept as int16 (half the memory), scaled per example; the reshape also turns the
    # ragged rows' RaggedTensorSpec into a plain TensorSpec of [16000] or [None].
    return ds.map(lambda pcm, label: (tf.reshape(tf.cast(pcm, tf.float32) / 32768.0, [length or -1]), label))


@dataclasses.dataclass(eq=False)
class SpeechDataset(ArrayDataset):
    """A registered set whose info comes from its recipe: listing it synthesizes nothing."""

    input_shape: tuple = ()
    sizes: dict = dataclasses.field(default_factory=dict)

    def info(self, data_dir=None, download=True) -> DatasetInfo:
        return DatasetInfo(name=self.name, task=self.task, num_classes=len(self.label_names),
                           label_names=tuple(self.label_names), input_shape=self.input_shape,
                           num_examples=dict(self.sizes), source=self.source, citation=self.citation,
                           input_dtype="float32")


def _register(task: str, label_names=()):
    def decorate(fn):
        if __name__ == "__main__":  # `python -m zoo.data.speech`: registered by the registry's own import
            return fn
        recipe = RECIPES[fn.__name__]
        add_dataset(SpeechDataset(
            fn.__name__, task, fn, tuple(recipe.splits), tuple(label_names), "synthesized by zoo/data/speech.py "
            "with espeak-ng", (fn.__doc__ or "").strip().split("\n")[0], True, {}, input_shape=(recipe.length,),
            sizes={split: n for split, (n, _) in recipe.splits.items()}))
        return fn

    return decorate


@_register(task="audio_classification", label_names=COMMANDS)
def spoken_commands(split):
    """Ten spoken command words in 1 s clips, espeak-ng voices in noise, test voices unheard in train, offline."""
    import tensorflow as tf

    return _examples("spoken_commands", split, tf.int64)


@_register(task="speech_to_text")
def spoken_sentences(split):
    """Spoken 3-6 word commands and their text, espeak-ng voices in noise, test voices and sentences unseen, offline."""
    import tensorflow as tf

    return _examples("spoken_sentences", split, tf.string)


def main():
    """Synthesizes and caches every split of both sets, saying what it built."""
    for name, recipe in RECIPES.items():
        for split in recipe.splits:
            path = cache_path(name, split)
            cached = path.exists()
            started = time.perf_counter()
            arrays = load_split(name, split)
            seconds = arrays["lengths"].sum() / SAMPLE_RATE
            print(f"{name} {split}: {len(arrays['lengths']):,} clips, {seconds / 60:.1f} min of audio, "
                  f"{path.stat().st_size / 1e6:.0f} MB, "
                  f"{'cached' if cached else f'synthesized in {time.perf_counter() - started:.1f} s'} -> {path}")


if __name__ == "__main__":
    main()
