"""zoo.train on a user's own data: (x, y) arrays and tf.data.Datasets, with everything
a named dataset gets (run directory, resume, metrics, the text tokenizer)."""

import json

import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.data.digits import digits

RUN_FILES = ("config.json", "dataset.json", "model.keras", "best.keras", "history.json", "history.csv",
             "curves.png", "metrics.json")


def _digits(split):
    x, y = digits(split)
    return x, y


def _check_run(run_dir, label_names=None):
    for name in RUN_FILES:
        assert (run_dir / name).exists(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.95, metrics
    info = json.loads((run_dir / "dataset.json").read_text())
    assert info["source"] == "memory" and info["num_classes"] == 10
    if label_names:
        assert info["label_names"] == list(label_names)
    return metrics


def test_train_on_numpy_arrays_reaches_95_percent(tmp_path):
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    run_dir = zoo.train("simple_cnn", _digits("train"), validation_data=_digits("test"), label_names=names,
                        epochs=15, out_dir=tmp_path / "run", verbose=0)
    _check_run(run_dir, names)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["dataset"].startswith("arrays-")
    # The same arrays again name the same data: a finished run is found, not silently redone.
    with pytest.raises(zoo.training.RunDirError, match="finished run"):
        zoo.train("simple_cnn", _digits("train"), validation_data=_digits("test"), label_names=names,
                  epochs=15, out_dir=tmp_path / "run", verbose=0)


def test_train_on_a_batched_tf_data_dataset_reaches_95_percent(tmp_path):
    x, y = _digits("train")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)  # batched as a user would
    run_dir = zoo.train("simple_cnn", ds, validation_data=_digits("test"), epochs=15,
                        out_dir=tmp_path / "run", verbose=0)
    _check_run(run_dir, [str(i) for i in range(10)])
    assert json.loads((run_dir / "config.json").read_text())["dataset"].startswith("dataset-")


def test_text_arrays_get_a_tokenizer_learned_from_them(tmp_path):
    texts = ["good great fine", "bad awful poor"] * 40
    labels = [0, 1] * 40
    run_dir = zoo.train("text_cnn", (texts, labels), label_names=["pos", "neg"], epochs=3,
                        out_dir=tmp_path / "run", verbose=0, model_kwargs={"sequence_length": 8})
    vocabulary = (run_dir / "vocab.txt").read_text().split()
    assert {"good", "awful"} <= set(vocabulary)


@pytest.mark.parametrize("data, validation, labels, error, text", [
    ("digits", None, ["a"], TypeError, "go with your own data"),
    (np.zeros([4, 8, 8, 1]), None, None, TypeError, "(x, y) arrays or a tf.data.Dataset"),
    ((np.zeros([4, 8, 8, 1]), np.zeros([3], int)), None, None, ValueError, "4 inputs but 3 labels"),
    ((np.zeros([4, 8, 8, 1]), np.zeros([4])), None, None, ValueError, "integer class ids"),
    ((np.zeros([4, 8, 8, 1]), np.array([0, 1, 2, -1])), None, None, ValueError, "negative"),
    ((np.zeros([4, 8, 8, 1]), np.array([0, 1, 2, 1])), None, ["a", "b"], ValueError, "label_names has 2 names"),
    (tf.data.Dataset.from_tensor_slices(np.zeros([4, 8, 8, 1])), None, None, TypeError, "(input, label) pairs"),
])
def test_bad_data_is_refused_with_what_was_wrong(tmp_path, data, validation, labels, error, text):
    with pytest.raises(error, match=text.replace("(", r"\(").replace(")", r"\)")):
        zoo.train("simple_cnn", data, validation_data=validation, label_names=labels, epochs=1,
                  out_dir=tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists()


def test_a_registered_dataset_of_ones_own_trains_from_the_cli(tmp_path):
    import os
    import subprocess
    import sys

    (tmp_path / "my_digits.py").write_text(
        "import zoo\n"
        "from zoo.data.digits import digits\n\n"
        "@zoo.register_dataset(task='image_classification', label_names=[str(i) for i in range(10)])\n"
        "def my_digits(split):\n"
        "    return digits(split)\n")
    script = os.path.join(os.path.dirname(sys.executable), "zoo")
    env = dict(os.environ, ZOO_PLUGINS="my_digits")
    done = subprocess.run([script, "train", "simple_cnn", "--dataset", "my_digits", "--epochs", "15",
                           "--out", str(tmp_path / "run")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.95
    # Without the variable the name is unknown, and the message says which sets exist.
    done = subprocess.run([script, "train", "simple_cnn", "--dataset", "my_digits", "--epochs", "1",
                           "--out", str(tmp_path / "run2")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={k: v for k, v in os.environ.items() if k != "ZOO_PLUGINS"})
    assert done.returncode != 0 and "my_digits" in done.stderr


def test_build_model_comes_compiled_and_plain_keras_fit_on_arrays_reaches_95_percent():
    import warnings

    x, y = _digits("train")
    x_test, y_test = _digits("test")
    model = zoo.build_model("simple_cnn", num_classes=10, input_shape=(8, 8, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "structure of inputs doesn't match" on plain arrays
        model.fit(x.astype("float32"), y, epochs=15, batch_size=64, verbose=0)
        accuracy = model.evaluate(x_test.astype("float32"), y_test, verbose=0, return_dict=True)["accuracy"]
        logits = model.predict(x_test[:4].astype("float32"), verbose=0)
    assert accuracy >= 0.95
    assert logits.shape == (4, 10)
    # The same model takes the named dict too, and compile replaces the defaults.
    model.compile(optimizer="sgd", loss=model.loss)
    assert model.predict({"image": x_test[:2].astype("float32")}, verbose=0).shape == (2, 10)
    assert not zoo.build_model("simple_cnn", compiled=False, num_classes=3).compiled
