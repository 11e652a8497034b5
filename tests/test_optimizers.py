"""fuse_updates: Keras' SGD, Adam and AdamW, each dense update one fused TensorFlow kernel."""

import json
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.training.optimizers import fuse_updates

CASES = [
    ("SGD", dict(learning_rate=0.05, momentum=0.9), "ResourceApplyKerasMomentum"),
    ("SGD", dict(learning_rate=0.05, momentum=0.9, nesterov=True), "ResourceApplyKerasMomentum"),
    ("Adam", dict(learning_rate=0.01), "ResourceApplyAdam"),
    ("AdamW", dict(learning_rate=0.01, weight_decay=0.1), "ResourceApplyAdam"),
]


def _trained_weights(optimizer, vocabulary=False):
    keras.utils.set_random_seed(3)
    if vocabulary:  # an Embedding's gradient is sparse (IndexedSlices)
        inputs = keras.Input((4,), dtype="int32")
        x = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(20, 8)(inputs))
        x_train = np.random.default_rng(0).integers(0, 20, (64, 4)).astype("int32")
    else:
        inputs = keras.Input((6,))
        x = keras.layers.Dense(8, activation="tanh")(inputs)
        x_train = np.random.default_rng(0).normal(size=(64, 6)).astype("float32")
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    model.compile(optimizer=optimizer, loss="mse")
    y_train = np.sin(np.arange(64, dtype="float32"))[:, None]
    model.fit(x_train, y_train, batch_size=16, epochs=3, verbose=0, shuffle=False)
    return [w.numpy() for w in model.weights]


@pytest.mark.parametrize("name,kwargs,kernel", CASES)
def test_each_update_is_one_fused_kernel_with_keras_arithmetic(name, kwargs, kernel):
    zoo_weights = _trained_weights(fuse_updates(getattr(keras.optimizers, name)(**kwargs)))
    keras_weights = _trained_weights(getattr(keras.optimizers, name)(**kwargs))
    for ours, theirs in zip(zoo_weights, keras_weights):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)

    optimizer = fuse_updates(getattr(keras.optimizers, name)(**kwargs))
    variables = [keras.Variable(np.ones((3, 2), "float32")), keras.Variable(np.zeros(2, "float32"))]
    optimizer.build(variables)
    graph = tf.function(lambda: optimizer.apply([tf.ones((3, 2)), tf.ones(2)], variables)).get_concrete_function().graph
    kernels = [op.type for op in graph.get_operations()]
    assert kernels.count(kernel) == 2, sorted(set(kernels))


def test_sparse_gradients_and_amsgrad_take_keras_own_update():
    for zoo_optimizer, keras_optimizer in [(fuse_updates(keras.optimizers.SGD(0.1, momentum=0.9)),
                                            keras.optimizers.SGD(0.1, momentum=0.9)),
                                           (fuse_updates(keras.optimizers.Adam(0.01)), keras.optimizers.Adam(0.01))]:
        for ours, theirs in zip(_trained_weights(zoo_optimizer, vocabulary=True),
                                _trained_weights(keras_optimizer, vocabulary=True)):
            np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    for ours, theirs in zip(_trained_weights(fuse_updates(keras.optimizers.Adam(0.01, amsgrad=True))),
                            _trained_weights(keras.optimizers.Adam(0.01, amsgrad=True))):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_a_model_trained_with_them_saves_as_keras_own_optimizer(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=fuse_updates(keras.optimizers.AdamW(0.02, weight_decay=0.01)), loss="mse")
    model.fit(np.ones((8, 3), "float32"), np.zeros((8, 2), "float32"), verbose=0)
    model.save(tmp_path / "m.keras")
    saved = json.loads(zipfile.ZipFile(tmp_path / "m.keras").read("config.json"))["compile_config"]["optimizer"]
    assert (saved["module"], saved["class_name"]) == ("keras.optimizers", "AdamW")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.optimizer) is keras.optimizers.AdamW
    assert loaded.optimizer.get_config()["weight_decay"] == 0.01
    assert int(loaded.optimizer.iterations.numpy()) == 1
