"""WAV bytes to waveforms inside the served graph, and the 1-second clip rule.

Audio models take `waveform` float32 [B, N]: 16 kHz mono samples in -1..1. Their
`audio_bytes` signatures take the bytes of WAV files and decode them here with
TensorFlow's own decoder (`tf.audio.decode_wav`, a core op TF Serving has), so a
client sends the file it has and the features are computed in the graph exactly as in
training. What the decoder cannot take is INVALID_ARGUMENT, never a crash:
- not a WAV, or a truncated one: TensorFlow's decoder refuses it ("Header mismatch",
  "Data too short");
- 8-bit, 24-bit or float PCM: refused ("Can only read 16-bit WAV files"); convert to
  16-bit PCM;
- another sample rate than 16 kHz: refused, naming the file's rate (resample it to
  16 kHz first, e.g. `sox in.wav -r 16000 out.wav`) — resampling in the graph would
  hide a mismatch a client should know about;
- stereo (or more channels): mixed down to mono (the channels' mean);
- longer than the model's limit (`max_seconds`): refused, naming the length.

    waveform = decode_wav(tf.constant(open("yes.wav", "rb").read()), max_samples=16000 * 30)
    clip = fit_clip(waveform, 16000)     # the first second, zero-padded when shorter
"""

from __future__ import annotations

import io
import pathlib
import wave

import numpy as np
import tensorflow as tf

SAMPLE_RATE = 16_000
CLIP_SAMPLES = SAMPLE_RATE  # audio classifiers read one second
WAV_MAGIC = b"RIFF"


def decode_wav(data, max_samples: int):
    """Mono float32 samples [N] of one WAV file's bytes (a scalar string tensor)."""
    audio, rate = tf.audio.decode_wav(data)  # [N, channels] in -1..1; 16-bit PCM only
    rate_ok = tf.debugging.Assert(tf.equal(rate, SAMPLE_RATE), [
        # No quotes: an assertion's message is C-escaped on its way to the client.
        "The WAV file's sample rate is (Hz):", rate,
        f"this model takes {SAMPLE_RATE} Hz audio; resample it to {SAMPLE_RATE} Hz first."])
    samples = tf.shape(audio)[0]
    length_ok = tf.debugging.Assert(samples <= max_samples, [
        "The WAV file holds (samples):", samples,
        f"more than this model takes: {max_samples} samples, {max_samples / SAMPLE_RATE:g} s at {SAMPLE_RATE} Hz."])
    with tf.control_dependencies([rate_ok, length_ok]):
        # An empty file's [0, 0] mean is NaN-free: reduce_mean of no channels is guarded.
        channels = tf.maximum(tf.shape(audio)[1], 1)
        return tf.reduce_sum(audio, axis=1) / tf.cast(channels, tf.float32)


def as_float(samples):
    """float32 samples in -1..1 of float samples, or of 16-bit integer ones (TFDS' int16 audio)."""
    samples = tf.convert_to_tensor(samples)
    return tf.cast(samples, tf.float32) / (32768.0 if samples.dtype.is_integer else 1.0)


def fit_clip(waveform, samples: int = CLIP_SAMPLES):
    """The clip rule of audio classifiers: the first `samples` samples [..., N], zero-padded at the end."""
    waveform = waveform[..., :samples]
    pad = samples - tf.shape(waveform)[-1]
    paddings = tf.concat([tf.zeros([tf.rank(waveform) - 1, 2], tf.int32), [[0, pad]]], axis=0)
    return tf.ensure_shape(tf.pad(waveform, paddings), waveform.shape[:-1].concatenate([samples]))


def decode_batch(data, max_samples: int):
    """Ragged float32 [B, (N)] samples of WAV bytes [B], one file at a time (one in memory)."""
    return tf.map_fn(lambda d: decode_wav(d, max_samples), data,
                     fn_output_signature=tf.RaggedTensorSpec([None], tf.float32, ragged_rank=0),
                     parallel_iterations=1)


def encode_wav(waveform, sample_rate: int = SAMPLE_RATE) -> bytes:
    """16-bit PCM mono WAV bytes of float samples in -1..1 (numpy; for warm-up and tests)."""
    pcm = np.clip(np.round(np.asarray(waveform, np.float64) * 32767), -32768, 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes(pcm.tobytes())
    return buffer.getvalue()


def as_pcm16(waveform) -> np.ndarray:
    """Float samples rounded to what 16-bit PCM holds: a WAV of them decodes to exactly these."""
    return (np.clip(np.round(np.asarray(waveform, np.float64) * 32767), -32768, 32767) / 32768).astype(np.float32)


def is_wav_file(path) -> bool:
    with open(path, "rb") as f:
        head = f.read(12)
    return head[:4] == WAV_MAGIC and head[8:12] == b"WAVE"


def read_wav_files(values) -> np.ndarray:
    """`zoo predict` VALUES as WAV bytes [N] (object array); clear errors for the rest."""
    missing = [v for v in values if not pathlib.Path(v).is_file()]
    if missing:
        raise FileNotFoundError(f"no such WAV file: {', '.join(missing)} (an audio model takes .wav files)")
    not_wav = [v for v in values if not is_wav_file(v)]
    if not_wav:
        raise ValueError(f"not a WAV file: {', '.join(not_wav)} (an audio model takes 16 kHz 16-bit PCM .wav files)")
    return np.array([pathlib.Path(v).read_bytes() for v in values], dtype=object)


def wav_request(values, signatures: dict, signature: str | None, other_signatures: str) -> tuple[str, dict]:
    """`zoo predict` VALUES (.wav paths) as a request to `audio_bytes` (or the WAV-taking
    `signature` asked for); `other_signatures` names where samples go instead."""
    signature = signature or "audio_bytes"
    if list(signatures.get(signature, {}).get("inputs", {})) != ["audio_bytes"]:
        raise ValueError(f"signature {signature!r} does not take WAV bytes; zoo predict sends .wav files to "
                         f"audio_bytes (use serving.Client to send samples to {other_signatures})")
    return signature, {"audio_bytes": read_wav_files(values)}
