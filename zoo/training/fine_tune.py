"""Fine-tuning: a new run that starts from a finished run's weights.

    zoo.train("simple_cnn", my_data, init_from="runs/simple_cnn-digits", frozen_epochs=2)
    zoo train simple_cnn --dataset my_data --init-from runs/simple_cnn-digits --frozen-epochs 2

Weights are copied layer by layer, by layer name, where every weight's shape matches;
a head whose number of classes differs keeps its fresh initialization (it is rebuilt
for the new classes). What was copied and what was not is written to the run's
`init_from.json`.
"""

from __future__ import annotations

import keras

HEAD = "logits"  # every builder's last layer (zoo.models.preprocessing.logits)


def initialize_from(model: keras.Model, source: keras.Model) -> dict:
    """Copies `source`'s weights into `model` where layer names and shapes match.

    Returns:
        {"copied": [layer names], "skipped": {layer name: why}}.
    """
    copied, skipped = [], {}
    for layer in model.layers:
        if not layer.weights:
            continue
        try:
            other = source.get_layer(layer.name)
        except ValueError:
            skipped[layer.name] = "not in the source model"
            continue
        shapes = [tuple(w.shape) for w in layer.weights]
        source_shapes = [tuple(w.shape) for w in other.weights]
        if shapes != source_shapes:
            skipped[layer.name] = f"shapes differ: {source_shapes} in the source, {shapes} here"
            continue
        layer.set_weights(other.get_weights())
        copied.append(layer.name)
    if not copied:
        raise ValueError(f"No layer of {model.name} matches one of {source.name} in name and shapes; "
                         "fine-tune from a run of the same architecture.")
    return {"copied": copied, "skipped": skipped}


def freeze_all_but_head(model: keras.Model, frozen: bool) -> None:
    """Freezes (or unfreezes) every layer but the head."""
    for layer in model.layers:
        if layer.name != HEAD:
            layer.trainable = not frozen
