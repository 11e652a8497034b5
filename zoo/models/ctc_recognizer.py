"""A CTC speech recogniser: log-mel features, convolutional subsampling, bidirectional
GRUs, character logits (task `speech_to_text`; Graves et al., 2006, in the shape of
Deep Speech 2, Amodei et al., 2016, scaled down to train on a laptop CPU).

    waveform [B, N] -> log-mel [B, N/160, 40] (10 ms frames) -> per-clip normalisation
    -> SpecAugment (training only) -> Conv1D stride 2 -> Conv1D stride 2 (40 ms frames)
    -> 2 x BiGRU -> Dense "logits" [B, N/640, 29] (space, a-z, apostrophe, CTC's blank)

Padding never reaches a clip's answer. A clip ends at its last nonzero sample
(`ClipLengths`): zero samples after it are padding, the same zeros a batch adds after a
shorter clip. Each stage knows which of its frames hold the clip (`frame_mask`):
the normalisation's statistics read only those frames; the frames after them are set to
zero before every convolution, so a convolution reads the same zeros whether the clip is
alone or beside a longer one; the convolutions pad explicitly (not "same", whose
left padding depends on the input's length); and the GRUs are masked, so their states
never see a padded frame. The logits carry that mask (Keras' masking), which the task's
CTC loss and decoders read as the number of frames of each clip.
"""

from __future__ import annotations

import keras

from zoo.models.preprocessing import LogMelSpectrogram, waveform_input
from zoo.registry import register_model
from zoo.tasks.speech_to_text import NUM_CLASSES

FRAME_STEP = 160  # samples per log-mel frame: 10 ms at 16 kHz


@keras.saving.register_keras_serializable(package="zoo")
class ClipLengths(keras.layers.Layer):
    """Waveform [B, N] -> int32 [B]: the index after each clip's last nonzero sample."""

    def call(self, waveform):
        nonzero = keras.ops.not_equal(waveform, 0)
        positions = keras.ops.arange(1, keras.ops.shape(waveform)[1] + 1, dtype="int32")
        return keras.ops.max(keras.ops.where(nonzero, positions[None, :], 0), axis=1, initial=0)

    def compute_output_spec(self, waveform):
        return keras.KerasTensor(waveform.shape[:1], dtype="int32")


def frame_mask(frames, lengths, samples_per_frame):
    """bool [B, T]: the frames [B, T, ...] of `samples_per_frame` samples each that hold a clip
    of `lengths` [B] samples: its first ceil(length / samples_per_frame), at least one (an
    empty clip is one silent frame, not nothing)."""
    real = keras.ops.maximum((lengths + samples_per_frame - 1) // samples_per_frame, 1)
    # Positions 1..T counted from the frames themselves (T is unknown while Keras builds the model).
    positions = keras.ops.cumsum(keras.ops.ones_like(frames[:, :, 0], dtype="int32"), axis=1)
    return positions <= real[:, None]


@keras.saving.register_keras_serializable(package="zoo")
class FrameMask(keras.layers.Layer):
    """([B, T, C] frames of `samples_per_frame` samples each, clip lengths [B]) -> bool [B, T],
    True on the frames that hold the clip (`frame_mask`)."""

    def __init__(self, samples_per_frame=FRAME_STEP, **kwargs):
        super().__init__(**kwargs)
        self.samples_per_frame = samples_per_frame

    def call(self, inputs):
        return frame_mask(*inputs, self.samples_per_frame)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs[0].shape[:2], dtype="bool")

    def get_config(self):
        return dict(super().get_config(), samples_per_frame=self.samples_per_frame)


@keras.saving.register_keras_serializable(package="zoo")
class MaskFrames(FrameMask):
    """([B, T, C] frames of `samples_per_frame` samples each, clip lengths [B]) -> the frames,
    those after each clip's end set to zero."""

    def call(self, inputs):
        frames, lengths = inputs
        return frames * keras.ops.cast(frame_mask(frames, lengths, self.samples_per_frame), frames.dtype)[:, :, None]

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs[0].shape, dtype=self.compute_dtype)


@keras.saving.register_keras_serializable(package="zoo")
class ClipNormalization(keras.layers.Layer):
    """([B, T, C] features, clip lengths [B]) -> each clip's features less their mean, over
    their standard deviation (per channel), both taken over the clip's own frames only
    (cepstral mean and variance normalisation: a louder or quieter recording, or a
    microphone's colouring, reads the same). Frames after the clip's end become zero.
    """

    def __init__(self, samples_per_frame=FRAME_STEP, epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.samples_per_frame, self.epsilon = samples_per_frame, epsilon

    def call(self, inputs):
        features, lengths = inputs
        dtype = features.dtype
        features = keras.ops.cast(features, "float32")  # statistics in float32 under mixed precision
        mask = keras.ops.cast(frame_mask(features, lengths, self.samples_per_frame), "float32")[:, :, None]
        count = keras.ops.sum(mask, axis=1, keepdims=True)
        mean = keras.ops.sum(features * mask, axis=1, keepdims=True) / count
        variance = keras.ops.sum(keras.ops.square(features - mean) * mask, axis=1, keepdims=True) / count
        return keras.ops.cast((features - mean) * keras.ops.rsqrt(variance + self.epsilon) * mask, dtype)

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]

    def get_config(self):
        return dict(super().get_config(), samples_per_frame=self.samples_per_frame, epsilon=self.epsilon)


@keras.saving.register_keras_serializable(package="zoo")
class SpecAugment(keras.layers.Layer):
    """Training only (the identity at inference): features [B, T, C] of each clip with the
    frequency axis bent and bands of it blanked (Park et al., 2019, SpecAugment).

    The bend moves channel c to c + s * sin(pi * c / (C - 1)), s drawn per clip from
    [-warp, warp] channels: the middle of the axis (the vowels' second formant) shifts
    most, its ends stay. A voice never heard (another vocal tract, formants elsewhere)
    then reads like a bent version of one that was. `masks` bands of up to `mask_width`
    channels are set to zero (the normalised features' mean).
    """

    def __init__(self, warp=4.0, masks=2, mask_width=6, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.warp, self.masks, self.mask_width, self.seed = warp, masks, mask_width, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, features, training=False):
        if not training:
            return features
        ops = keras.ops
        batch, channels = ops.shape(features)[0], features.shape[-1]
        c = ops.arange(channels, dtype="float32")[None, :]
        shift = keras.random.uniform((batch, 1), -self.warp, self.warp, seed=self.seed_generator)
        position = ops.clip(c + shift * ops.sin(3.141592653589793 * c / max(channels - 1, 1)), 0, channels - 1)
        low = ops.cast(ops.floor(position), "int32")
        high = ops.minimum(low + 1, channels - 1)
        weight = ops.cast(position - ops.floor(position), features.dtype)[:, None, :]

        def take(index):
            return ops.take_along_axis(features, ops.broadcast_to(index[:, None, :], ops.shape(features)), axis=2)

        features = take(low) * (1 - weight) + take(high) * weight
        keep = ops.ones((batch, channels), dtype="bool")
        for _ in range(self.masks):
            width = keras.random.uniform((batch, 1), 0, self.mask_width + 1, seed=self.seed_generator)
            start = keras.random.uniform((batch, 1), 0, 1, seed=self.seed_generator) * (channels - width)
            keep = keep & ((c < start) | (c >= start + ops.floor(width)))
        return features * ops.cast(keep, features.dtype)[:, None, :]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return dict(super().get_config(), warp=self.warp, masks=self.masks, mask_width=self.mask_width, seed=self.seed)


def _positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"ctc_recognizer: {name} must be a positive int, got {value!r}.")


@register_model(task="speech_to_text", default_dataset="spoken_sentences")
def ctc_recognizer(samples=None, num_mel_bins=40, filters=128, kernel_size=5, strides=(2, 2), units=128, num_layers=2,
                   dropout=0.1, augment=True):
    """CTC recogniser: waveform in, per-frame character logits out (one frame per 40 ms).

    Args:
        samples: waveform length; None (the default) takes clips of any length.
        num_mel_bins: log-mel channels (10 ms frames, 25 ms windows).
        filters: channels of each convolution.
        kernel_size: their width in frames (odd: centred on the frame they keep).
        strides: one convolution per entry, each keeping one frame in `stride`; their
            product is the output's frame step in 10 ms units (4: 40 ms, room for 25
            characters a second; CTC needs a frame per character and a blank between
            repeated ones).
        units: GRU state width per direction.
        num_layers: stacked bidirectional GRU layers.
        dropout: dropout rate after the convolutions and after each GRU layer.
        augment: SpecAugment while training (`SpecAugment`: the frequency axis bent,
            two bands blanked), which carries the model to voices it never heard; no
            effect at inference.

    Example:
        >>> import zoo
        >>> model = zoo.build_model("ctc_recognizer", units=64)
        >>> model.predict({"waveform": waveform[None]}).shape   # waveform: float32 [N], 16 kHz, -1..1
        (1, ceil(N / 640), 29)
    """
    for name, value in (("num_mel_bins", num_mel_bins), ("filters", filters), ("kernel_size", kernel_size),
                        ("units", units), ("num_layers", num_layers)):
        _positive_int(name, value)
    if kernel_size % 2 == 0:
        raise ValueError(f"ctc_recognizer: kernel_size must be odd, got {kernel_size}.")
    if not strides or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in strides):
        raise ValueError(f"ctc_recognizer: strides must be positive ints, one per convolution, got {strides!r}.")
    if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"ctc_recognizer: dropout must be in [0, 1), got {dropout!r}.")
    waveform = waveform_input(samples, model="ctc_recognizer")
    lengths = ClipLengths(name="clip_lengths")(waveform)
    x = LogMelSpectrogram(num_mel_bins=num_mel_bins, frame_step=FRAME_STEP, name="log_mel")(waveform)
    x = ClipNormalization(FRAME_STEP, name="normalization")([x, lengths])
    if augment:
        x = SpecAugment(name="spec_augment")(x)
    step = FRAME_STEP
    for i, stride in enumerate(strides):
        # Explicit padding, then a "valid" convolution: output frame j is centred on input
        # frame stride * j whatever the input's length ("same" pads by the length).
        x = keras.layers.ZeroPadding1D(kernel_size // 2, name=f"pad_{i}")(x)
        x = keras.layers.Conv1D(filters, kernel_size, strides=stride, activation="relu", name=f"conv_{i}")(x)
        step *= stride
        x = MaskFrames(step, name=f"frames_{i}")([x, lengths])
    # The GRUs read the clip's frames only (and the logits carry this mask on).
    mask = FrameMask(step, name="frame_mask")([x, lengths])
    if dropout:
        x = keras.layers.Dropout(dropout, name="conv_dropout")(x)
    for i in range(num_layers):
        x = keras.layers.Bidirectional(keras.layers.GRU(units, return_sequences=True, name=f"gru_{i}"),
                                       name=f"bigru_{i}")(x, mask=mask)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
    # float32 logits keep the CTC loss stable under mixed precision; the mask travels with them.
    logits = keras.layers.Dense(NUM_CLASSES, name="logits", dtype="float32")(x)
    return keras.Model([waveform], logits, name="ctc_recognizer")
