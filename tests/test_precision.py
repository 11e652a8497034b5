"""The precision a run trains in: chosen from the hardware, recorded, overridable, and
always float32 in the export."""

import json

import numpy as np
import pytest

import zoo
from export import export_saved_model
from export.model_card import read_model_card
from zoo.data.digits import digits
from zoo.training import precision


def test_native_bfloat16_is_read_from_the_cpu_flags(tmp_path):
    flags = tmp_path / "cpuinfo"
    flags.write_text("processor : 0\nflags : fpu sse2 avx512f avx512_bf16 amx_tile\n")
    assert precision.cpu_has_native_bf16(str(flags))
    flags.write_text("processor : 0\nflags : fpu sse2 avx2 avx512f\n")
    assert not precision.cpu_has_native_bf16(str(flags))
    assert not precision.cpu_has_native_bf16(str(tmp_path / "missing"))


def test_settings_resolve_to_policies():
    assert precision.dtype_policy("off") == "float32"
    assert precision.dtype_policy("mixed_bfloat16") == "mixed_bfloat16"
    expected = "mixed_bfloat16" if precision.cpu_has_native_bf16() else "float32"
    assert precision.dtype_policy("auto") == expected  # this CPU machine (no GPU)


def test_the_chosen_policy_is_recorded_and_float32_overrides(tmp_path):
    run = zoo.train("mlp", "digits", epochs=1, out_dir=tmp_path / "auto", verbose=0, model_kwargs={"hidden_units": (16,)})
    assert json.loads((run / "device.json").read_text())["dtype_policy"] == precision.dtype_policy("auto")
    assert json.loads((run / "config.json").read_text())["mixed_precision"] == "auto"
    run = zoo.train("mlp", "digits", epochs=1, out_dir=tmp_path / "f32", verbose=0, mixed_precision="off",
                    model_kwargs={"hidden_units": (16,)})
    assert json.loads((run / "device.json").read_text())["dtype_policy"] == "float32"
    with pytest.raises(ValueError, match="mixed_precision must be one of"):
        zoo.train("mlp", "digits", epochs=1, out_dir=tmp_path / "x", verbose=0, mixed_precision="fp8")


def test_a_bfloat16_run_exports_float32_answering_within_0_05_of_the_trained_model(tmp_path):
    run = zoo.train("simple_cnn", "digits", epochs=15, out_dir=tmp_path / "bf16", verbose=0,
                    mixed_precision="mixed_bfloat16")
    assert json.loads((run / "device.json").read_text())["dtype_policy"] == "mixed_bfloat16"
    assert json.loads((run / "metrics.json").read_text())["accuracy"] >= 0.95
    version = export_saved_model(run, tmp_path / "models", "digits")
    card = read_model_card(version)
    assert card["precision"]["trained"] == "mixed_bfloat16" and card["precision"]["exported"] == "float32"
    assert card["precision"]["max_abs_diff_vs_trained"] <= 0.05
    # Nothing in the served graph computes in bfloat16.
    graph = (version / "saved_model.pb").read_bytes()
    assert b"DT_BFLOAT16" not in graph and b"bfloat16" not in graph
    # The exported answers: float32, within the stated tolerance of the trained model.
    images = digits("test")[0][:32].astype(np.float32)
    trained, _, _ = zoo.training.load_run(run)
    want = np.asarray(__import__("tensorflow").nn.softmax(trained.predict(images, verbose=0)))
    got = zoo.load(version)(images)["probabilities"]
    assert got.dtype == np.float32 and np.max(np.abs(got - want)) <= 0.05
