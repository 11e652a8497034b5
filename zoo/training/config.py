"""The resolved training configuration written to every run's config.json."""

from __future__ import annotations

import ast
import dataclasses
import difflib
from typing import Any

OPTIMIZERS = ("adam", "adamw", "sgd")
SWITCHES = ("auto", "on", "off")
LR_SCHEDULES = ("constant", "cosine")


@dataclasses.dataclass
class TrainConfig:
    model: str
    dataset: str
    task: str = ""  # the model's task (from the registry), so a run knows it without guessing
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0  # adamw only
    # constant, or cosine: warm up linearly over the first warmup_share of the steps to
    # learning_rate, then cosine decay to 0 (how transformers are usually trained).
    lr_schedule: str = "constant"
    warmup_share: float = 0.1
    early_stopping_patience: int = 0  # 0: off
    seed: int = 0
    shuffle: bool = True  # reshuffle the training split every epoch
    image_size: tuple | None = None
    data_dir: str | None = None
    # Keras runs this many steps per tf.function call; >1 cuts per-step Python cost.
    steps_per_execution: int = 8
    # auto: mixed_float16 on GPUs with tensor cores, mixed_bfloat16 on CPUs with native
    # bfloat16, float32 elsewhere (zoo.training.precision); or on, off, or a policy's name.
    mixed_precision: str = "auto"
    jit_compile: str = "auto"  # auto: XLA on GPU, off on CPU where it does not pay
    strategy: str = "auto"  # auto, default, mirrored, multi_worker
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    # Fine-tuning: start from this finished run's weights (where shapes match), with
    # everything but the head frozen for the first `frozen_epochs` epochs.
    init_from: str | None = None
    frozen_epochs: int = 0

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["image_size"] = list(self.image_size) if self.image_size else None
        d["model_kwargs"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.model_kwargs.items()}
        return d

    @classmethod
    def from_json(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"config.json has unknown keys {sorted(unknown)}; known keys: {sorted(names)}.")
        if d.get("image_size"):
            d["image_size"] = tuple(d["image_size"])
        d["model_kwargs"] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.get("model_kwargs", {}).items()}
        return cls(**d).validated()

    def validated(self) -> "TrainConfig":
        def positive_int(name):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}.")

        for name in ("epochs", "batch_size", "steps_per_execution"):
            positive_int(name)
        if not isinstance(self.learning_rate, (int, float)) or not 0 < self.learning_rate < 10:
            raise ValueError(f"learning_rate must be a number in (0, 10), got {self.learning_rate!r}.")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}.")
        if not isinstance(self.warmup_share, (int, float)) or isinstance(self.warmup_share, bool) \
                or not 0 <= self.warmup_share < 1:
            raise ValueError(f"warmup_share must be a number in [0, 1), got {self.warmup_share!r}.")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}.")
        if not isinstance(self.early_stopping_patience, int) or self.early_stopping_patience < 0:
            raise ValueError(f"early_stopping_patience must be an int >= 0, got {self.early_stopping_patience!r}.")
        if self.jit_compile not in SWITCHES:
            raise ValueError(f"jit_compile must be one of {', '.join(SWITCHES)}, got {self.jit_compile!r}.")
        from zoo.training.precision import SETTINGS

        if self.mixed_precision not in SETTINGS:
            raise ValueError(f"mixed_precision must be one of {', '.join(SETTINGS)}, got {self.mixed_precision!r}.")
        if not isinstance(self.frozen_epochs, int) or isinstance(self.frozen_epochs, bool) \
                or not 0 <= self.frozen_epochs <= self.epochs:
            raise ValueError(f"frozen_epochs must be an int from 0 to epochs ({self.epochs}), got {self.frozen_epochs!r}.")
        if self.frozen_epochs and not self.init_from:
            raise ValueError("frozen_epochs freezes weights taken from another run: give init_from too.")
        from zoo.training.strategy import STRATEGIES

        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}.")
        return self


def parse_value(text: str) -> Any:
    """`--set` values: Python literals (3, 0.5, True, (64, 64), 160,160), else strings."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        low = text.lower()
        if low in ("true", "false"):
            return low == "true"
        if low in ("none", "null"):
            return None
        return text


def apply_overrides(config: TrainConfig, pairs: list[str], model_defaults: dict) -> TrainConfig:
    """Applies `key=value` pairs to training fields or, failing that, model arguments."""
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"model", "dataset", "task", "model_kwargs"}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set takes key=value, got {pair!r} (e.g. --set dropout=0.3).")
        value = parse_value(text.strip())
        if key in train_fields:
            setattr(config, key, tuple(value) if isinstance(value, list) else value)
        elif key in model_defaults:
            config.model_kwargs[key] = tuple(value) if isinstance(value, list) else value
        else:
            known = sorted(train_fields | set(model_defaults))
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"--set {key}: not a training option nor an argument of {config.model}.{hint} "
                f"Known keys: {', '.join(known)}."
            )
    return config
