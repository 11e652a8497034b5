"""Object detection the whole way: a light detector learns the offline set (COCO mAP from
pycocotools), its export answers over gRPC with boxes in the original image's
coordinates, the same detections alone and in a batch of other sizes, and refuses bad
images without falling over; `zoo predict` prints and draws the detections.

The registry-wide checks (build, a step, save/load, export, verification, a served round
trip) cover `light_detector` and `retinanet` in tests/test_models.py and
tests/test_every_model_serves.py.
"""

import argparse
import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import zoo
from export import export_saved_model
from export.model_card import read_model_card
from image_bombs import png_bomb
from serving import Client, ModelServer
from serving.client import ClientError
from zoo import cli
from zoo.cli import serve_command
from zoo.data.synthetic_shapes import SHAPES, _shape_masks
from zoo.data.synthetic_detection import make_scenes
from zoo.tasks import get_task, image_codec
from zoo.tasks.base import as_text
from zoo.tasks.detection_metrics import coco_metrics

pytestmark = pytest.mark.slow  # minutes: learning or the README's commands (-m "not slow" leaves it out)

EPOCHS = 8  # about 80 s on two cores; mAP@0.5 0.87 measured
LIMIT = 1_000_000  # max_image_pixels of the export


def _iou(a, b) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return zoo.train("light_detector", "synthetic_detection", out_dir=tmp_path_factory.mktemp("det") / "run",
                     epochs=EPOCHS, batch_size=32, learning_rate=3e-3, verbose=0)


@pytest.fixture(scope="module")
def served(run, tmp_path_factory):
    base = tmp_path_factory.mktemp("det-models") / "models"
    path = export_saved_model(run, base, "shapes", task_options={"max_image_pixels": LIMIT})
    with ModelServer(model_config_file=str(base / "models.config"), port=0) as server:
        client = Client(f"localhost:{server.grpc_port}", "shapes")
        yield client, path
        client.close()


def _png(image) -> bytes:
    return image_codec.encode_png(np.asarray(image, np.float32))


def _wide_square():
    """A 128x256 image holding one square stretched to 44x88 pixels, at a known place:
    squeezed to the model's 128x128 it is a plain 44x44 square."""
    height, width, top, left = 128, 256, 40, 90
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    # _shape_masks' square: max(|dx|, |dy|) <= 0.8 r; r = 27.5 gives a 44-pixel side.
    mask = _shape_masks(SHAPES.index("square"), (xx - (left + 43.5)) / 2, yy - (top + 21.5), 27.5)
    image = np.where(mask[..., None], [230.0, 40.0, 40.0], [40.0, 60.0, 200.0])
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    box = [rows[0] / height, cols[0] / width, (rows[-1] + 1) / height, (cols[-1] + 1) / width]
    return image, box


def test_learns_the_offline_set(run):
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["map_50"] >= 0.8, metrics  # COCO mAP at IoU 0.5, test split, pycocotools
    assert 0 < metrics["map"] <= metrics["map_50"]
    # zoo evaluate: the same COCO metrics (bf16 arithmetic may move them in the third decimal).
    assert zoo.evaluate(run)["map_50"] == pytest.approx(metrics["map_50"], abs=0.01)
    history = json.loads((run / "history.json").read_text())
    assert history["cls_logits_loss"][-1] < history["cls_logits_loss"][0] / 2


def test_boxes_come_back_in_the_original_images_coordinates(served):
    client, _ = served
    image, box = _wide_square()
    for signature, inputs in (("image_bytes", {"image_bytes": np.array([_png(image)], dtype=object)}),
                              ("serving_default", {"image": image[None].astype(np.float32)})):
        out = client.predict(inputs, signature=signature)
        assert out["num_detections"][0] >= 1, signature
        best = int(np.argmax(out["scores"][0]))
        assert as_text(out["labels"][0])[best] == "square", (signature, out["labels"][0][:3])
        found = out["boxes"][0][best]
        assert _iou(found, box) >= 0.7, (signature, found, box)
        # In pixels of the 128x256 image sent: each edge within 6% of the image's side of the square's.
        assert (np.abs(found * [128, 256, 128, 256] - np.multiply(box, [128, 256, 128, 256]))
                < 0.06 * np.array([128, 256, 128, 256])).all(), (found, box)


def test_an_image_alone_and_in_a_batch_of_other_sizes_gives_the_same_detections(served):
    client, _ = served
    scenes = make_scenes(3, seed=7)[0]
    wide, _ = _wide_square()
    images = [scenes[0], wide, tf.image.resize(scenes[1], (200, 150)).numpy(), scenes[2]]
    encoded = [_png(i) for i in images]
    together = client.predict({"image_bytes": np.array(encoded, dtype=object)}, signature="image_bytes")
    assert together["boxes"].shape == (4, 100, 4) and together["classes"].dtype == np.int64
    for i, data in enumerate(encoded):
        alone = client.predict({"image_bytes": np.array([data], dtype=object)}, signature="image_bytes")
        count = int(alone["num_detections"][0])
        assert count == together["num_detections"][i] and count > 0
        np.testing.assert_array_equal(alone["classes"][0], together["classes"][i])
        np.testing.assert_allclose(alone["scores"][0], together["scores"][i], atol=1e-5)
        np.testing.assert_allclose(alone["boxes"][0], together["boxes"][i], atol=1e-5)
        # Past num_detections: class -1, no label, score 0.
        assert (together["classes"][i][count:] == -1).all() and not any(as_text(together["labels"][i][count:]))
        assert (together["scores"][i][count:] == 0).all()


def test_bad_images_are_invalid_argument_and_the_server_keeps_serving(served):
    client, _ = served
    bad = {"empty bytes": b"", "not an image": b"hello, I am text", "a 20000x20000 png bomb": png_bomb(20000, 20000)}
    for what, data in bad.items():
        with pytest.raises(ClientError) as e:
            client.predict({"image_bytes": np.array([data], dtype=object)}, signature="image_bytes")
        assert e.value.code.name == "INVALID_ARGUMENT", (what, e.value)
    assert "over the limit" in str(e.value)
    pixels = {"NaN pixels": np.full((1, 128, 128, 3), np.nan, np.float32),
              "no pixels": np.zeros((1, 0, 0, 3), np.float32)}
    for what, image in pixels.items():
        with pytest.raises(ClientError) as e:
            client.predict({"image": image})
        assert e.value.code.name == "INVALID_ARGUMENT", (what, e.value)
    empty = client.predict({"image": np.zeros((0, 128, 128, 3), np.float32)})  # no images, no detections
    assert empty["boxes"].shape == (0, 100, 4) and empty["num_detections"].shape == (0,)
    image, _ = _wide_square()
    assert client.predict({"image_bytes": np.array([_png(image)], dtype=object)},
                          signature="image_bytes")["num_detections"][0] >= 1


def test_the_export_says_what_its_boxes_are(served, capsys):
    _, path = served
    card = read_model_card(path)
    assert card["task"] == "object_detection" and card["labels"] == list(SHAPES)
    assert card["box_format"].startswith("normalised [ymin, xmin, ymax, xmax]")
    assert card["max_detections"] == 100 and card["max_image_pixels"] == LIMIT
    assert cli.main(["info", str(path.parent)]) == 0
    shown = capsys.readouterr().out
    assert "circle" in shown and "normalised [ymin, xmin, ymax, xmax]" in shown


def test_zoo_predict_prints_and_draws_the_detections(served, tmp_path, capsys):
    _, path = served
    image, box = _wide_square()
    source = tmp_path / "wide.png"
    source.write_bytes(_png(image))
    drawn = tmp_path / "drawn.png"
    assert cli.main(["predict", "--local", str(path.parent), str(source), "--draw", str(drawn)]) == 0
    out = capsys.readouterr().out
    assert "square" in out and "detection" in out
    with Image.open(drawn) as picture:
        pixels = np.asarray(picture.convert("RGB"), np.float32)
    assert pixels.shape == image.shape
    # The box's top edge is drawn near the square's (within the 6% the test above allows).
    top, left = round(box[0] * 128), round(box[1] * 256)
    edge = (slice(top - 8, top + 9), slice(left + 20, left + 70))
    assert np.abs(pixels[edge] - image[edge]).max() > 50
    # Several images: PNG is a folder with one drawing each.
    folder = tmp_path / "drawings"
    assert cli.main(["predict", "--local", str(path.parent), str(source), str(source), "--draw", str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["0_wide.png", "1_wide.png"]
    # A model whose answers are not boxes has nothing to draw: said before anything is sent.
    with pytest.raises(ValueError, match="answers no boxes"):
        serve_command._check_draw(argparse.Namespace(draw=str(drawn)), get_task("image_classification"))


def test_coco_metrics_of_perfect_missing_and_shifted_detections():
    truth = [{"boxes": np.array([[10, 10, 50, 50], [60, 60, 100, 120]], np.float32), "classes": np.array([0, 1])}]
    perfect = [dict(truth[0], scores=np.array([0.9, 0.8]))]
    assert coco_metrics(truth, perfect, ["a", "b"], (128, 128))["map"] == pytest.approx(1.0)
    nothing = [{"boxes": np.zeros((0, 4)), "classes": np.zeros(0, int), "scores": np.zeros(0)}]
    assert coco_metrics(truth, nothing, ["a", "b"], (128, 128))["map_50"] == 0.0
    # One box found, the other off by 60% of its width: IoU 0.25, found at no threshold.
    shifted = [{"boxes": np.array([[10, 10, 50, 50], [60, 96, 100, 156]], np.float32), "classes": np.array([0, 1]),
                "scores": np.array([0.9, 0.8])}]
    assert coco_metrics(truth, shifted, ["a", "b"], (128, 128))["map_50"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no objects"):
        coco_metrics([{"boxes": np.zeros((0, 4)), "classes": np.zeros(0)}], nothing, ["a"], (8, 8))


@pytest.mark.parametrize("options, words", [
    ({"max_detections": 0}, "max_detections must be an int in 1..10000"),
    ({"max_detections": 2.5}, "max_detections must be an int"),
    ({"score_threshold": 1.5}, "score_threshold must be a number in 0..1"),
    ({"iou_threshold": "high"}, "iou_threshold must be a number in 0..1"),
    ({"max_image_pixels": 100}, "max_image_pixels must be an int >= the model's own 64x64"),
])
def test_bad_export_options_are_named(options, words, tmp_path):
    from export.errors import ExportError

    model = zoo.build_model("light_detector", num_classes=2, input_shape=(64, 64, 3), filters=(4, 4, 4, 4),
                            num_filters=8)
    with pytest.raises(ExportError, match=words):
        export_saved_model(model, tmp_path / "models", "bad", examples=np.zeros((1, 64, 64, 3), np.float32),
                           task_options=options)


def test_the_precision_check_compares_anchors_not_which_box_nms_kept():
    task = get_task("object_detection")
    # Two overlapping anchors of one class at nearly equal scores: bf16 rounding swaps which
    # one NMS keeps (a box 0.1 away), but every anchor moved by about 0.01.
    boxes = np.array([[[0.1, 0.1, 0.5, 0.5], [0.1, 0.2, 0.5, 0.6], [0.7, 0.7, 0.9, 0.9]]], np.float32)
    exported = {"boxes": boxes, "scores": np.array([[[0.50, 0.0], [0.49, 0.0], [0.0, 0.1]]], np.float32)}
    trained = {"boxes": boxes + 0.004, "scores": np.array([[[0.49, 0.0], [0.50, 0.0], [0.0, 0.6]]], np.float32)}
    assert task.precision_difference(exported, trained) == pytest.approx(0.01, abs=1e-6)
    # A confident score that really moves is reported.
    trained["scores"][0, 0, 0] = 0.2
    assert task.precision_difference(exported, trained) == pytest.approx(0.3, abs=1e-6)
    exported["scores"][:] = 0.0
    assert task.precision_difference(exported, trained) == 0.0
