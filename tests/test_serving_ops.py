"""Every export is checked against the ops of the TF Serving release it targets.

TF Serving's model server links TensorFlow's and tensorflow-text's ops and runs with
XLA off: an `Xla*` op, or an op newer than its release, loads everywhere here and
fails only there. The exporter refuses such a graph before publishing it, and writes
the SignatureDef defaults TF Serving feeds for inputs a request leaves out.
"""

import dataclasses
import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

from export import ExportError, export_saved_model
from export.model_card import read_model_card
from export.serving_ops import DEFAULT_SERVING_VERSION, check, known_versions, op_list, resolve_version
from export_checks import real_images, tree
from model_checks import tiny_model
from zoo import cli
from zoo.tasks import Endpoint, get_task

IMAGE = get_task("image_classification")


@pytest.fixture(scope="module")
def images():
    return real_images("synthetic_shapes", "train", n=4)


def add_endpoints(monkeypatch, **make):
    """Gives image classifiers' exports extra or changed signatures: key -> f(original
    endpoints) -> Endpoint."""
    original = IMAGE.signatures

    def signatures(model, assets, staging_dir):
        sigs = original(model, assets, staging_dir)
        return dataclasses.replace(sigs, endpoints={**sigs.endpoints,
                                                    **{k: f(sigs.endpoints) for k, f in make.items()}})

    monkeypatch.setattr(IMAGE, "signatures", signatures)


def xla_endpoint(_):
    def masked(image):  # keras' cached decoding writes its cache like this
        return {"masked": keras.ops.slice_update(image, (0, 0, 0, 0), tf.zeros_like(image[:1, :1, :1]))}

    return Endpoint(masked, [tf.TensorSpec((None, 32, 32, 3), tf.float32, name="image")])


def jxl_endpoint(_):
    def jxl(jxl_bytes):  # DecodeJxl is registered from TensorFlow 2.21 on
        return {"pixels": tf.raw_ops.DecodeJxl(contents=jxl_bytes, channels=3)}

    return Endpoint(jxl, [tf.TensorSpec((), tf.string, name="jxl_bytes")])


def test_op_lists_name_ops_of_tensorflow_and_text_without_xla():
    assert known_versions() == ["2.20", "2.21"] and DEFAULT_SERVING_VERSION in known_versions()
    for version in known_versions():
        ops = op_list(version)
        assert {"MatMul", "StatefulPartitionedCall", "RegexSplitWithOffsets", "FastWordpieceTokenizeWithOffsets"} <= ops
        assert not [op for op in ops if op.startswith(("Xla", "_Xla"))]
    assert op_list("2.21") - op_list("2.20") == {"DecodeJxl"}


def test_a_normal_export_passes_and_its_card_records_the_check(tmp_path, images):
    path = export_saved_model(tiny_model("mlp"), tmp_path / "models", "mlp", examples=images, verify=False)
    card = read_model_card(path)
    assert card["library_versions"]["tensorflow"] == tf.__version__
    serving = card["serving"]
    assert (serving["target_version"], serving["op_list"], serving["checked"]) == ("2.20", "2.20", True)
    assert serving["tensorflow_version"] == tf.__version__ and serving["ops"] > 20
    result = check(path, "2.20")
    assert result.ok and {"StatefulPartitionedCall", "DecodeImage", "ParseExampleV2"} <= set(result.ops)


def test_an_xla_op_is_refused_with_the_fix_and_nothing_is_published(tmp_path, monkeypatch, images):
    add_endpoints(monkeypatch, masked=xla_endpoint)
    base = tmp_path / "models"
    with pytest.raises(ExportError) as e:
        export_saved_model(tiny_model("mlp"), base, "mlp", examples=images, verify=False)
    message = str(e.value)
    assert "TF Serving 2.20 cannot load this export of mlp, so nothing was published" in message
    assert "op XlaDynamicUpdateSlice (in function __inference_masked" in message
    assert "signatures: masked)" in message and "XLA off" in message
    assert "keras.ops.slice_update" in message and "tf.tensor_scatter_nd_update" in message
    assert tree(tmp_path) == []  # no version, no temp folder, no models.config, no base path


def test_an_op_newer_than_the_target_is_refused_for_it_and_passes_for_its_release(tmp_path, monkeypatch, images):
    add_endpoints(monkeypatch, jxl=jxl_endpoint)
    base = tmp_path / "models"
    with pytest.raises(ExportError, match=r"op DecodeJxl \(in function __inference_jxl_\d+; signatures: jxl\)") as e:
        export_saved_model(tiny_model("mlp"), base, "mlp", examples=images, verify=False)
    assert "new in TF Serving 2.21" in str(e.value) and "--target-serving-version 2.21" in str(e.value)
    assert tree(tmp_path) == []
    path = export_saved_model(tiny_model("mlp"), base, "mlp", examples=images, verify=False,
                              target_serving_version="2.21")
    assert read_model_card(path)["serving"]["target_version"] == "2.21" and "DecodeJxl" in check(path, "2.21").ops


@pytest.mark.parametrize("target, words", [
    ("latest", ["'latest' is not a release number X.Y", "Known TF Serving versions: 2.20, 2.21 (default 2.20)"]),
    ("2", ["'2' is not a release number"]),
    ("2.18", ["No op list for TF Serving 2.18", "Known TF Serving versions: 2.20, 2.21", "make_op_list.py"]),
    ("3.1", ["No op list for TF Serving 3.1"]),
])
def test_a_target_without_an_op_list_is_refused_with_the_known_ones(tmp_path, images, target, words):
    with pytest.raises(ExportError) as e:
        export_saved_model(tiny_model("mlp"), tmp_path / "models", "mlp", examples=images, verify=False,
                           target_serving_version=target)
    for w in words:
        assert w in str(e.value)
    assert tree(tmp_path) == []


def test_a_release_newer_than_every_list_takes_the_newest_with_a_warning(caplog):
    assert resolve_version("2.20.0") == "2.20"
    with caplog.at_level(logging.WARNING, logger="export.serving_ops"):
        assert resolve_version("2.23") == "2.21"
    assert "No op list for TF Serving 2.23: checking against 2.21's" in caplog.text


def test_signature_defaults_are_written_and_fed_as_tf_serving_does(tmp_path, monkeypatch, images):
    def with_temperature(endpoints):
        default = endpoints["serving_default"]

        def serving_default(image, temperature):  # the default, 1.0, keeps the Keras answers
            out = dict(default.fn(image))
            out["probabilities"] = out["probabilities"] * temperature
            return out

        return Endpoint(serving_default, [*default.input_signature, tf.TensorSpec((), tf.float32, name="temperature")],
                        defaults={"temperature": 1.0})

    add_endpoints(monkeypatch, serving_default=with_temperature)
    # Verification sends the warm-up records (image alone) through the session loader,
    # feeding the default as TF Serving's GetInputValues does.
    path = export_saved_model(tiny_model("mlp"), tmp_path / "models", "mlp", examples=images)
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        signature = meta_graph.signature_def["serving_default"]
        assert set(signature.inputs) == {"image", "temperature"} and list(signature.defaults) == ["temperature"]
        assert signature.defaults["temperature"].dtype == tf.float32.as_datatype_enum
        assert tf.make_ndarray(signature.defaults["temperature"]) == np.float32(1.0)
        assert meta_graph.signature_def["classify"].method_name == "tensorflow/serving/classify"
    assert tf.saved_model.experimental.read_fingerprint(str(path)).saved_model_checksum  # rewritten, still valid


@pytest.mark.parametrize("defaults, message", [
    ({"temprature": 1.0}, "Signature 'serving_default' has no input 'temprature' to give a default; its inputs: image"),
    ({"image": "bright"}, "Default of input 'image' of signature 'serving_default' is no float32 tensor"),
    ({"image": [1.0, 2.0]}, r"has shape \(2,\); the input takes \(None, 32, 32, 3\)"),
])
def test_a_bad_default_is_refused(tmp_path, monkeypatch, images, defaults, message):
    add_endpoints(monkeypatch, serving_default=lambda e: dataclasses.replace(e["serving_default"], defaults=defaults))
    with pytest.raises(ExportError, match=message):
        export_saved_model(tiny_model("mlp"), tmp_path / "models", "mlp", examples=images, verify=False)
    assert tree(tmp_path) == []


def test_cli_refuses_a_bad_target_version_in_one_line(tmp_path, capsys):
    assert cli.main(["export", str(tmp_path / "no-run"), "--target-serving-version", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoo export: error: Target serving version 'nope' is not a release number X.Y")
    assert "Known TF Serving versions: 2.20, 2.21 (default 2.20)" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        cli.main(["export", "--help"])
    assert "--target-serving-version X.Y" in capsys.readouterr().out
