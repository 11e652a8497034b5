"""Task `speech_to_text`: speech in, text out, with CTC (Graves et al., 2006) decoded in the graph.

Examples are (waveform, text): float32 samples [N] of any length, 16 kHz mono in -1..1
(integer samples, TFDS' int16 audio, are scaled by 1/32768), and what is said.

Model input `{"waveform": float32 [B, N]}`, N any length: a batch's shorter clips are
zero-padded at the end. A clip ends at its last nonzero sample, so the zeros after it
are padding wherever they came from, and a clip answers the same alone as beside a
longer one. The model returns logits [B, T, 29] over `CHARACTERS` and CTC's blank,
one row per frame, carrying a Keras mask of the frames that hold the clip (T is the
batch's longest clip's): the loss and the decoders read the mask as each clip's
number of frames.

Characters (label ids): 0 space, 1-26 a-z, 27 apostrophe; 28 is CTC's blank, the
last logit as TensorFlow's CTC decoders want it. Texts are normalised before they
become labels (`normalize_text`): lower-cased, a curly apostrophe made straight, and
every run of other characters (digits, punctuation, hyphens, letters outside a-z)
made one space; leading and trailing spaces dropped. Labels are the ids, -1 past the
end. Batches are padded to their longest clip, not to a fixed length.

Loss: CTC (`CTCLoss`), label lengths from the labels and frame lengths from the logits'
mask. An example whose text needs more frames than its clip has adds nothing to the loss
(TensorFlow's `ignore_longer_outputs_than_inputs`). Word and character error rates
(jiwer) of greedy decoding on the test split join metrics.json and `zoo evaluate`.

Exported signatures, decoded with TensorFlow's CTC ops (core ops, no Xla*):
- `serving_default`: `waveform` float32 [B, N] -> `text` [B] string, greedy decoding
  (the best character per frame, repeats merged, blanks dropped);
- `audio_bytes`: WAV files' bytes [B] (16 kHz 16-bit PCM; `audio_codec` decodes them
  in the graph and refuses what it cannot read) -> `text` [B], greedy;
- `beam_search`: `waveform` -> `text` [B], CTC beam search with 8 beams (the best path).
A clip longer than `max_seconds` (default 30 s) or holding NaN or Inf is INVALID_ARGUMENT;
a clip with no nonzero sample (silence, or nothing) answers "".
"""

from __future__ import annotations

import dataclasses
import logging

import keras
import numpy as np
import tensorflow as tf

from zoo.tasks import audio_codec
from zoo.tasks.base import (
    PREDICT_METHOD, Endpoint, ExportSource, Request, Signatures, Task, as_text, model_inputs, one_row, register_task,
    training_inputs,
)

log = logging.getLogger(__name__)

CHARACTERS = (" ",) + tuple("abcdefghijklmnopqrstuvwxyz") + ("'",)  # label ids 0..27
BLANK = len(CHARACTERS)  # 28: CTC's blank, the last logit (TensorFlow's CTC decoders' convention)
NUM_CLASSES = len(CHARACTERS) + 1
PAD_LABEL = -1  # labels past the end of a text
MAX_SECONDS = 30  # longer clips are refused by the exported signatures (export option max_seconds)
BEAM_WIDTH = 8
_FALLBACK_SECONDS = (1.2, 0.7, 0.0, 1.6)  # tone clips when no real clip can be read (one empty)

# Byte -> label id (-1: not a character); normalised text is ASCII.
_BYTE_IDS = np.full(256, -1, np.int32)
for _i, _c in enumerate(CHARACTERS):
    _BYTE_IDS[ord(_c)] = _i


def normalize_text(text):
    """Texts (a string tensor) as the characters the model spells: see the module's docstring."""
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, "[\u2018\u2019`]", "'")
    return tf.strings.strip(tf.strings.regex_replace(text, "[^a-z']+", " "))


def encode_text(text):
    """Label ids int32 [L] of one normalised text (a scalar string tensor)."""
    return tf.gather(tf.constant(_BYTE_IDS), tf.cast(tf.io.decode_raw(text, tf.uint8), tf.int32))


def ids_text(ids) -> str:
    """The text of label ids (ids outside the characters, -1 padding and the blank, skipped)."""
    return "".join(CHARACTERS[i] for i in np.asarray(ids).ravel() if 0 <= i < BLANK)


def frame_lengths(logits):
    """int32 [B]: the frames of each clip, from the mask the logits carry (all of them without one)."""
    # Keras sets a layer's output mask as this attribute (keras.src.backend.get_keras_mask).
    mask = getattr(logits, "_keras_mask", None)
    if mask is None:
        shape = tf.shape(logits)
        return tf.fill(shape[:1], shape[1])
    return tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)


def has_sound(waveform):
    """bool [B]: clips with at least one nonzero sample (the others answer "")."""
    return tf.reduce_any(tf.not_equal(waveform, 0.0), axis=1)


def ctc_losses(labels, logits, lengths):
    """CTC loss [B] of label ids [B, L] (-1 past the end) against logits [B, T, 29] of `lengths` frames."""
    labels = tf.cast(labels, tf.int32)
    # A sparse row per text, the characters in order (anything else in a row is skipped).
    sparse = tf.ragged.boolean_mask(labels, (labels >= 0) & (labels < BLANK)).to_sparse()
    return tf.compat.v1.nn.ctc_loss(sparse, tf.cast(logits, tf.float32), lengths, time_major=False,
                                    ignore_longer_outputs_than_inputs=True)


@keras.saving.register_keras_serializable(package="zoo")
class CTCLoss(keras.losses.Loss):
    """CTC loss of character labels [B, L] (-1 past the end) against masked logits [B, T, 29].

    Each clip's number of frames is the count of its frames in the logits' Keras mask.
    Keras' `Loss.__call__` would apply that [B, T] mask to the [B] losses, so this loss
    reads it first and reduces the losses itself ("sum_over_batch_size" or "sum").
    """

    def __init__(self, name="ctc", reduction="sum_over_batch_size", dtype=None):
        if reduction not in ("sum_over_batch_size", "sum", "none", None):
            raise ValueError(f"CTCLoss reduction must be 'sum_over_batch_size', 'sum' or None, got {reduction!r}.")
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return ctc_losses(y_true, y_pred, frame_lengths(y_pred))

    def __call__(self, y_true, y_pred, sample_weight=None):
        lengths = frame_lengths(y_pred)  # before anything converts y_pred, which drops its mask
        with tf.name_scope(self.name):
            losses = ctc_losses(y_true, y_pred, lengths)
            if sample_weight is not None:
                losses = losses * tf.reshape(tf.cast(sample_weight, losses.dtype), [-1])
            if self.reduction in ("none", None):
                return losses
            total = tf.reduce_sum(losses)
            if self.reduction == "sum":
                return total
            return total / tf.cast(tf.maximum(tf.size(losses), 1), losses.dtype)


def sparse_text(ids, batch_size):
    """Texts [B] of a decoder's SparseTensor of character ids [B, L]."""
    characters = tf.gather(tf.constant(CHARACTERS), ids.values)
    dense = tf.sparse.to_dense(tf.SparseTensor(ids.indices, characters, tf.stack(
        [tf.cast(batch_size, tf.int64), ids.dense_shape[1]])), default_value="")
    return tf.strings.reduce_join(dense, axis=1)


def greedy_text(logits, lengths):
    """Greedy CTC decoding in the graph: texts [B] of logits [B, T, 29] and frame lengths [B]."""
    decoded, _ = tf.nn.ctc_greedy_decoder(tf.transpose(logits, [1, 0, 2]), lengths, merge_repeated=True)
    return sparse_text(decoded[0], tf.shape(logits)[0])


def beam_text(logits, lengths, beam_width: int = BEAM_WIDTH):
    """CTC beam search in the graph: texts [B] of the best path of `beam_width` beams."""
    decoded, _ = tf.nn.ctc_beam_search_decoder(tf.transpose(logits, [1, 0, 2]), lengths, beam_width=beam_width,
                                               top_paths=1)
    return sparse_text(decoded[0], tf.shape(logits)[0])


def python_greedy(logits, lengths) -> list[str]:
    """Greedy CTC decoding the plain way (numpy): per clip, the best logit per frame over its
    frames, repeats merged, blanks dropped. The reference the exported decoding is checked against."""
    texts = []
    for row, length in zip(np.asarray(logits), np.asarray(lengths)):
        best = np.argmax(row[:int(length)], axis=-1)
        kept = [c for i, c in enumerate(best) if (i == 0 or c != best[i - 1]) and c != BLANK]
        texts.append(ids_text(kept))
    return texts


def clip_lengths(waveform) -> np.ndarray:
    """numpy [B]: the index after each clip's last nonzero sample."""
    nonzero = np.asarray(waveform) != 0
    return np.where(nonzero.any(axis=1), nonzero.shape[1] - np.argmax(nonzero[:, ::-1], axis=1), 0)


def _fallback_clips() -> list[np.ndarray]:
    """Rising tones of a few lengths and one empty clip, when no real clip can be read."""
    rng = np.random.default_rng(0)
    clips = []
    for i, seconds in enumerate(_FALLBACK_SECONDS):
        t = np.arange(int(seconds * audio_codec.SAMPLE_RATE)) / audio_codec.SAMPLE_RATE
        clips.append(0.3 * np.sin(2 * np.pi * (200 + 150 * i) * t * (1 + t)) + 0.01 * rng.standard_normal(t.size))
    return clips


class SpeechToText(Task):
    name = "speech_to_text"
    description = "[B,N] float32 waveform, 16 kHz mono -1..1 (any N) -> [B,T,29] masked CTC character logits"
    input_names = ("waveform",)
    serving_inputs = ("waveform",)
    serving_outputs = ("text",)
    export_options = ("max_seconds",)

    # --- training ------------------------------------------------------------
    def loss(self):
        return CTCLoss()

    def check_model(self, model) -> None:
        super().check_model(model)
        output = model.output
        shape = tuple(output.shape) if not isinstance(output, (dict, list, tuple)) else None
        if shape is None or len(shape) != 3 or shape[-1] != NUM_CLASSES:
            raise ValueError(f"A {self.name} model returns one tensor of per-frame logits [B, T, {NUM_CLASSES}] "
                             f"({len(CHARACTERS)} characters, then CTC's blank); this model returns {output}.")

    def report_metrics(self, model, ds, label_names) -> dict:
        import jiwer

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)])
        def transcribe(waveform):
            logits = model({"waveform": waveform}, training=False)
            return tf.where(has_sound(waveform), greedy_text(logits, frame_lengths(logits)), "")

        references, hypotheses = [], []
        for x, y in ds:
            references += [ids_text(row) for row in np.asarray(y)]
            hypotheses += as_text(transcribe(tf.cast(x["waveform"], tf.float32)))
        # jiwer refuses empty references; a clip with nothing said has no words to get wrong.
        pairs = [(r, h) for r, h in zip(references, hypotheses) if r]
        if not pairs:
            return {}
        references, hypotheses = [p[0] for p in pairs], [p[1] for p in pairs]
        return {"wer": float(jiwer.wer(references, hypotheses)), "cer": float(jiwer.cer(references, hypotheses)),
                "sentence_accuracy": float(np.mean([r == h for r, h in pairs]))}

    # --- data ----------------------------------------------------------------
    def reads_feature(self, dtype, shape) -> bool:
        return False  # audio of an unregistered TFDS set is read as audio_classification's

    def prepare_examples(self, ds, info, data_dir=None, download=True):
        def featurize(waveform, text):
            return one_row(tf.reshape(audio_codec.as_float(waveform), [-1])), one_row(encode_text(normalize_text(text)))

        ds = ds.map(featurize, num_parallel_calls=tf.data.AUTOTUNE)
        return ds, dataclasses.replace(info, input_shape=(None,), input_dtype="float32")

    def batch_features(self, x, y):
        return {"waveform": x.merge_dims(1, 2).to_tensor(0.0)}, y.merge_dims(1, 2).to_tensor(PAD_LABEL)

    # --- export ----------------------------------------------------------------
    def export_assets(self, source: ExportSource) -> dict:
        max_seconds = source.options.get("max_seconds", MAX_SECONDS)
        if not isinstance(max_seconds, (int, float)) or isinstance(max_seconds, bool) or not max_seconds > 0:
            raise ValueError(f"max_seconds must be a positive number of seconds, got {max_seconds!r}.")
        samples = model_inputs(source.model)["waveform"].shape[1]
        if samples is not None:
            raise ValueError(f"A speech_to_text export takes clips of any length; this model takes waveform "
                             f"[B, {samples}] only. Build it with samples=None.")
        return {"max_samples": int(max_seconds * audio_codec.SAMPLE_RATE), "beam_width": BEAM_WIDTH}

    def card(self, assets: dict) -> dict:
        return {"sample_rate": audio_codec.SAMPLE_RATE, "max_seconds": assets["max_samples"] / audio_codec.SAMPLE_RATE,
                "characters": "".join(CHARACTERS), "blank_index": BLANK,
                "text_normalization": "lower case; other characters than a-z and ' become one space",
                "audio": "16 kHz mono float32 -1..1 (waveform) or 16-bit PCM WAV (audio_bytes); a clip ends at its "
                         "last nonzero sample; stereo is mixed down, other sample rates are refused",
                "decoding": {"serving_default": "CTC greedy", "audio_bytes": "CTC greedy",
                             "beam_search": f"CTC beam search, {assets['beam_width']} beams, best path"}}

    def examples(self, source: ExportSource, given, count):
        if given is not None:
            clips, origin = list(given)[:count], "given"
        else:
            clips, origin = training_inputs(source, count)
        if not clips:
            clips, origin = _fallback_clips()[:count], "tones"
        # Samples a 16-bit WAV holds, so that audio_bytes reads what waveform reads.
        clips = [audio_codec.as_pcm16(np.ravel(audio_codec.as_float(np.asarray(c)).numpy())) for c in clips]
        waveform = np.zeros((len(clips), max(max(len(c) for c in clips), 1)), np.float32)
        for row, clip in zip(waveform, clips):
            row[:len(clip)] = clip
        return {"waveform": waveform}, origin

    def _logits(self, model, waveform):
        logits = model({"waveform": tf.constant(waveform, tf.float32)}, training=False)
        return logits, frame_lengths(logits)

    def reference(self, model, examples, assets) -> dict:
        """The Keras model's logits decoded in Python (greedy) and, for beam_search, by
        TensorFlow's beam decoder run eagerly; also for the samples the WAVs decode to."""
        waveform = np.asarray(examples["waveform"], np.float32)
        silent = ~(waveform != 0).any(axis=1)
        logits, lengths = self._logits(model, waveform)
        # A WAV holds round(x * 32767) / 32768 of sample x (audio_codec.encode_wav).
        wav_logits, wav_lengths = self._logits(model, audio_codec.as_pcm16(waveform))
        beams = as_text(beam_text(tf.convert_to_tensor(logits), lengths, assets["beam_width"]))
        return {"text": ["" if s else t for t, s in zip(python_greedy(logits, lengths), silent)],
                "wav_text": ["" if s else t for t, s in zip(python_greedy(wav_logits, wav_lengths), silent)],
                "beam_text": ["" if s else t for t, s in zip(beams, silent)]}

    def signatures(self, model, assets: dict, staging_dir) -> Signatures:
        max_samples = assets["max_samples"]

        # One traced model call that every signature calls: the model is stored once.
        @tf.function(input_signature=[tf.TensorSpec((None, None), tf.float32)])
        def logits_of(waveform):
            checks = [
                tf.debugging.Assert(tf.shape(waveform)[1] <= max_samples, [
                    "The waveform holds (samples):", tf.shape(waveform)[1],
                    f"more than this model takes: {max_samples} samples, {max_samples / audio_codec.SAMPLE_RATE:g} "
                    f"s at {audio_codec.SAMPLE_RATE} Hz."]),
                tf.debugging.assert_all_finite(waveform, "The waveform holds NaN or Inf samples."),
            ]
            with tf.control_dependencies(checks):
                logits = model({"waveform": tf.identity(waveform)}, training=False)
            return logits, frame_lengths(logits)

        def transcribe(waveform, decode):
            def texts():
                logits, lengths = logits_of(waveform)
                return tf.where(has_sound(waveform), decode(logits, lengths), "")

            # No clips, no texts: TensorFlow's convolutions are not asked about an empty batch.
            return {"text": tf.cond(tf.shape(waveform)[0] > 0, texts, lambda: tf.zeros([0], tf.string))}

        def serving_default(waveform):
            return transcribe(waveform, greedy_text)

        def audio_bytes(audio_bytes):
            return transcribe(audio_codec.decode_batch(audio_bytes, max_samples).to_tensor(0.0), greedy_text)

        def beam_search(waveform):
            return transcribe(waveform, lambda logits, lengths: beam_text(logits, lengths, assets["beam_width"]))

        waveform = tf.TensorSpec((None, None), tf.float32, name="waveform")
        return Signatures(endpoints={
            "serving_default": Endpoint(serving_default, [waveform]),
            "audio_bytes": Endpoint(audio_bytes, [tf.TensorSpec((None,), tf.string, name="audio_bytes")]),
            "beam_search": Endpoint(beam_search, [waveform]),
        })

    def requests(self, examples, batch_sizes=(1, None)) -> list[Request]:
        waveform = np.asarray(examples["waveform"], np.float32)
        lengths = clip_lengths(waveform)
        wavs = np.array([audio_codec.encode_wav(row[:n]) for row, n in zip(waveform, lengths)], dtype=object)
        requests = []
        for size in dict.fromkeys(min(b or len(waveform), len(waveform)) for b in batch_sizes):
            # Each batch as a client sends it: padded to its own longest clip (a clip alone: not at all).
            clips = waveform[:size, :max(int(lengths[:size].max()), 1)]
            requests += [Request("serving_default", PREDICT_METHOD, size, inputs={"waveform": clips}),
                         Request("audio_bytes", PREDICT_METHOD, size, inputs={"audio_bytes": wavs[:size]})]
        clips = waveform[:, :max(int(lengths.max()), 1)]
        requests.append(Request("beam_search", PREDICT_METHOD, len(waveform), inputs={"waveform": clips}))
        return requests

    _REFERENCE = {"serving_default": "text", "audio_bytes": "wav_text", "beam_search": "beam_text"}

    def compare(self, request, outputs: dict, reference: dict, assets: dict) -> tuple[list, float]:
        key, size = request.signature, request.size
        if "text" not in outputs:
            return [f"{key}: no text output"], float("inf")
        texts = np.asarray(outputs["text"], dtype=object)
        if texts.shape != (size,):
            return [f"{key}: text has shape {texts.shape}, expected ({size},)"], float("inf")
        expected = reference[self._REFERENCE.get(key, "text")][:size]
        got = as_text(texts)
        wrong = [i for i, (g, e) in enumerate(zip(got, expected)) if g != e]
        if wrong:
            i = wrong[0]
            rule = "beam search run eagerly on" if key == "beam_search" else "greedy decoding in Python of"
            return [f"{key}: {len(wrong)} of {size} texts differ from {rule} the Keras model's logits (first: "
                    f"{got[i]!r} vs {expected[i]!r})"], 1.0
        return [], 0.0

    # --- command line ------------------------------------------------------------
    def read_request(self, values, signatures, signature=None):
        """WAV files, sent as they are to `audio_bytes`."""
        return audio_codec.wav_request(values, signatures, signature, "serving_default or beam_search")

    def format_answer(self, row: dict) -> str:
        texts = as_text(row.get("text", []))
        return texts[0] if texts else ""


TASK = register_task(SpeechToText())
