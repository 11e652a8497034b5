"""keras-hub presets the zoo starts BERT models from: a directory on disk, or a built-in
preset name when its download host (Kaggle) answers.

keras-hub fetches built-in presets from Kaggle, and with the host reachable but silent
its download was seen hanging for minutes; the zoo asks the host first and, when it
does not answer, says at once how to bring a preset here instead.

    path_or_name = resolve_preset("presets/sentiment")   # or "bert_tiny_en_uncased"
"""

from __future__ import annotations

import difflib
import pathlib

from zoo.network import reachable

PRESET_HOST = ("api.kaggle.com", 443)
HOW_TO_COPY = ("download it where the network is reachable (keras_hub.models.TextClassifier.from_preset(NAME)"
               ".save_to_preset(DIR)), copy DIR here and pass --preset DIR")


def resolve_preset(preset: str) -> str:
    """`preset` as keras-hub's `from_preset` should get it: an existing directory (made
    absolute), or a built-in BERT preset name whose host answers; ValueError otherwise."""
    path = pathlib.Path(preset)
    if path.is_dir():
        return str(path.resolve())
    import keras_hub

    names = list(keras_hub.models.BertBackbone.presets)
    if preset not in names:
        close = difflib.get_close_matches(str(preset), names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"preset {preset!r} is neither a directory on this machine nor a keras-hub BERT preset "
                         f"name.{hint} Built-in names: {', '.join(names)}.")
    if not reachable(PRESET_HOST):
        raise ValueError(f"preset {preset!r} is a keras-hub built-in preset, downloaded from Kaggle "
                         f"({PRESET_HOST[0]}), which cannot be reached from here; {HOW_TO_COPY}.")
    return preset
