"""BatchNorm folding at export: same outputs, fewer layers and variables, a smaller SavedModel."""

import argparse

import keras
import numpy as np
import pytest

import zoo
from export import export_saved_model, fold_batch_norms
from zoo.cli.export_command import add_parser
from export.model_card import read_model_card
from model_checks import example_batch, tiny_model

IMAGE_MODELS = zoo.list_models("image_classification")


def _batch_norms(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def _trained_with_random_stats(name, seed=0):
    """A tiny model after one training step, with BN statistics far from 0/1."""
    keras.utils.set_random_seed(seed)
    model = tiny_model(name)
    x = example_batch(model, batch=4, seed=seed)
    y = np.arange(4) % int(model.output.shape[-1])
    # A small step: the test needs trained weights, not a model that diverged to NaN.
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    rng = np.random.default_rng(seed)
    for bn in _batch_norms(model):
        bn.moving_mean.assign(rng.normal(0, 0.5, bn.moving_mean.shape))
        bn.moving_variance.assign(rng.uniform(0.5, 2.0, bn.moving_variance.shape))
        if bn.scale:
            bn.gamma.assign(rng.uniform(0.5, 1.5, bn.gamma.shape))
    return model


@pytest.mark.parametrize("name", [n for n in IMAGE_MODELS if _batch_norms(tiny_model(n))])
def test_folded_model_matches_original(name):
    model = _trained_with_random_stats(name)
    before = [w.copy() for w in model.get_weights()]
    folded = fold_batch_norms(model)

    x = example_batch(model, batch=8, seed=1)
    expected = model.predict_on_batch(x)
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(folded.predict_on_batch(x), expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    for a, b in zip(before, model.get_weights()):  # the original is left as it was
        np.testing.assert_array_equal(a, b)

    # Every BN of these models follows a conv directly, so every one folds.
    assert not _batch_norms(folded)
    removed = {bn.name for bn in _batch_norms(model)}
    assert [layer.name for layer in folded.layers] == [l.name for l in model.layers if l.name not in removed]
    assert len(folded.weights) == len(model.weights) - 3 * len(removed)
    assert folded.get_layer("logits") is not None
    assert [t.name for t in folded.inputs] == [t.name for t in model.inputs]
    assert folded.output.shape == model.output.shape
    assert folded.name == model.name


@pytest.mark.parametrize("name", [n for n in IMAGE_MODELS if not _batch_norms(tiny_model(n))])
def test_model_without_batch_norm_is_returned_unchanged(name):
    model = tiny_model(name)
    assert fold_batch_norms(model) is model


def _conv_bn(x, conv, bn_kwargs=None, name="bn"):
    return keras.layers.BatchNormalization(name=name, **(bn_kwargs or {}))(conv(x))


@pytest.mark.parametrize("bn_kwargs", [{}, {"center": False}, {"scale": False}, {"epsilon": 0.1}])
def test_fold_conv_with_bias_depthwise_multiplier_and_bn_flags(bn_kwargs):
    inputs = keras.Input((8, 8, 3), name="image")
    x = _conv_bn(inputs, keras.layers.Conv2D(4, 3, use_bias=True, name="conv"), bn_kwargs, "bn1")
    x = _conv_bn(x, keras.layers.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False, name="dw"), bn_kwargs, "bn2")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model({"image": inputs}, keras.layers.Dense(2, name="logits")(x), name="toy")
    rng = np.random.default_rng(0)
    for bn in _batch_norms(model):
        for w in bn.weights:
            w.assign(rng.uniform(0.5, 1.5, w.shape))
    model.get_layer("conv").bias.assign(rng.normal(0, 1, 4))
    folded = fold_batch_norms(model)
    assert not _batch_norms(folded) and folded.get_layer("dw").use_bias
    x = {"image": rng.normal(0, 1, (2, 8, 8, 3)).astype("float32")}
    np.testing.assert_allclose(folded.predict_on_batch(x), model.predict_on_batch(x), rtol=1e-5, atol=1e-6)


def test_bn_is_kept_when_the_conv_output_has_another_reader():
    inputs = keras.Input((8, 8, 3), name="image")
    y = keras.layers.Conv2D(3, 1, use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(y)
    x = keras.layers.Add(name="add")([x, y])  # y is read twice: folding would change "add"
    z = keras.layers.Conv2D(3, 1, activation="relu", name="relu_conv")(x)
    z = keras.layers.BatchNormalization(name="bn_after_relu")(z)  # activation in between
    model = keras.Model({"image": inputs}, keras.layers.Dense(2, name="logits")(keras.layers.Flatten()(z)))
    assert fold_batch_norms(model) is model


def test_folded_resnet20_export_verifies_and_is_within_10_percent_of_keras(tmp_path):
    model = zoo.build_model("resnet20")  # registry defaults: the size the issue measured
    model.save(tmp_path / "resnet20.keras")
    images = example_batch(model, batch=4)["image"]
    path = export_saved_model(model, tmp_path / "models", "resnet20", examples=images)  # verified

    card = read_model_card(path)
    assert card["fold_batch_norm"] == {"enabled": True, "folded_layers": len(_batch_norms(model))}
    assert max(card["verification"]["max_abs_diff"].values()) <= 1e-4  # vs the UNfolded model
    assert card["parameters"] == model.count_params()
    variables = sum(f.stat().st_size for f in (path / "variables").rglob("*") if f.is_file())
    graph = (path / "saved_model.pb").stat().st_size
    keras_file = (tmp_path / "resnet20.keras").stat().st_size
    print(f"variables {variables:,} graph {graph:,} keras {keras_file:,}")
    # The weights are stored once (keras issue 23553 worked around), folded: no bigger
    # than the .keras file. The graph adds a fixed ~250 KB whatever the model's size,
    # mostly image_bytes' header checks (zoo/tasks/image_codec.py).
    assert variables <= 1.0 * keras_file
    assert variables + graph <= 1.10 * keras_file + 300_000

    unfolded = export_saved_model(model, tmp_path / "models", "resnet20", examples=images,
                                  verify=False, fold_batch_norm=False)
    assert read_model_card(unfolded)["fold_batch_norm"] == {"enabled": False, "folded_layers": 0}
    assert (path / "saved_model.pb").stat().st_size < (unfolded / "saved_model.pb").stat().st_size


def test_cli_no_fold_batch_norm(monkeypatch, tmp_path):
    calls = {}
    monkeypatch.setattr("export.archive.export_saved_model", lambda *a, **kw: calls.update(kw) or tmp_path)
    monkeypatch.setattr("export.describe_export", lambda path: {
        "model_name": "m", "version": 1, "signatures": {}})
    parser = argparse.ArgumentParser(prog="zoo")
    add_parser(parser.add_subparsers(dest="command"))
    for flags, expected in (([], True), (["--no-fold-batch-norm"], False)):
        args = parser.parse_args(["export", "runs/x", *flags])
        assert args.fn(args) == 0
        assert calls["fold_batch_norm"] is expected
