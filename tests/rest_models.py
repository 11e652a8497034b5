"""A tiny SavedModel and a running server for the REST and client tests.

`save_toy(base_path)` writes `<base_path>/toy/{1,2}/`, a 4x4 grayscale "classifier"
with the zoo's signatures (serving_default on pixels, image_bytes on PNG bytes,
classify on tf.Example) plus `regress` and `echo`, which covers the other dtypes
(int32, bool, string, float64, *_bytes and non-UTF-8 outputs). `start_server` serves
it with `serving.ModelServer` (gRPC and REST on free ports, labels stable=1 and
canary=2, Prometheus metrics on), and `reference` is the SavedModel's own answer.

`call(server, method, path, body)` makes one HTTP request to a REST port, and
`good_request_works(server, model_dir)` checks that the toy model still answers one
correctly (what every bad or hostile request is followed by).

`save_slow(base_path)` writes `<base_path>/slow/1/`, a model that takes as long as it
is told: each signature spins in the graph (a tf.while_loop on tf.timestamp(), which
TF Serving loads, unlike a tf.py_function) for the largest `seconds` it is given, on
every API (predict, classify, regress). `start_slow_server` serves it.
"""

from __future__ import annotations

import functools
import http.client
import io
import json
import os

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

LABELS = ["cat", "dog", "bird"]
MODEL = "toy"


class _Toy(tf.Module):
    def __init__(self, seed: int):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.w = tf.Variable(rng.normal(size=(16, 3)).astype("float32"))
        self.labels = tf.constant(LABELS)

    def _classify(self, image):
        probabilities = tf.nn.softmax(tf.reshape(image, [-1, 16]) / 255.0 @ self.w)
        class_id = tf.argmax(probabilities, axis=-1)
        return {"probabilities": probabilities, "class_id": class_id,
                "label": tf.gather(self.labels, class_id)}

    def _features(self, inputs):
        spec = {"image": tf.io.FixedLenFeature([16], tf.float32)}
        return tf.reshape(tf.io.parse_example(inputs, spec)["image"], [-1, 4, 4, 1])

    @tf.function(input_signature=[tf.TensorSpec([None, 4, 4, 1], tf.float32, name="image")])
    def serving_default(self, image):
        return self._classify(image)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def image_bytes(self, image_bytes):
        def decode(data):
            image = tf.io.decode_image(data, channels=1, expand_animations=False)
            return tf.image.resize(tf.cast(image, tf.float32), [4, 4])

        return self._classify(tf.map_fn(decode, image_bytes,
                                        fn_output_signature=tf.TensorSpec([4, 4, 1], tf.float32)))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs):
        out = self._classify(self._features(inputs))
        rows = tf.shape(inputs)[0]
        return {"classes": tf.tile(self.labels[tf.newaxis], [rows, 1]), "scores": out["probabilities"]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(self, inputs):
        return {"outputs": tf.reduce_mean(tf.reshape(self._features(inputs), [-1, 16]), axis=-1)}

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.int32, name="count"),
        tf.TensorSpec([None], tf.bool, name="flag"),
        tf.TensorSpec([None], tf.string, name="text"),
        tf.TensorSpec([None, 2], tf.float64, name="pair"),
    ])
    def echo(self, count, flag, text, pair):
        return {
            "count": count * 2,
            "flag": tf.logical_not(flag),
            "text": text,
            "text_bytes": text,
            "raw": tf.strings.join([text, tf.constant(b"\xff")]),
            "pair": pair * 2.0,
        }


def _spin(seconds):
    """Waits in the graph until `seconds` (a scalar) have passed; returns the time waited."""
    start = tf.timestamp()
    stop = start + tf.cast(seconds, tf.float64)
    now, = tf.while_loop(lambda now: now < stop, lambda now: (tf.timestamp(),), (start,))
    return tf.cast(now - start, tf.float32)


class _Slow(tf.Module):
    def _seconds(self, inputs):
        spec = {"seconds": tf.io.FixedLenFeature([], tf.float32)}
        return tf.io.parse_example(inputs, spec)["seconds"]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="seconds")])
    def serving_default(self, seconds):
        waited = _spin(tf.reduce_max(seconds))
        return {"waited": tf.fill(tf.shape(seconds), waited)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs):
        seconds = self._seconds(inputs)
        waited = _spin(tf.reduce_max(seconds))
        rows = tf.shape(inputs)[0]
        return {"classes": tf.fill([rows, 1], "waited"), "scores": tf.fill([rows, 1], waited)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(self, inputs):
        seconds = self._seconds(inputs)
        return {"outputs": tf.fill(tf.shape(seconds), _spin(tf.reduce_max(seconds)))}


def _mark_methods(path, methods):
    # tf.saved_model.save marks every signature "predict"; TF Serving's Classify and
    # Regress want their own method names, as a TF1 export or the zoo's export writes.
    pb = os.path.join(path, "saved_model.pb")
    with open(pb, "rb") as f:
        saved = saved_model_pb2.SavedModel.FromString(f.read())
    sigs = saved.meta_graphs[0].signature_def
    for name, method in methods.items():
        sigs[name].method_name = method
    with open(pb, "wb") as f:
        f.write(saved.SerializeToString())


SLOW_MODEL = "slow"


def save_slow(base_path) -> str:
    """Writes <base_path>/slow/1/: every signature waits as many seconds as it is asked."""
    model_dir = os.path.join(str(base_path), SLOW_MODEL)
    module = _Slow()
    path = os.path.join(model_dir, "1")
    tf.saved_model.save(module, path, signatures={
        name: getattr(module, name) for name in ("serving_default", "classify", "regress")})
    _mark_methods(path, {"classify": "tensorflow/serving/classify", "regress": "tensorflow/serving/regress"})
    return model_dir


def start_slow_server(model_dir, **kwargs):
    """A started `serving.ModelServer` for the slow model on 127.0.0.1, free ports."""
    import serving

    config = f"""model_config_list {{ config {{
      name: "{SLOW_MODEL}" base_path: "{model_dir}" model_platform: "tensorflow"
    }} }}"""
    options = dict(config=config, port=0, host="127.0.0.1", rest_api_port=0)
    options.update(kwargs)
    return serving.ModelServer(**options).start()


def save_toy(base_path, versions=(1, 2)) -> str:
    """Writes <base_path>/toy/<version>/ for each version (weights differ per version)."""
    model_dir = os.path.join(str(base_path), MODEL)
    for version in versions:
        module = _Toy(seed=version)
        path = os.path.join(model_dir, str(version))
        tf.saved_model.save(module, path, signatures={
            name: getattr(module, name)
            for name in ("serving_default", "image_bytes", "classify", "regress", "echo")
        })
        _mark_methods(path, {"classify": "tensorflow/serving/classify",
                             "regress": "tensorflow/serving/regress"})
    return model_dir


def png_bytes(pixels) -> bytes:
    """A grayscale PNG of `pixels` ([H, W] uint8)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


@functools.lru_cache(maxsize=None)
def _loaded(path):
    return tf.saved_model.load(path)


def reference(model_dir, version, signature, **inputs) -> dict:
    """The SavedModel's own answer, in process: what the server must return."""
    fn = _loaded(os.path.join(str(model_dir), str(version))).signatures[signature]
    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


PROMETHEUS_PATH = "/monitoring/prometheus/metrics"


def start_server(model_dir, **kwargs):
    """A started `serving.ModelServer` for the toy model on 127.0.0.1, free ports."""
    import serving

    config = f"""model_config_list {{ config {{
      name: "{MODEL}" base_path: "{model_dir}" model_platform: "tensorflow"
      model_version_policy {{ all {{}} }}
      version_labels {{ key: "stable" value: 1 }} version_labels {{ key: "canary" value: 2 }}
    }} }}"""
    options = dict(config=config, port=0, host="127.0.0.1", rest_api_port=0,
                   allow_version_labels_for_unavailable_models=True,
                   monitoring_config=f'prometheus_config {{ enable: true path: "{PROMETHEUS_PATH}" }}')
    options.update(kwargs)
    return serving.ModelServer(**options).start()




IMAGE = (np.arange(32, dtype=np.float32).reshape(2, 4, 4, 1) * 7) % 255


def call(server, method, path, body=None, headers=None, conn=None):
    """(status, JSON or text) for one request to `server.port` on 127.0.0.1."""
    c = conn or http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    if conn is None:
        c.close()
    ctype = r.getheader("Content-Type", "")
    return r.status, (json.loads(data) if ctype.startswith("application/json") else data.decode())


def good_request_works(server, model_dir):
    """Asserts that the toy model at `server` answers a :predict as the SavedModel does."""
    status, doc = call(server, "POST", "/v1/models/toy:predict", {"instances": IMAGE.tolist()})
    assert status == 200, doc
    want = reference(model_dir, 2, "serving_default", image=IMAGE)
    np.testing.assert_allclose([p["probabilities"] for p in doc["predictions"]], want["probabilities"],
                               rtol=1e-6)
