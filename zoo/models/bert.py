"""BERT classifiers and taggers on keras-hub's `BertBackbone`, in the published shapes or
from a preset.

The model takes `token_ids` [B, T] from the WordPiece tokenizer (`zoo.data.wordpiece`:
[CLS] pieces [SEP], [PAD] = 0); the padding mask and the (single) segment ids are
computed from them inside the model, so the export's only input is the text. The
backbone's pooled [CLS] output feeds a dropout and the logits, as keras-hub's
`BertTextClassifier` does. The tagger takes `word_index` too (each word's first piece,
`zoo.data.wordpiece.WordPieceAligner`) and answers one row of tag logits per word.

Sizes are Turc et al.'s (2019) and Devlin et al.'s (2018), randomly initialised:

| size | layers | width | heads | feed-forward |
|---|---:|---:|---:|---:|
| bert_tiny | 2 | 128 | 2 | 512 |
| bert_small | 4 | 512 | 8 | 2048 |
| bert_base | 12 | 768 | 12 | 3072 |

`preset=DIR` starts from a keras-hub preset directory on disk instead (its backbone's
weights and its tokenizer's vocabulary), or from a built-in preset name when Kaggle,
where keras-hub downloads those from, answers (`zoo.presets`); `save_preset` writes a trained model as one,
which `keras_hub.models.TextClassifier.from_preset(DIR)` loads as well.
"""

from __future__ import annotations

import pathlib

import keras

from zoo.models.preprocessing import PaddingMask, check_num_classes, logits, token_input
from zoo.presets import resolve_preset
from zoo.registry import register_model

SIZES = {
    "bert_tiny": dict(num_layers=2, hidden_dim=128, num_heads=2, intermediate_dim=512),
    "bert_small": dict(num_layers=4, hidden_dim=512, num_heads=8, intermediate_dim=2048),
    "bert_base": dict(num_layers=12, hidden_dim=768, num_heads=12, intermediate_dim=3072),
}
@keras.saving.register_keras_serializable(package="zoo")
class SegmentIds(keras.layers.Layer):
    """Segment 0 for every position: one text per example."""

    def call(self, token_ids):
        return keras.ops.zeros_like(token_ids)

    def compute_output_shape(self, input_shape):
        return input_shape


def bert_backbone(size: str, vocabulary_size: int, sequence_length: int, preset: str, dropout: float, model: str):
    """A `keras_hub.models.BertBackbone`: from `preset` or of `size`, fresh."""
    import keras_hub

    if preset:
        preset = resolve_preset(preset)
        backbone = keras_hub.models.Backbone.from_preset(preset)
        if not isinstance(backbone, keras_hub.models.BertBackbone):
            raise ValueError(f"{model}: preset {preset} holds a {type(backbone).__name__}, not a BertBackbone.")
        if backbone.vocabulary_size != vocabulary_size:
            raise ValueError(f"{model}: preset {preset} has {backbone.vocabulary_size} token ids but the data has "
                             f"{vocabulary_size}; tokenize with the preset's vocabulary (zoo train does).")
        if sequence_length > backbone.max_sequence_length:
            raise ValueError(f"{model}: sequence_length {sequence_length} is longer than preset {preset}'s "
                             f"{backbone.max_sequence_length} positions.")
        return backbone
    if size not in SIZES:
        raise ValueError(f"{model}: size must be one of {', '.join(SIZES)}, got {size!r}.")
    return keras_hub.models.BertBackbone(vocabulary_size=vocabulary_size, max_sequence_length=sequence_length,
                                         dropout=dropout, name="backbone", **SIZES[size])


def bert_features(token_ids, backbone):
    """The backbone's outputs for `token_ids` ([PAD] = 0 is masked)."""
    return backbone({"token_ids": token_ids, "padding_mask": PaddingMask(name="padding_mask")(token_ids),
                     "segment_ids": SegmentIds(name="segment_ids")(token_ids)})


@register_model(task="text_classification", default_dataset="synthetic_sentiment",
                data_options={"tokenizer": "wordpiece"})
def bert_classifier(num_classes=2, vocabulary_size=30_522, sequence_length=128, size="bert_tiny", preset="",
                    dropout=0.1):
    """BERT classifier: the pooled [CLS] output of a BertBackbone -> dropout -> logits.

    Args:
        num_classes: number of output classes.
        vocabulary_size: WordPiece ids are in [0, vocabulary_size); [PAD] = 0 is masked.
        sequence_length: pieces per example, [CLS] and [SEP] included.
        size: "bert_tiny", "bert_small" or "bert_base" (randomly initialised).
        preset: a keras-hub preset directory to start from instead (its weights and
            vocabulary; `size` is then ignored), or a built-in preset name such as
            "bert_tiny_en_uncased" when Kaggle can be reached.
        dropout: dropout rate inside the backbone and before the classifier.

    Example:
        >>> import zoo
        >>> model = zoo.build_model("bert_classifier", num_classes=2, vocabulary_size=1000, sequence_length=64)
    """
    check_num_classes(num_classes, "bert_classifier")
    token_ids = token_input(vocabulary_size, sequence_length, model="bert_classifier")
    backbone = bert_backbone(size, vocabulary_size, sequence_length, preset, dropout, "bert_classifier")
    x = bert_features(token_ids, backbone)["pooled_output"]
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    return keras.Model([token_ids], logits(x, num_classes), name="bert_classifier")


@keras.saving.register_keras_serializable(package="zoo")
class FirstPieces(keras.layers.Layer):
    """Each word's vector: the vector of its first word piece ([B, P, H], [B, T] -> [B, T, H])."""

    def call(self, sequence, word_index):
        return keras.ops.take_along_axis(sequence, keras.ops.expand_dims(word_index, -1), axis=1)

    def compute_output_shape(self, sequence_shape, word_index_shape):
        return tuple(word_index_shape) + (sequence_shape[-1],)


@register_model(task="token_classification", default_dataset="synthetic_entities",
                data_options={"tokenizer": "wordpiece"})
def bert_tagger(num_classes=9, vocabulary_size=30_522, sequence_length=64, piece_length=128, size="bert_tiny",
                preset="", dropout=0.1):
    """BERT tagger: a BertBackbone over the word pieces, each word's first piece -> tag logits.

    Args:
        num_classes: number of tags (9 for CoNLL's BIO tags over PER, ORG, LOC, MISC).
        vocabulary_size: WordPiece ids are in [0, vocabulary_size); [PAD] = 0 is masked.
        sequence_length: words per sentence (one tag each).
        piece_length: word pieces per sentence, [CLS] and [SEP] included; words whose
            first piece does not fit get no tag.
        size: "bert_tiny", "bert_small" or "bert_base" (randomly initialised).
        preset: a keras-hub preset directory (or a reachable built-in name) to start from.
        dropout: dropout rate inside the backbone and before the logits.

    Example:
        >>> import zoo
        >>> model = zoo.build_model("bert_tagger", vocabulary_size=1000, sequence_length=40, piece_length=64)
        >>> model.output.shape   # one row of tag logits per word
        (None, 40, 9)
    """
    check_num_classes(num_classes, "bert_tagger")
    token_ids = token_input(vocabulary_size, piece_length, model="bert_tagger")
    token_input(vocabulary_size, sequence_length, model="bert_tagger")  # checks sequence_length
    word_index = keras.Input(shape=(sequence_length,), name="word_index", dtype="int32")
    backbone = bert_backbone(size, vocabulary_size, piece_length, preset, dropout, "bert_tagger")
    x = FirstPieces(name="first_pieces")(bert_features(token_ids, backbone)["sequence_output"], word_index)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    return keras.Model([token_ids, word_index], logits(x, num_classes), name="bert_tagger")


def save_preset(model, vocabulary, sequence_length: int, preset_dir) -> pathlib.Path:
    """Writes a trained `bert_classifier` as a keras-hub preset directory.

    The preset holds the backbone, the WordPiece tokenizer and the classifier head as a
    `keras_hub.models.BertTextClassifier`: `TextClassifier.from_preset(DIR)` answers as
    the model does (strings in), and `zoo train bert_classifier --set preset=DIR`
    fine-tunes from its backbone with any number of classes.
    """
    import keras_hub

    backbone = next((layer for layer in model.layers if isinstance(layer, keras_hub.models.BertBackbone)), None)
    if backbone is None:
        raise ValueError(f"{model.name} has no BertBackbone; only BERT models are written as keras-hub presets.")
    head = model.get_layer("logits")
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=list(vocabulary), lowercase=True)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=sequence_length)
    classifier = keras_hub.models.BertTextClassifier(backbone, num_classes=head.units, preprocessor=preprocessor,
                                                     activation=None)
    classifier.output_dense.set_weights(head.get_weights())
    path = pathlib.Path(preset_dir)
    if path.exists() and any(path.iterdir()):
        raise FileExistsError(f"{path} exists and is not empty; choose a new directory for the preset.")
    classifier.save_to_preset(str(path))
    return path
