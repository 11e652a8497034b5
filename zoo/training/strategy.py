"""Device placement: the distribution strategy, mixed precision and XLA for a run."""

from __future__ import annotations

import json
import logging
import os

import tensorflow as tf

log = logging.getLogger(__name__)

STRATEGIES = ("auto", "default", "mirrored", "multi_worker")


def num_workers_in_tf_config() -> int:
    """Workers (chief included) named by TF_CONFIG; 0 when unset or malformed."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 0
    try:
        cluster = json.loads(raw).get("cluster", {})
    except (ValueError, AttributeError) as e:
        raise ValueError(f"TF_CONFIG is not valid JSON ({e}); see tf.distribute's TF_CONFIG format.") from None
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def non_chief_worker_index() -> int | None:
    """This worker's index when TF_CONFIG makes it a non-chief worker, else None."""
    if num_workers_in_tf_config() < 2:
        return None
    config = json.loads(os.environ["TF_CONFIG"])
    task = config.get("task", {})
    has_chief = bool(config["cluster"].get("chief"))
    if task.get("type") == "worker" and (has_chief or task.get("index", 0) != 0):
        return int(task.get("index", 0))
    return None


def choose_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """auto: MultiWorkerMirrored when TF_CONFIG names several workers, Mirrored with
    several GPUs, else the default (one GPU or the CPU)."""
    # list_physical_devices does not start the runtime, which MultiWorkerMirrored needs.
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        if num_workers_in_tf_config() > 1:
            name = "multi_worker"
        elif len(gpus) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def has_gpu() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def use_xla(setting: str) -> bool:
    if setting != "auto":
        return setting == "on"
    # Measured here: XLA makes the small CNN 3x slower on CPU; on GPU it pays.
    return has_gpu()
