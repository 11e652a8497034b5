"""Datasets: offline sets, the TFDS path (mocked), the pipeline and bad names."""

import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import zoo
from zoo.data import DatasetUnavailableError, dataset_info, digits, synthetic_shapes as shapes, tfds_source


def test_digits_is_the_real_uci_set_split_without_overlap():
    info = dataset_info("digits")
    assert info.num_classes == 10 and info.input_shape == (8, 8, 1) and info.source == "offline"
    assert sum(info.num_examples.values()) == 1797
    seen = []
    for split in ("train", "validation", "test"):
        images, labels = digits.digits(split)
        assert images.dtype == np.uint8 and images.max() == 255 and images.min() == 0
        assert set(np.unique(labels)) == set(range(10))
        seen.append({im.tobytes() + bytes([lab]) for im, lab in zip(images, labels)})
    assert not (seen[0] & seen[2]), "a test example is also in train"


def test_synthetic_shapes_is_deterministic_and_balanced():
    a, la = shapes.make_shapes(600, seed=7)
    b, lb = shapes.make_shapes(600, seed=7)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    counts = np.bincount(la, minlength=len(shapes.SHAPES))
    assert counts.min() > 60
    # The label is the shape, not the colour: mean colour carries ~no class signal.
    means = np.array([a[la == k].mean() for k in range(len(shapes.SHAPES))])
    assert means.std() < 10


def test_pipeline_yields_named_float_batches_and_info():
    ds, info = zoo.load_dataset("synthetic_shapes", "train", batch_size=32, with_info=True)
    assert info.label_names == shapes.SHAPES and info.input_shape == (32, 32, 3)
    x, y = next(iter(ds))
    assert x["image"].dtype == tf.float32 and x["image"].shape == (32, 32, 32, 3)
    assert y.dtype == tf.int64 and y.shape == (32,)
    assert float(tf.reduce_max(x["image"])) > 1.0, "pixels must stay 0-255; the model scales them"
    # Shuffled each epoch for train, in order for test.
    first = [next(iter(ds))[1].numpy() for _ in range(2)]
    assert not np.array_equal(*first)
    test = zoo.load_dataset("synthetic_shapes", "test", batch_size=32)
    np.testing.assert_array_equal(next(iter(test))[1], next(iter(test))[1])


def test_image_size_resizes_in_the_pipeline():
    ds, info = zoo.load_dataset("digits", "test", batch_size=4, image_size=(16, 16), with_info=True)
    assert info.input_shape == (16, 16, 1)
    assert next(iter(ds))[0]["image"].shape == (4, 16, 16, 1)


def test_tfds_path_with_mock_data(monkeypatch):
    monkeypatch.setattr(tfds_source, "download_reachable", lambda timeout=3.0: True)
    with tfds.testing.mock_data(num_examples=40):
        ds, info = zoo.load_dataset("mnist", "train", batch_size=8, with_info=True)
        x, y = next(iter(ds))
    assert info.source == "tfds" and info.num_classes == 10 and info.input_shape == (28, 28, 1)
    assert info.label_names == tuple(str(i) for i in range(10))
    assert x["image"].shape == (8, 28, 28, 1) and x["image"].dtype == tf.float32


def test_tfds_training_run_with_mock_data(monkeypatch, tmp_path):
    monkeypatch.setattr(tfds_source, "download_reachable", lambda timeout=3.0: True)
    with tfds.testing.mock_data(num_examples=64):
        run = zoo.train("mlp", "fashion_mnist", epochs=1, batch_size=16, out_dir=tmp_path / "run",
                        verbose=0, model_kwargs={"hidden_units": (8,)})
    assert (run / "model.keras").exists()
    assert (run / "dataset.json").read_text().count("Ankle boot") == 1


def test_unreachable_tfds_download_fails_fast_naming_offline_sets(tmp_path):
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailableError) as e:
        zoo.load_dataset("mnist", "train", data_dir=str(tmp_path))
    assert time.perf_counter() - start < 10
    msg = str(e.value)
    assert "not in the data dir" in msg and str(tmp_path) in msg
    assert "digits" in msg and "synthetic_shapes" in msg


def test_reachability_probe_times_out_quickly(monkeypatch):
    monkeypatch.delenv("ZOO_OFFLINE")
    # A closed port on loopback: refused at once, never a hang.
    monkeypatch.setattr(tfds_source, "DOWNLOAD_HOST", ("127.0.0.1", 9))
    start = time.perf_counter()
    assert tfds_source.download_reachable(timeout=1.0) is False
    assert time.perf_counter() - start < 3


def test_no_download_flag(tmp_path):
    with pytest.raises(DatasetUnavailableError, match="download=False"):
        zoo.load_dataset("cifar10", data_dir=str(tmp_path), download=False)


@pytest.mark.parametrize("name, words", [
    ("digitz", ["Unknown dataset 'digitz'", "Did you mean 'digits'", "synthetic_shapes"]),
    ("mnistt", ["Unknown dataset 'mnistt'", "mnist", "Offline datasets"]),
])
def test_unknown_dataset_names_alternatives(name, words):
    with pytest.raises(ValueError) as e:
        zoo.load_dataset(name)
    for w in words:
        assert w in str(e.value)


@pytest.mark.parametrize("kwargs, match", [
    (dict(split="validate"), "no split 'validate'"),
    (dict(batch_size=0), "batch_size must be a positive int"),
    (dict(image_size=(16,)), "image_size must be"),
])
def test_bad_pipeline_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        zoo.load_dataset("digits", **kwargs)
