"""Datasets as tf.data pipelines: real TFDS data when present, offline sets always."""

from zoo.data.info import DatasetInfo, DatasetUnavailableError
from zoo.data.pipeline import dataset_info, list_datasets, load_dataset

__all__ = ["DatasetInfo", "DatasetUnavailableError", "dataset_info", "list_datasets", "load_dataset"]
