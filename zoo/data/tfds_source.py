"""Real TFDS datasets, loaded from the data dir or downloaded when reachable.

tensorflow-datasets retries a download for minutes before it reports that the
network is down; a user should learn in seconds that the data is neither in the
data dir nor reachable, and which offline datasets would work instead.
"""

from __future__ import annotations

import difflib
import logging
import os

from zoo.data.info import DatasetInfo, DatasetUnavailableError
from zoo.data.registry import Dataset, add_dataset, closest, registered_offline
from zoo.network import reachable

log = logging.getLogger(__name__)

# Where TFDS downloads most datasets from.
DOWNLOAD_HOST = ("storage.googleapis.com", 443)


def download_reachable(timeout: float = 3.0) -> bool:
    """True if the TFDS download host answers a TCP connect within `timeout` seconds."""
    return reachable(DOWNLOAD_HOST, timeout)


def _offline_hint():
    return f"Offline datasets that need no download: {', '.join(registered_offline())} (`zoo datasets`)."


def builder(name: str, data_dir: str | None = None, download: bool = True):
    """A prepared `tfds` builder for `name`, or a clear error within seconds."""
    import tensorflow_datasets as tfds

    try:
        b = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        known = tfds.list_builders()
        close = difflib.get_close_matches(name.split("/")[0], known, n=3)
        hint = f" Closest TFDS names: {', '.join(close)}." if close else ""
        raise ValueError(f"Unknown dataset {name!r}.{closest(name)}{hint} {_offline_hint()}") from None
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


def info(b, name: str, task: str | None = None, keys: tuple | None = None, splits: dict | None = None) -> DatasetInfo:
    import tensorflow_datasets as tfds

    from zoo import tasks

    features = b.info.features
    keys = keys or b.info.supervised_keys
    if not keys or len(keys) != 2:
        raise ValueError(
            f"TFDS dataset {name!r} has no (input, label) supervised keys; the zoo loads "
            f"supervised sets such as mnist, cifar10, imdb_reviews, ag_news_subset."
        )
    input_key, label_key = keys
    label = features[label_key]
    feature = features[input_key]
    if isinstance(label, tfds.features.Sequence):  # one label per token (conll2003's "ner") or per object
        label = label.feature
    if isinstance(label, tfds.features.FeaturesDict):  # a detection set's objects: {"bbox", "label", ...}
        label = label["label"] if "label" in label else None
    if task is None:  # an unregistered TFDS name: the task that reads its input feature
        task = tasks.task_for_feature(feature.dtype, tuple(feature.shape))
        if task is None:
            raise ValueError(f"TFDS dataset {name!r} has input {input_key!r} of {feature.dtype.name} "
                             f"{tuple(feature.shape)}, which no task reads (tasks: {', '.join(tasks.list_tasks())}).")
    # A class label has names; a regression target (a float Tensor feature) has none.
    classes = label if isinstance(label, tfds.features.ClassLabel) else None
    return DatasetInfo(
        name=name, task=task, source="tfds",
        num_classes=classes.num_classes if classes else 0, label_names=tuple(classes.names) if classes else (),
        input_shape=tuple(feature.shape), input_dtype=feature.dtype.name,
        num_examples=_split_sizes(b, splits or {}),
        citation=b.info.citation or "",
    )


def _split_sizes(b, splits: dict) -> dict:
    """Examples per split, under the zoo's split names."""
    sizes = {k: v.num_examples for k, v in b.info.splits.items()}
    return dict(sizes, **{ours: sizes[theirs] for ours, theirs in splits.items() if theirs in sizes})


class TfdsDataset(Dataset):
    """A TFDS dataset: read from the data dir, downloaded when the host is reachable.

    `keys` names the (input, label) features of a set without supervised keys;
    `splits` maps the zoo's split names to the set's own ({"validation": "dev"}, or
    {"test": "validation"} where the published test split has no labels);
    `options` are the `load_dataset` options the set defaults to.
    """

    offline = False
    source = "tfds"

    def __init__(self, name: str, task: str | None = None, description: str = "", keys: tuple | None = None,
                 splits: dict | None = None, options: dict | None = None):
        self.name, self.task, self.description = name, task, description
        self.keys, self.splits, self.options = keys, dict(splits or {}), dict(options or {})

    def info(self, data_dir=None, download=True) -> DatasetInfo:
        return info(builder(self.name, data_dir, download), self.name, self.task, self.keys, self.splits)

    def examples(self, split: str, data_dir=None, download=True, shuffle_files=False):
        b = builder(self.name, data_dir, download)
        split = self.splits.get(split, split)
        if self.keys is None:
            return b.as_dataset(split=split, as_supervised=True, shuffle_files=shuffle_files)
        import tensorflow as tf

        x, y = self.keys
        ds = b.as_dataset(split=split, shuffle_files=shuffle_files)
        return ds.map(lambda example: (example[x], example[y]), num_parallel_calls=tf.data.AUTOTUNE)


# The TFDS sets the zoo is tested with; any other TFDS name loads the same way.
for _name, _task, _about in (
    ("mnist", "image_classification", "handwritten digits, 28x28 gray"),
    ("fashion_mnist", "image_classification", "Zalando clothing, 28x28 gray"),
    ("cifar10", "image_classification", "32x32 colour photos, 10 classes"),
    ("imdb_reviews", "text_classification", "movie reviews, positive or negative"),
    ("ag_news_subset", "text_classification", "news titles and descriptions, 4 topics"),
):
    add_dataset(TfdsDataset(_name, _task, _about))
# GLUE's SST-2 test split has no labels (-1): its validation split is the test split here.
add_dataset(TfdsDataset("glue/sst2", "text_classification", "movie review sentences, negative or positive",
                        keys=("sentence", "label"), splits={"test": "validation"}))
add_dataset(TfdsDataset("conll2003", "token_classification", "Reuters news, PER/ORG/LOC/MISC entities (BIO tags)",
                        keys=("tokens", "ner"), splits={"validation": "dev"}))
add_dataset(TfdsDataset("ted_hrlr_translate/pt_to_en", "seq2seq", "TED talk transcripts, Portuguese to English"))
add_dataset(TfdsDataset("cnn_dailymail", "seq2seq", "news articles and their highlights (summarization)"))
# LibriSpeech's speech is int16 (the task scales it to -1..1); its clean 100-hour part trains.
add_dataset(TfdsDataset("librispeech", "speech_to_text", "LibriVox audiobooks read aloud, 16 kHz, with transcripts",
                        keys=("speech", "text"),
                        splits={"train": "train_clean100", "validation": "dev_clean", "test": "test_clean"}))
add_dataset(TfdsDataset("speech_commands", "audio_classification", "one-second spoken commands, 16 kHz, 12 classes",
                        keys=("audio", "label")))
# Detection sets: the label is the `objects` dict, whose `bbox` TFDS already gives
# normalised as [ymin, xmin, ymax, xmax] (the zoo's box format) and `label` the class.
# Photos come in many sizes; the task resizes them to one.
add_dataset(TfdsDataset("voc/2007", "object_detection", "PASCAL VOC 2007, 20 classes",
                        keys=("image", "objects"), options={"image_size": (384, 384)}))
# COCO's test split has no labels: its validation split is the test split here.
add_dataset(TfdsDataset("coco/2017", "object_detection", "COCO 2017, 80 classes",
                        keys=("image", "objects"), splits={"test": "validation"}, options={"image_size": (384, 384)}))
