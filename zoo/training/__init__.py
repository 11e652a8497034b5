"""Training: compile + fit with callbacks, strategies and a run directory."""

from zoo.training.trainer import RunDirError, evaluate, load_run, train

__all__ = ["RunDirError", "evaluate", "load_run", "train"]
