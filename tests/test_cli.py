"""The `zoo` command line: every command's help has an example; bad input is one clear line."""

import json
import re
import subprocess
import sys
import time

import pytest

from zoo import cli

COMMANDS = ["list", "datasets", "info", "train", "evaluate", "bench", "demo"]
ALL_COMMANDS = COMMANDS + ["export", "serve", "predict"]

_HELP_PROBE = """
import sys, time
start = time.perf_counter()
from zoo.cli import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    assert e.code == 0, e.code
heavy = sorted(m for m in ("tensorflow", "keras", "grpc", "export.archive", "serving.server") if m in sys.modules)
print(repr((time.perf_counter() - start, heavy)))
"""


@pytest.mark.parametrize("argv", [["--help"]] + [[c, "--help"] for c in ALL_COMMANDS])
def test_help_answers_in_under_a_second_without_tensorflow(argv):
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _HELP_PROBE, *argv], capture_output=True, text=True, timeout=60)
    wall = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr
    seconds, heavy = eval(proc.stdout.strip().splitlines()[-1])
    assert heavy == [], f"`zoo {' '.join(argv)}` imported {heavy}"
    assert seconds < 0.5 and wall < 1.0, (seconds, wall)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_shows_an_example(command, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out and f"zoo {command}" in out


def test_datasets_lists_name_task_splits_and_source(capsys):
    assert cli.main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^synthetic_topics +text_classification +offline ", out, re.M)
    assert re.search(r"^synthetic_entities +token_classification +offline ", out, re.M)
    assert "train 1,294, validation 144, test 359" in out  # digits
    assert cli.main(["datasets", "--task", "text_classification", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) >= {"synthetic_topics", "imdb_reviews", "ag_news_subset"}
    assert rows["synthetic_topics"]["splits"] == {"train": 4000, "validation": 500, "test": 500}
    assert rows["imdb_reviews"]["offline"] is False and all(r["task"] == "text_classification" for r in rows.values())


def test_list_table_and_json(capsys):
    assert cli.main(["list"]) == 0
    table = capsys.readouterr().out
    assert "default dataset" in table and "resnet50" in table and "25,610,152" in table
    assert cli.main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in rows}
    assert by_name["simple_cnn"]["task"] == "image_classification"
    assert by_name["simple_cnn"]["parameters"] == 545_098
    assert by_name["simple_cnn"]["default_dataset"] == "cifar10"


def test_info_on_a_model_and_a_run(digits_run, capsys):
    assert cli.main(["info", "simple_cnn"]) == 0
    out = capsys.readouterr().out
    assert "Conv2D(32, 3)" in out and "logits" in out
    assert cli.main(["info", str(digits_run)]) == 0
    assert '"dataset": "digits"' in capsys.readouterr().out


def test_train_and_evaluate_through_the_cli(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["train", "mlp", "--dataset", "digits", "--epochs", "2", "--out", str(out),
                     "--set", "hidden_units=32,", "--set", "optimizer=sgd"])
    assert code == 0
    assert "run directory" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["optimizer"] == "sgd" and config["model_kwargs"] == {"hidden_units": [32]}
    assert cli.main(["evaluate", str(out)]) == 0
    assert '"accuracy"' in capsys.readouterr().out


@pytest.mark.parametrize("argv, words", [
    (["train", "resnet21", "--dataset", "digits"], ["Unknown model 'resnet21'", "resnet20"]),
    (["train", "mlp", "--dataset", "digitz"], ["Unknown dataset 'digitz'", "digits"]),
    (["train", "mlp", "--dataset", "digits", "--set", "dropot=1"], ["Did you mean 'dropout'"]),
    (["train", "mlp", "--dataset", "digits", "--epochs", "0"], ["epochs must be a positive int"]),
    (["evaluate", "/nonexistent/run"], ["does not exist"]),
    (["info", "nonexistent_model"], ["Unknown model"]),
])
def test_bad_input_is_one_clear_line(argv, words, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"zoo {argv[0]}: error: ")
    assert "Traceback" not in err
    for w in words:
        assert w in err


def test_evaluate_an_unfinished_run_says_how_to_resume(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{}")
    assert cli.main(["evaluate", str(tmp_path)]) == 2
    assert "has not finished" in capsys.readouterr().err


def test_a_run_that_fails_before_its_first_step_leaves_no_run_directory(tmp_path, capsys):
    for argv in (["train", "mlp", "--dataset", "digitz"], ["train", "text_cnn", "--dataset", "digits"]):
        out = tmp_path / argv[1]
        assert cli.main(argv + ["--out", str(out)]) == 2
        assert not out.exists(), argv
    capsys.readouterr()


def test_info_lists_the_set_keys_with_their_defaults(capsys):
    assert cli.main(["info", "simple_cnn"]) == 0
    out = capsys.readouterr().out
    assert "dense_units=128" in out and "num_classes=10   (set from the dataset)" in out
    assert "optimizer='adam'" in out and "init_from=None" in out


def test_train_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = capsys.readouterr().out
    assert "(default: 10)" in out and "(default: 0.001)" in out


def test_predict_of_a_missing_file_says_no_such_file(capsys):
    assert cli.main(["predict", "--model", "digits", "--server", "127.0.0.1:1", "missing.png"]) == 2
    assert "no such file: missing.png" in capsys.readouterr().err


def test_tensorflows_start_up_lines_are_kept_out_unless_verbose():
    import os

    script = os.path.join(os.path.dirname(sys.executable), "zoo")
    quiet = subprocess.run([script, "datasets"], capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0 and "digits" in quiet.stdout
    assert "I0000" not in quiet.stderr and "cuda" not in quiet.stderr.lower(), quiet.stderr
    verbose = subprocess.run([script, "--verbose", "datasets"], capture_output=True, text=True, timeout=120)
    assert verbose.returncode == 0 and "digits" in verbose.stdout


@pytest.mark.parametrize("code, text, fix", [
    ("ENOSPC", "No space left on device", "free some space"),
    ("EROFS", "Read-only file system", "choose another folder"),
])
def test_a_full_or_read_only_disk_is_one_line_with_the_fix_and_exit_1(digits_run, tmp_path, monkeypatch, capsys,
                                                                       code, text, fix):
    import errno
    import os

    import export.archive

    def fail(*args, **kwargs):  # as the SavedModel writer meets it (root ignores chmod here)
        number = getattr(errno, code)
        raise OSError(number, os.strerror(number), str(tmp_path / "models"))

    monkeypatch.setattr(export.archive, "_write_saved_model", fail)
    assert cli.main(["export", str(digits_run), "--base-path", str(tmp_path / "models"), "--model-name", "d"]) == 1
    progress_line, error = capsys.readouterr().err.splitlines()  # a progress line, then the error
    assert progress_line.startswith("exporting ")
    assert error.startswith(f"zoo export: error: {text}: ") and fix in error
    # Nothing half-written: no version folder, no temporary folder.
    assert not [p for p in (tmp_path / "models").rglob("*") if p.name not in ("d",) and p.is_dir()]
