"""A convolutional text classifier (Kim 2014): embeddings, parallel 1-D convolutions
of several widths, max-over-time pooling, logits."""

from __future__ import annotations

import keras

from zoo.models.preprocessing import check_num_classes, logits, token_input
from zoo.registry import register_model


@register_model(task="text_classification", default_dataset="synthetic_topics")
def text_cnn(num_classes=4, vocabulary_size=20_000, sequence_length=128, embedding_dim=64,
             filters=64, kernel_sizes=(3, 4, 5), dropout=0.2):
    """Text CNN: n-gram detectors of each width in `kernel_sizes`, max-pooled over time.

    Args:
        num_classes: number of output classes.
        vocabulary_size: token ids are in [0, vocabulary_size); 0 pads.
        sequence_length: tokens per example.
        embedding_dim: width of the token embeddings.
        filters: convolution filters per kernel size.
        kernel_sizes: n-gram widths, one Conv1D branch each.
        dropout: dropout rate before the classifier.

    Example:
        >>> import zoo
        >>> model = zoo.build_model("text_cnn", num_classes=4, vocabulary_size=1000, sequence_length=32)
    """
    check_num_classes(num_classes, "text_cnn")
    if not kernel_sizes or any(not isinstance(k, int) or k < 1 for k in kernel_sizes):
        raise ValueError(f"text_cnn: kernel_sizes must be positive ints, got {kernel_sizes!r}.")
    token_ids = token_input(vocabulary_size, sequence_length, model="text_cnn")
    x = keras.layers.Embedding(vocabulary_size, embedding_dim, name="embedding")(token_ids)
    branches = []
    for k in kernel_sizes:
        # "same" padding keeps sequences shorter than the kernel valid.
        y = keras.layers.Conv1D(filters, k, padding="same", activation="relu", name=f"conv{k}")(x)
        branches.append(keras.layers.GlobalMaxPooling1D(name=f"max_pool{k}")(y))
    x = branches[0] if len(branches) == 1 else keras.layers.Concatenate(name="concat")(branches)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    return keras.Model([token_ids], logits(x, num_classes), name="text_cnn")
