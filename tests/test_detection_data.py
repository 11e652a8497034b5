"""Detection data: the synthetic scenes, their registered set and the TFDS detection sets (mocked)."""

import itertools

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import zoo

from zoo.data import dataset_info, synthetic_detection as detection, tfds_source
from zoo.data.registry import get_dataset
from zoo.data.synthetic_shapes import SHAPES

SIZE = 128


@pytest.fixture(scope="module")
def scenes():
    return detection.make_scenes(300, seed=5)


@pytest.fixture(scope="module")
def clean_scenes():
    """Scenes without pixel noise: every shape and distractor is one flat colour."""
    return detection.make_scenes(60, seed=6, noise=0)


def _pixel_boxes(boxes):
    return np.rint(boxes * SIZE).astype(int)


def _colour_codes(image):
    image = image.astype(np.int32)
    return image[..., 0] << 16 | image[..., 1] << 8 | image[..., 2]


def test_generation_is_deterministic_and_the_noise_leaves_the_layout_alone():
    a, b = detection.make_scenes(12, seed=4), detection.make_scenes(12, seed=4)
    np.testing.assert_array_equal(a[0], b[0])
    for x, y in zip(a[1] + a[2], b[1] + b[2]):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], detection.make_scenes(12, seed=5)[0])
    clean = detection.make_scenes(12, seed=4, noise=0)
    for x, y in zip(a[1] + a[2], clean[1] + clean[2]):
        np.testing.assert_array_equal(x, y)


def test_scenes_hold_one_to_five_objects_of_every_kind(scenes):
    images, boxes, labels = scenes
    assert images.shape == (300, SIZE, SIZE, 3) and images.dtype == np.uint8
    counts = [len(b) for b in boxes]
    assert [len(lab) for lab in labels] == counts
    assert min(counts) == 1 and max(counts) == 5
    assert all(b.dtype == np.float32 and b.shape[1:] == (4,) for b in boxes)
    assert all(lab.dtype == np.int64 for lab in labels)
    assert set(np.concatenate(labels)) == set(range(len(SHAPES)))


def test_boxes_are_normalised_pixel_edges_overlapping_at_most_035(scenes):
    boxes = scenes[1]
    every = np.concatenate(boxes)
    assert every.min() >= 0 and every.max() <= 1
    assert (every[:, 0] < every[:, 2]).all() and (every[:, 1] < every[:, 3]).all()
    np.testing.assert_array_equal(every * SIZE, np.rint(every * SIZE))  # whole pixels, edge convention
    ious = []
    for image_boxes in boxes:
        for p, q in itertools.combinations(image_boxes, 2):
            h = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
            w = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
            area = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
            ious.append(h * w / (area(p) + area(q) - h * w))
    assert max(ious) <= 0.35 + 1e-6
    assert np.mean(np.array(ious) > 0) > 0.05, "objects should overlap now and then"


def test_objects_vary_in_size_and_aspect(scenes):
    pixels = _pixel_boxes(np.concatenate(scenes[1]))
    h, w = pixels[:, 2] - pixels[:, 0], pixels[:, 3] - pixels[:, 1]
    assert min(h.min(), w.min()) >= 9, "an object is never as small as a speck of clutter"
    assert min(h.min(), w.min()) < 14 and max(h.max(), w.max()) > 60
    assert (h / w).min() < 0.7 and (h / w).max() > 1.4


def test_each_box_is_the_extent_of_its_shape(clean_scenes):
    # The last shape of a scene is drawn over everything else, so all its pixels show its
    # one flat colour. That colour must touch all four sides of the box and never the
    # ring of pixels just outside it.
    images, boxes, _ = clean_scenes
    for image, image_boxes in zip(images, boxes):
        top, left, bottom, right = _pixel_boxes(image_boxes[-1])
        codes = _colour_codes(image)
        inside = codes[top:bottom, left:right]
        on_every_side = set(inside[0]) & set(inside[-1]) & set(inside[:, 0]) & set(inside[:, -1])
        around = codes[max(top - 1, 0):bottom + 1, max(left - 1, 0):right + 1].copy()
        around[top - max(top - 1, 0):, left - max(left - 1, 0):][:bottom - top, :right - left] = -1
        shape_colours = on_every_side - set(around.ravel())
        assert len(shape_colours) == 1, (top, left, bottom, right)
        assert (inside == shape_colours.pop()).mean() > 0.3


def test_clutter_is_unlabelled_and_in_most_scenes(clean_scenes):
    # The background is an affine ramp per channel: its second differences are ~0, so
    # large ones outside every box are distractors.
    images, boxes, _ = clean_scenes
    flagged = []
    for image, image_boxes in zip(images, boxes):
        x = image.astype(np.int32)
        edges = np.zeros((SIZE, SIZE), bool)
        edges[:, 1:-1] |= (np.abs(x[:, 2:] - 2 * x[:, 1:-1] + x[:, :-2]) > 30).any(-1)
        edges[1:-1] |= (np.abs(x[2:] - 2 * x[1:-1] + x[:-2]) > 30).any(-1)
        for top, left, bottom, right in _pixel_boxes(image_boxes):
            edges[max(top - 1, 0):bottom + 1, max(left - 1, 0):right + 1] = False
        flagged.append(edges.sum())
    with_clutter = np.mean(np.array(flagged) > 0)
    assert 0.5 < with_clutter < 1.0


def test_clutter_is_thin_or_small():
    # Lines are at most 2 px wide and specks at most 3 px in radius: drawn alone on a flat
    # canvas, no distractor fills a 6x6 block, which every object but a cross does.
    rng = np.random.default_rng(0)
    for _ in range(200):
        canvas = np.zeros((SIZE, SIZE, 3), np.float32)
        detection._add_clutter(rng, canvas, canvas.copy())
        painted = np.pad(canvas.any(-1), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
        blocks = painted[6:, 6:] - painted[:-6, 6:] - painted[6:, :-6] + painted[:-6, :-6]
        assert blocks.max() < 36
        assert canvas.any(-1).mean() < 0.05


def test_registered_set_yields_images_and_objects():
    info = dataset_info("synthetic_detection")
    assert info.task == "object_detection" and info.label_names == SHAPES and info.num_classes == 6
    assert info.num_examples == {"train": 4000, "validation": 500, "test": 500}
    assert info.input_shape == (SIZE, SIZE, 3) and info.input_dtype == "uint8" and info.source == "offline"
    ds = get_dataset("synthetic_detection").examples("validation")
    assert ds.element_spec[1] == {"bbox": tf.TensorSpec((None, 4), tf.float32),
                                  "label": tf.TensorSpec((None,), tf.int64)}
    _, boxes, labels = detection._scenes("validation")
    for (image, objects), want_boxes, want_labels in zip(ds.take(3), boxes, labels):
        assert image.dtype == tf.uint8 and image.shape == (SIZE, SIZE, 3)
        np.testing.assert_array_equal(objects["bbox"], want_boxes)
        np.testing.assert_array_equal(objects["label"], want_labels)


# COCO's builder names its classes only while preparing the data (from the annotations),
# so a mock, having no prepared dataset_info.json, shows them as "0".."79".
@pytest.mark.parametrize("name, num_classes, first", [("voc/2007", 20, "aeroplane"), ("coco/2017", 80, "0")])
def test_tfds_detection_sets_with_mock_data(monkeypatch, name, num_classes, first):
    monkeypatch.setattr(tfds_source, "download_reachable", lambda timeout=3.0: True)
    source = get_dataset(name)
    with tfds.testing.mock_data(num_examples=3):
        info = dataset_info(name)
        image, objects = next(iter(source.examples("train")))
    assert info.task == "object_detection" and info.source == "tfds"
    assert info.num_classes == num_classes and len(info.label_names) == num_classes and info.label_names[0] == first
    assert info.input_shape == (None, None, 3) and info.input_dtype == "uint8"
    assert source.options == {"image_size": (384, 384)}
    assert image.dtype == tf.uint8 and image.shape[-1] == 3
    assert objects["bbox"].dtype == tf.float32 and objects["bbox"].shape[1:] == (4,)
    # The mock draws each field of an object Sequence with its own length, so it does
    # not promise as many labels as boxes; real data does.
    assert objects["label"].dtype == tf.int64 and objects["label"].shape.rank == 1


@pytest.mark.parametrize("name", ["voc/2007", "coco/2017"])
def test_tfds_detection_sets_become_padded_pixel_boxes(monkeypatch, name):
    """Through the task: images resized to 384x384, boxes in its pixels as [ymin, xmin,
    ymax, xmax] (corners in order even where the mock's are not), -1 past each image's objects."""
    monkeypatch.setattr(tfds_source, "download_reachable", lambda timeout=3.0: True)
    with tfds.testing.mock_data(num_examples=3):
        features, labels = next(iter(zoo.load_dataset(name, "train", batch_size=3, shuffle=False)))
    assert features["image"].shape == (3, 384, 384, 3) and features["image"].dtype == tf.float32
    boxes, classes = labels["boxes"].numpy(), labels["labels"].numpy()
    assert boxes.shape[:2] == classes.shape and boxes.shape[-1] == 4
    real = classes >= 0
    assert real.any() and (boxes[real] >= 0).all() and (boxes[real] <= 384).all()
    assert (boxes[real][:, 2] >= boxes[real][:, 0]).all() and (boxes[real][:, 3] >= boxes[real][:, 1]).all()
    assert (boxes[~real] == 0).all() and (classes[~real] == -1).all()
