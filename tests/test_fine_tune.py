"""Fine-tuning: a run that starts from a finished run's weights, head rebuilt for new classes."""

import json

import numpy as np
import pytest

import zoo
from zoo.cli import main as zoo_main
from zoo.data.digits import digits
from zoo.training.fine_tune import initialize_from
from zoo.training.trainer import load_run


def _five_classes(split):
    x, y = digits(split)
    keep = y < 5
    return x[keep], y[keep]


def test_weights_are_copied_where_shapes_match_and_the_head_is_rebuilt(digits_run):
    source, _, _ = load_run(digits_run)
    model = zoo.build_model("simple_cnn", num_classes=5, input_shape=(8, 8, 1))
    head_before = model.get_layer("logits").get_weights()
    report = initialize_from(model, source)
    assert report["skipped"].keys() == {"logits"} and "shapes differ" in report["skipped"]["logits"]
    for name in report["copied"]:
        for a, b in zip(model.get_layer(name).get_weights(), source.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(model.get_layer("logits").get_weights(), head_before):
        np.testing.assert_array_equal(a, b)  # the new head keeps its fresh initialization


def test_fine_tune_onto_a_five_class_subset_reaches_95_percent(digits_run, tmp_path):
    run_dir = zoo.train("simple_cnn", _five_classes("train"), validation_data=_five_classes("test"),
                        init_from=digits_run, frozen_epochs=2, epochs=6, out_dir=tmp_path / "run", verbose=0)
    record = json.loads((run_dir / "init_from.json").read_text())
    assert record["run_dir"] == str(digits_run.resolve()) and "logits" in record["skipped"]
    assert {"conv_0", "conv_1", "dense"} <= set(record["copied"])
    config = json.loads((run_dir / "config.json").read_text())
    assert config["init_from"] == str(digits_run.resolve()) and config["frozen_epochs"] == 2
    history = json.loads((run_dir / "history.json").read_text())
    assert history["epoch"] == list(range(6))  # both phases in one history
    assert json.loads((run_dir / "metrics.json").read_text())["accuracy"] >= 0.95


def test_the_cli_fine_tunes_and_refuses_a_run_of_another_task(digits_run, tmp_path, capsys):
    assert zoo_main(["train", "simple_cnn", "--dataset", "digits", "--init-from", str(digits_run),
                     "--epochs", "1", "--out", str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "init_from.json").read_text())["skipped"] == {}
    with pytest.raises(ValueError, match="frozen_epochs freezes weights taken from another run"):
        zoo.train("simple_cnn", "digits", frozen_epochs=1, epochs=2, out_dir=tmp_path / "x", verbose=0)
