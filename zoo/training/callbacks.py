"""Callbacks the trainer adds to Keras' own."""

from __future__ import annotations

import math
import os
import pathlib

import keras


class AtomicBestCheckpoint(keras.callbacks.Callback):
    """Saves the model whenever `monitor` improves, atomically.

    Keras' ModelCheckpoint writes the target in place, so a crash mid-write leaves a
    truncated file where the best model was. This writes a temp file beside it and
    renames it over the old one: readers see the old or the new checkpoint, whole.
    """

    def __init__(self, filepath, monitor="val_loss", mode="min"):
        super().__init__()
        self.filepath = str(filepath)
        self.monitor = monitor
        self.mode = mode
        self.best = math.inf if mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        better = value < self.best if self.mode == "min" else value > self.best
        if not better:
            return
        self.best = value
        path = pathlib.Path(self.filepath)
        tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
        self.model.save(tmp)
        os.replace(tmp, path)
