"""The word tokenizer of seq2seq models: text to ids for the encoder, ids back to text.

A generated output must be read back as text inside the served graph, so the tokenizer
works both ways and keeps every word as it was written (no lower-casing, no stripped
punctuation): a text is split as `zoo.data.words.split_words` splits it (whitespace,
punctuation at a word's start or end split off), each word is looked up, and ids are
joined back with single spaces. Everything is core TensorFlow ops (TF Serving needs no
extra library for these models).

Ids: 0 [PAD], 1 [UNK] (a word not in the vocabulary), 2 [START], 3 [END], then the
vocabulary's words, most frequent first; a vocabulary file lists them all in id order.

    vocabulary = compute_vocabulary(["the cat sat", "a dog"], max_tokens=100)
    tokenizer = SequenceTokenizer(vocabulary, length=8)
    ids = tokenizer.encode(tf.constant(["the dog sat"]))      # int32 [1, 8]
    tokenizer.decode(ids)                                       # ["the dog sat"]
"""

from __future__ import annotations

import collections
import pathlib

import numpy as np
import tensorflow as tf

from zoo.data import tokenizer as vocabulary_files
from zoo.data.words import split_words

RESERVED = ("[PAD]", "[UNK]", "[START]", "[END]")
PAD, UNK, START, END = range(len(RESERVED))


def compute_vocabulary(texts, max_tokens: int = 8_000) -> list[str]:
    """RESERVED then the `max_tokens - 4` most frequent words of `texts` (strings, or a
    tf.data set of string scalars); ties in first-seen order."""
    if max_tokens <= len(RESERVED):
        raise ValueError(f"max_tokens must be more than {len(RESERVED)}, got {max_tokens!r}.")
    if not isinstance(texts, tf.data.Dataset):
        texts = tf.data.Dataset.from_tensor_slices(tf.constant(list(texts), tf.string))
    counts = collections.Counter()
    for words in texts.batch(1024).map(split_words).as_numpy_iterator():
        for sentence in words:
            counts.update(w.decode("utf-8", "replace") for w in sentence)
    words = [w for w, _ in counts.most_common() if w not in RESERVED]
    return list(RESERVED) + words[:max_tokens - len(RESERVED)]


def check_vocabulary(vocabulary) -> list[str]:
    vocabulary = list(vocabulary)
    if tuple(vocabulary[:len(RESERVED)]) != RESERVED or len(vocabulary) <= len(RESERVED):
        raise ValueError(f"A seq2seq vocabulary starts with {', '.join(RESERVED)} and has words after them "
                         f"(zoo.data.sequences.compute_vocabulary); got {vocabulary[:6]}...")
    return vocabulary


class SequenceTokenizer(tf.Module):
    """Text [B] <-> ids [B, length] over one vocabulary (a word list or a vocab file).

    From a file, the lookup tables read it as an asset, so an export copies it into
    the SavedModel's assets/.
    """

    def __init__(self, vocabulary, length: int, name=None):
        super().__init__(name=name)
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"length must be a positive int, got {length!r}.")
        self.length = length
        if isinstance(vocabulary, (str, pathlib.Path)):
            path = str(vocabulary)
            check_vocabulary(pathlib.Path(path).read_text(encoding="utf-8").splitlines())
            self.ids = tf.lookup.StaticHashTable(tf.lookup.TextFileInitializer(
                path, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER),
                default_value=UNK)
            self.words = tf.lookup.StaticHashTable(tf.lookup.TextFileInitializer(
                path, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE),
                default_value="")
        else:
            words = tf.constant(check_vocabulary(vocabulary), tf.string)
            index = tf.range(tf.size(words, out_type=tf.int64))
            self.ids = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(words, index), UNK)
            self.words = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(index, words), "")

    def word_ids(self, text):
        """Ragged int32 ids [B, (words)] of every word of `text` [B] (none cut)."""
        words = split_words(text)
        # A vocabulary word that is a reserved token's spelling is still a word; the
        # table maps it to the reserved id, which is what the model learned.
        return tf.cast(words.with_flat_values(self.ids.lookup(words.flat_values)), tf.int32)

    def encode(self, text, end: bool = False):
        """int32 [B, length]: the first words of `text` (with [END] after them if `end`), 0-padded."""
        ids = self.word_ids(text)
        if end:
            ids = tf.concat([ids[:, :self.length - 1], tf.fill([ids.nrows(), 1], tf.constant(END, tf.int32))], axis=1)
        return ids[:, :self.length].to_tensor(PAD, shape=[None, self.length])

    def decode(self, ids):
        """string [...]: the words of ids [..., T] up to the first [END], reserved ids dropped."""
        ids = tf.cast(ids, tf.int64)
        before_end = tf.equal(tf.cumsum(tf.cast(tf.equal(ids, END), tf.int32), axis=-1), 0)
        keep = before_end & (ids >= len(RESERVED))
        words = tf.where(keep, self.words.lookup(ids), "")
        joined = tf.strings.reduce_join(tf.where(keep, words + " ", ""), axis=-1)
        return tf.strings.regex_replace(joined, " $", "")


def write_vocabulary(path, vocabulary) -> pathlib.Path:
    return vocabulary_files.write_vocabulary(path, check_vocabulary(vocabulary))


def read_vocabulary(path) -> list[str]:
    return check_vocabulary(vocabulary_files.read_vocabulary(path))


def as_text(ids, vocabulary) -> list[str]:
    """The text of each row of ids (numpy), as `SequenceTokenizer.decode` gives it."""
    out = []
    for row in np.asarray(ids):
        words = []
        for i in row:
            if i == END:
                break
            if i >= len(RESERVED):
                words.append(vocabulary[i])
        out.append(" ".join(words))
    return out
