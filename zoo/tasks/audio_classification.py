"""Task `audio_classification` (spoken commands): a second of audio in, a label out.

Model input `{"waveform": float32 [B, 16000]}`: one second of 16 kHz mono samples in
-1..1; the model computes its features (log-mel) itself. The clip rule, in training
and in every signature alike: a clip keeps its first second, and a shorter one is
zero-padded at the end (`audio_codec.fit_clip`). Integer samples (TFDS' int16 audio)
are scaled to -1..1 by 1/32768.

Exported signatures:
- `serving_default`: `waveform` float32 [B, N] (any N; the clip rule applies) ->
  `probabilities` [B, K], `class_id` [B] int64, `label` [B] string;
- `audio_bytes`: WAV files' bytes [B] (16 kHz 16-bit PCM; stereo is mixed down; another
  rate, another sample format, a file that is not a WAV or one longer than
  `MAX_SECONDS` is INVALID_ARGUMENT: `audio_codec`);
- `classify` (TF Serving's Classify API): tf.Examples with the WAV bytes as feature `audio`.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import tensorflow as tf

from zoo.tasks import audio_codec
from zoo.tasks.base import (
    CLASSIFY_METHOD, PREDICT_METHOD, Endpoint, ExportSource, Request, Signatures, model_inputs, register_task,
    training_inputs,
)
from zoo.tasks.classification import Classification, classify_outputs, label_table, predict_outputs

log = logging.getLogger(__name__)

AUDIO_FEATURE = "audio"  # the tf.Example bytes feature `classify` reads (a WAV file)
MAX_SECONDS = 30  # WAV files longer than this are refused (the model reads the first second)


def audio_example(wav: bytes) -> tf.train.Example:
    """A tf.Example for `classify`: a WAV file's bytes as the feature "audio"."""
    return tf.train.Example(features=tf.train.Features(feature={
        AUDIO_FEATURE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[bytes(wav)]))}))


def _fallback_clips(count: int) -> np.ndarray:
    """Tones and noise bursts, when no real clip can be read (an export without data)."""
    t = np.arange(audio_codec.CLIP_SAMPLES) / audio_codec.SAMPLE_RATE
    rng = np.random.default_rng(0)
    clips = [0.3 * np.sin(2 * np.pi * (200 + 150 * i) * t) * (t < 0.6) + 0.01 * rng.standard_normal(t.size)
             for i in range(count)]
    return np.asarray(clips, np.float32)


class AudioClassification(Classification):
    name = "audio_classification"
    description = "[B,16000] float32 waveform, 16 kHz mono -1..1 -> K logits"
    input_names = ("waveform",)
    data_arguments = ("num_classes",)
    serving_inputs = ("waveform",)
    serving_outputs = ("probabilities", "class_id", "label")

    def reads_feature(self, dtype, shape) -> bool:
        return (dtype.is_integer or dtype.is_floating) and len(shape) == 1

    # --- data ----------------------------------------------------------------
    def prepare_examples(self, ds, info, data_dir=None, download=True):
        ds = ds.map(lambda x, y: (audio_codec.fit_clip(audio_codec.as_float(x)), y), num_parallel_calls=tf.data.AUTOTUNE)
        return ds, dataclasses.replace(info, input_shape=(audio_codec.CLIP_SAMPLES,), input_dtype="float32")

    def batch_features(self, x, y):
        return {"waveform": x}, tf.cast(y, tf.int64)

    # --- export ----------------------------------------------------------------
    def export_assets(self, source: ExportSource) -> dict:
        samples = model_inputs(source.model)["waveform"].shape[1]
        if samples != audio_codec.CLIP_SAMPLES:
            raise ValueError(f"An audio classifier takes waveform [B, {audio_codec.CLIP_SAMPLES}] (one second at "
                             f"{audio_codec.SAMPLE_RATE} Hz); this model takes [B, {samples}].")
        return super().export_assets(source)

    def card(self, assets: dict) -> dict:
        return dict(super().card(assets), sample_rate=audio_codec.SAMPLE_RATE,
                    clip_seconds=audio_codec.CLIP_SAMPLES / audio_codec.SAMPLE_RATE, max_seconds=MAX_SECONDS,
                    clip_rule="the first second; shorter clips are zero-padded at the end",
                    audio="16 kHz mono float32 -1..1 (waveform) or 16-bit PCM WAV (audio_bytes); stereo is "
                          "mixed down, other sample rates are refused")

    def examples(self, source: ExportSource, given, count):
        if given is not None:
            clips, origin = list(given)[:count], "given"
        else:
            clips, origin = training_inputs(source, count)
        if not clips:
            clips, origin = _fallback_clips(count), "tones"
        clips = np.stack([audio_codec.fit_clip(audio_codec.as_float(np.asarray(c))).numpy() for c in clips])
        return {"waveform": audio_codec.as_pcm16(clips)}, origin

    def model_inputs(self, examples, assets):
        return {"waveform": audio_codec.as_pcm16(examples["waveform"])}

    def signatures(self, model, assets: dict, staging_dir) -> Signatures:
        num_classes = len(assets["label_names"])
        table = label_table(assets["label_names"], staging_dir)
        max_samples = MAX_SECONDS * audio_codec.SAMPLE_RATE

        # One traced function that every signature calls: the model is stored once.
        @tf.function(input_signature=[tf.TensorSpec((None, audio_codec.CLIP_SAMPLES), tf.float32)])
        def predict(waveform):
            return predict_outputs(model({"waveform": waveform}, training=False), table)

        @tf.function(input_signature=[tf.TensorSpec((None,), tf.string)])
        def decode(data):
            clips = audio_codec.decode_batch(data, max_samples)
            return clips[:, :audio_codec.CLIP_SAMPLES].to_tensor(0.0, shape=[None, audio_codec.CLIP_SAMPLES])

        def serving_default(waveform):
            return predict(audio_codec.fit_clip(waveform))

        def audio_bytes(audio_bytes):
            return predict(decode(audio_bytes))

        def classify(inputs):
            # No default: an example without the feature is INVALID_ARGUMENT naming it.
            parsed = tf.io.parse_example(inputs, {AUDIO_FEATURE: tf.io.FixedLenFeature([], tf.string)})
            return classify_outputs(predict(decode(parsed[AUDIO_FEATURE]))["probabilities"], table, num_classes)

        return Signatures(
            endpoints={
                "serving_default": Endpoint(serving_default, [tf.TensorSpec((None, None), tf.float32,
                                                                            name="waveform")]),
                "audio_bytes": Endpoint(audio_bytes, [tf.TensorSpec((None,), tf.string, name="audio_bytes")]),
                "classify": Endpoint(classify, [tf.TensorSpec((None,), tf.string, name="inputs")], CLASSIFY_METHOD),
            },
            resources=[table])

    def requests(self, examples, batch_sizes=(1, None)) -> list[Request]:
        clips = audio_codec.as_pcm16(examples["waveform"])
        wavs = [audio_codec.encode_wav(c) for c in clips]
        requests = []
        for size in dict.fromkeys(min(b or len(clips), len(clips)) for b in batch_sizes):
            requests += [
                Request("serving_default", PREDICT_METHOD, size, inputs={"waveform": clips[:size]}),
                Request("audio_bytes", PREDICT_METHOD, size, inputs={"audio_bytes": np.array(wavs[:size],
                                                                                             dtype=object)}),
                Request("classify", CLASSIFY_METHOD, size, examples=[audio_example(w) for w in wavs[:size]]),
            ]
        return requests

    # --- command line ------------------------------------------------------------
    def read_request(self, values, signatures, signature=None):
        """WAV files, sent as they are to `audio_bytes`."""
        return audio_codec.wav_request(values, signatures, signature, "serving_default")


TASK = register_task(AudioClassification())
