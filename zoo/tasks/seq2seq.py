"""Task `seq2seq` (translation, summarization): text in, generated text out, decoded in the graph.

Examples are (source text, target text) pairs. The Keras model is trained with teacher
forcing through `fit`: it takes `source_ids` [B, S] and `target_ids` [B, T] ([START]
then the target's words) and answers logits [B, T, V] over the next word; the labels
are the target's words then [END], -1 past it (skipped by the loss and the accuracy).
Tokenizers (`zoo.data.sequences`) are word-level, one vocabulary per side learned from
the training split, or one shared (`shared_vocabulary=True`). Sources longer than S
words are cut to their first S words (documented truncation, as for every text task);
outputs are at most T - 1 words.

Exported signatures, decoded inside the graph by `zoo.tasks.decoding` with core TF ops
only (no `Xla*` op; TF Serving runs them with XLA off):
- `serving_default`: `text` [B] string -> `output_text` [B] string (greedy).
- `beam_search`: `text` [B], `beam_size` int32 [] (default 4, at most 8) and
  `max_length` int32 [] (output words, default and most T - 1) -> `output_text` [B, K]
  and `scores` [B, K] (total log-probabilities), best first. The two scalars have
  SignatureDef defaults, so a request may omit them; a value out of range is
  INVALID_ARGUMENT.
An empty text (no words) answers "".

BLEU (sacrebleu), ROUGE-L (rouge-score) and exact match of greedy outputs on the test
split join metrics.json and `zoo evaluate`; they are computed on the target
vocabulary's words (a word outside it counts as [UNK] on both sides).
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
from zoo.data import sequences
from zoo.tasks import decoding
from zoo.tasks.base import PREDICT_METHOD, Endpoint, ExportSource, Request, Signatures, Task, as_text, model_inputs, \
    register_task
from zoo.tasks.text_classification import read_texts, text_examples
from zoo.tasks.token_classification import PAD_LABEL, TokenAccuracy

log = logging.getLogger(__name__)

DEFAULT_SOURCE_LENGTH = 64  # source words read (longer sources are cut)
DEFAULT_TARGET_LENGTH = 64  # target positions: outputs of up to 63 words
DEFAULT_MAX_TOKENS = 8_000  # words per vocabulary, reserved tokens included
DEFAULT_BEAM_SIZE = 4
SOURCE_VOCABULARY_FILE = "vocab.txt"  # the shared vocabulary too
TARGET_VOCABULARY_FILE = "target_vocab.txt"
_FALLBACK_TEXTS = ("the cat sees the dog", "a small house", "", "the old man reads a book")


@functools.lru_cache(maxsize=8)
def vocabularies(name: str, data_dir: str | None = None, download: bool = True, max_tokens: int = DEFAULT_MAX_TOKENS,
                 shared: bool = False) -> tuple[tuple, tuple]:
    """(source, target) vocabularies of set `name`'s training split (the same one twice when shared)."""
    pairs = datasets.get_dataset(name).examples("train", data_dir=data_dir, download=download)
    if shared:
        both = tuple(sequences.compute_vocabulary(pairs.flat_map(
            lambda s, t: tf.data.Dataset.from_tensor_slices(tf.stack([s, t]))), max_tokens))
        return both, both
    return (tuple(sequences.compute_vocabulary(pairs.map(lambda s, t: s), max_tokens)),
            tuple(sequences.compute_vocabulary(pairs.map(lambda s, t: t), max_tokens)))


def _length(model, name) -> int:
    return int(model_inputs(model)[name].shape[1])


class Seq2Seq(Task):
    name = "seq2seq"
    description = "[B,S] source ids + [B,T] target ids (teacher forcing) -> [B,T,V] next-word logits"
    input_names = ("source_ids", "target_ids")
    data_arguments = ("source_vocabulary_size", "target_vocabulary_size")
    serving_inputs = ("text",)
    serving_outputs = ("output_text",)
    data_options = ("source_length", "target_length", "vocabulary", "target_vocabulary", "shared_vocabulary",
                    "max_tokens")

    # --- training ------------------------------------------------------------
    def loss(self):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_LABEL)

    def metrics(self):
        return [TokenAccuracy()]

    def check_model(self, model) -> None:
        super().check_model(model)
        output = model.output
        length = _length(model, "target_ids")
        shape = tuple(output.shape) if not isinstance(output, (dict, list, tuple)) else None
        if shape is None or len(shape) != 3 or shape[1] != length or not shape[-1]:
            raise ValueError(f"A {self.name} model returns one tensor of next-word logits [B, T, V] (T = {length}, "
                             f"the positions of target_ids); this model returns {output}.")
        decoding.check_layers(model)

    def report_metrics(self, model, ds, label_names) -> dict:
        import sacrebleu
        from rouge_score import rouge_scorer

        decoder = decoding.CachedDecoder(model)
        decode = tf.function(lambda source_ids: decoding.greedy(decoder, source_ids, decoder.target_length))
        hypotheses, references = [], []
        for x, y in ds:
            for row, labels in zip(decode(x["source_ids"]).numpy(), np.asarray(y)):
                hypotheses.append(_id_text(row))
                references.append(_id_text(labels))
        if not references:
            return {}
        # Word ids stand for the words: no tokenization of their own ("none"), case kept.
        bleu = sacrebleu.corpus_bleu(hypotheses, [references], tokenize="none").score
        scorer = rouge_scorer.RougeScorer(["rougeL"])
        rouge = float(np.mean([scorer.score(r, h)["rougeL"].fmeasure for r, h in zip(references, hypotheses)]))
        exact = float(np.mean([r == h for r, h in zip(references, hypotheses)]))
        return {"bleu": float(bleu), "rougeL": rouge, "exact_match": exact}

    # --- data ----------------------------------------------------------------
    def builder_arguments(self, info) -> dict:
        target = info.target_vocabulary or info.vocabulary
        return {"source_vocabulary_size": len(info.vocabulary), "target_vocabulary_size": len(target),
                "source_length": info.input_shape[0], "target_length": info.input_shape[1]}

    def data_options_for(self, model_kwargs: dict) -> dict:
        return {k: model_kwargs.get(k) for k in ("source_length", "target_length")}

    def prepare_examples(self, ds, info, data_dir=None, download=True, source_length=None, target_length=None,
                         vocabulary=None, target_vocabulary=None, shared_vocabulary=False,
                         max_tokens=DEFAULT_MAX_TOKENS):
        source_length = source_length or DEFAULT_SOURCE_LENGTH
        target_length = target_length or DEFAULT_TARGET_LENGTH
        if target_length < 2:
            raise ValueError(f"target_length must be at least 2 ([START] and one word), got {target_length}.")
        if vocabulary is None:
            vocabulary, target_vocabulary = vocabularies(info.name, data_dir, download, max_tokens,
                                                         bool(shared_vocabulary))
        vocabulary = _read(vocabulary)
        target_vocabulary = _read(target_vocabulary) if target_vocabulary else vocabulary
        source = sequences.SequenceTokenizer(vocabulary, source_length)
        target = sequences.SequenceTokenizer(target_vocabulary, target_length)

        def featurize(text, output):
            # Labels: the target's words then [END] (cut to fit), -1 past it; the decoder reads
            # [START] then the same words, one position behind.
            labels = target.encode(output[tf.newaxis], end=True)[0]
            reads = tf.concat([[sequences.START], labels[:-1]], axis=0)
            features = {"source_ids": source.encode(text[tf.newaxis])[0], "target_ids": reads}
            return features, tf.where(labels == sequences.PAD, PAD_LABEL, labels)

        ds = ds.map(featurize, num_parallel_calls=tf.data.AUTOTUNE)
        shared = list(target_vocabulary) == list(vocabulary)
        info = dataclasses.replace(info, input_shape=(source_length, target_length), vocabulary=tuple(vocabulary),
                                   target_vocabulary=() if shared else tuple(target_vocabulary), tokenizer="sequences")
        return ds, info

    def batch_features(self, x, y):
        return x, y

    def write_run_assets(self, run_dir, info) -> dict:
        run_dir = pathlib.Path(run_dir)
        sequences.write_vocabulary(run_dir / SOURCE_VOCABULARY_FILE, info.vocabulary)
        extras = {"vocabulary_file": SOURCE_VOCABULARY_FILE, "source_length": info.input_shape[0],
                  "target_length": info.input_shape[1], "tokenizer": info.tokenizer}
        if info.target_vocabulary:
            sequences.write_vocabulary(run_dir / TARGET_VOCABULARY_FILE, info.target_vocabulary)
            extras["target_vocabulary_file"] = TARGET_VOCABULARY_FILE
        return extras

    def read_run_assets(self, run_dir, dataset_json) -> dict:
        run_dir = pathlib.Path(run_dir)
        vocabulary = sequences.read_vocabulary(run_dir / dataset_json["vocabulary_file"])
        target = dataset_json.get("target_vocabulary_file")
        return {"vocabulary": vocabulary,
                "target_vocabulary": sequences.read_vocabulary(run_dir / target) if target else None,
                "source_length": dataset_json["source_length"], "target_length": dataset_json["target_length"]}

    # --- export ----------------------------------------------------------------
    def export_assets(self, source: ExportSource) -> dict:
        model = source.model
        info, config = source.dataset or {}, source.config or {}
        if source.run_dir is not None and info.get("vocabulary_file"):
            run = self.read_run_assets(source.run_dir, info)
            vocabulary, target = run["vocabulary"], run["target_vocabulary"] or run["vocabulary"]
        elif source.dataset_name:
            options = datasets.get_dataset(source.dataset_name).options
            vocabulary, target = vocabularies(source.dataset_name, config.get("data_dir"), False,
                                              options.get("max_tokens", DEFAULT_MAX_TOKENS),
                                              bool(options.get("shared_vocabulary", False)))
        else:
            raise ValueError("Exporting a seq2seq model needs its vocabularies: export its run directory, or pass "
                             "dataset= (the set it was trained on).")
        sizes = {"source": model.get_layer("source_embedding").vocabulary_size,
                 "target": model.get_layer("target_embedding").vocabulary_size}
        for side, words in (("source", vocabulary), ("target", target)):
            if len(words) != sizes[side]:
                raise ValueError(f"The {side} vocabulary has {len(words)} words but the model's {side} embedding "
                                 f"takes {sizes[side]} ids; was it trained on another dataset?")
        shared = list(vocabulary) == list(target)
        return {"vocabulary": list(vocabulary), "target_vocabulary": None if shared else list(target),
                "source_length": _length(model, "source_ids"), "target_length": _length(model, "target_ids")}

    def card(self, assets: dict) -> dict:
        return {"source_length": assets["source_length"], "target_length": assets["target_length"],
                "max_output_words": assets["target_length"] - 1,
                "source_vocabulary_size": len(assets["vocabulary"]),
                "target_vocabulary_size": len(assets["target_vocabulary"] or assets["vocabulary"]),
                "shared_vocabulary": assets["target_vocabulary"] is None,
                "truncation": f"source words after the first {assets['source_length']} are dropped",
                "decoding": {"serving_default": "greedy",
                             "beam_search": f"beam search, beam_size 1-{decoding.MAX_BEAM_SIZE} "
                                            f"(default {DEFAULT_BEAM_SIZE})"}}

    def examples(self, source: ExportSource, given, count):
        return text_examples(source, given, count, _FALLBACK_TEXTS)

    @staticmethod
    def _tokenizers(assets, staging_dir=None):
        vocabulary, target = assets["vocabulary"], assets["target_vocabulary"]
        if staging_dir is not None:  # from files, the tables read them as assets (assets/vocab.txt)
            vocabulary = sequences.write_vocabulary(pathlib.Path(staging_dir) / SOURCE_VOCABULARY_FILE, vocabulary)
            if target is not None:
                target = sequences.write_vocabulary(pathlib.Path(staging_dir) / TARGET_VOCABULARY_FILE, target)
        source = sequences.SequenceTokenizer(vocabulary, assets["source_length"], name="source_tokenizer")
        output = sequences.SequenceTokenizer(target if target is not None else vocabulary, assets["target_length"],
                                             name="target_tokenizer")
        return source, output

    def reference(self, model, examples, assets) -> dict:
        """Greedy outputs of the Keras model, decoded step by step in Python (no cache)."""
        source, _ = self._tokenizers(assets)
        source_ids = source.encode(tf.constant(np.asarray(examples["text"], dtype=object))).numpy()
        ids = python_greedy(model, source_ids)[:, :assets["target_length"] - 1]  # at most T - 1 words
        target = assets["target_vocabulary"] or assets["vocabulary"]
        texts = sequences.as_text(ids, target)
        empty = ~np.any(source_ids != sequences.PAD, axis=1)
        return {"output_text": [("" if e else t) for t, e in zip(texts, empty)]}

    def signatures(self, model, assets: dict, staging_dir) -> Signatures:
        source, target = self._tokenizers(assets, staging_dir)
        decoder = decoding.CachedDecoder(model)
        most = assets["target_length"] - 1

        def empty(text):
            # A text with no words has nothing to translate or summarise: it answers "".
            return tf.reduce_all(tf.equal(source.encode(text), sequences.PAD), axis=1)

        def at_most(ids, words):
            # A decode that has not ended after `words` words is cut there (position `words`
            # holds [END] or one word too many).
            return tf.where(tf.range(tf.shape(ids)[-1]) < words, ids, sequences.PAD)

        def serving_default(text):
            ids = at_most(decoding.greedy(decoder, source.encode(text), most + 1), most)
            return {"output_text": tf.where(empty(text), "", target.decode(ids))}

        def beam_search(text, beam_size, max_length):
            checks = [
                tf.debugging.assert_greater_equal(beam_size, 1, message="beam_size must be at least 1"),
                tf.debugging.assert_less_equal(beam_size, decoding.MAX_BEAM_SIZE,
                                               message=f"beam_size must be at most {decoding.MAX_BEAM_SIZE}"),
                tf.debugging.assert_greater_equal(max_length, 1, message="max_length must be at least 1"),
                tf.debugging.assert_less_equal(max_length, most,
                                               message=f"max_length must be at most {most} (the model's limit)"),
            ]
            with tf.control_dependencies(checks):
                ids, scores = decoding.beam_search(decoder, source.encode(text), beam_size, max_length + 1)
            ids = at_most(ids, max_length)
            nothing = empty(text)[:, tf.newaxis]
            return {"output_text": tf.where(nothing, "", target.decode(ids)), "scores": tf.where(nothing, 0.0, scores)}

        text = tf.TensorSpec((None,), tf.string, name="text")
        return Signatures(
            endpoints={
                "serving_default": Endpoint(serving_default, [text]),
                "beam_search": Endpoint(beam_search, [text, tf.TensorSpec((), tf.int32, name="beam_size"),
                                                      tf.TensorSpec((), tf.int32, name="max_length")],
                                        defaults={"beam_size": np.int32(DEFAULT_BEAM_SIZE),
                                                  "max_length": np.int32(most)}),
            },
            resources=[source, target])

    def requests(self, examples, batch_sizes=(1, None)) -> list[Request]:
        texts = np.asarray(examples["text"], dtype=object)
        requests = []
        for size in dict.fromkeys(min(b or len(texts), len(texts)) for b in batch_sizes):
            requests.append(Request("serving_default", PREDICT_METHOD, size, inputs={"text": texts[:size]}))
        # Beam size 1 is greedy decoding, which the reference gives. The other request sends
        # the text alone, as a client that takes the SignatureDef defaults does: it is
        # checked for its shape and order.
        requests.append(Request("beam_search", PREDICT_METHOD, len(texts),
                                inputs={"text": texts, "beam_size": np.int32(1)}))
        requests.append(Request("beam_search", PREDICT_METHOD, len(texts), inputs={"text": texts}))
        return requests

    def compare(self, request, outputs: dict, reference: dict, assets: dict) -> tuple[list, float]:
        key, size = request.signature, request.size
        if "output_text" not in outputs:
            return [f"{key}: no output_text output"], float("inf")
        texts = np.asarray(outputs["output_text"], dtype=object)
        expected = reference["output_text"][:size]
        if key == "beam_search":
            # The request's beam size does not travel here: the outputs' width is the beam.
            scores = np.asarray(outputs.get("scores"))
            if texts.ndim != 2 or scores.shape != texts.shape or len(texts) != size \
                    or not 1 <= texts.shape[1] <= decoding.MAX_BEAM_SIZE:
                return [f"{key}: output_text {texts.shape} and scores {scores.shape}, expected ({size}, beam_size)"], \
                    float("inf")
            if np.any(np.diff(scores, axis=1) > 1e-5):
                return [f"{key}: scores are not sorted best first"], float("inf")
            if texts.shape[1] != 1:
                return [], 0.0
            texts = texts[:, 0]  # beam size 1 is greedy decoding
        got = as_text(texts)
        wrong = [i for i, (g, e) in enumerate(zip(got, expected)) if g != e]
        if wrong:
            i = wrong[0]
            return [f"{key}: {len(wrong)} of {size} outputs differ from the Keras model's step-by-step greedy "
                    f"decode (first: {got[i]!r} vs {expected[i]!r})"], 1.0
        return [], 0.0

    # --- command line ------------------------------------------------------------
    def read_request(self, values, signatures, signature=None):
        signature = signature or "serving_default"
        if "text" not in signatures.get(signature, {}).get("inputs", {}):
            raise ValueError(f"signature {signature!r} does not take text")
        return signature, {"text": read_texts(values)}

    def format_answer(self, row: dict) -> str:
        texts = as_text(row.get("output_text", []))
        if "scores" not in row:
            return texts[0] if texts else ""
        scores = np.asarray(row["scores"], np.float64).ravel()
        return "\t".join(f"{t} ({s:.3f})" for t, s in zip(texts, scores))


def _read(vocabulary):
    if isinstance(vocabulary, (str, pathlib.Path)):
        return sequences.read_vocabulary(vocabulary)
    return sequences.check_vocabulary(vocabulary)


def _id_text(ids) -> str:
    """The words of one row of target ids (or labels) as id strings, up to [END]."""
    words = []
    for i in np.asarray(ids):
        if i == sequences.END or i == PAD_LABEL:
            break
        if i >= len(sequences.RESERVED):
            words.append(str(int(i)))
    return " ".join(words)


def python_greedy(model, source_ids, max_length: int | None = None) -> np.ndarray:
    """Greedy decoding the plain way: the whole model on the prefix, once per word.

    The reference the in-graph decoder is checked against; ids [N, T] as `decoding.greedy`.
    """
    source_ids = np.asarray(source_ids, np.int32)
    length = _length(model, "target_ids")
    steps = min(max_length or length, length)
    batch = len(source_ids)
    reads = np.zeros((batch, length), np.int32)
    reads[:, 0] = sequences.START
    output = np.zeros((batch, length), np.int32)
    done = np.zeros(batch, bool)
    for t in range(steps):
        logits = model.predict_on_batch({"source_ids": source_ids, "target_ids": reads})
        scores = np.array(logits[:, t], np.float32)
        scores[:, list(decoding.NEVER)] = -np.inf
        token = np.argmax(scores, axis=-1).astype(np.int32)
        token[done] = sequences.PAD
        output[:, t] = token
        done |= token == sequences.END
        if done.all():
            break
        if t + 1 < length:
            reads[:, t + 1] = token
    return output


TASK = register_task(Seq2Seq())
