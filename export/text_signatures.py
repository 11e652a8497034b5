"""Serving signatures of text classifiers: raw text in, tokenized inside the graph.

The Keras model takes `{"token_ids": int32 [B, T]}`; the export adds the run's
tokenizer (`zoo.data.tokenizer`, built from the run's vocab.txt) in front of it, so
`serving_default` takes `text` [B] string and `classify` takes tf.Examples with a
bytes feature "text". The vocabulary file becomes the SavedModel asset
assets/vocab.txt, beside labels.txt.

    task = get_task_signatures("text_classification")
    bound, examples, origin = task.prepare(source, None, None, 4)
    sorted(bound.build(model, labels, staging_dir).endpoints)  # ['classify', 'serving_default']
"""

from __future__ import annotations

import functools
import logging
import pathlib

import numpy as np
import tensorflow as tf

from export.errors import ExportError
from export.signatures import (
    CLASSIFY_METHOD, PREDICT_METHOD, Endpoint, Request, Signatures, TaskSignatures, _label_table,
)

log = logging.getLogger(__name__)

TEXT_FEATURE = "text"  # the tf.Example bytes feature `classify` reads
# Used only when no real text can be read (a Keras model exported without a dataset).
_FALLBACK_TEXTS = ("The team won the final match.", "A new telescope found a galaxy.",
                   "", "Stock markets rose after the merger.")


def _sequence_length(model) -> int:
    if "token_ids" not in getattr(model, "input", {}):
        raise ExportError("A text classifier must take {'token_ids': int32 [B, T]}; this model takes "
                          f"{list(getattr(model, 'input', {}))}.")
    length = model.input["token_ids"].shape[1]
    if length is None:
        raise ExportError("A text classifier needs a fixed sequence_length (token_ids [B, T]).")
    return int(length)


def _tokenizer(vocabulary, sequence_length, **kwargs):
    from zoo.data.tokenizer import make_tokenizer

    tokenizer = make_tokenizer(vocabulary, sequence_length, **kwargs)
    tokenizer(tf.constant([""]))  # builds the layer, which ExportArchive.track requires
    tokenizer.built = True
    return tokenizer


def text_classification(model, label_names, staging_dir, *, vocabulary, sequence_length) -> Signatures:
    """`serving_default` (text -> probabilities, class_id, label) and `classify`.

    Args:
        model: Keras model with input {"token_ids": int32 [B, T]} and logits [B, K].
        label_names: K class names.
        staging_dir: folder for asset source files (labels.txt, vocab.txt).
        vocabulary: the tokenizer's words, as the model was trained with.
        sequence_length: T.
    """
    from zoo.data.tokenizer import VOCABULARY_FILE, write_vocabulary

    num_classes = len(label_names)
    table = _label_table(label_names, staging_dir)
    # From a file, the lookup table reads the vocabulary as an asset: it is copied into
    # assets/ and TF Serving initializes the table from the exported copy.
    tokenizer = _tokenizer(write_vocabulary(pathlib.Path(staging_dir) / VOCABULARY_FILE, vocabulary),
                           sequence_length, name="serving_tokenizer")

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string)])
    def predict(text):
        token_ids = tf.cast(tokenizer(text), tf.int32)
        logits = model({"token_ids": token_ids}, training=False)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
        return {"probabilities": probabilities, "class_id": class_id, "label": table.lookup(class_id)}

    def serving_default(text):
        return predict(text)

    def classify(inputs):
        parsed = tf.io.parse_example(inputs, {TEXT_FEATURE: tf.io.FixedLenFeature([], tf.string, default_value="")})
        scores = predict(parsed[TEXT_FEATURE])["probabilities"]
        names = table.lookup(tf.range(num_classes, dtype=tf.int64))
        return {"classes": tf.tile(names[tf.newaxis], (tf.shape(scores)[0], 1)), "scores": scores}

    return Signatures(
        endpoints={
            "serving_default": Endpoint(serving_default, [tf.TensorSpec((None,), tf.string, name="text")]),
            "classify": Endpoint(classify, [tf.TensorSpec((None,), tf.string, name="inputs")], CLASSIFY_METHOD),
        },
        resources=[table, tokenizer],
    )


def text_example(text) -> tf.train.Example:
    """A tf.Example for `classify`: the text as the bytes feature "text"."""
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    return tf.train.Example(features=tf.train.Features(feature={
        TEXT_FEATURE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))}))


def text_requests(examples, batch_sizes=(1, None)) -> list[Request]:
    """Requests for both text signatures from real texts [N] (bytes)."""
    texts = np.asarray(examples["text"], dtype=object)
    requests = []
    for size in dict.fromkeys(min(b or len(texts), len(texts)) for b in batch_sizes):
        requests += [
            Request("serving_default", PREDICT_METHOD, size, inputs={"text": texts[:size]}),
            Request("classify", CLASSIFY_METHOD, size, examples=[text_example(t) for t in texts[:size]]),
        ]
    return requests


def text_reference(model, examples, *, vocabulary, sequence_length) -> np.ndarray:
    """Keras' softmax probabilities on the texts, tokenized as in training."""
    tokenizer = _tokenizer(vocabulary, sequence_length)
    token_ids = tf.cast(tokenizer(tf.constant(np.asarray(examples["text"], dtype=object))), tf.int32)
    logits = model.predict_on_batch({"token_ids": token_ids.numpy()})
    return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1).numpy()


def _as_bytes(texts) -> np.ndarray:
    return np.array([t.encode("utf-8") if isinstance(t, str) else bytes(t) for t in texts], dtype=object)


def prepare(source, examples, dataset, count):
    """Binds the text signatures to the run's tokenizer; reads real texts for warm-up.

    Returns (TaskSignatures, {"text": bytes [N]}, where the texts came from).
    """
    from zoo.data import pipeline, tokenizer as tokenizers

    sequence_length = _sequence_length(source.model)
    info, config = source.dataset or {}, source.config or {}
    name = dataset or config.get("dataset")
    if source.run_dir is not None and info.get("vocabulary_file"):
        vocabulary = tokenizers.read_vocabulary(source.run_dir / info["vocabulary_file"])
    elif name:
        vocabulary = list(pipeline.text_vocabulary(name, config.get("data_dir"), False))
    else:
        raise ExportError("Exporting a text model needs its tokenizer's vocabulary: export its run "
                          "directory, or pass dataset= (the text set it was trained on).")
    input_dim = max((getattr(layer, "input_dim", 0) for layer in source.model.layers), default=0)
    if input_dim and len(vocabulary) + tokenizers.SPECIAL_TOKENS > input_dim:
        raise ExportError(f"The vocabulary ({len(vocabulary)} words + 2) does not fit the model's "
                          f"embedding of {input_dim} ids; was it trained on another dataset?")
    origin = "random"
    if examples is not None:
        texts, origin = _as_bytes(list(examples)[:count]), "given"
    else:
        texts = None
        if name:
            try:
                texts = pipeline.text_examples(name, "train", count, config.get("data_dir"), download=False)
                origin = f"{name}:train[:{count}]"
            except Exception as e:  # data not on this machine: warn and still export
                log.warning("Could not read examples of %s (%s); warm-up uses fixed sentences.", name, e)
        if texts is None or not len(texts):
            texts, origin = _as_bytes(_FALLBACK_TEXTS[:count]), "fixed sentences"
    bind = dict(vocabulary=vocabulary, sequence_length=sequence_length)
    bound = TaskSignatures(
        build=functools.partial(text_classification, **bind), requests=text_requests,
        reference=functools.partial(text_reference, **bind), example_key="text")
    return bound, {"text": texts}, origin


TEXT_CLASSIFICATION = TaskSignatures(
    build=text_classification, requests=text_requests, reference=text_reference, example_key="text",
    prepare=prepare)
