"""Keras' SGD, Adam and AdamW with each variable's update in one of TensorFlow's fused kernels.

Keras 3 writes an optimizer's update as backend ops: SGD with momentum is five passes over
each variable (two multiplies, a subtract, an assign and an assign-add), Adam about
twelve. TensorFlow has each update as one kernel, which Keras 2 used
(`ResourceApplyKerasMomentum`, `ResourceApplyAdam`): the same arithmetic in one pass over
memory. `fuse_updates` gives a Keras optimizer an `update_step` that hands a dense
gradient of a float32 variable to that kernel; anything else (sparse gradients, amsgrad,
other dtypes, other backends) takes Keras' own code. The optimizer stays Keras' own
object: its config, variables, checkpoints and schedules are Keras', and a saved model
loads with plain Keras.
"""

from __future__ import annotations

import functools

import keras
import tensorflow as tf


def _handle(variable):
    """The resource handle of a Keras or TensorFlow variable (a replica's own inside a
    `tf.distribute` update)."""
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle


def _sgd_update(optimizer, gradient, variable, learning_rate):
    if optimizer.momentum == 0:
        return False
    tf.raw_ops.ResourceApplyKerasMomentum(
        var=_handle(variable), accum=_handle(optimizer.momentums[optimizer._get_variable_index(variable)]),
        lr=tf.cast(learning_rate, tf.float32), grad=tf.cast(gradient, tf.float32),
        momentum=tf.constant(optimizer.momentum, tf.float32), use_locking=False, use_nesterov=optimizer.nesterov)
    return True


def _adam_update(optimizer, gradient, variable, learning_rate):
    # AdamW's decoupled weight decay is applied by Keras before the update step.
    if optimizer.amsgrad:
        return False
    index = optimizer._get_variable_index(variable)
    step = tf.cast(optimizer.iterations + 1, tf.float32)
    beta_1 = tf.constant(optimizer.beta_1, tf.float32)
    beta_2 = tf.constant(optimizer.beta_2, tf.float32)
    tf.raw_ops.ResourceApplyAdam(
        var=_handle(variable), m=_handle(optimizer._momentums[index]), v=_handle(optimizer._velocities[index]),
        beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step), lr=tf.cast(learning_rate, tf.float32),
        beta1=beta_1, beta2=beta_2, epsilon=tf.constant(optimizer.epsilon, tf.float32),
        grad=tf.cast(gradient, tf.float32), use_locking=False, use_nesterov=False)
    return True


# Exact classes: a subclass may have its own update.
_FUSED = {keras.optimizers.SGD: _sgd_update, keras.optimizers.Adam: _adam_update,
          keras.optimizers.AdamW: _adam_update}


def _update_step(fused, keras_update, optimizer, gradient, variable, learning_rate):
    if (isinstance(gradient, tf.IndexedSlices) or variable.dtype != "float32"
            or not fused(optimizer, gradient, variable, learning_rate)):
        keras_update(gradient, variable, learning_rate)


def fuse_updates(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """`optimizer`, its dense float32 updates in TensorFlow's fused kernel where it has one
    (Keras' SGD, Adam and AdamW on the TensorFlow backend); any other optimizer as it is."""
    fused = _FUSED.get(type(optimizer))
    if fused is not None and keras.backend.backend() == "tensorflow":
        optimizer.update_step = functools.partial(_update_step, fused, optimizer.update_step, optimizer)
    return optimizer
