"""Tiny SavedModels for the REST and client tests, and a stand-in core.

`save_toy(base_path)` writes `<base_path>/toy/{1,2}/`, a 4x4 grayscale "classifier"
with the zoo's signatures (serving_default on pixels, image_bytes on PNG bytes,
classify on tf.Example) plus `regress` and `echo`, which covers the other dtypes.
`ToyCore` answers the core's methods from those SavedModels directly, for tests that
need a core that is slow or broken on purpose.
"""

from __future__ import annotations

import io
import os
import threading
import time

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
    regression_pb2,
)

from serving.errors import ServingError

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
        # tf.saved_model.save marks every signature "predict"; TF Serving's Classify and
        # Regress want their own method names, as a TF1 export or the zoo's export writes.
        pb = os.path.join(path, "saved_model.pb")
        saved = saved_model_pb2.SavedModel.FromString(open(pb, "rb").read())
        sigs = saved.meta_graphs[0].signature_def
        sigs["classify"].method_name = "tensorflow/serving/classify"
        sigs["regress"].method_name = "tensorflow/serving/regress"
        with open(pb, "wb") as f:
            f.write(saved.SerializeToString())
    return model_dir


def png_bytes(pixels) -> bytes:
    """A grayscale PNG of `pixels` ([H, W] uint8)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def reference(model_dir, version, signature, **inputs) -> dict:
    """The SavedModel's own answer, in process: what the server must return."""
    fn = tf.saved_model.load(os.path.join(str(model_dir), str(version))).signatures[signature]
    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


class ToyCore:
    """The core's methods answered straight from the SavedModels under a model dir.

    `delay` slows predict down (for timeouts); `fail_with` makes predict raise.
    """

    def __init__(self, model_dir, name=MODEL):
        self.name = name
        self.delay = 0.0
        self.fail_with = None
        self._models = {}
        self._sigs = {}
        self._lock = threading.Lock()
        for entry in sorted(os.listdir(model_dir)):
            path = os.path.join(model_dir, entry)
            self._models[int(entry)] = tf.saved_model.load(path)
            saved = saved_model_pb2.SavedModel.FromString(open(os.path.join(path, "saved_model.pb"), "rb").read())
            self._sigs[int(entry)] = saved.meta_graphs[0].signature_def

    def _version(self, spec) -> int:
        if spec.name != self.name:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({spec.name})")
        if spec.HasField("version"):
            if spec.version.value not in self._models:
                raise ServingError(grpc.StatusCode.NOT_FOUND,
                               f"Servable not found for request: Specific({spec.name}, {spec.version.value})")
            return spec.version.value
        if spec.version_label:
            labels = {"stable": min(self._models), "canary": max(self._models)}
            if spec.version_label not in labels:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"Unrecognized servable version label: {spec.version_label}")
            return labels[spec.version_label]
        return max(self._models)

    def _run(self, spec, tensors: dict):
        version = self._version(spec)
        name = spec.signature_name or "serving_default"
        if name not in self._sigs[version]:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f'Serving signature name: "{name}" not found in signature def')
        expected = set(self._sigs[version][name].inputs)
        if set(tensors) != expected:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"input size does not match signature: {len(tensors)}!={len(expected)} "
                           f"len({{{','.join(sorted(tensors))}}}) != len({{{','.join(sorted(expected))}}})")
        fn = self._models[version].signatures[name]
        try:
            out = fn(**{k: tf.constant(v) for k, v in tensors.items()})
        except (tf.errors.InvalidArgumentError, TypeError, ValueError) as e:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, str(e).splitlines()[0]) from None
        return version, name, {k: v.numpy() for k, v in out.items()}

    def predict(self, request):
        if self.delay:
            time.sleep(self.delay)
        if self.fail_with is not None:
            raise self.fail_with
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        version, name, out = self._run(request.model_spec, inputs)
        response = predict_pb2.PredictResponse()
        response.model_spec.name, response.model_spec.signature_name = self.name, name
        response.model_spec.version.value = version
        for k, v in out.items():
            if not request.output_filter or k in request.output_filter:
                response.outputs[k].CopyFrom(tf.make_tensor_proto(v))
        return response

    def _examples(self, request):
        which = request.input.WhichOneof("kind")
        if which == "example_list":
            return [e.SerializeToString() for e in request.input.example_list.examples]
        context = request.input.example_list_with_context.context
        out = []
        for e in request.input.example_list_with_context.examples:
            merged = type(e)()
            merged.CopyFrom(context)
            merged.MergeFrom(e)
            out.append(merged.SerializeToString())
        return out

    def classify(self, request):
        version, _, out = self._run(request.model_spec, {"inputs": np.array(self._examples(request), object)})
        response = classification_pb2.ClassificationResponse()
        response.model_spec.name = self.name
        response.model_spec.version.value = version
        for classes, scores in zip(out["classes"], out["scores"]):
            c = response.result.classifications.add()
            for label, score in zip(classes, scores):
                c.classes.add(label=label.decode(), score=float(score))
        return response

    def regress(self, request):
        version, _, out = self._run(request.model_spec, {"inputs": np.array(self._examples(request), object)})
        response = regression_pb2.RegressionResponse()
        response.model_spec.name = self.name
        response.model_spec.version.value = version
        for value in out["outputs"]:
            response.result.regressions.add(value=float(value))
        return response

    def get_model_metadata(self, request):
        version = self._version(request.model_spec)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = self.name
        response.model_spec.version.value = version
        sigs = get_model_metadata_pb2.SignatureDefMap()
        for k, v in self._sigs[version].items():
            if not k.startswith("__"):
                sigs.signature_def[k].CopyFrom(v)
        response.metadata["signature_def"].Pack(sigs)
        return response

    def get_model_status(self, request):
        spec = request.model_spec
        if spec.name != self.name:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {spec.name}")
        versions = [self._version(spec)] if spec.HasField("version") or spec.version_label else sorted(self._models)
        response = get_model_status_pb2.GetModelStatusResponse()
        for v in versions:
            s = response.model_version_status.add(version=v, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE)
            s.status.error_code = 0
        return response


def serve_grpc(core, port=0):
    """A bare gRPC front for `core` (PredictionService + ModelService): (server, port)."""
    from concurrent import futures

    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    def unary(fn):
        def handler(self, request, context):
            try:
                return fn(request)
            except ServingError as e:
                context.abort(e.code, e.message)
        return handler

    class Prediction(prediction_service_pb2_grpc.PredictionServiceServicer):
        Predict = unary(core.predict)
        Classify = unary(core.classify)
        Regress = unary(core.regress)
        GetModelMetadata = unary(core.get_model_metadata)

    class Model(model_service_pb2_grpc.ModelServiceServicer):
        GetModelStatus = unary(core.get_model_status)

    server = grpc.server(futures.ThreadPoolExecutor(8), options=[
        ("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Prediction(), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(Model(), server)
    port = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server, port
