"""A task the project does not have, added from this file alone: the proof that a task
is one place.

`vector_regression` (small numeric vectors -> one number, served through TF Serving's
Regress RPC and Predict), its model `tiny_linear` and its in-memory dataset
`noisy_plane` are defined here and registered the way the project's own are. They then
go the whole way with no change to any project file: `zoo.train` -> `export_saved_model`
(verified in a fresh process) -> `zoo-model-server` -> Regress and Predict over gRPC.
"""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import keras
import zoo
from export import ExportError, export_saved_model
from export.model_card import read_model_card
from serving import Client, ModelServer
from task_checks import go_the_whole_way
from zoo.data import register_dataset
from zoo.tasks import PREDICT_METHOD, REGRESS_METHOD, Endpoint, Request, Signatures, Task, register_task

WEIGHTS, BIAS = np.array([1.5, -2.0, 0.5], np.float32), 0.25
FEATURE = "x"  # the tf.Example float feature `regress` reads


def vector_example(x) -> tf.train.Example:
    return tf.train.Example(features=tf.train.Features(feature={
        FEATURE: tf.train.Feature(float_list=tf.train.FloatList(value=np.ravel(x)))}))


class VectorRegression(Task):
    """Vectors [B, N] float32 -> one float32 per example (mean squared error)."""

    name = "vector_regression"
    description = "[B,N] float32 -> [B] float32"
    input_names = ("x",)
    serving_inputs = ("x",)

    def loss(self):
        return keras.losses.MeanSquaredError()

    def metrics(self):
        return [keras.metrics.MeanAbsoluteError(name="mae")]

    def builder_arguments(self, info):
        return {"features": info.input_shape[0]}

    def batch_features(self, x, y):
        return {"x": tf.cast(x, tf.float32)}, tf.cast(y, tf.float32)

    def examples(self, source, given, count):
        if given is not None:
            return {"x": np.asarray(given, np.float32)[:count]}, "given"
        x, _ = noisy_plane("train")
        return {"x": x[:count]}, f"noisy_plane:train[:{count}]"

    def signatures(self, model, assets, staging_dir):
        n = model.input["x"].shape[1]

        @tf.function(input_signature=[tf.TensorSpec((None, n), tf.float32)])
        def predict(x):
            return {"y": tf.reshape(model({"x": x}, training=False), (-1,))}

        def serving_default(x):
            return predict(x)

        def regress(inputs):
            parsed = tf.io.parse_example(inputs, {FEATURE: tf.io.FixedLenFeature([n], tf.float32)})
            return {"outputs": predict(parsed[FEATURE])["y"]}

        return Signatures({
            "serving_default": Endpoint(serving_default, [tf.TensorSpec((None, n), tf.float32, name="x")]),
            "regress": Endpoint(regress, [tf.TensorSpec((None,), tf.string, name="inputs")], REGRESS_METHOD),
        })

    def requests(self, examples, batch_sizes=(1, None)):
        x = examples["x"]
        out = []
        for size in dict.fromkeys(min(b or len(x), len(x)) for b in batch_sizes):
            out += [Request("serving_default", PREDICT_METHOD, size, inputs={"x": x[:size]}),
                    Request("regress", REGRESS_METHOD, size, examples=[vector_example(v) for v in x[:size]])]
        return out

    def reference(self, model, examples, assets):
        return {"y": np.asarray(model.predict_on_batch({"x": examples["x"]})).reshape(-1)}

    def compare(self, request, outputs, reference, assets):
        name = "outputs" if request.method_name == REGRESS_METHOD else "y"
        if name not in outputs:
            return [f"{request.signature}: no {name!r} output"], float("inf")
        got, want = np.asarray(outputs[name]).reshape(-1), reference["y"][:request.size]
        if got.shape != want.shape:
            return [f"{request.signature}: {name} has shape {got.shape}, Keras gives {want.shape}"], float("inf")
        diff = float(np.max(np.abs(got - want)))
        return ([f"{request.signature}: differs from Keras by {diff:.3g}"] if diff > 1e-4 else []), diff

    def format_answer(self, row):
        return f"{row['y']:.4f}"


register_task(VectorRegression())


@zoo.register_model(task="vector_regression", default_dataset="noisy_plane")
def tiny_linear(features=3):
    """One dense unit: y = w.x + b."""
    x = keras.Input((features,), name="x")
    return keras.Model({"x": x}, keras.layers.Dense(1, name="y")(x), name="tiny_linear")


@register_dataset(task="vector_regression")
def noisy_plane(split):
    """y = 1.5 x0 - 2 x1 + 0.5 x2 + 0.25 + noise, 3-vectors."""
    rng = np.random.default_rng({"train": 0, "validation": 1, "test": 2}[split])
    x = rng.normal(size=(512, 3)).astype(np.float32)
    return x, (x @ WEIGHTS + BIAS + rng.normal(0, 0.01, 512)).astype(np.float32)


@pytest.fixture(scope="module")
def plane_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny_linear-noisy_plane"
    return zoo.train("tiny_linear", "noisy_plane", epochs=30, batch_size=32, learning_rate=0.05, out_dir=out,
                     verbose=0)


def test_the_new_task_is_registered_beside_the_project_ones():
    assert "vector_regression" in zoo.tasks.list_tasks()
    assert zoo.list_models("vector_regression") == ["tiny_linear"]
    assert "noisy_plane" in zoo.data.list_datasets("vector_regression")
    ds, info = zoo.load_dataset("noisy_plane", "train", batch_size=8, with_info=True)
    x, y = next(iter(ds))
    assert info.task == "vector_regression" and info.input_shape == (3,) and x["x"].shape == (8, 3)


def test_train_export_serve_regress_and_predict(plane_run, tmp_path):
    metrics = zoo.evaluate(plane_run)
    assert metrics["mae"] < 0.05, metrics  # it learned the plane

    version = export_saved_model(plane_run, tmp_path / "models", "plane")  # verified in a fresh process
    card = read_model_card(version)
    assert card["task"] == "vector_regression" and card["verification"]["records"] == 4
    assert set(card["signatures"]) == {"serving_default", "regress"}

    x = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 2.0], [-1.0, 0.5, 3.0]], np.float32)
    truth = x @ WEIGHTS + BIAS
    with ModelServer(str(version.parent.resolve()), "plane", port=0) as server:
        client = Client(f"localhost:{server.grpc_port}", "plane")
        regressed = client.regress([{FEATURE: list(map(float, row))} for row in x])
        predicted = client.predict({"x": x})["y"]
        client.close()
    np.testing.assert_allclose(regressed, truth, atol=0.05)
    np.testing.assert_allclose(predicted, regressed, atol=1e-5)


def test_the_shared_whole_way_check_takes_the_new_task(tmp_path):
    diffs = go_the_whole_way(["tiny_linear"], tmp_path)
    assert diffs["tiny_linear"] <= 1e-4


def test_a_users_own_model_exports_with_task_and_a_wrong_one_is_refused(tmp_path):
    x = keras.Input((3,), name="x")
    own = keras.Model({"x": x}, keras.layers.Dense(1)(x))  # named "functional": not registered
    with pytest.raises(ExportError, match="Cannot tell the task of model 'functional(_\d+)?'.*vector_regression"):
        export_saved_model(own, tmp_path / "models", "own")
    path = export_saved_model(own, tmp_path / "models", "own", task="vector_regression", dataset="noisy_plane")
    assert (path / "saved_model.pb").exists()

    image = keras.Input((4, 4, 1), name="image")
    wrong = keras.Model({"image": image}, keras.layers.Dense(2)(keras.layers.Flatten()(image)))
    with pytest.raises(ExportError, match=r"vector_regression model takes the named inputs \['x'\]"):
        export_saved_model(wrong, tmp_path / "models", "wrong", task="vector_regression")
    with pytest.raises(ExportError, match="Unknown task 'vector_regresion'. Did you mean 'vector_regression'"):
        export_saved_model(own, tmp_path / "models", "own", task="vector_regresion")
    with pytest.raises(ExportError, match="max_image_pixels: not an export option of a vector_regression model"):
        export_saved_model(own, tmp_path / "models", "own", task="vector_regression", task_options={"max_image_pixels": 10})
    assert sorted(p.name for p in (tmp_path / "models" / "own").iterdir()) == ["1"]


def test_names_the_project_uses_are_refused_and_its_sets_still_load():
    with pytest.raises(ValueError, match="A dataset named 'digits' is already registered"):
        @register_dataset(task="vector_regression")
        def digits(split):
            return noisy_plane(split)

    class ImageClassification(VectorRegression):  # same class name as the project's own
        name = "image_classification"

    with pytest.raises(ValueError, match="A task named 'image_classification' is already registered"):
        register_task(ImageClassification())
    assert zoo.tasks.get_task("image_classification").input_names == ("image",)
    assert zoo.load_dataset("digits", "test", batch_size=2, with_info=True)[1].task == "image_classification"


def test_zoo_export_takes_only_the_tasks_own_options(plane_run, tmp_path, capsys):
    from zoo import cli

    argv = ["export", str(plane_run), "--base-path", str(tmp_path / "models"), "--set", "verify=false"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "verify: not an export option of a vector_regression model; its options: none" in err
    assert not (tmp_path / "models").exists()


def _zoo(argv, pythonpath):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(map(str, pythonpath)))
    return subprocess.run([sys.executable, "-m", "zoo.cli", *argv], capture_output=True, text=True, env=env,
                          timeout=300)


def test_another_package_adds_the_task_through_its_entry_point(plane_run, tmp_path):
    """`zoo export` of a vector_regression run in a fresh process: the task is found
    through the `zoo.plugins` entry point of an installed package (here a .dist-info
    beside this module), and named as missing without it."""
    tests = pathlib.Path(__file__).parent
    base = tmp_path / "models"
    argv = ["export", str(plane_run), "--base-path", str(base), "--model-name", "plane"]
    missing = _zoo(argv, [tests])
    assert missing.returncode == 2
    assert "Unknown task 'vector_regression'" in missing.stderr and "'zoo.plugins' entry point" in missing.stderr

    site = tmp_path / "site"
    info = site / "plane_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plane-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[zoo.plugins]\nvector_regression = test_task_plugin\n")
    found = _zoo(argv, [site, tests])
    assert found.returncode == 0, found.stderr[-3000:]
    assert "Exported plane version 1" in found.stdout
    assert read_model_card(base / "plane" / "1")["task"] == "vector_regression"
    listed = _zoo(["list", "--task", "vector_regression"], [site, tests])
    assert listed.returncode == 0 and "tiny_linear" in listed.stdout
