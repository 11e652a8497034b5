"""What every classification task shares: the loss on logits, the label table, the
classification outputs (`probabilities`, `class_id`, `label`), TF Serving's `classify`
outputs, and the comparison of an export with the Keras model's softmax.

`ImageClassification` and `TextClassification` are `Classification`s that add their
input, data and signatures.
"""

from __future__ import annotations

import pathlib

import keras
import numpy as np
import tensorflow as tf

from zoo.tasks.base import CLASSIFY_METHOD, ExportSource, Task, as_text

TOLERANCE = 1e-4  # max |difference| of exported probabilities from Keras'


class Classification(Task):
    """A model whose one output is [B, K] logits; K labels travel with the export."""

    def loss(self):
        # Every builder ends in a layer named "logits": no softmax inside the model.
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def metrics(self):
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def check_model(self, model) -> None:
        super().check_model(model)
        shape = tuple(model.output.shape) if not isinstance(model.output, (dict, list, tuple)) else None
        if shape is None or len(shape) != 2 or shape[-1] is None or shape[-1] < 2:
            raise ValueError(f"A {self.name} model returns one tensor of logits [B, K] with K >= 2; this "
                             f"model returns {model.output}.")

    def builder_arguments(self, info) -> dict:
        if info.num_classes < 2:
            raise ValueError(f"Dataset {info.name!r} has {info.num_classes} classes; a {self.name} dataset needs "
                             f"class labels with names (register it with label_names=[...], at least two).")
        return {"num_classes": info.num_classes}

    def export_assets(self, source: ExportSource) -> dict:
        return {"label_names": label_names(source, int(source.model.output.shape[-1]))}

    def card(self, assets: dict) -> dict:
        return {"labels": list(assets["label_names"])}

    def reference(self, model, examples: dict, assets: dict) -> dict:
        logits = model.predict_on_batch(self.model_inputs(examples, assets))
        return {"probabilities": tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1).numpy()}

    def model_inputs(self, examples: dict, assets: dict) -> dict:
        """The Keras model's inputs for serving_default's examples (the reference path)."""
        raise NotImplementedError

    def compare(self, request, outputs: dict, reference: dict, assets: dict) -> tuple[list, float]:
        key, labels = request.signature, list(assets["label_names"])
        expected = np.asarray(reference["probabilities"][:request.size], np.float64)
        name = "scores" if request.method_name == CLASSIFY_METHOD else "probabilities"
        if name not in outputs:
            return [f"{key}: no {name!r} output"], float("inf")
        got = np.asarray(outputs[name], np.float64)
        if got.shape != expected.shape:
            return [f"{key}: {name} has shape {got.shape}, Keras gives {expected.shape}"], float("inf")
        diff = float(np.max(np.abs(got - expected))) if got.size else 0.0
        errors = [f"{key}: {name} differ from Keras by {diff:.3g} > {TOLERANCE}"] if diff > TOLERANCE else []
        if "classes" in outputs:
            rows = np.asarray(outputs["classes"])
            if any(as_text(row) != labels for row in rows):
                errors.append(f"{key}: classes {as_text(rows[0])} are not the label names {labels}")
        if "class_id" in outputs:
            class_id = np.asarray(outputs["class_id"])
            if not np.array_equal(class_id, np.argmax(got, axis=-1)):
                errors.append(f"{key}: class_id is not the argmax of probabilities")
            # Where Keras' top two are closer than the tolerance either answer is right.
            top2 = np.sort(expected, axis=-1)[:, -2:]
            clear = top2[:, 1] - top2[:, 0] > 2 * TOLERANCE
            if not np.array_equal(class_id[clear], np.argmax(expected, axis=-1)[clear]):
                errors.append(f"{key}: class_id differs from Keras' argmax")
            if "label" in outputs and as_text(outputs["label"]) != [labels[i] for i in class_id]:
                errors.append(f"{key}: label is not label_names[class_id]")
        return errors, diff

    def format_answer(self, row: dict) -> str:
        score = None
        if "probabilities" in row and "class_id" in row:
            score = row["probabilities"][row["class_id"]]
        elif "scores" in row:
            score = max(row["scores"])
        return f"{row.get('label')}\t{score:.4f}" if score is not None else str(row.get("label"))


def label_names(source: ExportSource, num_classes: int) -> list[str]:
    """The export's class names: the caller's, else the run's dataset's, else "0".."K-1"."""
    if source.label_names is not None:
        names = [str(n) for n in source.label_names]
    elif source.dataset and source.dataset.get("label_names"):
        names = list(source.dataset["label_names"])
    else:
        names = [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} label names for a model with {num_classes} outputs.")
    for name in names:
        if "\n" in name or "\r" in name:
            raise ValueError(f"Label names cannot contain line breaks: {name!r}.")
    return names


def label_table(label_names, staging_dir) -> tf.lookup.StaticHashTable:
    """A class id -> label name table read from labels.txt.

    The file becomes a SavedModel asset (assets/labels.txt), so the names travel with
    the model and TF Serving's loader initializes the table from the exported copy.
    """
    path = pathlib.Path(staging_dir) / "labels.txt"
    path.write_text("".join(f"{name}\n" for name in label_names), encoding="utf-8")
    initializer = tf.lookup.TextFileInitializer(
        str(path),
        key_dtype=tf.int64, key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
        value_dtype=tf.string, value_index=tf.lookup.TextFileIndex.WHOLE_LINE,
    )
    return tf.lookup.StaticHashTable(initializer, default_value="")


def predict_outputs(logits, table) -> dict:
    """serving_default's outputs from logits: probabilities, class_id, label."""
    probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
    class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
    return {"probabilities": probabilities, "class_id": class_id, "label": table.lookup(class_id)}


def classify_outputs(probabilities, table, num_classes: int) -> dict:
    """TF Serving's Classify outputs (classifier.cc): classes and scores, each [B, K]."""
    names = table.lookup(tf.range(num_classes, dtype=tf.int64))
    return {"classes": tf.tile(names[tf.newaxis], (tf.shape(probabilities)[0], 1)), "scores": probabilities}
