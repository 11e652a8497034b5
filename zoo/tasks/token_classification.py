"""Task `token_classification` (named entities): strings in, words, tags and entities out.

Examples are words with one tag id each (CoNLL's BIO tags: "B-PER", "I-PER", "O", ...).
The Keras model returns logits [B, T, K], one row of tag logits per word, from
- `token_ids` int32 [B, T] (lower-cased word ids, 0 pads) and, when it reads characters,
  `char_ids` int32 [B, T, C] (`zoo.data.words`); or, for BERT taggers (the "wordpiece"
  tokenizer), `token_ids` int32 [B, P] cased word pieces and `word_index` int32 [B, T],
  each word's first piece (`zoo.data.wordpiece.WordPieceAligner`). Padding positions carry the label -1, which
the loss and the accuracy skip. Entity-level precision, recall and F1 (seqeval, the
CoNLL scorer's rules) join metrics.json and `zoo evaluate`.

Exported `serving_default`: `text` [B] string -> `tokens` [B, T] string (the words,
split in the graph as `zoo.data.words.split_words` says), `tags` [B, T] string, `scores`
[B, T] float32 (the tag's probability), `entities` [B, T] string ("PER: Ada Lovelace",
in order); "" (0 for scores) past the end. Words after the first T are not tagged.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib

import keras
import numpy as np
import tensorflow as tf

from zoo.data import registry as datasets
from zoo.data import tokenizer as vocabulary_files
from zoo.data import wordpiece
from zoo.data import words as word_tokenizer
from zoo.tasks.base import PREDICT_METHOD, Endpoint, ExportSource, Request, Signatures, Task, as_text, model_inputs, \
    register_task
from zoo.tasks.classification import label_table
from zoo.tasks.text_classification import read_texts, text_examples

log = logging.getLogger(__name__)

PAD_LABEL = -1  # the label of padding positions; the loss and the metrics skip it
TOLERANCE = 1e-4  # max |difference| of exported scores from Keras'
DEFAULT_SEQUENCE_LENGTH = 64  # words per sentence (CoNLL-2003's longest is 124; 99.9% are under 64)
DEFAULT_WORD_LENGTH = 16  # characters per word the character features read
# A tagger's learned WordPiece vocabulary is small, so that rare words (most names)
# are read as pieces in training too: a name never seen is pieces the model knows.
TAGGER_WORD_PIECES = 250
_FALLBACK_TEXTS = ("Ada Lovelace worked with Charles Babbage in London .", "The United Nations met in Geneva .",
                   "", "She flew to Paris on Monday .")


@keras.saving.register_keras_serializable(package="zoo")
class TokenAccuracy(keras.metrics.Mean):
    """The share of words (not padding, label -1) whose tag is right."""

    def __init__(self, name="accuracy", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = keras.ops.cast(y_true, "int32")
        right = keras.ops.equal(keras.ops.cast(keras.ops.argmax(y_pred, axis=-1), "int32"), y_true)
        weight = keras.ops.cast(keras.ops.not_equal(y_true, PAD_LABEL), "float32")
        if sample_weight is not None:
            weight = weight * keras.ops.cast(sample_weight, "float32")
        return super().update_state(keras.ops.cast(right, "float32"), sample_weight=weight)


def word_vocabulary(name: str, data_dir: str | None = None, download: bool = True,
                    max_tokens: int = 20_000, kind: str = "words") -> list[str]:
    """The vocabulary of tagging set `name`: its training split's most frequent words, or
    (kind="wordpiece") cased word pieces learned from it."""
    words = datasets.get_dataset(name).examples("train", data_dir=data_dir, download=download).map(lambda x, y: x)
    if vocabulary_files.check_kind(kind) == "wordpiece":
        return wordpiece.compute_vocabulary(words.map(lambda w: tf.strings.reduce_join(w, separator=" ")),
                                            TAGGER_WORD_PIECES, lowercase=False)
    return word_tokenizer.compute_word_vocabulary(words, max_tokens)


def featurizer(kind: str, vocabulary, sequence_length: int, word_length: int, piece_length: int):
    """words [B, (W)] -> the model inputs of a tagger with this tokenizer (all of them; a
    model takes the ones it names)."""
    if vocabulary_files.check_kind(kind) == "wordpiece":
        return wordpiece.WordPieceAligner(vocabulary, sequence_length, piece_length)
    return word_tokenizer.WordFeaturizer(vocabulary, sequence_length, word_length)


def tagged(features: dict, words, sequence_length: int):
    """bool [B, T]: the words that get a tag (those that fit the model's input)."""
    if "word_index" in features:
        return features["word_index"] > 0
    return tf.sequence_mask(tf.minimum(words.row_lengths(), sequence_length), sequence_length)


def entity_spans(tokens, tags):
    """Readable entities of BIO tags: "TYPE: words" per entity, in order, [B, T] ("" after).

    An entity starts at a B- tag, or at an I- tag whose type differs from the previous
    word's (the CoNLL scorer's rule), and runs over the I- tags of its type.
    """
    batch, length = tf.shape(tags)[0], tf.shape(tags)[1]
    kind = tf.strings.regex_replace(tags, "^[BI]-", "")
    inside = tf.logical_and(tf.not_equal(tags, "O"), tf.not_equal(tags, ""))
    before_kind = tf.pad(kind[:, :-1], [[0, 0], [1, 0]])
    before_inside = tf.pad(inside[:, :-1], [[0, 0], [1, 0]])
    begins = inside & (tf.strings.regex_full_match(tags, "B-.*") | ~before_inside | (before_kind != kind))
    index = tf.cumsum(tf.cast(begins, tf.int32), axis=1) - 1
    cells = batch * length
    segment = tf.where(inside, tf.range(batch)[:, tf.newaxis] * length + index, cells)  # cells: words outside

    def join(values, separator):
        joined = tf.strings.unsorted_segment_join(values, segment, cells + 1, separator=separator)
        return tf.reshape(joined[:cells], [batch, length])

    words = join(tokens, " ")
    kinds = join(tf.where(begins, kind, ""), "")
    return tf.where(words != "", kinds + ": " + words, "")


class TokenClassification(Task):
    name = "token_classification"
    description = "[B,T] int32 word ids (0 pads) [+ [B,T,C] char ids] -> [B,T,K] tag logits"
    input_names = ("token_ids",)
    optional_inputs = ("char_ids", "word_index")
    data_arguments = ("num_classes", "vocabulary_size")
    serving_inputs = ("text",)
    serving_outputs = ("tokens", "tags")
    data_options = ("sequence_length", "word_length", "piece_length", "vocabulary", "tokenizer")

    # --- training ------------------------------------------------------------
    def loss(self):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_LABEL)

    def metrics(self):
        return [TokenAccuracy()]

    def check_model(self, model) -> None:
        inputs = model_inputs(model)
        names = set(inputs or {})
        if not set(self.input_names) <= names <= set(self.input_names + self.optional_inputs):
            raise ValueError(f"A {self.name} model takes the named input token_ids [B, T] (and optionally "
                             f"char_ids [B, T, C]); this model takes {sorted(names) or 'no named inputs'}. Build "
                             f"it with keras.Input(name=...) per input.")
        output = model.output
        shape = tuple(output.shape) if not isinstance(output, (dict, list, tuple)) else None
        length = inputs["word_index" if "word_index" in inputs else "token_ids"].shape[1]
        if shape is None or len(shape) != 3 or shape[1] != length or shape[-1] is None or shape[-1] < 2:
            raise ValueError(f"A {self.name} model returns one tensor of tag logits [B, T, K] (T = {length}, the "
                             f"words of token_ids; K >= 2); this model returns {output}.")

    def report_metrics(self, model, ds, label_names) -> dict:
        from seqeval import metrics as seqeval

        expected, predicted = [], []
        for x, y in ds:
            tags = np.argmax(model.predict_on_batch(x), axis=-1)
            for row, labels in zip(tags, np.asarray(y)):
                real = labels != PAD_LABEL
                expected.append([label_names[i] for i in labels[real]])
                predicted.append([label_names[i] for i in row[real]])
        # zero_division=0: a model that finds no entity scores 0, without a warning per call.
        return {f"entity_{name}": float(score(expected, predicted, zero_division=0))
                for name, score in (("f1", seqeval.f1_score), ("precision", seqeval.precision_score),
                                    ("recall", seqeval.recall_score))}

    # --- data ----------------------------------------------------------------
    def reads_feature(self, dtype, shape) -> bool:
        return dtype == tf.string and len(shape) == 1

    def builder_arguments(self, info) -> dict:
        if info.num_classes < 2:
            raise ValueError(f"Dataset {info.name!r} has {info.num_classes} tags; a {self.name} dataset needs tag "
                             f"names (register it with label_names=[...], at least two).")
        return {"num_classes": info.num_classes, "sequence_length": info.input_shape[0],
                "vocabulary_size": vocabulary_files.vocabulary_size(info.vocabulary, info.tokenizer or "words")}

    def data_options_for(self, model_kwargs: dict) -> dict:
        options = {k: model_kwargs.get(k) for k in ("sequence_length", "word_length", "piece_length")}
        if model_kwargs.get("preset"):  # a keras-hub preset brings its own word pieces
            options.update(tokenizer="wordpiece", vocabulary=wordpiece.preset_vocabulary(model_kwargs["preset"]))
        return options

    def prepare_examples(self, ds, info, data_dir=None, download=True, sequence_length=None, word_length=None,
                         piece_length=None, vocabulary=None, tokenizer="words"):
        sequence_length = sequence_length or DEFAULT_SEQUENCE_LENGTH
        word_length = word_length or DEFAULT_WORD_LENGTH
        piece_length = piece_length or 2 * sequence_length
        if vocabulary is None:
            vocabulary = word_vocabulary(info.name, data_dir, download, kind=tokenizer)
        elif isinstance(vocabulary, (str, pathlib.Path)):
            vocabulary = vocabulary_files.read_vocabulary(vocabulary)
        encode = featurizer(tokenizer, vocabulary, sequence_length, word_length, piece_length)

        def featurize(tokens, tags):
            words = tf.RaggedTensor.from_row_lengths(tokens, tf.shape(tokens, out_type=tf.int64)[:1])
            x = encode(words)
            tags = tf.cast(tags[:sequence_length], tf.int64)
            tags = tf.pad(tags, [[0, sequence_length - tf.shape(tags)[0]]], constant_values=PAD_LABEL)
            # A word that did not fit the model's input has no tag to learn.
            return {k: v[0] for k, v in x.items()}, tf.where(tagged(x, words, sequence_length)[0], tags, PAD_LABEL)

        ds = ds.map(featurize, num_parallel_calls=tf.data.AUTOTUNE)
        info = dataclasses.replace(info, input_shape=(sequence_length,), vocabulary=tuple(vocabulary),
                                   tokenizer=tokenizer)
        return ds, info

    def batch_features(self, x, y):
        return x, y

    def write_run_assets(self, run_dir, info) -> dict:
        vocabulary_files.write_vocabulary(pathlib.Path(run_dir) / vocabulary_files.VOCABULARY_FILE, info.vocabulary)
        return {"vocabulary_file": vocabulary_files.VOCABULARY_FILE, "sequence_length": info.input_shape[0],
                "tokenizer": info.tokenizer}

    def read_run_assets(self, run_dir, dataset_json) -> dict:
        path = pathlib.Path(run_dir) / dataset_json["vocabulary_file"]
        return {"vocabulary": vocabulary_files.read_vocabulary(path), "sequence_length": dataset_json["sequence_length"],
                "tokenizer": dataset_json.get("tokenizer") or "words"}

    # --- export ----------------------------------------------------------------
    def export_assets(self, source: ExportSource) -> dict:
        inputs = model_inputs(source.model)
        num_tags = int(source.model.output.shape[-1])
        info, config = source.dataset or {}, source.config or {}
        if source.label_names is not None:
            tags = [str(t) for t in source.label_names]
        elif info.get("label_names"):
            tags = list(info["label_names"])
        elif source.dataset_name:
            tags = list(datasets.get_dataset(source.dataset_name).info(config.get("data_dir"), False).label_names)
        else:
            raise ValueError("Exporting a tagger needs its tag names: export its run directory, or pass "
                             "label_names=[...] (one per output, e.g. 'O', 'B-PER', ...) or dataset=.")
        if len(tags) != num_tags:
            raise ValueError(f"{len(tags)} tag names for a model with {num_tags} outputs.")
        kind = source.data_options.get("tokenizer", "words")
        if source.run_dir is not None and info.get("vocabulary_file"):
            run = self.read_run_assets(source.run_dir, info)
            vocabulary, kind = run["vocabulary"], run["tokenizer"]
        elif source.dataset_name:
            vocabulary = word_vocabulary(source.dataset_name, config.get("data_dir"), False, kind=kind)
        else:
            raise ValueError("Exporting a tagger needs its word vocabulary: export its run directory, or pass "
                             "dataset= (the tagging set it was trained on).")
        word_length = inputs["char_ids"].shape[2] if "char_ids" in inputs else DEFAULT_WORD_LENGTH
        words = inputs["word_index" if "word_index" in inputs else "token_ids"].shape[1]
        return {"label_names": tags, "vocabulary": list(vocabulary), "tokenizer": kind,
                "sequence_length": int(words), "word_length": int(word_length),
                "piece_length": int(inputs["token_ids"].shape[1]), "inputs": sorted(inputs)}

    def card(self, assets: dict) -> dict:
        return {"labels": list(assets["label_names"]), "sequence_length": assets["sequence_length"],
                "tokenizer": assets["tokenizer"],
                "vocabulary_size": vocabulary_files.vocabulary_size(assets["vocabulary"], assets["tokenizer"]),
                "words": "split on whitespace, punctuation at a word's start or end split off"}

    def examples(self, source: ExportSource, given, count):
        # Tagging sets hold words; an export's examples are the sentences they make.
        return text_examples(source, given, count, _FALLBACK_TEXTS, text_of=b" ".join)

    @staticmethod
    def _featurizer(assets, vocabulary):
        return featurizer(assets["tokenizer"], vocabulary, assets["sequence_length"], assets["word_length"],
                          assets["piece_length"])

    def reference(self, model, examples, assets) -> dict:
        words = word_tokenizer.split_words(tf.constant(np.asarray(examples["text"], dtype=object)))
        x = self._featurizer(assets, assets["vocabulary"])(words)
        logits = model.predict_on_batch({k: v for k, v in x.items() if k in assets["inputs"]})
        return {"probabilities": tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1).numpy(),
                "words": tf.reduce_sum(tf.cast(tagged(x, words, assets["sequence_length"]), tf.int64), 1).numpy()}

    def signatures(self, model, assets: dict, staging_dir) -> Signatures:
        tag_table = label_table(assets["label_names"], staging_dir)
        vocab_file = vocabulary_files.write_vocabulary(
            pathlib.Path(staging_dir) / vocabulary_files.VOCABULARY_FILE, assets["vocabulary"])
        # From the file, the word table reads it as an asset (assets/vocab.txt).
        encode = self._featurizer(assets, vocab_file)
        length = assets["sequence_length"]

        @tf.function(input_signature=[tf.TensorSpec((None,), tf.string)])
        def serving_default(text):
            words = word_tokenizer.split_words(text)
            x = encode(words)
            logits = model({k: v for k, v in x.items() if k in assets["inputs"]}, training=False)
            probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
            real = tagged(x, words, length)
            tags = tf.where(real, tag_table.lookup(tf.argmax(probabilities, axis=-1, output_type=tf.int64)), "")
            tokens = words.to_tensor("", shape=[None, length])
            return {"tokens": tokens, "tags": tags, "entities": entity_spans(tokens, tags),
                    "scores": tf.where(real, tf.reduce_max(probabilities, axis=-1), 0.0)}

        return Signatures(
            endpoints={"serving_default": Endpoint(serving_default, [tf.TensorSpec((None,), tf.string, name="text")])},
            resources=[tag_table, encode])

    def requests(self, examples, batch_sizes=(1, None)) -> list[Request]:
        texts = np.asarray(examples["text"], dtype=object)
        return [Request("serving_default", PREDICT_METHOD, size, inputs={"text": texts[:size]})
                for size in dict.fromkeys(min(b or len(texts), len(texts)) for b in batch_sizes)]

    def compare(self, request, outputs: dict, reference: dict, assets: dict) -> tuple[list, float]:
        key, names = request.signature, list(assets["label_names"])
        missing = [k for k in ("tokens", "tags", "scores", "entities") if k not in outputs]
        if missing:
            return [f"{key}: no {', '.join(missing)} output"], float("inf")
        probabilities = np.asarray(reference["probabilities"][:request.size], np.float64)
        real = np.arange(probabilities.shape[1]) < np.asarray(reference["words"][:request.size])[:, None]
        scores = np.asarray(outputs["scores"], np.float64)
        if scores.shape != real.shape:
            return [f"{key}: scores have shape {scores.shape}, expected {real.shape}"], float("inf")
        expected = np.where(real, probabilities.max(axis=-1), 0.0)
        diff = float(np.max(np.abs(scores - expected))) if scores.size else 0.0
        errors = [f"{key}: scores differ from Keras by {diff:.3g} > {TOLERANCE}"] if diff > TOLERANCE else []
        tags = np.array([as_text(row) for row in outputs["tags"]], dtype=object).reshape(real.shape)
        top2 = np.sort(probabilities, axis=-1)[..., -2:]
        clear = real & (top2[..., 1] - top2[..., 0] > 2 * TOLERANCE)
        keras_tags = np.array(names, dtype=object)[np.argmax(probabilities, axis=-1)]
        if not np.array_equal(tags[clear], keras_tags[clear]):
            errors.append(f"{key}: tags differ from Keras' argmax")
        if any(tags[~real]):
            errors.append(f"{key}: tags past the last word are not empty")
        return errors, diff

    # --- command line ------------------------------------------------------------
    def read_request(self, values, signatures, signature=None):
        signature = signature or "serving_default"
        if list(signatures.get(signature, {}).get("inputs", {})) != ["text"]:
            raise ValueError(f"signature {signature!r} does not take text")
        return signature, {"text": read_texts(values)}

    def format_answer(self, row: dict) -> str:
        entities = [e for e in as_text(row.get("entities", [])) if e]
        words = [f"{w}/{t}" for w, t in zip(as_text(row.get("tokens", [])), as_text(row.get("tags", []))) if w]
        return f"{'; '.join(entities) or '(no entities)'}\t{' '.join(words)}"


TASK = register_task(TokenClassification())
