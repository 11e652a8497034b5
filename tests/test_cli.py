"""The `zoo` command line: every command's help has an example; bad input is one clear line."""

import json

import pytest

from zoo import cli

COMMANDS = ["list", "info", "train", "evaluate", "bench", "demo"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_shows_an_example(command, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out and f"zoo {command}" in out


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
