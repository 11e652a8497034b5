"""`fold_batch_norms`: inference-mode BatchNormalization folded into the convolution before it.

At inference a BatchNormalization is the per-channel affine map
`y = gamma * (x - mean) / sqrt(var + eps) + beta`; after a convolution it folds into
that convolution's kernel and bias (TF's fold_batch_norms graph transform, TFLite and
TensorRT do the same). The exported graph then has one op and two variables where it
had two ops and up to six: for resnet20 that is 107 -> 44 variables, and the
SavedModel's per-variable cost (the save/restore functions and their graph) with them.

    folded = fold_batch_norms(model)   # same inputs, outputs and layer names, fewer layers
"""

from __future__ import annotations

import logging

import keras
import numpy as np

log = logging.getLogger(__name__)

_CONVS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)


def _consumers(model) -> dict[int, int]:
    """id(KerasTensor) -> how many nodes of `model` take it as input."""
    counts = {}
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            if node.is_input:
                continue
            for x in node.input_tensors:
                counts[id(x)] = counts.get(id(x), 0) + 1
    for x in model.outputs:  # a model output is a consumer the graph cannot see
        counts[id(x)] = counts.get(id(x), 0) + 1
    return counts


def _model_nodes(model, layer) -> list:
    ids = {id(n) for nodes in model._nodes_by_depth.values() for n in nodes}
    return [n for n in layer._inbound_nodes if id(n) in ids]


def _foldable_pairs(model) -> dict[str, str]:
    """{batch_norm name: conv name} for each BN that folds into the conv feeding it."""
    consumers = _consumers(model)
    pairs = {}
    for bn in model.layers:
        if not isinstance(bn, keras.layers.BatchNormalization):
            continue
        nodes = _model_nodes(model, bn)
        if len(nodes) != 1 or len(nodes[0].input_tensors) != 1:
            continue  # shared BN: its statistics cannot live in two kernels
        x = nodes[0].input_tensors[0]
        conv = x._keras_history.operation
        if not isinstance(conv, _CONVS) or len(_model_nodes(model, conv)) != 1:
            continue
        rank = len(x.shape)
        if (conv.data_format != "channels_last" or bn.axis not in (-1, rank - 1)
                or conv.activation not in (None, keras.activations.linear)
                or getattr(conv, "quantization_mode", None) or getattr(conv, "lora_enabled", False)):
            continue  # an activation between them, or a kernel layout we do not rewrite
        if consumers.get(id(x), 0) != 1:
            continue  # someone else reads the unnormalized conv output
        pairs[bn.name] = conv.name
    return pairs


def _folded_weights(conv, bn) -> list[np.ndarray]:
    """[kernel, bias] of `conv` with `bn` applied after it (computed in float64)."""
    mean = np.asarray(bn.moving_mean.numpy(), np.float64)
    var = np.asarray(bn.moving_variance.numpy(), np.float64)
    gamma = np.asarray(bn.gamma.numpy(), np.float64) if bn.scale else np.ones_like(mean)
    beta = np.asarray(bn.beta.numpy(), np.float64) if bn.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + bn.epsilon)
    kernel = np.asarray(conv.kernel.numpy(), np.float64)
    bias = np.asarray(conv.bias.numpy(), np.float64) if conv.use_bias else np.zeros_like(mean)
    if isinstance(conv, keras.layers.DepthwiseConv2D):
        # [kh, kw, in, multiplier]; output channel c = i * multiplier + m.
        kernel = kernel * scale.reshape(kernel.shape[2], kernel.shape[3])
    else:  # Conv2D: [kh, kw, in / groups, out]
        kernel = kernel * scale
    return [kernel, bias * scale + beta - mean * scale]


def _identity(x, *args, **kwargs):
    return x


def fold_batch_norms(model: keras.Model) -> keras.Model:
    """An equivalent inference model with each BatchNormalization folded into its conv.

    A BatchNormalization folds when its only input is the output of a Conv2D or
    DepthwiseConv2D (linear activation, channels_last) that nothing else reads. The
    conv gets `kernel * s` and `bias = beta - mean * s (+ bias * s)`, where
    `s = gamma / sqrt(moving_variance + epsilon)`. Every other layer is copied with its
    weights and keeps its name, so inputs, outputs and "logits" are unchanged. The
    result matches `model(x, training=False)`, not training-mode BN; `model` itself is
    not modified.

    Args:
        model: a functional Keras model.

    Returns:
        A new functional model, or `model` itself if nothing folds (or it is not
        functional).

    Example:
        >>> import zoo
        >>> model = zoo.build_model("resnet20", num_classes=10)
        >>> folded = fold_batch_norms(model)
        >>> len(folded.weights) < len(model.weights)
        True
    """
    if not isinstance(model, keras.Model) or not hasattr(model, "_nodes_by_depth"):
        return model  # subclassed or Sequential-built-lazily: no graph to rewrite
    try:
        pairs = _foldable_pairs(model)
    except AttributeError:  # a graph shape we do not understand: export it as it is
        return model
    if not pairs:
        return model
    convs = set(pairs.values())

    def clone(layer):
        if not isinstance(layer, keras.layers.Layer):
            return layer  # a keras.ops call in the graph: stateless, reuse it
        if layer.name in pairs:
            return _identity
        config = layer.get_config()
        if layer.name in convs:
            config["use_bias"] = True
        return layer.__class__.from_config(config)

    folded = keras.models.clone_model(model, clone_function=clone)
    by_name = {layer.name: layer for layer in model.layers}
    bn_of = {conv: bn for bn, conv in pairs.items()}
    for layer in folded.layers:
        if layer.name in bn_of:
            layer.set_weights(_folded_weights(by_name[layer.name], by_name[bn_of[layer.name]]))
        elif layer.weights:
            layer.set_weights(by_name[layer.name].get_weights())
    log.info("Folded %d BatchNormalization layers into their convolutions (%d -> %d weights).",
             len(pairs), len(model.weights), len(folded.weights))
    return folded
