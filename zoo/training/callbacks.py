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


# BackupAndRestore's files (keras/callbacks/backup_and_restore.py): the weights and
# optimizer state, and the epoch to go on from; ".bkp" copies of the previous epoch's.
BACKUP_WEIGHTS = "latest.weights.h5"
BACKUP_METADATA = "training_metadata.json"


class BackupError(RuntimeError):
    """The backup of an unfinished run cannot resume it."""

    exit_code = 1  # the command line's exit status: a failure


def check_backup(backup_dir) -> None:
    """Refuses a backup that BackupAndRestore would misread, before training starts.

    Keras resumes from `training_metadata.json`'s epoch with the weights of
    `latest.weights.h5`: with the weights deleted it goes on at that epoch from fresh
    weights, silently; truncated weights or garbled metadata end in an h5py or JSON
    traceback that names neither file. Where the latest pair is damaged and the
    previous epoch's copies (".bkp") are whole, those are put back instead.

    Raises:
        BackupError: naming the file, what is wrong with it, and the way out.
    """
    backup_dir = pathlib.Path(backup_dir)
    if not backup_dir.is_dir():
        return
    weights, metadata = backup_dir / BACKUP_WEIGHTS, backup_dir / BACKUP_METADATA
    problem = _backup_problem(weights, metadata)
    if problem is None:
        return
    previous = (backup_dir / f"{BACKUP_WEIGHTS}.bkp", backup_dir / f"{BACKUP_METADATA}.bkp")
    if all(p.exists() for p in previous) and _backup_problem(*previous) is None:
        os.replace(previous[0], weights)
        os.replace(previous[1], metadata)
        return
    run_dir = backup_dir.parent
    raise BackupError(
        f"The backup of the unfinished run in {run_dir} is damaged: {problem}. It cannot resume the run; "
        f"run the same command with --restart (zoo.train(..., restart=True)) to start this run over, "
        f"or put the file back.")


def _backup_problem(weights: pathlib.Path, metadata: pathlib.Path) -> str | None:
    import json

    import h5py

    try:
        epoch = json.loads(metadata.read_text())["epoch"]
        if not isinstance(epoch, int) or epoch < 0:
            raise ValueError(epoch)
    except FileNotFoundError:
        return f"{metadata} is missing"
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return f"{metadata} is not BackupAndRestore's metadata (it should hold {{\"epoch\": N, ...}})"
    if not weights.exists():
        return f"{weights} is missing (it holds the weights of epoch {epoch})"
    try:
        with h5py.File(weights, "r") as f:
            f.visit(lambda name: None)  # reads the whole index: a truncated file fails here
    except OSError as e:
        return f"{weights} is not a readable weights file ({e})"
    return None
