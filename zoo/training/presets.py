"""A finished BERT run as a keras-hub preset directory, and back.

    save_preset("runs/bert_classifier-synthetic_sentiment", "presets/sentiment")
    # then: zoo train bert_classifier --dataset glue/sst2 --preset presets/sentiment
    # or, in plain keras-hub: keras_hub.models.TextClassifier.from_preset("presets/sentiment")
"""

from __future__ import annotations

import os
import pathlib

from zoo.models import bert
from zoo.tasks import get_task
from zoo.training.precision import float32_model
from zoo.training.trainer import load_run


def save_preset(run_dir: str | os.PathLike, preset_dir: str | os.PathLike, which: str = "model") -> pathlib.Path:
    """Writes the BERT model of a finished run, its tokenizer and its head as a keras-hub preset.

    Args:
        run_dir: a finished `zoo train` run of a BERT model.
        preset_dir: a new (or empty) directory for the preset.
        which: "model" (final) or "best".

    Example:
        >>> import zoo
        >>> zoo.save_preset("runs/bert_classifier-synthetic_sentiment", "presets/sentiment")
    """
    model, config, info = load_run(run_dir, which)
    assets = get_task(config.task or info["task"]).read_run_assets(pathlib.Path(run_dir), info)
    if assets.get("tokenizer") != "wordpiece":
        raise ValueError(f"{run_dir} is a {config.model} run; only BERT runs (WordPiece tokenizer) are written as "
                         f"keras-hub presets.")
    # keras-hub 0.32 cannot load a preset whose config names a mixed policy ("Invalid
    # dtype: mixed_bfloat16"): the preset holds the float32 model, as an export does.
    return bert.save_preset(float32_model(model), assets["vocabulary"], assets["sequence_length"], preset_dir)
