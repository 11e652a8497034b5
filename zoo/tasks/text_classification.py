"""Task `text_classification`: strings in, class probabilities and label names out.

The Keras model takes `{"token_ids": int32 [B, T]}` (0 pads); the tokenizer
(`zoo.data.tokenizer`, a vocabulary learned from the training split) runs in the data
pipeline for training and inside the exported graph for serving, so both feed the same
ids. The vocabulary travels with the run (vocab.txt) and the export (assets/vocab.txt).
Exported signatures: `serving_default` (`text` [B] string -> probabilities, class_id,
label) and `classify` (tf.Examples with a bytes feature "text").
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import pathlib

import keras
import numpy as np
import tensorflow as tf

from zoo.data import registry as datasets
from zoo.data import tokenizer as tokenizers
from zoo.tasks.base import (
    CLASSIFY_METHOD, PREDICT_METHOD, Endpoint, ExportSource, Request, Signatures, model_inputs, register_task,
    training_inputs,
)
from zoo.tasks.classification import Classification, classify_outputs, label_table, predict_outputs

log = logging.getLogger(__name__)

TEXT_FEATURE = "text"  # the tf.Example bytes feature `classify` reads
# Tokens per example when neither the caller nor the dataset's registration says (real
# reviews and news; the short offline sentences register 32).
DEFAULT_SEQUENCE_LENGTH = 128
# Used only when no real text can be read (a Keras model exported without a dataset).
_FALLBACK_TEXTS = ("The team won the final match.", "A new telescope found a galaxy.",
                   "", "Stock markets rose after the merger.")


@functools.lru_cache(maxsize=16)
def text_vocabulary(name: str, data_dir: str | None = None, download: bool = True,
                    max_tokens: int = 20_000, kind: str = "words") -> tuple[str, ...]:
    """The tokenizer vocabulary of text set `name`: the most frequent words of its
    training split (or the word pieces learned from it), so every split of a set (and
    every run on it) shares one."""
    texts = datasets.get_dataset(name).examples("train", data_dir=data_dir, download=download).map(lambda x, y: x)
    return tuple(tokenizers.compute_vocabulary(texts, max_tokens, kind))


def text_example(text) -> tf.train.Example:
    """A tf.Example for `classify`: the text as the bytes feature "text"."""
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    return tf.train.Example(features=tf.train.Features(feature={
        TEXT_FEATURE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))}))


def _layers(model):
    """The layers of `model` and of the models nested in it (a BERT backbone's embedding)."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _layers(layer)


def as_bytes(texts) -> np.ndarray:
    return np.array([t.encode("utf-8") if isinstance(t, str) else bytes(t) for t in texts], dtype=object)


def _tokenizer(vocabulary, sequence_length, kind="words", **kwargs):
    tokenizer = tokenizers.make_tokenizer(vocabulary, sequence_length, kind=kind, **kwargs)
    tokenizer(tf.constant([""]))  # builds the layer, which ExportArchive.track requires
    tokenizer.built = True
    return tokenizer


class TextClassification(Classification):
    name = "text_classification"
    description = "[B,T] int32 token ids (0 pads) -> K logits"
    input_names = ("token_ids",)
    data_arguments = ("num_classes", "vocabulary_size")
    serving_inputs = ("text",)
    serving_outputs = ("probabilities", "class_id", "label")
    data_options = ("sequence_length", "vocabulary", "tokenizer")

    def reads_feature(self, dtype, shape) -> bool:
        return dtype == tf.string and len(shape) == 0

    # --- data ----------------------------------------------------------------
    def builder_arguments(self, info) -> dict:
        # Ids 0 (padding) and 1 (unknown word) come before the vocabulary's words.
        return dict(super().builder_arguments(info), sequence_length=info.input_shape[0],
                    vocabulary_size=tokenizers.vocabulary_size(info.vocabulary, info.tokenizer))

    def data_options_for(self, model_kwargs: dict) -> dict:
        options = {"sequence_length": model_kwargs.get("sequence_length")}
        if model_kwargs.get("preset"):  # a keras-hub preset brings its own word pieces
            from zoo.data import wordpiece

            options.update(tokenizer="wordpiece", vocabulary=wordpiece.preset_vocabulary(model_kwargs["preset"]))
        return options

    def prepare_examples(self, ds, info, data_dir=None, download=True, sequence_length=None, vocabulary=None,
                         tokenizer="words"):
        if sequence_length is None:
            sequence_length = DEFAULT_SEQUENCE_LENGTH
        if vocabulary is None:
            vocabulary = text_vocabulary(info.name, data_dir, download, kind=tokenizers.check_kind(tokenizer))
        elif isinstance(vocabulary, (str, pathlib.Path)):
            vocabulary = tokenizers.read_vocabulary(vocabulary)
        encode = tokenizers.make_tokenizer(vocabulary, sequence_length, kind=tokenizer)
        ds = ds.map(lambda x, y: (tf.cast(encode(x[tf.newaxis])[0], tf.int32), y),
                    num_parallel_calls=tf.data.AUTOTUNE)
        info = dataclasses.replace(info, input_shape=(sequence_length,), vocabulary=tuple(vocabulary),
                                   tokenizer=tokenizer)
        return ds, info

    def batch_features(self, x, y):
        return {"token_ids": x}, tf.cast(y, tf.int64)

    def write_run_assets(self, run_dir, info) -> dict:
        tokenizers.write_vocabulary(pathlib.Path(run_dir) / tokenizers.VOCABULARY_FILE, info.vocabulary)
        return {"vocabulary_file": tokenizers.VOCABULARY_FILE, "sequence_length": info.input_shape[0],
                "tokenizer": info.tokenizer}

    def read_run_assets(self, run_dir, dataset_json) -> dict:
        return {"vocabulary": tokenizers.read_vocabulary(pathlib.Path(run_dir) / dataset_json["vocabulary_file"]),
                "sequence_length": dataset_json["sequence_length"],
                "tokenizer": dataset_json.get("tokenizer") or "words"}  # runs before wordpiece

    # --- export ----------------------------------------------------------------
    def export_assets(self, source: ExportSource) -> dict:
        sequence_length = model_inputs(source.model)["token_ids"].shape[1]
        if sequence_length is None:
            raise ValueError("A text classifier needs a fixed sequence_length (token_ids [B, T]).")
        info, config = source.dataset or {}, source.config or {}
        name = source.dataset_name
        kind = source.data_options.get("tokenizer", "words")
        if source.run_dir is not None and info.get("vocabulary_file"):
            run = self.read_run_assets(source.run_dir, info)
            vocabulary, kind = run["vocabulary"], run["tokenizer"]
        elif name:
            vocabulary = list(text_vocabulary(name, config.get("data_dir"), False, kind=kind))
        else:
            raise ValueError("Exporting a text model needs its tokenizer's vocabulary: export its run "
                             "directory, or pass dataset= (the text set it was trained on).")
        input_dim = max((getattr(layer, "input_dim", 0) for layer in _layers(source.model)), default=0)
        if input_dim and tokenizers.vocabulary_size(vocabulary, kind) > input_dim:
            raise ValueError(f"The vocabulary ({tokenizers.vocabulary_size(vocabulary, kind)} ids) does not fit the "
                             f"model's embedding of {input_dim} ids; was it trained on another dataset?")
        return dict(super().export_assets(source), vocabulary=list(vocabulary), sequence_length=int(sequence_length),
                    tokenizer=kind)

    def card(self, assets: dict) -> dict:
        return dict(super().card(assets), sequence_length=assets["sequence_length"], tokenizer=assets["tokenizer"],
                    vocabulary_size=tokenizers.vocabulary_size(assets["vocabulary"], assets["tokenizer"]))

    def examples(self, source: ExportSource, given, count):
        return text_examples(source, given, count, _FALLBACK_TEXTS)

    def model_inputs(self, examples, assets):
        tokenizer = _tokenizer(assets["vocabulary"], assets["sequence_length"], assets["tokenizer"])
        token_ids = tokenizer(tf.constant(np.asarray(examples["text"], dtype=object)))
        return {"token_ids": tf.cast(token_ids, tf.int32).numpy()}

    def signatures(self, model, assets: dict, staging_dir) -> Signatures:
        num_classes = len(assets["label_names"])
        table = label_table(assets["label_names"], staging_dir)
        # From a file, the lookup table reads the vocabulary as an asset: it is copied into
        # assets/ and TF Serving initializes the table from the exported copy.
        vocab_file = tokenizers.write_vocabulary(pathlib.Path(staging_dir) / tokenizers.VOCABULARY_FILE,
                                                 assets["vocabulary"])
        tokenizer = _tokenizer(vocab_file, assets["sequence_length"], assets["tokenizer"], name="serving_tokenizer")

        @tf.function(input_signature=[tf.TensorSpec((None,), tf.string)])
        def predict(text):
            token_ids = tf.cast(tokenizer(text), tf.int32)
            return predict_outputs(model({"token_ids": token_ids}, training=False), table)

        def serving_default(text):
            return predict(text)

        def classify(inputs):
            # No default: an example without the feature is INVALID_ARGUMENT naming it
            # ("Feature: text (data type: string) is required but could not be found."),
            # not an empty text's answer.
            parsed = tf.io.parse_example(inputs, {TEXT_FEATURE: tf.io.FixedLenFeature([], tf.string)})
            return classify_outputs(predict(parsed[TEXT_FEATURE])["probabilities"], table, num_classes)

        return Signatures(
            endpoints={
                "serving_default": Endpoint(serving_default, [tf.TensorSpec((None,), tf.string, name="text")]),
                "classify": Endpoint(classify, [tf.TensorSpec((None,), tf.string, name="inputs")], CLASSIFY_METHOD),
            },
            # A WordPiece tokenizer holds its vocabulary inside the graph (no asset file).
            resources=[table, tokenizer],
        )

    def requests(self, examples, batch_sizes=(1, None)) -> list[Request]:
        """Requests for both text signatures from real texts [N] (bytes)."""
        texts = np.asarray(examples["text"], dtype=object)
        requests = []
        for size in dict.fromkeys(min(b or len(texts), len(texts)) for b in batch_sizes):
            requests += [
                Request("serving_default", PREDICT_METHOD, size, inputs={"text": texts[:size]}),
                Request("classify", CLASSIFY_METHOD, size, examples=[text_example(t) for t in texts[:size]]),
            ]
        return requests

    # --- command line ------------------------------------------------------------
    def read_request(self, values, signatures, signature=None):
        """Texts as given, or text files (all values files, or none)."""
        signature = signature or "serving_default"
        if list(signatures.get(signature, {}).get("inputs", {})) != ["text"]:
            raise ValueError(f"signature {signature!r} does not take text; zoo predict sends texts to "
                             "serving_default (use serving.Client for classify)")
        return signature, {"text": read_texts(values)}


def text_examples(source: ExportSource, given, count: int, fallback, text_of=lambda x: x) -> tuple[dict, str]:
    """({"text": bytes [N]}, where they came from) for an export of a text-in model:
    `given` texts, else the first `count` inputs of the run's dataset's training split
    (`text_of(input)` each), else the `fallback` texts (no data on this machine)."""
    if given is not None:
        return {"text": as_bytes(list(given)[:count])}, "given"
    inputs, origin = training_inputs(source, count)
    if inputs:
        return {"text": np.array([text_of(x) for x in inputs], dtype=object)}, origin
    return {"text": as_bytes(fallback[:count])}, "fixed sentences"


def read_texts(values) -> np.ndarray:
    """`zoo predict` VALUES as texts (bytes [N]): the strings given, or the contents of
    text files (all values files, or none)."""
    files = [pathlib.Path(v).is_file() for v in values]
    if any(files) and not all(files):
        raise ValueError("give files or texts, not both (not files: "
                         f"{', '.join(v for v, f in zip(values, files) if not f)})")
    if all(files):
        values = [pathlib.Path(v).read_bytes().decode("utf-8", "replace") for v in values]
    return as_bytes(values)


TASK = register_task(TextClassification())
