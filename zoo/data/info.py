"""Metadata that travels with every dataset: what a model and an exporter need."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    name: str
    task: str
    num_classes: int
    label_names: tuple[str, ...]
    input_shape: tuple  # (H, W, C) of an image, (sequence_length,) of token ids
    num_examples: dict  # split name -> examples (None where unknown)
    source: str  # "offline", "tfds" or "memory"
    citation: str = ""
    input_dtype: str = ""  # of the raw input, before the task's preprocessing
    # Text sets: the tokenizer's words (ids 2..; 0 pads, 1 is out-of-vocabulary), or
    # its word pieces (ids 0..; [PAD] is 0) for the "wordpiece" tokenizer of BERT models.
    vocabulary: tuple[str, ...] = ()
    tokenizer: str = ""  # text sets: "words" or "wordpiece"; seq2seq sets "sequences"
    # Seq2seq sets with a vocabulary per side: the target's (zoo.data.sequences, reserved
    # tokens included, as `vocabulary` is for them); empty when the two share one.
    target_vocabulary: tuple[str, ...] = ()

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["label_names"] = list(self.label_names)
        d["input_shape"] = list(self.input_shape)
        # The words go to their own file (the trainer writes vocab.txt), not into the JSON.
        vocabulary, target = d.pop("vocabulary"), d.pop("target_vocabulary")
        if vocabulary:
            d["vocabulary_size"] = len(vocabulary) + (0 if self.tokenizer in ("wordpiece", "sequences") else 2)
        if target:
            d["target_vocabulary_size"] = len(target)
        if not self.tokenizer:
            d.pop("tokenizer")
        return d


class DatasetUnavailableError(RuntimeError):
    """The dataset is neither on disk nor downloadable from here."""
