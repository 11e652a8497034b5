"""Export: every architecture leaves as a verified SavedModel that TF Serving loads."""

import argparse
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

import export
import zoo
from export import ExportError, VerificationError, describe_export, export_saved_model, format_export
from zoo.cli.export_command import add_parser
from export.model_card import read_model_card, read_signatures
from export.verify import check_signature_names, verify_in_subprocess
from zoo.tasks import CLASSIFY_METHOD, get_task
from zoo.tasks.image_classification import image_example
from export.warmup import read_warmup_requests
from export_checks import (
    IMAGE_METHODS, decode_like_a_client, encode, export_tiny, export_tiny_plan, parse_batching_parameters, real_images,
    tree,
)
from model_checks import tiny_model
from serving.config import parse_version_policy, read_model_server_config, write_models_config


# Text classifiers export the same way; tests/test_text.py checks every one of them.
IMAGE_MODELS = zoo.list_models("image_classification")


@pytest.fixture(scope="module")
def shapes_images():
    return real_images("synthetic_shapes", "train", n=4)


@pytest.fixture(scope="module")
def all_exports(tmp_path_factory, shapes_images):
    """Every registered architecture exported once, then verified in ONE fresh process
    (each verification process pays ~5 s for importing TensorFlow)."""
    base = tmp_path_factory.mktemp("all") / "models"
    exports = {name: export_tiny_plan(name, base, shapes_images) for name in IMAGE_MODELS}
    reports = verify_in_subprocess([plan.verification_job(path, IMAGE_METHODS) for path, _, plan in exports.values()])
    return {name: (path, model, plan.reference["probabilities"], report)
            for (name, (path, model, plan)), report in zip(exports.items(), reports)}


@pytest.fixture(scope="module")
def digits_export(digits_run, tmp_path_factory):
    """The trained digits run exported the normal way: verified in its own process."""
    return export_saved_model(digits_run, tmp_path_factory.mktemp("digits") / "models", "digits")


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_every_architecture_exports_and_verifies(all_exports, name):
    path, _, expected, report = all_exports[name]
    assert path.name == "1"
    assert report["ok"], report["errors"]
    # Both loaders (TF Serving's session-based one and tf.saved_model.load) ran every
    # signature on real images and matched Keras' probabilities.
    assert report["loaders"] == ["tf.compat.v1.saved_model.loader.load", "tf.saved_model.load"]
    assert set(report["max_abs_diff"]) == set(IMAGE_METHODS)
    assert max(report["max_abs_diff"].values()) <= 1e-4
    assert report["records"] == 6  # 3 signatures x batch sizes 1 and 4
    assert read_signatures(path)["serving_default"]["outputs"] == {
        "class_id": {"dtype": "int64", "shape": [None]},
        "label": {"dtype": "string", "shape": [None]},
        "probabilities": {"dtype": "float32", "shape": [None, expected.shape[1]]},
    }


def test_second_export_creates_version_2_and_both_coexist(all_exports, shapes_images):
    first = all_exports["simple_cnn"][0]
    second, _, expected = export_tiny("simple_cnn", first.parents[1], shapes_images, version_policy="all")
    assert second == first.parent / "2"
    for version, reference in ((first, all_exports["simple_cnn"][2]), (second, expected)):
        out = tf.saved_model.load(str(version)).signatures["serving_default"](image=tf.constant(shapes_images))
        np.testing.assert_allclose(out["probabilities"].numpy(), reference, atol=1e-4)
    config = read_model_server_config(first.parents[1] / "models.config")
    policies = {c.name: c.model_version_policy.WhichOneof("policy_choice") for c in config.model_config_list.config}
    assert policies["simple_cnn"] == "all" and policies["mlp"] == "latest"


def test_run_export_layout_card_warmup_and_server_config(digits_export, digits_run):
    assert digits_export.name == "1"
    for name in ("saved_model.pb", "variables/variables.index", "assets/labels.txt",
                 "assets.extra/tf_serving_warmup_requests", "assets.extra/model_card.json"):
        assert (digits_export / name).exists(), name
    assert [p.name for p in digits_export.parent.iterdir()] == ["1"]  # no temp folder left

    dataset = json.loads((digits_run / "dataset.json").read_text())
    card = read_model_card(digits_export)
    assert card["task"] == "image_classification" and card["architecture"] == "simple_cnn"
    assert card["labels"] == dataset["label_names"]
    assert card["metrics"] == json.loads((digits_run / "metrics.json").read_text())
    assert card["training"]["dataset"] == "digits"
    assert card["inputs"] == {"image": {"dtype": "float32", "shape": [None, 8, 8, 1]}}
    assert card["warmup"] == {"source": "digits:train[:4]", "examples": 4, "records": 6}
    assert max(card["verification"]["max_abs_diff"].values()) <= 1e-4
    assert card["library_versions"]["tensorflow"] == tf.__version__

    logs = read_warmup_requests(digits_export)
    kinds = {(log.WhichOneof("log_type"), (log.predict_log.request.model_spec.signature_name
                                           or log.classify_log.request.model_spec.signature_name)) for log in logs}
    assert kinds == {("predict_log", "serving_default"), ("predict_log", "image_bytes"), ("classify_log", "classify")}
    image = logs[0].predict_log.request.inputs["image"]
    assert [d.size for d in image.tensor_shape.dim] == [1, 8, 8, 1]

    base = digits_export.parents[1]
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse((base / "models.config").read_text(), config)
    (entry,) = config.model_config_list.config
    assert (entry.name, entry.base_path, entry.model_platform) == ("digits", str(base.resolve() / "digits"), "tensorflow")
    assert entry.model_version_policy.latest.num_versions == 1
    batching = parse_batching_parameters(base / "batching_parameters.txt")
    assert (batching.max_batch_size.value, batching.batch_timeout_micros.value,
            batching.max_enqueued_batches.value) == (32, 1000, 100)


def test_image_bytes_of_any_format_and_size_match_serving_default(digits_export, all_exports):
    digits = real_images("digits", "test", n=6)
    cases = [
        (digits_export, (8, 8, 1), [
            encode(digits[0], "PNG"), encode(digits[1], "PNG", size=(24, 24)),
            encode(digits[2], "JPEG", size=(32, 32)), encode(digits[3], "JPEG", size=(40, 20), mode="RGB"),
            encode(digits[4], "GIF", size=(16, 16)), encode(digits[5], "BMP", size=(12, 12))]),
        # An RGB model gets grey, RGBA and palette images too: lossless formats, so the
        # client's decoding and the graph's see the very same pixels.
        (all_exports["simple_cnn"][0], (32, 32, 3), [
            encode(digits[0], "PNG", size=(32, 32), mode="RGB"), encode(digits[1], "PNG", size=(20, 20)),
            encode(digits[2], "PNG", size=(48, 40), mode="RGBA"), encode(digits[3], "GIF", size=(32, 32))]),
    ]
    for path, (height, width, channels), data in cases:
        served = tf.saved_model.load(str(path)).signatures
        from_bytes = served["image_bytes"](image_bytes=tf.constant(data))
        pixels = np.stack([decode_like_a_client(d, height, width, channels) for d in data])
        from_pixels = served["serving_default"](image=tf.constant(pixels))
        np.testing.assert_array_equal(from_bytes["class_id"], from_pixels["class_id"])
        np.testing.assert_array_equal(from_bytes["label"], from_pixels["label"])
        lossless = [i for i, d in enumerate(data) if not d.startswith(b"\xff\xd8")]  # all but JPEG
        np.testing.assert_allclose(from_bytes["probabilities"].numpy()[lossless],
                                   from_pixels["probabilities"].numpy()[lossless], atol=1e-4)
    # A native-size PNG is exactly the pixels.
    served = tf.saved_model.load(str(digits_export)).signatures
    np.testing.assert_allclose(served["image_bytes"](image_bytes=tf.constant([encode(digits[0], "PNG")]))["probabilities"],
                               served["serving_default"](image=tf.constant(digits[:1]))["probabilities"], atol=1e-5)


def test_classify_answers_tf_examples_with_label_names(digits_export):
    images = real_images("digits", "test", n=4)
    labels = read_model_card(digits_export)["labels"]
    examples = [image_example(image=images[0]).SerializeToString(),
                image_example(encoded=encode(images[1], "PNG")).SerializeToString(),
                image_example(image=images[2]).SerializeToString(),
                image_example(encoded=encode(images[3], "PNG"), image=np.zeros(3)).SerializeToString()]
    # As TF Serving runs it: session-based load, SignatureDef tensors by name.
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(digits_export))
        classify, default = meta_graph.signature_def["classify"], meta_graph.signature_def["serving_default"]
        assert classify.method_name == CLASSIFY_METHOD
        assert list(classify.inputs) == ["inputs"] and set(classify.outputs) == {"classes", "scores"}
        out = session.run({k: v.name for k, v in classify.outputs.items()}, {classify.inputs["inputs"].name: examples})
        probabilities = session.run(default.outputs["probabilities"].name, {default.inputs["image"].name: images})
        assert [[c.decode() for c in row] for row in out["classes"]] == [labels] * 4
        np.testing.assert_allclose(out["scores"], probabilities, atol=1e-5)
        bad = image_example(image=np.zeros(3)).SerializeToString()
        with pytest.raises(tf.errors.InvalidArgumentError, match="needs feature image/encoded"):
            session.run(classify.outputs["scores"].name, {classify.inputs["inputs"].name: [bad]})


@pytest.mark.parametrize("module, function", [
    ("export.archive", "_set_method_names"),  # after the SavedModel is written
    ("export.warmup", "write_warmup_requests"),
    ("export.model_card", "write_model_card"),
])
def test_crash_mid_export_leaves_no_version_folder(tmp_path, monkeypatch, shapes_images, module, function):
    base = tmp_path / "models"
    export_tiny("mlp", base, shapes_images)
    before = tree(base)

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(f"{module}.{function}", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        export_tiny("mlp", base, shapes_images)  # would be version 2
    with pytest.raises(RuntimeError, match="simulated crash"):
        export_tiny("simple_cnn", base, shapes_images)  # a new model folder
    assert tree(base) == before  # no "2", no .tmp-*, no simple_cnn/


def test_temp_folder_of_a_killed_export_is_ignored(tmp_path, shapes_images):
    # A SIGKILL leaves the temp folder: not all digits, so TF Serving never loads it.
    base = tmp_path / "models"
    export_tiny("mlp", base, shapes_images)
    leftover = base / "mlp" / ".tmp-2-1"
    (leftover / "variables").mkdir(parents=True)
    (leftover / "saved_model.pb").write_bytes(b"half")
    path, _, _ = export_tiny("mlp", base, shapes_images)
    assert path.name == "2" and leftover.exists()
    (entry,) = read_model_server_config(base / "models.config").model_config_list.config
    assert entry.name == "mlp"


def test_verification_mismatch_fails_export_and_publishes_nothing(tmp_path, monkeypatch, shapes_images):
    task = get_task("image_classification")
    right = task.reference
    monkeypatch.setattr(task, "reference", lambda model, examples, assets: {
        "probabilities": right(model, examples, assets)["probabilities"] + 0.01})
    base = tmp_path / "models"
    with pytest.raises(VerificationError, match="differ from Keras by"):
        export_saved_model(tiny_model("mlp"), base, "mlp", examples=shapes_images)
    assert not base.exists()


def _run_dir_without_model(tmp_path):
    run = tmp_path / "runs" / "unfinished"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    return run


@pytest.mark.parametrize("case, error, message", [
    ("run dir without a model", FileNotFoundError, "has no model.keras"),
    ("base path is a file", ExportError, "is a file; pass --base-path a directory"),
    ("model name with /", ExportError, r"no '/' or '\.\.'"),
    ("model name ..", ExportError, r"no '/' or '\.\.'"),
    ("existing version", ExportError, "already exists. Pass --overwrite"),
    ("examples of another shape", ExportError, r"have shape \(4, 8, 8, 1\); the model takes image \[N, 32, 32, 3\]"),
])
def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, shapes_images, case, error, message):
    base, model, name, version, source = tmp_path / "models", tiny_model("mlp"), "mlp", None, None
    images = shapes_images
    if case == "run dir without a model":
        source = _run_dir_without_model(tmp_path)
    elif case == "base path is a file":
        base.write_text("not a folder")
    elif case == "model name with /":
        name = "team/mlp"
    elif case == "model name ..":
        name = ".."
    elif case == "examples of another shape":
        images = real_images("digits", "train", n=4)
    else:
        export_tiny("mlp", base, shapes_images)
        version = 1
    before = tree(tmp_path)
    with pytest.raises(error, match=message):
        export_saved_model(source or model, base, name, version, examples=images)
    assert tree(tmp_path) == before


def test_overwrite_replaces_a_version(tmp_path, shapes_images):
    base = tmp_path / "models"
    export_tiny("mlp", base, shapes_images)
    path, _, expected = export_tiny("mlp", base, shapes_images, version=1, overwrite=True)
    assert sorted(p.name for p in path.parent.iterdir()) == ["1"]
    out = tf.saved_model.load(str(path)).signatures["serving_default"](image=tf.constant(shapes_images))
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-4)


def test_saved_model_cli_lists_the_named_signatures(digits_export):
    cli = pathlib.Path(sys.executable).parent / "saved_model_cli"
    shown = subprocess.run([str(cli), "show", "--all", "--dir", str(digits_export)],
                           capture_output=True, text=True, check=True).stdout
    for line in ("signature_def['serving_default']", "signature_def['image_bytes']", "signature_def['classify']",
                 "inputs['image']", "inputs['image_bytes']", "inputs['inputs']", "outputs['probabilities']",
                 "outputs['class_id']", "outputs['label']", "outputs['classes']", "outputs['scores']",
                 "Method name is: tensorflow/serving/classify"):
        assert line in shown, line
    assert "output_0" not in shown and "args_0" not in shown


def test_generated_signature_names_are_rejected(tmp_path):
    # What a plain `model.export()` gives: the check must catch its "output_0".
    model = tiny_model("mlp")
    model.export(str(tmp_path / "plain"), verbose=False)
    errors = check_signature_names(read_signatures(tmp_path / "plain"))
    assert any("'output_0'" in e for e in errors), errors


def test_cli_export_then_info(digits_run, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="zoo")
    add_parser(parser.add_subparsers(dest="command"))
    with pytest.raises(SystemExit):
        parser.parse_args(["export", "--help"])
    assert "zoo export runs/simple_cnn-digits --base-path models --model-name digits" in capsys.readouterr().out

    args = parser.parse_args(["export", str(digits_run), "--base-path", str(tmp_path / "models"),
                              "--model-name", "digits_cli", "--version", "7", "--no-verify"])
    assert args.fn(args) == 0
    assert "Exported digits_cli version 7" in capsys.readouterr().out

    assert export.is_export(tmp_path / "models" / "digits_cli") and not export.is_export(digits_run)
    info = describe_export(tmp_path / "models" / "digits_cli")
    assert (info["version"], info["versions"], info["task"]) == (7, [7], "image_classification")
    assert info["signatures"]["image_bytes"]["inputs"] == {"image_bytes": {"dtype": "string", "shape": [None]}}
    assert info["metrics"]["accuracy"] > 0.5 and info["training"]["model"] == "simple_cnn"
    assert info["library_versions"]["keras"]
    assert info["task_fields"] == {"image_shape": [8, 8, 1], "max_image_pixels": 40_000_000}
    page = format_export(info)
    assert "classify (classify): inputs string[B] -> classes string[B,10], scores float32[B,10]" in page
    assert "  max_image_pixels: 40000000" in page


def test_models_config_keeps_edits_and_sets_policies(tmp_path):
    base = tmp_path / "models"
    for name in ("a", "b"):
        (base / name / "1").mkdir(parents=True)
        (base / name / "1" / "saved_model.pb").write_bytes(b"")
    (base / "c" / ".tmp-1-99").mkdir(parents=True)  # only a temp folder: not served
    write_models_config(base, model_name="a", version_policy="specific:1,2")
    write_models_config(base, model_name="b", version_policy="latest:2", serving_base_path="/models")
    config = {c.name: c for c in read_model_server_config(base / "models.config").model_config_list.config}
    assert sorted(config) == ["a", "b"]
    assert list(config["a"].model_version_policy.specific.versions) == [1, 2]  # kept
    assert config["b"].model_version_policy.latest.num_versions == 2
    assert config["b"].base_path == "/models/b"
    with pytest.raises(ValueError, match="not one of 'latest'"):
        parse_version_policy("newest")
