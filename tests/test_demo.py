"""The README's main command goes the whole way: train, export, serve, query."""

from zoo import cli


def test_demo_trains_exports_serves_and_answers(tmp_path, capsys):
    assert cli.main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "test accuracy 0.9" in out
    assert (tmp_path / "models" / "digits" / "1" / "saved_model.pb").exists()
    answers = [line for line in out.splitlines() if "predicted" in line]
    assert len(answers) == 6 and sum("ok" in a for a in answers) >= 5
    for step in ("image_bytes (PNG files)", "gRPC Classify", "REST :predict", "AVAILABLE"):
        assert step in out

    # `zoo info` on the export the demo left behind: a readable page of its contract.
    assert cli.main(["info", str(tmp_path / "models" / "digits")]) == 0
    info = capsys.readouterr().out
    assert "image_bytes (predict): image_bytes string[B]" in info
    assert "classify (classify): inputs string[B]" in info
    assert "labels (10): 0, 1, 2" in info
