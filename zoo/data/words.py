"""The word-level tokenizer of token tagging: text to words, words to word and character ids.

A tagger answers one tag per word, so its tokenizer must give back the words
themselves, not only ids. Here a text is split on whitespace after punctuation at the
start or end of a word is split off ("Paris, France." -> Paris , France .); inside a
word it stays ("U.S", "Jean-Luc", "3.5"). Training sets come as words already (CoNLL
tokens, the offline sets' words); the same `features` function turns them into ids in
the data pipeline and, after `split_words`, inside the exported graph.

Ids: word ids look up the lower-cased word (0 pads, 1 is an out-of-vocabulary word,
2.. index the vocabulary); character ids keep the case (a capital letter is what
tells a name it has never seen from a common word), one id per Unicode code point
hashed into `CHAR_BUCKETS` buckets (1..; 0 pads). Everything is core TensorFlow ops.

    table = word_table(["the", "paris"])
    ids = features(split_words(tf.constant(["Paris is big."])), table, sequence_length=8, word_length=12)
"""

from __future__ import annotations

import collections
import pathlib

import tensorflow as tf

SPECIAL_TOKENS = 2  # 0 pads, 1 is an out-of-vocabulary word
CHAR_BUCKETS = 509  # a prime, so code points spread over the buckets
CHAR_VOCABULARY_SIZE = CHAR_BUCKETS + 1  # with the padding id 0
# Punctuation split off the start or the end of a word (applied twice: 'end.")').
_PUNCT = r"""[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]"""


def split_words(text):
    """Words of each text: string [B] -> ragged string [B, (words)]."""
    text = tf.strings.regex_replace(text, r"\s", " ")
    for _ in range(2):
        text = tf.strings.regex_replace(text, f"({_PUNCT})( |$)", r" \1 ")
        text = tf.strings.regex_replace(text, f"(^| )({_PUNCT})", r" \2 ")
    return tf.strings.split(text)


def word_table(vocabulary) -> tf.lookup.StaticHashTable:
    """A lower-cased word -> index table (-1 when absent) from a word list or a vocab file.

    From a file, the table reads it as an asset, so an export copies it into assets/.
    """
    if isinstance(vocabulary, (str, pathlib.Path)):
        initializer = tf.lookup.TextFileInitializer(
            str(vocabulary), key_dtype=tf.string, key_index=tf.lookup.TextFileIndex.WHOLE_LINE,
            value_dtype=tf.int64, value_index=tf.lookup.TextFileIndex.LINE_NUMBER)
    else:
        words = list(vocabulary)
        if not words:
            raise ValueError("The vocabulary is empty; compute it from a non-empty training split.")
        initializer = tf.lookup.KeyValueTensorInitializer(
            tf.constant(words, tf.string), tf.range(len(words), dtype=tf.int64))
    return tf.lookup.StaticHashTable(initializer, default_value=-1)


def features(words, table, sequence_length: int, word_length: int) -> dict:
    """Model inputs of ragged words [B, (words)]: the first `sequence_length` words'
    `token_ids` int32 [B, T] and `char_ids` int32 [B, T, word_length] (0 pads)."""
    index = table.lookup(tf.strings.lower(words)).flat_values
    ids = words.with_flat_values(tf.where(index >= 0, index + SPECIAL_TOKENS, tf.ones_like(index)))
    token_ids = ids.to_tensor(0, shape=[None, sequence_length])
    # Invalid UTF-8 reads as U+FFFD: a defined id, never an error.
    chars = tf.strings.unicode_decode(words, "UTF-8", errors="replace")
    char_ids = chars.with_flat_values(chars.flat_values % CHAR_BUCKETS + 1).to_tensor(
        0, shape=[None, sequence_length, word_length])
    return {"token_ids": tf.cast(token_ids, tf.int32), "char_ids": tf.cast(char_ids, tf.int32)}


class WordFeaturizer(tf.Module):
    """`features` with its word table: ragged words [B, (W)] -> token_ids and char_ids."""

    def __init__(self, vocabulary, sequence_length: int, word_length: int, name=None):
        super().__init__(name=name)
        self.table, self.sequence_length, self.word_length = word_table(vocabulary), sequence_length, word_length

    def __call__(self, words) -> dict:
        return features(words, self.table, self.sequence_length, self.word_length)


def compute_word_vocabulary(words, max_tokens: int = 20_000) -> list[str]:
    """The `max_tokens - 2` most frequent lower-cased words of `words` (an iterable of
    word lists, or a tf.data set of string [n] word tensors); ties in first-seen order."""
    counts = collections.Counter()
    if isinstance(words, tf.data.Dataset):
        words = words.as_numpy_iterator()
    for sentence in words:
        # bytes.lower() changes ASCII letters only, as tf.strings.lower does in the graph.
        counts.update((w if isinstance(w, bytes) else str(w).encode("utf-8")).lower().decode("utf-8", "replace")
                      for w in sentence)
    return [w for w, _ in counts.most_common(max_tokens - SPECIAL_TOKENS) if w and not any(c.isspace() for c in w)]
