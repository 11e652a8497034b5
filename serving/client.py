"""`serving.Client`: one client for TF Serving's gRPC and REST APIs, numpy in and out.

It talks to anything that speaks TF Serving's API (`zoo-model-server`, the
`tensorflow/serving` container) and hides the protocol: the same call gives the same
numpy arrays over gRPC and over REST.

    from serving import Client

    client = Client("localhost:8500", "simple_cnn")            # gRPC
    client.wait_until_available(timeout=60)
    out = client.predict({"image": images})                     # dict of numpy arrays
    out["label"], out["probabilities"]
    client.predict({"image_bytes": [png]}, signature="image_bytes")
    client.classify([{"image": pixels.ravel()}])                # [[(label, score), ...]]

    rest = Client("localhost:8501", "simple_cnn", protocol="rest")

Inputs given as lists or as arrays of another width (float64 for a float32 input) are
cast to the signature's dtypes, read once from the model's metadata. Calls have a
deadline (`timeout`), are retried on UNAVAILABLE with exponential backoff (`retries`),
and gRPC's 4 MB message limits are lifted for large tensors. A failed call raises
`ClientError` (a `serving.errors.ServingError`) with the gRPC status code and the
server's message; over REST it also carries the HTTP status.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import random
import socket
import threading
import time
import urllib.parse

import grpc
import numpy as np
from google.protobuf import json_format

from serving import json_tensors, tensors
from serving.errors import ServingError

__all__ = ["Client", "ClientError"]

logger = logging.getLogger(__name__)

PROTOCOLS = ("grpc", "rest")
DEFAULT_SIGNATURE = "serving_default"

# The inverse of TF Serving's gRPC code -> HTTP status mapping (serving.rest.HTTP_STATUS),
# choosing the most common code where several share a status.
_CODE_OF_HTTP = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    500: grpc.StatusCode.INTERNAL,
    501: grpc.StatusCode.UNIMPLEMENTED,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def _text(array):
    """A string output as str, where all of it is UTF-8 (labels, tokens); other arrays as they are."""
    if not isinstance(array, np.ndarray) or array.dtype != object or not array.size:
        return array
    try:
        return np.vectorize(lambda v: v.decode("utf-8") if isinstance(v, bytes) else v, otypes=[object])(array)
    except UnicodeDecodeError:
        return array


class ClientError(ServingError):
    """A call that failed: `code` (grpc.StatusCode), the server's `message`, and over
    REST the `http_status`.

    Example:
        try:
            client.predict({"image": x}, version=7)
        except ClientError as e:
            if e.code == grpc.StatusCode.NOT_FOUND: ...
    """

    def __init__(self, code: grpc.StatusCode, message: str, http_status: int | None = None):
        super().__init__(code, message)
        self.http_status = http_status

    def __repr__(self):
        extra = f", http_status={self.http_status}" if self.http_status is not None else ""
        return f"ClientError({self.code!r}, {self.message!r}{extra})"


# ---------------------------------------------------------------------------
# request values as numpy arrays
# ---------------------------------------------------------------------------


def _to_bytes(x) -> bytes:
    if isinstance(x, bytes):
        return x
    if isinstance(x, str):
        return x.encode("utf-8")
    raise TypeError(f"a string tensor holds str or bytes, not {type(x).__name__}")


def _as_array(value, dtype=None) -> np.ndarray:
    """`value` as an array, cast to `dtype` (the signature's numpy dtype) when no value
    changes kind or overflows; otherwise as it is, for the server to name the mismatch."""
    if isinstance(value, (bytes, str)) or (isinstance(value, (list, tuple)) and _has_strings(value)):
        # An object array keeps bytes whole (a numpy "S" array drops trailing NULs).
        return np.array(value, dtype=object)
    array = np.asarray(value)
    if array.dtype.kind in "SU":
        array = array.astype(object)
    if dtype is None or array.dtype == dtype or array.dtype.kind == "O" or np.dtype(dtype).kind == "O":
        return array
    # Lists arrive as float64/int64, and arrays often come wider than the model takes.
    src, dst = array.dtype, np.dtype(dtype)
    if src.kind in "iuf" and dst.kind == "f":
        finite = np.abs(array[np.isfinite(array)]) if src.kind == "f" else np.abs(array)
        if finite.size == 0 or finite.max() <= np.finfo(dst).max:
            return array.astype(dst)
    elif src.kind in "iu" and dst.kind in "iu":
        info = np.iinfo(dst)
        if array.size == 0 or (array.min() >= info.min and array.max() <= info.max):
            return array.astype(dst)
    return array


# ---------------------------------------------------------------------------
# transports: the RPCs over gRPC or REST
# ---------------------------------------------------------------------------


class _GrpcTransport:
    def __init__(self, target: str, max_message_bytes: int, options=()):
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        opts = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ] + list(options)
        self.target = target
        self._channel = grpc.insecure_channel(target, options=opts)
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._model = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def call(self, method: str, request, timeout: float):
        stub = self._model if method == "GetModelStatus" else self._predict
        try:
            return getattr(stub, method)(request, timeout=timeout)
        except grpc.RpcError as e:
            raise ClientError(e.code(), e.details() or str(e)) from None

    def predict(self, spec, arrays: dict, output_filter, signature: dict, timeout: float) -> dict:
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest(model_spec=spec, output_filter=list(output_filter or []))
        for name, array in arrays.items():
            tensors.fill(request.inputs[name], array, as_content=True)
        response = self.call("Predict", request, timeout)
        return {name: _writable(tensors.to_ndarray(t, name, max_bytes=None))
                for name, t in response.outputs.items()}

    def close(self):
        self._channel.close()


def _writable(array: np.ndarray) -> np.ndarray:
    # An answer in tensor_content decodes to a read-only view of the response's bytes;
    # the caller owns what it gets back and may write to it.
    return array if array.flags.writeable else array.copy()


class _RestTransport:
    """TF Serving's REST API behind the same calls as gRPC (protos in and out, but
    numpy for predict)."""

    def __init__(self, target: str):
        url = target if "://" in target else f"http://{target}"
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"REST target must be HOST:PORT or http(s)://HOST:PORT[/PREFIX], got {target!r}")
        self.target = target
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._local = threading.local()  # one keep-alive connection per thread
        self._connections = set()
        self._lock = threading.Lock()

    def close(self):
        with self._lock:
            connections, self._connections = self._connections, set()
        for conn in connections:
            conn.close()
        self._local = threading.local()

    def _drop(self):
        """Closes this thread's connection (the next request opens a new one)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
            with self._lock:
                self._connections.discard(conn)

    def _connection(self, timeout: float):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = self._local.conn = cls(self._host, self._port, timeout=timeout)
            with self._lock:
                self._connections.add(conn)
        conn.timeout = timeout
        if conn.sock is None:
            conn.connect()
            # Requests are small and answered at once: no Nagle delay on either write.
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        else:
            conn.sock.settimeout(timeout)
        return conn

    def request(self, method: str, path: str, body: bytes | None, timeout: float):
        """The parsed JSON answer of one HTTP exchange; a non-200 answer raises its error,
        a connection that fails raises UNAVAILABLE, a timeout DEADLINE_EXCEEDED."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in (0, 1):
            conn = getattr(self._local, "conn", None)
            reused = conn is not None and conn.sock is not None
            try:
                conn = self._connection(timeout)
                conn.request(method, self._prefix + path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                if response.will_close:
                    self._drop()
                break
            except TimeoutError:
                self._drop()
                raise ClientError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                  f"Deadline Exceeded: no answer from {self.target} in {timeout:g} s") from None
            except (OSError, http.client.HTTPException) as e:
                self._drop()
                # A kept-alive connection the server has since closed: try once on a new one.
                if attempt == 0 and reused and isinstance(
                        e, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
                    continue
                raise ClientError(grpc.StatusCode.UNAVAILABLE,
                                  f"failed to connect to {self.target}: {e}") from None
        try:
            doc = json.loads(data) if data else {}
        except ValueError:
            doc = {"error": data.decode("utf-8", "replace")}
        if response.status != 200:
            message = doc.get("error") if isinstance(doc, dict) else None
            raise ClientError(_CODE_OF_HTTP.get(response.status, grpc.StatusCode.UNKNOWN),
                              message or f"HTTP {response.status} {response.reason}",
                              http_status=response.status)
        return doc

    def call(self, method: str, request, timeout: float):
        return getattr(self, "_" + method)(request, timeout)

    @staticmethod
    def _path(spec) -> str:
        path = "/v1/models/" + urllib.parse.quote(spec.name, safe="")
        if spec.HasField("version"):
            path += f"/versions/{spec.version.value}"
        elif spec.version_label:
            path += "/labels/" + urllib.parse.quote(spec.version_label, safe="")
        return path

    def predict(self, spec, arrays: dict, output_filter, signature: dict, timeout: float) -> dict:
        # Columnar ("inputs") format: inputs need not share a batch size. Floats go as
        # Python writes doubles: fast, and exact once the server narrows them again.
        inputs_json = (f"{json.dumps(n)}: {json_tensors.tensor_json(a, n, short_floats=False)}"
                       for n, a in arrays.items())
        body = ('{"signature_name": ' + json.dumps(spec.signature_name) + ', "inputs": {'
                + ", ".join(inputs_json) + "}}")
        doc = self.request("POST", self._path(spec) + ":predict", body.encode(), timeout)
        outputs = doc.get("outputs")
        if not isinstance(outputs, dict) or (set(outputs) == {"b64"} and "b64" not in signature["outputs"]):
            outputs = {next(iter(signature["outputs"]), "outputs"): outputs}  # a lone output comes unnamed
        return {
            name: _array_from_json(value, signature["outputs"].get(name, {}).get("dtype"))
            for name, value in outputs.items() if not output_filter or name in output_filter
        }

    def _examples_body(self, request) -> bytes:
        which = request.input.WhichOneof("kind")
        doc = {"signature_name": request.model_spec.signature_name}
        if which == "example_list_with_context":
            lst = request.input.example_list_with_context
            doc["context"] = json_tensors.example_json(lst.context)
            doc["examples"] = [json_tensors.example_json(e) for e in lst.examples]
        else:
            doc["examples"] = [json_tensors.example_json(e) for e in request.input.example_list.examples]
        return json.dumps(doc).encode()

    def _Classify(self, request, timeout):
        from tensorflow_serving.apis import classification_pb2

        doc = self.request("POST", self._path(request.model_spec) + ":classify",
                           self._examples_body(request), timeout)
        response = classification_pb2.ClassificationResponse()
        response.model_spec.CopyFrom(request.model_spec)
        for row in doc.get("results", []):
            c = response.result.classifications.add()
            for label, score in row:
                c.classes.add(label=label, score=score)
        return response

    def _Regress(self, request, timeout):
        from tensorflow_serving.apis import regression_pb2

        doc = self.request("POST", self._path(request.model_spec) + ":regress",
                           self._examples_body(request), timeout)
        response = regression_pb2.RegressionResponse()
        response.model_spec.CopyFrom(request.model_spec)
        for value in doc.get("results", []):
            response.result.regressions.add(value=value)
        return response

    def _GetModelMetadata(self, request, timeout):
        from tensorflow_serving.apis import get_model_metadata_pb2

        doc = self.request("GET", self._path(request.model_spec) + "/metadata", None, timeout)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        json_format.ParseDict(doc.get("model_spec", {}), response.model_spec, ignore_unknown_fields=True)
        sigs = get_model_metadata_pb2.SignatureDefMap()
        json_format.ParseDict(doc.get("metadata", {}).get("signature_def", {}), sigs,
                              ignore_unknown_fields=True)
        response.metadata["signature_def"].Pack(sigs)
        return response

    def _GetModelStatus(self, request, timeout):
        from tensorflow_serving.apis import get_model_status_pb2

        doc = self.request("GET", self._path(request.model_spec), None, timeout)
        return json_format.ParseDict(doc, get_model_status_pb2.GetModelStatusResponse(),
                                     ignore_unknown_fields=True)


def _array_from_json(value, dtype) -> np.ndarray:
    """A JSON tensor from a REST answer as numpy, typed as the signature says."""
    if dtype == object or dtype is None and _has_strings(value):
        return np.array(_decode_strings(value), dtype=object)
    return np.asarray(value, dtype=dtype)


def _has_strings(value) -> bool:
    while isinstance(value, (list, tuple)) and value:
        value = value[0]
    return isinstance(value, (str, bytes, dict))


def _decode_strings(value):
    if isinstance(value, list):
        return [_decode_strings(v) for v in value]
    if isinstance(value, dict):
        return base64.b64decode(value["b64"])
    return value.encode("utf-8")


def make_example(features) -> "tf.train.Example":
    """A tf.train.Example from {name: value or list}: floats, ints/bools, str/bytes."""
    from tensorflow.core.example import example_pb2

    if isinstance(features, example_pb2.Example):
        return features
    if isinstance(features, bytes):
        return example_pb2.Example.FromString(features)
    example = example_pb2.Example()
    for name, value in features.items():
        feature = example.features.feature[name]
        array = _as_array(value).ravel()  # bytes stay whole in an object array
        if array.dtype.kind == "f":
            feature.float_list.value.extend(array.astype(np.float32).tolist())
        elif array.dtype.kind in "iub":
            feature.int64_list.value.extend(array.astype(np.int64).tolist())
        elif array.size == 0:
            pass
        else:
            feature.bytes_list.value.extend(_to_bytes(x) for x in array.astype(object))
    return example


# ---------------------------------------------------------------------------
# the client
# ---------------------------------------------------------------------------


class Client:
    """A client for one model on a TF Serving–compatible server, over gRPC or REST.

    Args:
        target: "HOST:PORT" (gRPC also takes "unix:/path"; REST also
            "http(s)://HOST:PORT[/PREFIX]").
        model_name: the model to ask.
        protocol: "grpc" (TF Serving's port 8500) or "rest" (port 8501).
        timeout: the deadline of each attempt, in seconds.
        retries: how often to retry a call that failed with UNAVAILABLE (server
            starting, restarting, or unreachable), waiting `backoff` * 2**n seconds.
        max_message_bytes: gRPC send and receive limit; -1 lifts it.
        grpc_options: further gRPC channel arguments, as (key, value) pairs.

    Example:
        >>> client = Client("localhost:8500", "simple_cnn")
        >>> out = client.predict({"image": np.zeros([1, 28, 28, 1])})
        >>> out["label"]
        array([b'0'], dtype=object)
    """

    def __init__(self, target: str, model_name: str, *, protocol: str = "grpc", timeout: float = 30.0,
                 retries: int = 3, backoff: float = 0.1, max_message_bytes: int = -1,
                 grpc_options=()):
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        if not model_name:
            raise ValueError("model_name is required")
        self.target = target
        self.model_name = model_name
        self.protocol = protocol
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self._transport = (_GrpcTransport(target, max_message_bytes, grpc_options) if protocol == "grpc"
                           else _RestTransport(target))
        self._signatures = {}  # (version, label, signature) -> parsed signature
        self._lock = threading.Lock()

    def __repr__(self):
        return f"Client({self.target!r}, {self.model_name!r}, protocol={self.protocol!r})"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self._transport.close()

    # -- requests -------------------------------------------------------------

    def _spec(self, version=None, label=None, signature=""):
        from tensorflow_serving.apis import model_pb2

        if version is not None and label is not None:
            raise ValueError("give a version or a label, not both")
        spec = model_pb2.ModelSpec(name=self.model_name, signature_name=signature or "")
        if version is not None:
            spec.version.value = int(version)
        if label is not None:
            spec.version_label = str(label)
        return spec

    def _call(self, method: str, request, timeout=None, retries=None):
        timeout = self.timeout if timeout is None else timeout
        return self._retry(method, lambda: self._transport.call(method, request, timeout), retries)

    def _retry(self, method: str, attempt_fn, retries=None):
        """One call with a deadline per attempt, retried on UNAVAILABLE with backoff."""
        retries = self.retries if retries is None else retries
        for attempt in range(retries + 1):
            try:
                return attempt_fn()
            except ClientError as e:
                if e.code != grpc.StatusCode.UNAVAILABLE or attempt == retries:
                    raise
                delay = min(self.backoff * 2 ** attempt, 5.0) * random.uniform(0.5, 1.0)
                logger.debug("%s on %s unavailable (%s); retrying in %.2f s",
                             method, self.target, e.message, delay)
                time.sleep(delay)

    def _signature(self, spec) -> dict:
        """The (cached) signature `spec` asks for: {"inputs"|"outputs": {name: {dtype, shape}}}.

        A signature the model lacks is {} here: the request goes out as it is and the
        server answers with its own error.
        """
        key = (spec.version.value if spec.HasField("version") else None, spec.version_label,
               spec.signature_name or DEFAULT_SIGNATURE)
        with self._lock:
            if key in self._signatures:
                return self._signatures[key]
        signature = self.metadata(version=key[0], label=key[1] or None)["signatures"].get(
            key[2], {"inputs": {}, "outputs": {}})
        with self._lock:
            self._signatures[key] = signature
        return signature

    def predict(self, inputs, signature: str = DEFAULT_SIGNATURE, version=None, label=None,
                output_filter=None) -> dict:
        """Runs a predict signature: {input name: array or list} -> {output name: array}.

        Args:
            inputs: one value per input of the signature; lists and arrays of another
                width are cast to the signature's dtypes. A signature with one input
                also takes the value alone (`client.predict(images)`).
            signature: the signature key, e.g. "serving_default" or "image_bytes".
            version, label: a specific version or version label (default: latest).
            output_filter: only these outputs (default: all).

        Returns:
            dict of numpy arrays; strings are object arrays of str (of bytes where an
            output is not UTF-8 text, such as encoded images).
        """
        spec = self._spec(version, label, signature)
        sig = self._signature(spec)
        if not isinstance(inputs, dict):
            if len(sig["inputs"]) != 1:
                raise TypeError(f"Signature {signature!r} takes {len(sig['inputs'])} inputs "
                                f"({', '.join(sig['inputs'])}): pass a dict {{input name: value}}.")
            inputs = {next(iter(sig["inputs"])): inputs}
        arrays = {name: _as_array(value, sig["inputs"].get(name, {}).get("dtype"))
                  for name, value in inputs.items()}
        try:
            outputs = self._retry("Predict", lambda: self._transport.predict(
                spec, arrays, output_filter, sig, self.timeout))
            return {name: _text(value) for name, value in outputs.items()}
        except ClientError:
            self._forget()  # a new model version may have brought a new signature
            raise

    def _forget(self):
        with self._lock:
            self._signatures.clear()

    def _example_request(self, cls, examples, context, signature, version, label):
        request = cls(model_spec=self._spec(version, label, signature))
        if context is not None:
            lst = request.input.example_list_with_context
            lst.context.CopyFrom(make_example(context))
        else:
            lst = request.input.example_list
        for e in examples:
            lst.examples.add().CopyFrom(make_example(e))
        return request

    def classify(self, examples, signature: str = "classify", version=None, label=None,
                 context=None) -> list:
        """Runs a classification signature on tf.Examples (TF Serving's Classify).

        Args:
            examples: tf.train.Example protos or dicts {feature: value or list}.
            signature: the classification signature (the zoo exports "classify").
            context: features shared by all examples (ExampleListWithContext).

        Returns:
            one list of (label, score) per example.
        """
        from tensorflow_serving.apis import classification_pb2

        request = self._example_request(classification_pb2.ClassificationRequest, examples, context,
                                        signature, version, label)
        response = self._call("Classify", request)
        return [[(c.label, c.score) for c in row.classes] for row in response.result.classifications]

    def regress(self, examples, signature: str = "regress", version=None, label=None,
                context=None) -> np.ndarray:
        """Runs a regression signature on tf.Examples: one float32 value per example."""
        from tensorflow_serving.apis import regression_pb2

        request = self._example_request(regression_pb2.RegressionRequest, examples, context,
                                        signature, version, label)
        response = self._call("Regress", request)
        return np.array([r.value for r in response.result.regressions], dtype=np.float32)

    def metadata(self, version=None, label=None) -> dict:
        """The model's signatures, as one dict whatever the protocol:

            {"model_spec": {"name": ..., "version": 3},
             "signatures": {"serving_default": {"method_name": ...,
                 "inputs": {"image": {"dtype": float32, "shape": [None, 28, 28, 1]}},
                 "outputs": {...}}}}
        """
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=self._spec(version, label), metadata_field=["signature_def"])
        response = self._call("GetModelMetadata", request)
        sigs = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(sigs)
        spec = {"name": response.model_spec.name,
                "version": response.model_spec.version.value if response.model_spec.HasField("version") else None}
        return {
            "model_spec": spec,
            "signatures": {
                key: {
                    "method_name": sig.method_name,
                    "inputs": {n: _tensor_info(i) for n, i in sig.inputs.items()},
                    "outputs": {n: _tensor_info(i) for n, i in sig.outputs.items()},
                }
                for key, sig in sorted(sigs.signature_def.items())
            },
        }

    def status(self, version=None, label=None) -> list:
        """The model's versions: [{"version", "state", "error_code", "error_message"}]."""
        return self._status(version, label)

    def _status(self, version, label, timeout=None, retries=None) -> list:
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest(model_spec=self._spec(version, label))
        response = self._call("GetModelStatus", request, timeout, retries)
        states = get_model_status_pb2.ModelVersionStatus.State
        return [
            {
                "version": s.version,
                "state": states.Name(s.state),
                "error_code": _code_name(s.status.error_code),
                "error_message": s.status.error_message,
            }
            for s in response.model_version_status
        ]

    def wait_until_available(self, timeout: float = 60.0, version=None, label=None,
                             poll_interval: float = 0.2) -> list:
        """Waits until a version of the model is AVAILABLE; returns its status().

        Raises:
            TimeoutError: naming the last state or error seen.
        """
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            try:
                # This loop is the retry: each try gets only the time that is left.
                left = max(0.05, min(self.timeout, deadline - time.monotonic()))
                states = self._status(version, label, timeout=left, retries=0)
                if any(s["state"] == "AVAILABLE" for s in states):
                    return states
                last = ", ".join(f"version {s['version']} {s['state']}"
                                 + (f" ({s['error_message']})" if s["error_message"] else "")
                                 for s in states) or "no versions"
            except ClientError as e:
                if e.code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND,
                                  grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise
                last = str(e)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"model {self.model_name!r} at {self.target} not available after "
                                   f"{timeout:g} s: {last}")
            time.sleep(poll_interval)


def _code_name(value: int) -> str:
    from serving.errors import code_from_int

    return code_from_int(value).name


def _tensor_info(info) -> dict:
    try:
        dtype = tensors.numpy_dtype(info.dtype)
    except TypeError:
        dtype = None
    shape = None if info.tensor_shape.unknown_rank else [
        None if d.size < 0 else d.size for d in info.tensor_shape.dim]
    return {"dtype": dtype, "shape": shape}
