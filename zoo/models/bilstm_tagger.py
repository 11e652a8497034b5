"""A BiLSTM sequence tagger (Lample et al. 2016, without the CRF): word embeddings and
optional character features per word, a bidirectional LSTM over the sentence, one row of
tag logits per word.

The character features (a convolution over each word's characters, max-pooled) see
case and affixes, which is how a tagger tells a name it never saw from a common word;
word dropout (a word read as unknown now and then while training) teaches the model
what to do with such words. Padding is masked as in the recurrent classifiers
(`zoo.models.rnn`), so a sentence gets the same tags beside any other.
"""

from __future__ import annotations

import keras

from zoo.data.words import CHAR_VOCABULARY_SIZE
from zoo.models.preprocessing import PaddingMask, check_num_classes, token_input
from zoo.registry import register_model


@keras.saving.register_keras_serializable(package="zoo")
class WordDropout(keras.layers.Layer):
    """While training, replaces each known word id (>= 2) by the unknown-word id 1 with
    probability `rate`; at inference it passes ids through."""

    def __init__(self, rate=0.1, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.seed = rate, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, token_ids, training=False):
        if not training or not self.rate:
            return token_ids
        drop = keras.random.uniform(keras.ops.shape(token_ids), seed=self.seed_generator) < self.rate
        return keras.ops.where(keras.ops.logical_and(drop, token_ids > 1), keras.ops.ones_like(token_ids), token_ids)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return dict(super().get_config(), rate=self.rate, seed=self.seed)


@register_model(task="token_classification", default_dataset="synthetic_entities")
def bilstm_tagger(num_classes=9, vocabulary_size=20_000, sequence_length=64, word_length=16, embedding_dim=64,
                  char_features=True, char_embedding_dim=16, char_filters=32, units=64, num_layers=1,
                  word_dropout=0.1, dropout=0.3):
    """BiLSTM tagger: [word embedding; character CNN] per word -> BiLSTM -> tag logits.

    Args:
        num_classes: number of tags (e.g. 9 for CoNLL's BIO tags over PER, ORG, LOC, MISC).
        vocabulary_size: word ids are in [0, vocabulary_size); 0 pads, 1 is an unknown word.
        sequence_length: words per sentence.
        word_length: characters per word the character features read.
        embedding_dim: width of the word embeddings.
        char_features: read each word's characters too (input `char_ids` [B, T, word_length]).
        char_embedding_dim: width of the character embeddings.
        char_filters: character convolution filters (the width of a word's character features).
        units: LSTM state width per direction.
        num_layers: stacked bidirectional layers.
        word_dropout: while training, the probability of reading a known word as unknown.
        dropout: dropout rate on the word features and before the logits.

    Example:
        >>> import zoo
        >>> model = zoo.build_model("bilstm_tagger", num_classes=9, vocabulary_size=1000, sequence_length=40)
        >>> model.output.shape   # one row of tag logits per word
        (None, 40, 9)
    """
    check_num_classes(num_classes, "bilstm_tagger")
    for arg, value in (("word_length", word_length), ("units", units), ("num_layers", num_layers),
                       ("embedding_dim", embedding_dim), ("char_embedding_dim", char_embedding_dim),
                       ("char_filters", char_filters)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"bilstm_tagger: {arg} must be a positive int, got {value!r}.")
    for arg, value in (("word_dropout", word_dropout), ("dropout", dropout)):
        if not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ValueError(f"bilstm_tagger: {arg} must be in [0, 1), got {value!r}.")
    token_ids = token_input(vocabulary_size, sequence_length, model="bilstm_tagger")
    inputs = [token_ids]
    mask = PaddingMask(name="padding_mask")(token_ids)
    words = WordDropout(word_dropout, name="word_dropout")(token_ids)
    x = keras.layers.Embedding(vocabulary_size, embedding_dim, name="embedding")(words)
    if char_features:
        char_ids = keras.Input(shape=(sequence_length, word_length), name="char_ids", dtype="int32")
        inputs.append(char_ids)
        c = keras.layers.Embedding(CHAR_VOCABULARY_SIZE, char_embedding_dim, name="char_embedding")(char_ids)
        # A 1 x 3 convolution along each word's characters, then the max over them.
        c = keras.layers.Conv2D(char_filters, (1, 3), padding="same", activation="relu", name="char_conv")(c)
        c = keras.layers.MaxPooling2D((1, word_length), name="char_pool")(c)
        c = keras.layers.Reshape((sequence_length, char_filters), name="char_features")(c)
        x = keras.layers.Concatenate(name="word_features")([x, c])
    if dropout:
        x = keras.layers.Dropout(dropout, name="features_dropout")(x)
    for i in range(num_layers):
        x = keras.layers.Bidirectional(keras.layers.LSTM(units, return_sequences=True, name=f"lstm_{i}"),
                                       name=f"bilstm_{i}")(x, mask=mask)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    # float32 logits keep the softmax and the loss stable under mixed precision.
    logits = keras.layers.Dense(num_classes, name="logits", dtype="float32")(x)
    return keras.Model(inputs, logits, name="bilstm_tagger")
