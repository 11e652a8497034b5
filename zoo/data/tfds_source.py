"""Real TFDS datasets, loaded from the data dir or downloaded when reachable.

tensorflow-datasets retries a download for minutes before it reports that the
network is down; a user should learn in seconds that the data is neither in the
data dir nor reachable, and which offline datasets would work instead.
"""

from __future__ import annotations

import concurrent.futures
import difflib
import logging
import os
import socket

import tensorflow as tf

from zoo.data.info import DatasetInfo, DatasetUnavailableError

log = logging.getLogger(__name__)

# Where TFDS downloads most datasets from.
DOWNLOAD_HOST = ("storage.googleapis.com", 443)


def download_reachable(timeout: float = 3.0) -> bool:
    """True if the TFDS download host answers a TCP connect within `timeout` seconds."""
    if os.environ.get("ZOO_OFFLINE") == "1":
        return False

    def connect():
        with socket.create_connection(DOWNLOAD_HOST, timeout=timeout):
            return True

    # DNS resolution ignores socket timeouts; bound the whole attempt.
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        return pool.submit(connect).result(timeout=timeout + 1)
    except Exception:
        return False
    finally:
        pool.shutdown(wait=False)


def _offline_hint():
    from zoo.data import offline, synthetic_text

    return f"Offline datasets that need no download: {', '.join(offline.NAMES + (synthetic_text.NAME,))}."


def builder(name: str, data_dir: str | None = None, download: bool = True):
    """A prepared `tfds` builder for `name`, or a clear error within seconds."""
    import tensorflow_datasets as tfds

    try:
        b = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        known = tfds.list_builders()
        close = difflib.get_close_matches(name.split("/")[0], known, n=3)
        hint = f" Closest TFDS names: {', '.join(close)}." if close else ""
        raise ValueError(f"Unknown dataset {name!r}.{hint} {_offline_hint()}") from None
    if not b.is_prepared():
        where = b.data_dir
        if not download:
            raise DatasetUnavailableError(
                f"TFDS dataset {name!r} is not in the data dir ({where}) and download=False. "
                f"Prepare it with `tfds build {name}` or pass data_dir=. {_offline_hint()}"
            )
        if not download_reachable():
            raise DatasetUnavailableError(
                f"TFDS dataset {name!r} is not in the data dir ({where}) and the download "
                f"host {DOWNLOAD_HOST[0]} cannot be reached. Copy the prepared dataset into "
                f"that dir (or pass data_dir= / --data-dir), or train on an offline "
                f"dataset. {_offline_hint()}"
            )
        log.info("Downloading and preparing TFDS dataset %s into %s", name, where)
        b.download_and_prepare()
    return b


def info(b, name: str) -> DatasetInfo:
    features = b.info.features
    keys = b.info.supervised_keys
    if not keys or len(keys) != 2:
        raise ValueError(
            f"TFDS dataset {name!r} has no (input, label) supervised keys; the zoo loads "
            f"classification sets such as mnist, cifar10, imdb_reviews, ag_news_subset."
        )
    image_key, label_key = keys
    label = features[label_key]
    shape = tuple(features[image_key].shape)
    # Text sets (imdb_reviews, ag_news_subset) have a string feature as input.
    task = "text_classification" if features[image_key].dtype == tf.string else "image_classification"
    return DatasetInfo(
        name=name, task=task, source="tfds",
        num_classes=int(label.num_classes), label_names=tuple(label.names),
        input_shape=shape,
        num_examples={k: v.num_examples for k, v in b.info.splits.items()},
        citation=b.info.citation or "",
    )
