"""The Transformer encoder-decoder (Vaswani et al., 2017) on keras-hub's layers, for
translation and summarization (task `seq2seq`).

The model takes `source_ids` [B, S] (the source words, 0 pads) and `target_ids`
[B, T] (the target read so far: [START] then the target's words, teacher forcing)
and answers logits [B, T, V] over the next target word. Padding is masked with
explicit masks computed from the ids, not with Keras' implicit ones, so an answer does
not depend on how much padding a batch needed.

The layers are named, and the task's in-graph decoder (`zoo.tasks.decoding`) reads
them by name: `source_embedding` and `target_embedding` (keras-hub
`TokenAndPositionEmbedding`), `encoder_0..` (`TransformerEncoder`), `decoder_0..`
(`TransformerDecoder`) and `logits`. keras-hub's own cached decoding
(`keras.ops.slice_update`) becomes an `XlaDynamicUpdateSlice` op, which TF Serving
cannot run; the task's decoder reuses these layers' weights with plain TF ops instead.

| size | layers (each side) | width | heads | feed-forward |
|---|---:|---:|---:|---:|
| tiny | 2 | 64 | 4 | 128 |
| small | 3 | 256 | 4 | 1024 |
| base | 6 | 512 | 8 | 2048 (Vaswani et al.'s base) |
"""

from __future__ import annotations

import keras

from zoo.models.preprocessing import PaddingMask
from zoo.registry import register_model

SIZES = {
    "tiny": dict(num_layers=2, hidden_dim=64, num_heads=4, intermediate_dim=128),
    "small": dict(num_layers=3, hidden_dim=256, num_heads=4, intermediate_dim=1024),
    "base": dict(num_layers=6, hidden_dim=512, num_heads=8, intermediate_dim=2048),
}


def _ids_input(name: str, vocabulary_size, length):
    for arg, value, low in ((f"{name.split('_')[0]}_vocabulary_size", vocabulary_size, 5),
                            (f"{name.split('_')[0]}_length", length, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"transformer_seq2seq: {arg} must be an int >= {low}, got {value!r}.")
    return keras.Input(shape=(length,), name=name, dtype="int32")


@register_model(task="seq2seq", default_dataset="synthetic_translation")
def transformer_seq2seq(source_vocabulary_size=8_000, target_vocabulary_size=8_000, source_length=64,
                        target_length=64, size="small", dropout=0.1):
    """Transformer encoder-decoder: source words in, next-target-word logits out.

    Args:
        source_vocabulary_size: source ids are in [0, source_vocabulary_size); 0 pads.
        target_vocabulary_size: target ids are in [0, target_vocabulary_size) (0 pads,
            2 is [START], 3 is [END]: `zoo.data.sequences`).
        source_length: source words the model reads (longer sources are cut).
        target_length: target positions, [START] included: the longest output is
            target_length - 1 words.
        size: "tiny" (2+2 layers, width 64), "small" (3+3, width 256) or "base" (6+6, width 512,
            Vaswani et al.'s base), randomly initialised.
        dropout: dropout rate inside the encoder and decoder layers.

    Example:
        >>> import zoo
        >>> model = zoo.build_model("transformer_seq2seq", source_vocabulary_size=500,
        ...                         target_vocabulary_size=400, source_length=20, target_length=24, size="tiny")
        >>> model.output.shape
        (None, 24, 400)
    """
    import keras_hub

    if size not in SIZES:
        raise ValueError(f"transformer_seq2seq: size must be one of {', '.join(SIZES)}, got {size!r}.")
    if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"transformer_seq2seq: dropout must be in [0, 1), got {dropout!r}.")
    shape = SIZES[size]
    width, heads, inner = shape["hidden_dim"], shape["num_heads"], shape["intermediate_dim"]
    source_ids = _ids_input("source_ids", source_vocabulary_size, source_length)
    target_ids = _ids_input("target_ids", target_vocabulary_size, target_length)
    # An empty source reads as one padding token (PaddingMask keeps the first position).
    source_mask = PaddingMask(name="source_mask")(source_ids)

    x = keras_hub.layers.TokenAndPositionEmbedding(source_vocabulary_size, source_length, width,
                                                   name="source_embedding")(source_ids)
    for i in range(shape["num_layers"]):
        x = keras_hub.layers.TransformerEncoder(inner, heads, dropout=dropout, name=f"encoder_{i}")(
            x, padding_mask=source_mask)
    encoded = x
    y = keras_hub.layers.TokenAndPositionEmbedding(target_vocabulary_size, target_length, width,
                                                   name="target_embedding")(target_ids)
    for i in range(shape["num_layers"]):
        # Causal self-attention over the target; cross-attention over the real source words.
        y = keras_hub.layers.TransformerDecoder(inner, heads, dropout=dropout, name=f"decoder_{i}")(
            y, encoded, encoder_padding_mask=source_mask)
    # float32 logits keep the softmax and the loss stable under mixed precision.
    logits = keras.layers.Dense(target_vocabulary_size, name="logits", dtype="float32")(y)
    return keras.Model([source_ids, target_ids], logits, name="transformer_seq2seq")
