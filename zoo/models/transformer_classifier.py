"""A small Transformer encoder classifier from keras-hub layers: token and position
embeddings, pre-norm encoder blocks that ignore padding, mean pooling, logits.

An empty or all-padding text is read as one padding token at the first position:
with every position masked, attention's softmax and the masked mean would divide
by zero and answer NaN.
"""

from __future__ import annotations

import keras
import keras_hub

from zoo.models.preprocessing import PaddingMask, check_num_classes, logits, token_input
from zoo.registry import register_model


@register_model(task="text_classification", default_dataset="synthetic_topics")
def transformer_classifier(num_classes=4, vocabulary_size=20_000, sequence_length=128, hidden_dim=64,
                           num_layers=2, num_heads=2, intermediate_dim=128, dropout=0.1):
    """Transformer encoder classifier (BERT-tiny shape at hidden_dim=128, num_layers=2).

    Args:
        num_classes: number of output classes.
        vocabulary_size: token ids are in [0, vocabulary_size); 0 pads and is masked.
        sequence_length: tokens per example (the position embedding's length).
        hidden_dim: width of the embeddings and encoder blocks.
        num_layers: encoder blocks.
        num_heads: attention heads per block; must divide hidden_dim.
        intermediate_dim: width of each block's feed-forward layer.
        dropout: dropout rate inside the blocks and before the classifier.

    Example:
        >>> import zoo
        >>> model = zoo.build_model("transformer_classifier", vocabulary_size=1000, sequence_length=32)
    """
    check_num_classes(num_classes, "transformer_classifier")
    if not isinstance(num_heads, int) or num_heads < 1 or hidden_dim % num_heads:
        raise ValueError(f"transformer_classifier: num_heads ({num_heads!r}) must divide hidden_dim ({hidden_dim!r}).")
    token_ids = token_input(vocabulary_size, sequence_length, model="transformer_classifier")
    # The padding mask goes to every encoder block and the pooling, so padding changes
    # no prediction; it always keeps the first position (see the module docstring).
    mask = PaddingMask(name="padding_mask")(token_ids)
    x = keras_hub.layers.TokenAndPositionEmbedding(
        vocabulary_size, sequence_length, hidden_dim, name="embedding")(token_ids)
    for i in range(num_layers):
        x = keras_hub.layers.TransformerEncoder(
            intermediate_dim, num_heads, dropout=dropout, normalize_first=True, name=f"encoder_{i}")(
            x, padding_mask=mask)
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)
    x = keras.layers.GlobalAveragePooling1D(name="avg_pool")(x, mask=mask)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    return keras.Model([token_ids], logits(x, num_classes), name="transformer_classifier")
