"""Spoken-command classifiers on log-mel spectrograms: the plain CNN of TensorFlow's
"simple audio recognition" tutorial, with the features computed inside the model.

The model takes `waveform` float32 [B, 16000] (one second at 16 kHz, -1..1; the task
pads or cuts clips to that) and computes 40 log-mel energies every 10 ms inside the
graph (`LogMelSpectrogram`), so a served model takes the samples (or the WAV file) a
client has and computes the features exactly as in training. The spectrogram is read
as a one-channel image [frames, mel bins]: batch normalisation (a fixed affine map at
inference, so an answer never depends on its batch), convolution blocks, global average
pooling, dropout, logits.
"""

from __future__ import annotations

import keras

from zoo.models.preprocessing import LogMelSpectrogram, check_num_classes, logits, waveform_input
from zoo.registry import register_model


def log_mel_image(samples, num_mel_bins, model):
    """(waveform input, normalised log-mel "image" [B, frames, mels, 1])."""
    waveform = waveform_input(samples, model)
    x = LogMelSpectrogram(num_mel_bins=num_mel_bins, name="log_mel")(waveform)
    x = keras.layers.Reshape((-1, num_mel_bins, 1), name="as_image")(x)
    return waveform, keras.layers.BatchNormalization(name="feature_norm")(x)


@register_model(task="audio_classification", default_dataset="spoken_commands")
def speech_cnn(num_classes=10, samples=16_000, num_mel_bins=40, filters=(32, 64, 128), dense_units=128,
               dropout=0.25):
    """Speech CNN: log-mel -> [conv 3x3, ReLU, max-pool 2] per filter count -> dense -> logits.

    Args:
        num_classes: number of commands.
        samples: waveform samples per clip (16,000: one second at 16 kHz).
        num_mel_bins: log-mel energies per 10 ms frame.
        filters: filters of each convolution block.
        dense_units: width of the dense layer before the logits (0: none).
        dropout: dropout rate before the dense layer and the logits.

    Example:
        >>> import zoo
        >>> model = zoo.build_model("speech_cnn", num_classes=10)
        >>> model.input_shape   # one second of 16 kHz samples
        (None, 16000)
    """
    check_num_classes(num_classes, "speech_cnn")
    if not filters or any(not isinstance(f, int) or isinstance(f, bool) or f < 1 for f in filters):
        raise ValueError(f"speech_cnn: filters must be positive ints, got {filters!r}.")
    waveform, x = log_mel_image(samples, num_mel_bins, "speech_cnn")
    for i, width in enumerate(filters):
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name=f"conv_{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool_{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    if dense_units:
        x = keras.layers.Dense(dense_units, activation="relu", name="dense")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="dense_dropout")(x)
    return keras.Model([waveform], logits(x, num_classes), name="speech_cnn")
