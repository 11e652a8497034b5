"""Every registered model: build, call, fit one step, .keras round trip, config round trip."""

import keras
import numpy as np
import pytest

import zoo
from zoo import registry, tasks
from zoo.tasks.base import model_inputs
from tests.model_checks import class_outputs, example_batch, example_labels, output_names, output_width, tiny_model


@pytest.mark.parametrize("name", zoo.list_models())
def test_every_model_builds_fits_saves_and_round_trips(name, tmp_path):
    model = tiny_model(name)
    task = tasks.get_task(registry.get_model_spec(name).task)
    assert set(task.input_names) <= set(model_inputs(model))
    task.check_model(model)
    assert model.output_names == output_names(name)
    assert all(model.get_layer(n).name == n for n in output_names(name))
    x = example_batch(model)
    out = model(x, training=False)
    assert class_outputs(out).shape[0] == 4 and class_outputs(out).shape[-1] == output_width(name)
    labels = example_labels(model, out)  # one per example or per word; a detector's boxes

    # Eager: tracing a deep net's train function costs more than one step is worth here.
    model.compile(optimizer="adam", loss=task.loss(), run_eagerly=True)
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.fit(x, labels, epochs=1, batch_size=4, verbose=0)
    after = [w.numpy() for w in model.trainable_weights]
    assert any(not np.allclose(a, b) for a, b in zip(before, after)), "one fit step changed no weight"

    def answers(m):
        return [np.asarray(a) for a in keras.tree.flatten(m(x, training=False))]

    expected = answers(model)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    for got, want in zip(answers(loaded), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    clone = type(model).from_config(model.get_config())
    clone.set_weights(model.get_weights())
    for got, want in zip(answers(clone), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert clone.get_config() == model.get_config()


def test_reference_parameter_counts():
    # The published architectures: torchvision's resnet50 has 25,557,032 parameters
    # (BatchNorm statistics are buffers there, non-trainable weights here) and
    # keras.applications.MobileNetV2 at alpha=1.0 has 3,538,984 in all.
    r50 = zoo.build_model("resnet50")
    trainable = sum(int(np.prod(w.shape)) for w in r50.trainable_weights)
    assert trainable == 25_557_032
    assert zoo.build_model("mobilenet_v2").count_params() == 3_538_984
    assert 0.26e6 < zoo.build_model("resnet20").count_params() < 0.28e6
    assert 0.84e6 < zoo.build_model("resnet56").count_params() < 0.87e6


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (32, 32, 3), (48, 40, 4)])
def test_simple_cnn_takes_any_input_size_and_channels(shape):
    model = zoo.build_model("simple_cnn", num_classes=5, input_shape=shape)
    flat = model.get_layer("flatten").output.shape[-1]
    assert flat == 64 * (shape[0] // 4) * (shape[1] // 4)
    assert model(example_batch(model, 2)).shape == (2, 5)


def test_classic_cifar_cnn_shape():
    model = zoo.build_model("simple_cnn")
    assert model.get_layer("flatten").output.shape[-1] == 64 * 8 * 8
    assert model.get_layer("dense").units == 128


def test_pixel_scaling_lives_in_the_model():
    model = zoo.build_model("mlp", input_shape=(2, 2, 1), hidden_units=())
    scale = model.get_layer("scale_pixels")
    np.testing.assert_allclose(scale(np.array([[0.0, 127.5, 255.0]])), [[-1.0, 0.0, 1.0]])


def test_unknown_model_names_the_closest_and_all_known():
    with pytest.raises(ValueError) as e:
        zoo.build_model("resnet21")
    msg = str(e.value)
    assert "Unknown model 'resnet21'" in msg and "Did you mean 'resnet20'" in msg
    for name in zoo.list_models():
        assert name in msg


@pytest.mark.parametrize("kwargs, words", [
    ({"num_clases": 3}, ["unknown argument 'num_clases'", "Did you mean 'num_classes'", "Valid arguments"]),
    ({"num_classes": "3"}, ["'num_classes' must be int", "got '3'"]),
    ({"num_classes": True}, ["'num_classes' must be int"]),
    ({"num_classes": 1}, ["num_classes must be an int >= 2"]),
    ({"input_shape": (2, 2, 1)}, ["too small", "height and width >= 4"]),
    ({"input_shape": (32, 32)}, ["(height, width, channels)"]),
])
def test_bad_builder_arguments_are_named(kwargs, words):
    with pytest.raises((TypeError, ValueError)) as e:
        zoo.build_model("simple_cnn", **kwargs)
    for w in words:
        assert w in str(e.value)


def test_list_models_by_task_and_unknown_task():
    by_task = [zoo.list_models(task) for task in tasks.list_tasks()]
    assert sorted(sum(by_task, [])) == zoo.list_models()
    assert {"text_cnn", "transformer_classifier"} <= set(zoo.list_models("text_classification"))
    assert {"mlp", "simple_cnn", "resnet20", "resnet56", "resnet50", "mobilenet_v2"} <= set(zoo.list_models())
    with pytest.raises(ValueError, match="Unknown task"):
        zoo.list_models("image_clasification")


def test_registering_a_name_twice_fails():
    with pytest.raises(ValueError, match="already registered"):
        @zoo.register_model(task="image_classification", default_dataset="digits")
        def mlp():  # noqa: F811
            pass
