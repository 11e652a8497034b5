"""Training across several workers (MultiWorkerMirroredStrategy from TF_CONFIG).

With TF 2.21 and Keras 3.15, `fit` under MultiWorkerMirroredStrategy fails with
"Attempt to convert a value (PerReplica ...)" (keras-team/keras#20585). The same
model, optimizer and loss stepped with `strategy.run` over a distributed dataset
train correctly, so this loop does that and drives the very callbacks `fit` would
(progress bar, BackupAndRestore, CSV/TensorBoard logs, checkpoints, early stopping)
through a `keras.callbacks.CallbackList`.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def fit_multi_worker(net, strategy, train_ds, val_ds, config, callbacks, verbose, run_dir):
    """Runs `config.epochs` epochs of `net` under `strategy`; returns the History."""
    loss_obj = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    with strategy.scope():
        train_acc = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        train_loss = keras.metrics.Mean(name="loss")
        val_acc = keras.metrics.SparseCategoricalAccuracy(name="val_accuracy")
        val_loss = keras.metrics.Mean(name="val_loss")
    optimizer = net.optimizer

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            logits = net(x, training=True)
            per_example = loss_obj(y, logits)
            # Divide by the global batch (all replicas' examples, the last partial batch
            # included) so the gradients summed across replicas are the batch mean.
            loss = tf.nn.compute_average_loss(per_example)
            if net.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(net.losses))
        grads = tape.gradient(loss, net.trainable_variables)
        optimizer.apply_gradients(zip(grads, net.trainable_variables))
        train_acc.update_state(y, logits)
        train_loss.update_state(tf.reduce_mean(per_example))

    def replica_eval(x, y):
        logits = net(x, training=False)
        val_acc.update_state(y, logits)
        val_loss.update_state(tf.reduce_mean(loss_obj(y, logits)))

    @tf.function
    def train_step(batch):
        strategy.run(replica_step, args=batch)

    @tf.function
    def eval_step(batch):
        strategy.run(replica_eval, args=batch)

    steps = int(train_ds.cardinality())
    cbs = keras.callbacks.CallbackList(
        callbacks, add_history=True, add_progbar=verbose != 0, model=net,
        verbose=verbose, epochs=config.epochs, steps=steps if steps > 0 else None,
    )
    # Shard each global batch across workers (DATA), as MirroredStrategy splits it across
    # replicas, so every step sees the batch a single host would.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dist_train = strategy.experimental_distribute_dataset(train_ds.with_options(options))
    dist_val = (strategy.experimental_distribute_dataset(val_ds.with_options(options))
                if val_ds is not None else None)
    net.stop_training = False
    cbs.on_train_begin()
    initial_epoch = net._initial_epoch or 0  # set by BackupAndRestore when resuming
    for epoch in range(initial_epoch, config.epochs):
        for m in (train_acc, train_loss, val_acc, val_loss):
            m.reset_state()
        cbs.on_epoch_begin(epoch)
        for step, batch in enumerate(dist_train):
            cbs.on_train_batch_begin(step)
            train_step(batch)
            cbs.on_train_batch_end(step, {"loss": float(train_loss.result()),
                                          "accuracy": float(train_acc.result())})
        logs = {"loss": float(train_loss.result()), "accuracy": float(train_acc.result())}
        if dist_val is not None:
            for batch in dist_val:
                eval_step(batch)
            logs.update(val_loss=float(val_loss.result()), val_accuracy=float(val_acc.result()))
        cbs.on_epoch_end(epoch, logs)
        if net.stop_training:
            break
    cbs.on_train_end()
    return net.history
