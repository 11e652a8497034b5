"""Recurrent text classifiers: embeddings, LSTM or GRU layers over the real tokens only,
the last state (both directions' for a bidirectional one), logits.

Padding is masked: every recurrent layer gets the padding mask, so a text's answer
does not depend on how much padding follows it. The layers keep Keras' defaults that
let a GPU run them with the fused cuDNN kernel (tanh, sigmoid gates, no recurrent
dropout, not unrolled, with biases); the tokenizer pads on the right, the one mask
shape that kernel takes. An empty text is read as one padding token (`PaddingMask`),
so it gets a defined answer.
"""

from __future__ import annotations

import keras

from zoo.models.preprocessing import PaddingMask, check_num_classes, logits, token_input
from zoo.registry import register_model

_CELLS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


def rnn_classifier(cell="lstm", bidirectional=False, num_classes=2, vocabulary_size=20_000, sequence_length=128,
                   embedding_dim=64, units=64, num_layers=1, dropout=0.2, name="rnn_classifier"):
    """The generic recurrent classifier the registered variants call.

    Args:
        cell: "lstm" or "gru".
        bidirectional: read the text both ways and join both final states.
        num_classes: number of output classes.
        vocabulary_size: token ids are in [0, vocabulary_size); 0 pads and is masked.
        sequence_length: tokens per example.
        embedding_dim: width of the token embeddings.
        units: state width of each recurrent layer (per direction).
        num_layers: stacked recurrent layers.
        dropout: dropout rate on the embeddings and before the classifier (not
            between time steps, which would rule out the cuDNN kernel).
        name: the model's name.
    """
    check_num_classes(num_classes, name)
    if cell not in _CELLS:
        raise ValueError(f"{name}: cell must be one of {sorted(_CELLS)}, got {cell!r}.")
    for arg, value in (("units", units), ("num_layers", num_layers), ("embedding_dim", embedding_dim)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}: {arg} must be a positive int, got {value!r}.")
    if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"{name}: dropout must be in [0, 1), got {dropout!r}.")
    token_ids = token_input(vocabulary_size, sequence_length, model=name)
    mask = PaddingMask(name="padding_mask")(token_ids)
    x = keras.layers.Embedding(vocabulary_size, embedding_dim, name="embedding")(token_ids)
    if dropout:
        x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
    for i in range(num_layers):
        last = i == num_layers - 1
        layer = _CELLS[cell](units, return_sequences=not last, name=f"{cell}_{i}")
        if bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bi{cell}_{i}")
        x = layer(x, mask=mask)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    return keras.Model([token_ids], logits(x, num_classes), name=name)


@register_model(task="text_classification", default_dataset="synthetic_sentiment")
def lstm_classifier(num_classes=2, vocabulary_size=20_000, sequence_length=128, embedding_dim=64, units=64,
                    num_layers=1, dropout=0.2):
    """LSTM classifier: the final state of a masked LSTM over the tokens.

    Args: as `rnn_classifier`.

    Example:
        >>> import zoo
        >>> model = zoo.build_model("lstm_classifier", num_classes=2, vocabulary_size=1000, sequence_length=32)
    """
    return rnn_classifier("lstm", False, num_classes, vocabulary_size, sequence_length, embedding_dim, units,
                          num_layers, dropout, name="lstm_classifier")


@register_model(task="text_classification", default_dataset="synthetic_sentiment")
def gru_classifier(num_classes=2, vocabulary_size=20_000, sequence_length=128, embedding_dim=64, units=64,
                   num_layers=1, dropout=0.2):
    """GRU classifier: the final state of a masked GRU over the tokens.

    Args: as `rnn_classifier`.

    Example:
        >>> import zoo
        >>> model = zoo.build_model("gru_classifier", num_classes=2, vocabulary_size=1000, sequence_length=32)
    """
    return rnn_classifier("gru", False, num_classes, vocabulary_size, sequence_length, embedding_dim, units,
                          num_layers, dropout, name="gru_classifier")


@register_model(task="text_classification", default_dataset="synthetic_sentiment")
def bilstm_classifier(num_classes=2, vocabulary_size=20_000, sequence_length=128, embedding_dim=64, units=64,
                      num_layers=1, dropout=0.2):
    """Bidirectional LSTM classifier: both directions' final states over the real tokens.

    Args: as `rnn_classifier` (`units` per direction).

    Example:
        >>> import zoo
        >>> model = zoo.build_model("bilstm_classifier", num_classes=2, vocabulary_size=1000, sequence_length=32)
    """
    return rnn_classifier("lstm", True, num_classes, vocabulary_size, sequence_length, embedding_dim, units,
                          num_layers, dropout, name="bilstm_classifier")
