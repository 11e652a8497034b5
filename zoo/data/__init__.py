"""Datasets as tf.data pipelines: real TFDS data when present, offline sets always.

    from zoo.data import load_dataset, list_datasets, register_dataset
"""

from zoo.lazy import lazy_attributes

# The pipeline imports TensorFlow; names resolve on first use so that the small
# modules here (the registry, DatasetInfo, the tokenizer) import quickly and alone.
_EXPORTS = {
    "DatasetInfo": "zoo.data.info",
    "DatasetUnavailableError": "zoo.data.info",
    "dataset_info": "zoo.data.pipeline",
    "load_dataset": "zoo.data.pipeline",
    "list_datasets": "zoo.data.registry",
    "register_dataset": "zoo.data.registry",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes('zoo.data', _EXPORTS)
