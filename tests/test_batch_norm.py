"""FusedBatchNormalization: Keras' BatchNormalization with TensorFlow's fused training kernel."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.models.batch_norm import FusedBatchNormalization


def _pair(shape, **kwargs):
    keras_bn = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, **kwargs)
    fused = FusedBatchNormalization(momentum=0.9, epsilon=1e-5, **kwargs)
    keras_bn.build(shape)
    fused.build(shape)
    fused.set_weights(keras_bn.get_weights())
    return keras_bn, fused


@pytest.mark.parametrize("kwargs", [{}, {"center": False}, {"scale": False}])
def test_a_training_step_equals_keras_own_outputs_statistics_and_gradients(kwargs):
    x = tf.constant(np.random.default_rng(0).normal(2.0, 3.0, (8, 5, 5, 4)).astype("float32"))
    weights = tf.range(4, dtype=tf.float32)
    keras_bn, fused = _pair(x.shape, **kwargs)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        a, b = keras_bn(x, training=True), fused(x, training=True)
        # exp: every gradient (x, gamma, beta) is far from zero, so rounding does not dominate it.
        loss_a, loss_b = tf.reduce_sum(tf.exp(a) * weights), tf.reduce_sum(tf.exp(b) * weights)
    np.testing.assert_allclose(b, a, atol=1e-5)
    for p, q in zip(fused.get_weights(), keras_bn.get_weights()):  # gamma, beta, moving mean and variance
        np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tape.gradient(loss_b, x), tape.gradient(loss_a, x), rtol=1e-5, atol=1e-5)
    for v_b, v_a in zip(fused.trainable_weights, keras_bn.trainable_weights):
        np.testing.assert_allclose(tape.gradient(loss_b, v_b), tape.gradient(loss_a, v_a), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fused(x, training=False), keras_bn(x, training=False), atol=1e-5)


def test_mixed_bfloat16_runs_the_kernel_on_bfloat16_and_keeps_float32_statistics():
    x = tf.constant(np.random.default_rng(1).normal(1.0, 2.0, size=(8, 5, 5, 4)).astype("float32"))
    keras_bn = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, dtype="mixed_bfloat16")
    fused = FusedBatchNormalization(momentum=0.9, epsilon=1e-5, dtype="mixed_bfloat16")
    y, expected = fused(tf.cast(x, tf.bfloat16), training=True), keras_bn(tf.cast(x, tf.bfloat16), training=True)
    assert y.dtype == tf.bfloat16 and fused.moving_mean.dtype == tf.float32
    np.testing.assert_allclose(tf.cast(y, tf.float32), tf.cast(expected, tf.float32), atol=0.05)  # bf16: 8 bits
    for p, q in zip(fused.get_weights(), keras_bn.get_weights()):
        np.testing.assert_allclose(p, q, rtol=0.02, atol=1e-3)
    # The activations reach the kernel as bfloat16: no cast to float32 and back around it.
    graph = tf.function(lambda t: fused(t, training=True)).get_concrete_function(
        tf.TensorSpec(x.shape, tf.bfloat16)).graph
    kernels = [op for op in graph.get_operations() if op.type == "FusedBatchNormV3"]
    assert kernels and all(op.get_attr("T") == tf.bfloat16 for op in kernels)
    assert not [op for op in graph.get_operations() if op.type == "Cast" and op.outputs[0].shape.rank == 4]


def test_other_ranks_fall_back_to_keras_and_the_config_round_trips(tmp_path):
    x = tf.constant(np.random.default_rng(2).normal(size=(6, 5)).astype("float32"))
    keras_bn, fused = _pair(x.shape)
    np.testing.assert_allclose(fused(x, training=True), keras_bn(x, training=True), atol=1e-6)
    again = FusedBatchNormalization.from_config(fused.get_config())
    assert type(again) is FusedBatchNormalization and again.get_config() == fused.get_config()
    inputs = keras.Input((4, 4, 2))
    model = keras.Model(inputs, FusedBatchNormalization(name="bn")(inputs))
    model.save(tmp_path / "m.keras")
    assert type(keras.saving.load_model(tmp_path / "m.keras").get_layer("bn")) is FusedBatchNormalization
