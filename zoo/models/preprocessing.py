"""The input stems the models share: named raw-pixel input scaled in the graph, named
token ids and their padding mask, float32 logits."""

from __future__ import annotations

import keras


def image_input(input_shape, min_size: int = 1, model: str = "model"):
    """Returns `(inputs, x)`: the `{"image": ...}` input and pixels scaled to [-1, 1].

    The model takes raw 0-255 pixels so no client or exporter needs to know the
    normalization. `min_size` is the smallest height/width the architecture's
    downsampling can take.
    """
    shape = tuple(input_shape)
    if len(shape) != 3 or any(not isinstance(d, int) or d <= 0 for d in shape):
        raise ValueError(
            f"{model}: input_shape must be (height, width, channels) of positive ints, "
            f"got {input_shape!r}."
        )
    if min(shape[:2]) < min_size:
        raise ValueError(
            f"{model}: input_shape {shape} is too small; this architecture downsamples "
            f"and needs height and width >= {min_size}. Resize the images "
            f"(load_dataset(..., image_size=...)) or choose a smaller model."
        )
    image = keras.Input(shape=shape, name="image", dtype="float32")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale_pixels")(image)
    # A list of one named input: fit/predict take plain arrays and {"image": x} alike,
    # without Keras' "structure of inputs doesn't match" warning.
    return [image], x


def check_num_classes(num_classes, model: str):
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(f"{model}: num_classes must be an int >= 2, got {num_classes!r}.")


def logits(x, num_classes: int):
    # float32 logits keep the softmax/loss stable under mixed_float16 (Keras' advice).
    return keras.layers.Dense(num_classes, name="logits", dtype="float32")(x)


def token_input(vocabulary_size, sequence_length, model: str = "model"):
    """The `{"token_ids": int32 [B, sequence_length]}` input of a text model (0 pads).

    Text models take token ids; the tokenizer lives in the data pipeline for
    training and in the serving signature for export, so both feed the same ids.
    """
    for arg, value, low in (("vocabulary_size", vocabulary_size, 3), ("sequence_length", sequence_length, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{model}: {arg} must be an int >= {low}, got {value!r}.")
    return keras.Input(shape=(sequence_length,), name="token_ids", dtype="int32")


@keras.saving.register_keras_serializable(package="zoo")
class PaddingMask(keras.layers.Layer):
    """True where a token is not padding (id 0), and always at the first position."""

    def call(self, token_ids):
        real = keras.ops.not_equal(token_ids, 0)
        first = keras.ops.equal(keras.ops.arange(keras.ops.shape(token_ids)[1]), 0)
        return keras.ops.logical_or(real, keras.ops.expand_dims(first, 0))

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, token_ids):
        return keras.KerasTensor(token_ids.shape, dtype="bool")


SAMPLE_RATE = 16_000  # audio models take 16 kHz mono samples in -1..1


def waveform_input(samples, model: str = "model"):
    """The `{"waveform": float32 [B, samples]}` input of an audio model (None: any length)."""
    if samples is not None and (not isinstance(samples, int) or isinstance(samples, bool) or samples < 400):
        raise ValueError(f"{model}: samples must be an int >= 400 (25 ms at 16 kHz) or None, got {samples!r}.")
    return keras.Input(shape=(samples,), name="waveform", dtype="float32")


@keras.saving.register_keras_serializable(package="zoo")
class LogMelSpectrogram(keras.layers.Layer):
    """Waveform [B, N] -> log-mel energies [B, frames, num_mel_bins], one frame per 10 ms.

    25 ms Hann windows every 10 ms, a 512-point FFT, mel filters from 20 Hz to 7.6 kHz,
    log(energy + 1e-6). Frames are not centred: the last frames are zero-padded
    (`pad_end`), so a clip gives the same frames alone as padded with zeros in a batch,
    and a clip shorter than one window (even an empty one) still gives a frame. (Keras'
    `MelSpectrogram` centres with reflection, which fails on clips under 257 samples
    and makes a clip's last frames depend on what follows it.) Core TF ops only.
    """

    def __init__(self, num_mel_bins=40, frame_length=400, frame_step=160, fft_length=512, sample_rate=SAMPLE_RATE,
                 lower_hz=20.0, upper_hz=7600.0, **kwargs):
        super().__init__(**kwargs)
        self.num_mel_bins, self.frame_length, self.frame_step = num_mel_bins, frame_length, frame_step
        self.fft_length, self.sample_rate, self.lower_hz, self.upper_hz = fft_length, sample_rate, lower_hz, upper_hz

    def call(self, waveform):
        import tensorflow as tf

        waveform = tf.cast(waveform, tf.float32)
        # One window's worth of zeros first: an empty clip still has a (silent) frame.
        waveform = tf.pad(waveform, [[0, 0], [0, self.frame_length]])[:, :tf.maximum(
            tf.shape(waveform)[1], self.frame_length)]
        stft = tf.signal.stft(waveform, self.frame_length, self.frame_step, self.fft_length, pad_end=True)
        mel = tf.signal.linear_to_mel_weight_matrix(self.num_mel_bins, self.fft_length // 2 + 1, self.sample_rate,
                                                    self.lower_hz, self.upper_hz)
        energies = tf.matmul(tf.square(tf.abs(stft)), mel)
        return tf.cast(tf.math.log(energies + 1e-6), self.compute_dtype)

    def frames(self, samples):
        """Frames of `samples` samples (None stays None)."""
        if samples is None:
            return None
        return -(-max(samples, self.frame_length) // self.frame_step)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.frames(input_shape[1]), self.num_mel_bins)

    def get_config(self):
        return dict(super().get_config(), num_mel_bins=self.num_mel_bins, frame_length=self.frame_length,
                    frame_step=self.frame_step, fft_length=self.fft_length, sample_rate=self.sample_rate,
                    lower_hz=self.lower_hz, upper_hz=self.upper_hz)
