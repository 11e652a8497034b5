"""Tasks: the task, not the architecture, decides loss, metrics and data format."""

from __future__ import annotations

import dataclasses
import difflib

import keras


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    input_name: str  # the model's (and serving_default's) input key
    description: str

    def loss(self):
        # Every builder ends in a layer named "logits": no softmax inside the model.
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def metrics(self):
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


TASKS = {
    t.name: t
    for t in [
        Task("image_classification", "image", "[B,H,W,C] float32 pixels 0-255 -> K logits"),
        Task("text_classification", "token_ids", "[B,T] int32 token ids (0 pads) -> K logits"),
    ]
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        close = difflib.get_close_matches(str(name), list(TASKS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown task {name!r}.{hint} Known tasks: {', '.join(TASKS)}.")
    return TASKS[name]
