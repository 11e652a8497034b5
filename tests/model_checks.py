"""Checks written once and applied to every registered model."""

import numpy as np

import zoo
from zoo import registry
from zoo.tasks import speech_to_text
from zoo.tasks.base import model_inputs

# Small enough that every check runs in seconds on two CPU cores.
TINY = {
    "image_classification": dict(num_classes=3, input_shape=(32, 32, 3)),
    # 200 ids hold synthetic_topics' vocabulary (188 with padding and unknown).
    "text_classification": dict(num_classes=3, vocabulary_size=200, sequence_length=16),
    "token_classification": dict(num_classes=5, vocabulary_size=200, sequence_length=12),
    "audio_classification": dict(num_classes=3),
    "speech_to_text": dict(samples=4000),  # a fixed length, for example_batch's random clips
    "seq2seq": dict(source_vocabulary_size=120, target_vocabulary_size=100, source_length=12, target_length=10),
    "object_detection": dict(num_classes=3, input_shape=(64, 64, 3)),
}
# What every model of a task returns: one "logits" tensor, but for detectors.
OUTPUT_NAMES = {"object_detection": ["bbox_regression", "cls_logits"]}
TINY_BY_MODEL = {
    "resnet50": dict(width=4),
    "mobilenet_v2": dict(alpha=0.35),
    "simple_cnn": dict(filters=(8, 16), dense_units=16),
    "mlp": dict(hidden_units=(16,)),
    "resnet20": dict(width=4),
    "resnet56": dict(width=2),
    "text_cnn": dict(embedding_dim=8, filters=8, kernel_sizes=(2, 3)),
    "transformer_classifier": dict(hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=16),
    "lstm_classifier": dict(embedding_dim=8, units=8),
    "gru_classifier": dict(embedding_dim=8, units=8),
    "bilstm_classifier": dict(embedding_dim=8, units=8),
    # 300 ids hold synthetic_topics' 244 word pieces.
    "bert_classifier": dict(size="bert_tiny", vocabulary_size=300),
    "bert_tagger": dict(size="bert_tiny", piece_length=24),
    "bilstm_tagger": dict(embedding_dim=8, units=8, word_length=6, char_embedding_dim=4, char_filters=4),
    "transformer_seq2seq": dict(size="tiny"),
    "speech_cnn": dict(filters=(4, 8), dense_units=8),
    "ds_cnn": dict(width=8, num_blocks=1),
    "ctc_recognizer": dict(filters=8, units=8, num_layers=1),
    "light_detector": dict(filters=(4, 8, 8, 8), num_filters=8, head_layers=1),
    "retinanet": dict(max_level=5, num_filters=16, head_layers=1),
}


def tiny_kwargs(name):
    spec = registry.get_model_spec(name)
    return dict(TINY[spec.task], **TINY_BY_MODEL.get(name, {}))


def output_width(name) -> int:
    """The last dimension of the tiny model's logits: classes, tags, target words or CTC's characters."""
    kwargs = tiny_kwargs(name)
    return kwargs.get("num_classes") or kwargs.get("target_vocabulary_size") or speech_to_text.NUM_CLASSES


def output_names(name) -> list[str]:
    return OUTPUT_NAMES.get(registry.get_model_spec(name).task, ["logits"])


def class_outputs(out):
    """The per-class output of a model's answer: the logits, or a detector's class logits."""
    return out["cls_logits"] if isinstance(out, dict) else out


def example_labels(model, out):
    """Labels for one fit step on `example_batch`: class ids per example (or per word),
    or, for a detector, one box per image ([B, 1, 4] pixels) and its class."""
    if isinstance(out, dict):
        height, width = model_inputs(model)["image"].shape[1:3]
        batch = out["cls_logits"].shape[0]
        boxes = np.tile(np.array([[[0.2 * height, 0.1 * width, 0.7 * height, 0.6 * width]]], np.float32), (batch, 1, 1))
        return {"boxes": boxes, "labels": (np.arange(batch) % 3).astype(np.float32)[:, None]}
    return (np.arange(np.prod(out.shape[:-1])) % 3).reshape(out.shape[:-1])


def tiny_model(name):
    return zoo.build_model(name, **tiny_kwargs(name))


def example_batch(model, batch=4, seed=0):
    """Random raw inputs matching `model`'s named inputs (pixels 0-255 for images,
    token ids with trailing padding for text)."""
    rng = np.random.default_rng(seed)
    out, lengths = {}, None
    for k, t in model_inputs(model).items():
        shape = (batch,) + tuple(t.shape[1:])
        if k == "word_index":  # each word's first piece: positions of token_ids after [CLS]
            pieces = model_inputs(model)["token_ids"].shape[1]
            out[k] = np.minimum(np.arange(1, shape[1] + 1), pieces - 2)[None].repeat(batch, 0).astype("int32")
        elif "int" in str(t.dtype):
            ids = rng.integers(2, 100, shape)
            if lengths is None:  # one text length per example, shared by its word and character ids
                lengths = rng.integers(1, shape[1] + 1, (batch, 1))
            real = (np.arange(shape[1]) < lengths).reshape(shape[:2] + (1,) * (len(shape) - 2))
            out[k] = np.where(real, ids, 0).astype(str(t.dtype))
        elif k == "waveform":  # audio samples in -1..1
            out[k] = rng.uniform(-1, 1, shape).astype("float32")
        else:
            out[k] = rng.uniform(0, 255, shape).astype("float32")
    return out
