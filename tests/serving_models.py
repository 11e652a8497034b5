"""Tiny SavedModels for the serving tests, written the way TF Serving finds them.

They stand in for real exports (tests/test_server.py serves those too), written in
a fraction of the time and with known outputs, under the same signature contracts
(see "Contracts" in DESIGN.md):

- `write_image_classifier`: a TF2 SavedModel (tf.Module + tf.saved_model.save) with
  `serving_default` (`image` float32 [B,2,2,1] -> `probabilities` [B,3],
  `class_id` int64 [B], `label` string [B]), `classify` (`inputs`: serialized
  tf.Example with a 4-float feature "image" -> `classes`, `scores`), `regress`
  (`inputs` -> `outputs` [B]) and `strings` (`text` [B] -> `upper`, `length`).
- `write_tf1_model`: a TF1-style SavedModel built with tf.compat.v1's
  SavedModelBuilder, whose `classify` and `regress` SignatureDefs carry the
  tensorflow/serving/classify and /regress method names.

The weights depend on the version number, so a test can tell which version
answered from the numbers alone: `expected_probabilities(image, version)` computes
what the image classifier returns. Every version is written beside its final place
and renamed into it, as the exporter does, so a polling server never sees half a
model.

Example:
    >>> path = write_image_classifier(tmp_path / "models", "tiny", version=1)
    >>> expected_probabilities(np.ones([1, 2, 2, 1], np.float32), version=1)
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import uuid

import numpy as np
import tensorflow as tf

LABELS = (b"cat", b"dog", b"bird")
TF1_CLASSES = (b"neg", b"pos")


def _weights(version):
    # Deterministic, version-dependent weights: w[i, j] = (i - j) * 0.1 * version.
    i = np.arange(4, dtype=np.float32)[:, None]
    j = np.arange(3, dtype=np.float32)[None, :]
    w = (i - j) * 0.1 * version
    b = np.array([0.0, 0.05, -0.05], np.float32) * version
    return w.astype(np.float32), b.astype(np.float32)


def expected_probabilities(image, version):
    """What version `version` of the image classifier answers for `image` [B,2,2,1]."""
    w, b = _weights(version)
    logits = np.asarray(image, np.float32).reshape(-1, 4) @ w + b
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def expected_regression(image, version):
    """What the `regress` signature answers: the sum of the pixels times the version."""
    return np.asarray(image, np.float32).reshape(-1, 4).sum(axis=1) * version


def example_bytes(pixels):
    """A serialized tf.Example with the 4-float feature "image" the classifier parses."""
    feature = tf.train.Feature(float_list=tf.train.FloatList(value=list(np.ravel(pixels))))
    return tf.train.Example(features=tf.train.Features(feature={"image": feature})).SerializeToString()


class _ImageClassifier(tf.Module):
    def __init__(self, version):
        super().__init__()
        w, b = _weights(version)
        self.w = tf.Variable(w, name="w")
        self.b = tf.Variable(b, name="b")
        self.scale = tf.Variable(float(version), name="scale")
        self.labels = tf.constant(list(LABELS))

    def _probabilities(self, image):
        logits = tf.matmul(tf.reshape(image, [-1, 4]), self.w) + self.b
        return tf.nn.softmax(logits)

    @tf.function(input_signature=[tf.TensorSpec([None, 2, 2, 1], tf.float32, name="image")])
    def serve(self, image):
        probabilities = self._probabilities(image)
        class_id = tf.argmax(probabilities, axis=-1)
        return {
            "probabilities": probabilities,
            "class_id": class_id,
            "label": tf.gather(self.labels, class_id),
        }

    def _parse(self, inputs):
        features = tf.io.parse_example(inputs, {"image": tf.io.FixedLenFeature([4], tf.float32)})
        return features["image"]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs):
        probabilities = self._probabilities(self._parse(inputs))
        classes = tf.tile(self.labels[None, :], [tf.shape(inputs)[0], 1])
        return {"classes": classes, "scores": probabilities}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(self, inputs):
        return {"outputs": tf.reduce_sum(self._parse(inputs), axis=1) * self.scale}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def strings(self, text):
        return {"upper": tf.strings.upper(text), "length": tf.strings.length(text)}


def _place(tmp_dir, final_dir):
    # The exporter's contract: a version appears all at once, by rename.
    os.makedirs(os.path.dirname(final_dir), exist_ok=True)
    os.rename(tmp_dir, final_dir)
    return final_dir


def _staging_dir(base_path, name):
    return os.path.join(str(base_path), name, f".tmp-{uuid.uuid4().hex}")


def write_image_classifier(base_path, name, version, warmup_requests=None):
    """Write version `version` of the TF2 image classifier to <base_path>/<name>/<version>.

    Args:
        base_path: the folder that holds one folder per model.
        name: the model name (a folder under `base_path`).
        version: the integer version (the folder name TF Serving loads).
        warmup_requests: optional list of `PredictionLog` protos written to
            assets.extra/tf_serving_warmup_requests.

    Returns:
        The version folder.
    """
    staging = _staging_dir(base_path, name)
    module = _ImageClassifier(version)
    tf.saved_model.save(
        module,
        staging,
        signatures={
            "serving_default": module.serve,
            "classify": module.classify,
            "regress": module.regress,
            "strings": module.strings,
        },
    )
    if warmup_requests is not None:
        write_warmup_requests(staging, warmup_requests)
    return _place(staging, os.path.join(str(base_path), name, str(version)))


def write_warmup_requests(version_dir, prediction_logs):
    """Write PredictionLog records to <version_dir>/assets.extra/tf_serving_warmup_requests."""
    extra = os.path.join(str(version_dir), "assets.extra")
    os.makedirs(extra, exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(extra, "tf_serving_warmup_requests")) as writer:
        for log in prediction_logs:
            writer.write(log.SerializeToString())


def write_tf1_model(base_path, name, version):
    """Write a TF1-style SavedModel (SavedModelBuilder) with Classify/Regress signatures.

    Signatures: `serving_default` (predict: `x` float32 [B,3] -> `y` float32 [B,2]),
    `classify` (classification: tf.Example feature "x" of 3 floats -> `classes`,
    `scores` [B,2]) and `regress` (regression: -> `outputs` [B], the sum of "x"
    times the version).
    """
    staging = _staging_dir(base_path, name)
    graph = tf.Graph()
    with graph.as_default():
        v1 = tf.compat.v1
        w = v1.get_variable(
            "w", initializer=tf.constant([[1.0, -1.0], [0.5, 0.5], [-1.0, 1.0]]) * float(version)
        )
        x = v1.placeholder(tf.float32, [None, 3], name="x")
        y = tf.matmul(x, w, name="y")
        serialized = v1.placeholder(tf.string, [None], name="tf_example")
        parsed = tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([3], tf.float32)})
        scores = tf.nn.softmax(tf.matmul(parsed["x"], w), name="scores")
        classes = tf.tile(tf.constant([list(TF1_CLASSES)]), [tf.shape(serialized)[0], 1])
        prediction = tf.identity(tf.reduce_sum(parsed["x"], axis=1) * float(version), name="prediction")
        sig = v1.saved_model.signature_def_utils
        signatures = {
            "serving_default": sig.predict_signature_def(inputs={"x": x}, outputs={"y": y}),
            "classify": sig.classification_signature_def(serialized, classes, scores),
            "regress": sig.regression_signature_def(serialized, prediction),
        }
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(staging)
            builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map=signatures)
            builder.save()
    return _place(staging, os.path.join(str(base_path), name, str(version)))


def tf1_expected(x, version):
    """The TF1 model's `y` for `x` [B,3]."""
    w = np.array([[1.0, -1.0], [0.5, 0.5], [-1.0, 1.0]], np.float32) * version
    return np.asarray(x, np.float32) @ w


def tf1_example_bytes(x):
    """A serialized tf.Example with the 3-float feature "x" the TF1 model parses."""
    feature = tf.train.Feature(float_list=tf.train.FloatList(value=list(np.ravel(x))))
    return tf.train.Example(features=tf.train.Features(feature={"x": feature})).SerializeToString()


def copy_version(src_version_dir, base_path, name, version):
    """Copy an existing version folder to <base_path>/<name>/<version>, atomically."""
    staging = _staging_dir(base_path, name)
    shutil.copytree(src_version_dir, staging)
    return _place(staging, os.path.join(str(base_path), name, str(version)))


def corrupt_variables(version_dir):
    """Truncate the variables data of a version, as a half-copied export would look."""
    variables = os.path.join(str(version_dir), "variables")
    for entry in os.listdir(variables):
        if entry.startswith("variables.data"):
            path = os.path.join(variables, entry)
            size = os.path.getsize(path)
            with open(path, "r+b") as f:
                f.truncate(size // 2)


def run_concurrently(count, client):
    """Call `client(i)` for every i in range(count), each on a thread of its own, all
    released at once.

    Returns what failed, as "client i: <exception>" strings; empty when all returned.
    """
    failures = []
    start = threading.Barrier(count)

    def run(i):
        try:
            start.wait()
            client(i)
        except Exception as e:
            failures.append(f"client {i}: {e!r}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures


# TF Serving's own test model, half_plus_two (y = 0.5 * x + 2), in both SavedModel
# flavours, written into version folders named with leading zeros as in TF Serving's
# testdata (saved_model_half_plus_two_cpu/00000123).

HALF_PLUS_TWO_ASSET = b"asset-file-contents"


def _asset_source(name="foo.txt"):
    import tempfile

    folder = tempfile.mkdtemp(prefix="half_plus_two_assets_")
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(HALF_PLUS_TWO_ASSET)
    return path


def write_half_plus_two_tf1(base_path, name, version_dir="00000123", b=2.0):
    """TF Serving's saved_model_half_plus_two, built as its testdata script builds it.

    A tf.compat.v1 SavedModelBuilder graph: variables a=0.5, b (2.0), c=3.0; a
    `tf_example` string placeholder parsed for features "x" and "x2"; x [-1,1] ->
    y = a*x + b, y2 = a*x + c, x2 -> y3; signatures `serving_default` (predict, x ->
    y), `regress_x_to_y`, `regress_x_to_y2`, `regress_x2_to_y3`, `classify_x_to_y`;
    an asset assets/foo.txt and a main op that assigns its name to a variable.

    Returns:
        The version folder <base_path>/<name>/<version_dir>.
    """
    v1 = tf.compat.v1
    staging = _staging_dir(base_path, name)
    asset = _asset_source()
    graph = tf.Graph()
    with graph.as_default():
        a = v1.Variable(0.5, name="a")
        bias = v1.Variable(float(b), name="b")
        c = v1.Variable(3.0, name="c")
        serialized = v1.placeholder(tf.string, name="tf_example", shape=[None])
        features = {
            "x": v1.FixedLenFeature([1], dtype=tf.float32),
            "x2": v1.FixedLenFeature([1], dtype=tf.float32, default_value=[0.0]),
        }
        example = v1.parse_example(serialized, features)
        x = tf.identity(example["x"], name="x")
        y = tf.identity(tf.add(tf.multiply(a, x), bias), name="y")
        y2 = tf.identity(tf.add(tf.multiply(a, x), c), name="y2")
        x2 = tf.identity(example["x2"], name="x2")
        a2 = v1.Variable(0.5, name="a2")
        c2 = v1.Variable(3.0, name="c2")
        y3 = tf.identity(tf.add(tf.multiply(a2, x2), c2), name="y3")

        asset_path = tf.constant(asset)
        v1.add_to_collection(v1.GraphKeys.ASSET_FILEPATHS, asset_path)
        filename = v1.Variable("foo.txt", name="filename_tensor", trainable=False, collections=[])
        assign_filename = filename.assign("foo.txt")

        sig = v1.saved_model.signature_def_utils
        info = v1.saved_model.utils.build_tensor_info
        sc = v1.saved_model.signature_constants

        def regression(inputs, outputs):
            return sig.build_signature_def({sc.REGRESS_INPUTS: info(inputs)},
                                           {sc.REGRESS_OUTPUTS: info(outputs)}, sc.REGRESS_METHOD_NAME)

        signatures = {
            "regress_x_to_y": regression(serialized, y),
            "regress_x_to_y2": regression(serialized, y2),
            "regress_x2_to_y3": regression(x2, y3),
            "classify_x_to_y": sig.build_signature_def(
                {sc.CLASSIFY_INPUTS: info(serialized)}, {sc.CLASSIFY_OUTPUT_SCORES: info(y)},
                sc.CLASSIFY_METHOD_NAME),
            sc.DEFAULT_SERVING_SIGNATURE_DEF_KEY: sig.build_signature_def(
                {"x": info(x)}, {"y": info(y)}, sc.PREDICT_METHOD_NAME),
        }
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(staging)
            builder.add_meta_graph_and_variables(
                session, ["serve"], signature_def_map=signatures,
                assets_collection=v1.get_collection(v1.GraphKeys.ASSET_FILEPATHS),
                main_op=tf.group(assign_filename))
            builder.save()
    shutil.rmtree(os.path.dirname(asset), ignore_errors=True)
    return _place(staging, os.path.join(str(base_path), name, version_dir))


class _HalfPlusTwo(tf.Module):
    def __init__(self, b, asset):
        super().__init__()
        self.a = tf.Variable(0.5, name="a")
        self.b = tf.Variable(float(b), name="b")
        self.asset = tf.saved_model.Asset(asset)

    def _x(self, serialized):
        return tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([1], tf.float32)})["x"]

    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
    def predict(self, x):
        return {"y": self.a * x + self.b}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(self, inputs):
        return {"outputs": self.a * self._x(inputs) + self.b}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs):
        return {"scores": self.a * self._x(inputs) + self.b}


def write_half_plus_two_tf2(base_path, name, version_dir="00000123", b=2.0):
    """half_plus_two as a TF2 SavedModel (tf.saved_model.save of a tf.Module).

    Signatures `serving_default` (`x` float [-1,1] -> `y` = 0.5x + b),
    `regress_x_to_y` and `classify_x_to_y` (serialized tf.Example with feature "x");
    an asset assets/foo.txt.

    Returns:
        The version folder <base_path>/<name>/<version_dir>.
    """
    staging = _staging_dir(base_path, name)
    asset = _asset_source()
    module = _HalfPlusTwo(b, asset)
    tf.saved_model.save(module, staging, signatures={
        "serving_default": module.predict,
        "regress_x_to_y": module.regress,
        "classify_x_to_y": module.classify,
    })
    shutil.rmtree(os.path.dirname(asset), ignore_errors=True)
    return _place(staging, os.path.join(str(base_path), name, version_dir))


def half_plus_two_example(x):
    """A serialized tf.Example with the one-float feature "x" half_plus_two parses."""
    feature = tf.train.Feature(float_list=tf.train.FloatList(value=[float(x)]))
    return tf.train.Example(features=tf.train.Features(feature={"x": feature})).SerializeToString()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server_process(*flags):
    """A fresh `zoo-model-server` process (the console script) started with TF Serving's
    `flags`, stopped with SIGTERM as a container runtime stops it."""
    script = os.path.join(os.path.dirname(sys.executable), "zoo-model-server")
    process = subprocess.Popen([script, *flags], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()

