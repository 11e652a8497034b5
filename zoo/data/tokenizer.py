"""The in-graph tokenizer of text tasks: a vocabulary computed offline, ids in the graph.

The tokenizer is `keras.layers.TextVectorization` (lower-case, strip punctuation,
split on whitespace, look words up). Its ops are all core TensorFlow ops, so an
exported text model loads in stock TF Serving, in `zoo-model-server` and in a bare
`tf.saved_model.load` with no custom-op library to import first (keras-hub's WordPiece
tokenizers need tensorflow-text's ops registered in the serving process).

Ids: 0 is padding, 1 is an out-of-vocabulary word, 2.. index `vocabulary`.

BERT models use the "wordpiece" kind instead (`zoo.data.wordpiece`: keras-hub's
WordPiece tokenizer, whose ops come from tensorflow-text); `make_tokenizer(...,
kind="wordpiece")` and `compute_vocabulary(..., kind="wordpiece")` give it.

    vocabulary = compute_vocabulary(train_texts, max_tokens=5000)
    tokenizer = make_tokenizer(vocabulary, sequence_length=64)
    tokenizer(["a sentence"])  # int64 [1, 64]
"""

from __future__ import annotations

import pathlib

import keras
import tensorflow as tf

VOCABULARY_FILE = "vocab.txt"  # beside model.keras in a run dir; assets/vocab.txt in an export
# Padding (id 0) and the out-of-vocabulary token (id 1) come before the words.
SPECIAL_TOKENS = 2
KINDS = ("words", "wordpiece")


def check_kind(kind) -> str:
    if kind not in KINDS:
        raise ValueError(f"tokenizer must be one of {', '.join(KINDS)}, got {kind!r}.")
    return kind


def vocabulary_size(vocabulary, kind: str = "words") -> int:
    """The number of token ids a model's embedding needs for `vocabulary`."""
    return len(vocabulary) + (0 if check_kind(kind) == "wordpiece" else SPECIAL_TOKENS)


def compute_vocabulary(texts, max_tokens: int = 20_000, kind: str = "words") -> list[str]:
    """The `max_tokens - 2` most frequent words of `texts` (a tf.data set or list of strings),
    or for kind="wordpiece" a WordPiece vocabulary of at most `max_tokens` pieces."""
    if check_kind(kind) == "wordpiece":
        from zoo.data import wordpiece

        return wordpiece.compute_vocabulary(texts, min(max_tokens, wordpiece.DEFAULT_VOCABULARY_SIZE))
    if not isinstance(texts, tf.data.Dataset):
        texts = tf.data.Dataset.from_tensor_slices(list(texts))
    layer = keras.layers.TextVectorization(max_tokens=max_tokens)
    layer.adapt(texts.batch(1024))
    return [str(w) for w in layer.get_vocabulary(include_special_tokens=False)]


def make_tokenizer(vocabulary, sequence_length: int, name: str = "tokenizer", kind: str = "words"):
    """A TextVectorization layer: strings [B] -> int64 ids [B, sequence_length]
    (kind="wordpiece": a `WordPieceEncoder`, strings [B] -> int32 [CLS] pieces [SEP] ids).

    `vocabulary` is a list of words or the path of a vocabulary file (one word a line);
    from a file, the lookup table reads it as a tracked asset, so an export copies it
    into the SavedModel's assets/.
    """
    if not isinstance(sequence_length, int) or sequence_length < 1:
        raise ValueError(f"sequence_length must be a positive int, got {sequence_length!r}.")
    if check_kind(kind) == "wordpiece":
        from zoo.data import wordpiece

        return wordpiece.WordPieceEncoder(vocabulary, sequence_length, name=name)
    if not isinstance(vocabulary, (str, pathlib.Path)):
        vocabulary = list(vocabulary)
        if not vocabulary:
            raise ValueError("The vocabulary is empty; compute it from a non-empty training split.")
    else:
        vocabulary = str(vocabulary)
    return keras.layers.TextVectorization(
        vocabulary=vocabulary, output_mode="int", output_sequence_length=sequence_length, name=name)


def write_vocabulary(path, vocabulary) -> pathlib.Path:
    path = pathlib.Path(path)
    for word in vocabulary:
        if not word or any(c.isspace() for c in word):
            raise ValueError(f"Vocabulary entries are single words, got {word!r}.")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(f"{w}\n" for w in vocabulary), encoding="utf-8")
    tmp.replace(path)
    return path


def read_vocabulary(path) -> list[str]:
    return pathlib.Path(path).read_text(encoding="utf-8").splitlines()
