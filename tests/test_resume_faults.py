"""A damaged backup of an unfinished run is reported, never silently restarted; leftovers
of killed runs and exports are cleaned by the next one."""

import os
import subprocess
import sys

import keras
import pytest

import zoo
from export import export_saved_model
from zoo.cli import main as zoo_main
from zoo.training.callbacks import BackupError


class _Killed(Exception):
    pass


class _DieAfter(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise _Killed()


def _unfinished(out):
    with pytest.raises(_Killed):
        zoo.train("mlp", "digits", epochs=4, out_dir=out, verbose=0, callbacks=[_DieAfter(1)],
                  model_kwargs={"hidden_units": (16,)})
    backup = out / "backup"
    assert (backup / "latest.weights.h5").exists() and (backup / "training_metadata.json").exists()
    return backup


def _truncate(backup):
    path = backup / "latest.weights.h5"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return "latest.weights.h5 is not a readable weights file"


def _garble(backup):
    (backup / "training_metadata.json").write_text('{"epoch": \x01 2}')
    return "training_metadata.json is not BackupAndRestore's metadata"


def _delete(backup):
    (backup / "latest.weights.h5").unlink()
    return "latest.weights.h5 is missing (it holds the weights of epoch 2)"


@pytest.mark.parametrize("damage", [_truncate, _garble, _delete], ids=["truncated", "garbled", "deleted"])
def test_a_damaged_backup_is_reported_and_restart_starts_over(tmp_path, damage, capsys):
    out = tmp_path / "run"
    text = damage(_unfinished(out))
    with pytest.raises(BackupError, match="--restart") as info:
        zoo.train("mlp", "digits", epochs=4, out_dir=out, verbose=0, model_kwargs={"hidden_units": (16,)})
    assert text in str(info.value) and str(out) in str(info.value)
    argv = ["train", "mlp", "--dataset", "digits", "--epochs", "4", "--out", str(out), "--set", "hidden_units=16,"]
    assert zoo_main(argv) == 1
    err = capsys.readouterr().err
    assert text in err and len(err.strip().splitlines()) == 1
    assert zoo_main(argv + ["--restart"]) == 0
    assert (out / "model.keras").exists() and not (out / "backup").exists()


def test_an_intact_backup_resumes_where_it_stopped(tmp_path):
    out = tmp_path / "run"
    _unfinished(out)
    zoo.train("mlp", "digits", epochs=4, out_dir=out, verbose=0, model_kwargs={"hidden_units": (16,)})
    assert (out / "history.csv").read_text().count("\n") == 5  # header + epochs 0..3, none redone


def test_leftovers_of_killed_processes_are_removed_and_live_ones_kept(tmp_path, digits_run):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    base = tmp_path / "models"
    stale_export = base / "d" / f".tmp-7-{dead}"
    live_export = base / "d" / f".tmp-8-{os.getpid()}"
    for folder in (stale_export, live_export):
        folder.mkdir(parents=True)
    export_saved_model(digits_run, base, "d", verify=False)
    assert not stale_export.exists() and live_export.exists()

    out = tmp_path / "run"
    _unfinished(out)
    stale_best = out / f".best.tmp{dead}.keras"
    stale_best.write_bytes(b"half a checkpoint")
    zoo.train("mlp", "digits", epochs=4, out_dir=out, verbose=0, model_kwargs={"hidden_units": (16,)})
    assert not stale_best.exists()
