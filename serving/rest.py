"""TF Serving's REST API (`--rest_api_port`) over the transport-independent core.

The routes, JSON shapes, error texts and HTTP status codes follow TF Serving's
`http_rest_api_handler.cc` and `json_tensor.cc`, so that a script written for
`tensorflow_model_server` works unchanged:

    POST /v1/models/NAME[/versions/V|/labels/L]:predict    {"instances": [...]} or {"inputs": ...}
    POST /v1/models/NAME[/versions/V|/labels/L]:classify   {"examples": [...]}
    POST /v1/models/NAME[/versions/V|/labels/L]:regress    {"examples": [...]}
    GET  /v1/models/NAME[/versions/V|/labels/L]            model status
    GET  /v1/models/NAME[/versions/V|/labels/L]/metadata   signature defs

JSON values are converted to tensors with the dtypes of the signature's inputs, as
TF Serving does: a JSON number becomes a float only where the signature wants one,
`{"b64": "..."}` carries bytes, and a mismatch is INVALID_ARGUMENT (HTTP 400) that
names the value and the expected type. Errors come back as `{"error": "..."}`.

    server = start_rest_server(core, "localhost", 0, timeout_ms=30000)
    print(server.port)
    server.stop()
"""

from __future__ import annotations

import base64
import binascii
import http.server
import json
import logging
import re
import socket
import threading
import time
import urllib.parse
from typing import TYPE_CHECKING

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)

from serving.errors import ServingError, code_from_int
from serving.tensors import dtype_string

if TYPE_CHECKING:
    from serving.core import ServerCore

__all__ = ["RestServer", "start_rest_server", "HTTP_STATUS", "tensor_json", "json_value_to_tensor"]

logger = logging.getLogger(__name__)

# Bodies above this are refused with 413 before they are read. TF Serving has no
# limit of its own; a JSON body grows about three times once parsed in Python.
DEFAULT_MAX_BODY_BYTES = 64 << 20
# Deeper JSON than any real tensor needs is refused before it is parsed.
DEFAULT_MAX_JSON_DEPTH = 100
# Connections open at once (one thread each). Past it, the connection idle the longest
# is closed to make room; when none is idle, new connections wait in the listen queue.
DEFAULT_MAX_CONNECTIONS = 128
# Seconds a keep-alive connection may wait for its next request (or a new one for
# its first) before it is closed.
DEFAULT_IDLE_TIMEOUT_S = 30.0
# Seconds a request may pause while its headers or body are being received.
REQUEST_READ_TIMEOUT_S = 60.0
# The most dimensions a JSON tensor may have: numpy iterates arrays of at most 32.
MAX_TENSOR_RANK = 32

# TF Serving's http_server.cc ToHTTPStatusCode.
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}

_PREDICT_RE = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE,
)
_STATUS_RE = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE,
)
_API_PATH_RE = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)
_INT64_MAX = 2**63 - 1
_DEFAULT_SIGNATURE = "serving_default"


class _Error(ServingError):
    """A request that fails in the REST layer itself (bad JSON, bad path)."""


def _invalid(*parts) -> _Error:
    return _Error(grpc.StatusCode.INVALID_ARGUMENT, "".join(str(p) for p in parts))


# ---------------------------------------------------------------------------
# JSON -> tensors (json_tensor.cc FillPredictRequestFromJson and friends)
# ---------------------------------------------------------------------------

# Floating types: numpy dtype, the largest integer they hold exactly, their largest value.
_FLOATS = {
    types_pb2.DT_FLOAT: (np.float32, 2**24 - 1, float(np.finfo(np.float32).max)),
    types_pb2.DT_DOUBLE: (np.float64, 2**53 - 1, float(np.finfo(np.float64).max)),
    types_pb2.DT_HALF: (np.float16, 2**11 - 1, float(np.finfo(np.float16).max)),
}
_INTS = {
    dt: np.dtype(t)
    for dt, t in (
        (types_pb2.DT_INT8, np.int8), (types_pb2.DT_INT16, np.int16), (types_pb2.DT_INT32, np.int32),
        (types_pb2.DT_INT64, np.int64), (types_pb2.DT_UINT8, np.uint8), (types_pb2.DT_UINT16, np.uint16),
        (types_pb2.DT_UINT32, np.uint32), (types_pb2.DT_UINT64, np.uint64),
    )
}


_END = object()


def _json_str(value, limit: int = 200) -> str:
    """A JSON value as TF Serving quotes it in an error message, cut to `limit` characters.

    The text is json.dumps's compact form, written without recursion and only as far as
    `limit`: a value nested thousands deep, or megabytes long, costs no more than a short one.
    """
    out, size = [], 0
    stack = []  # [iterator over a container's items, is it an object, is the next item its first, closer]
    item, have_item = value, True
    while size <= limit:
        if have_item:
            if isinstance(item, list):
                text = "["
                stack.append([iter(item), False, True, "]"])
            elif isinstance(item, dict):
                text = "{"
                stack.append([iter(item.items()), True, True, "}"])
            else:
                text = json.dumps(item, ensure_ascii=False, allow_nan=True)
            out.append(text)
            size += len(text)
        if not stack or size > limit:
            break
        top = stack[-1]
        following = next(top[0], _END)
        if following is _END:
            stack.pop()
            out.append(top[3])
            size += 1
            have_item = False
            continue
        text = "" if top[2] else ","
        top[2] = False
        if top[1]:
            key, item = following
            text += json.dumps(key, ensure_ascii=False) + ":"
        else:
            item = following
        out.append(text)
        size += len(text)
        have_item = True
    text = "".join(out)
    return text if len(text) <= limit else text[:limit] + "..."


def _json_type(value) -> str:
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def _is_b64(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _b64decode(value) -> bytes:
    if not _is_b64(value):
        raise _invalid("JSON Value: ", _json_str(value), " not formatted correctly for base64 data")
    text = value["b64"]
    try:
        # absl::Base64Unescape accepts a missing '=' padding; so do we.
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _invalid("Unable to base64 decode") from None


def _type_error(value, dtype: int) -> _Error:
    return _invalid(
        "JSON Value: ", _json_str(value), " Type: ", _json_type(value),
        " is not of expected type: ", dtype_string(dtype),
    )


def _lossy_error(value, target: str) -> _Error:
    return _invalid("Cannot convert JSON value: ", _json_str(value), " to ", target,
                    " without loss of precision.")


def _check_leaf(value, dtype: int) -> None:
    """Raises TF Serving's error if one JSON leaf value cannot become `dtype`."""
    if dtype in _FLOATS:
        if type(value) not in (int, float):
            raise _type_error(value, dtype)
        _, max_int, max_value = _FLOATS[dtype]
        if type(value) is int and abs(value) > max_int:
            raise _lossy_error(value, dtype_string(dtype))
        if type(value) is float and np.isfinite(value) and abs(value) > max_value:
            raise _lossy_error(value, dtype_string(dtype))
    elif dtype in _INTS:
        info = np.iinfo(_INTS[dtype])
        if type(value) is not int or not info.min <= value <= info.max:
            raise _type_error(value, dtype)
    elif dtype == types_pb2.DT_BOOL:
        if type(value) is not bool:
            raise _type_error(value, dtype)
    elif dtype == types_pb2.DT_STRING:
        if isinstance(value, dict):
            _b64decode(value)
        elif type(value) is not str:
            raise _type_error(value, dtype)
    else:
        raise _Error(grpc.StatusCode.UNIMPLEMENTED,
                     f"Conversion of JSON Value: {_json_str(value)} to type: {dtype_string(dtype)}")


def _dense_shape(value) -> list[int]:
    # json_tensor.cc GetDenseTensorShape: the shape is read along the first elements.
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _check_dense(value, level: int, shape: list[int], dtype: int) -> None:
    """json_tensor.cc FillTensorProto's checks, run only to name what is wrong."""
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise _invalid("JSON Value: ", _json_str(value), " found at incorrect level: ", level + 1,
                           " in the JSON DOM. Expected at level: ", rank)
        _check_leaf(value, dtype)
        return
    if level >= rank:
        raise _invalid("Encountered list at unexpected level: ", level, " expected < ", rank)
    if len(value) != shape[level]:
        raise _invalid("Encountered list at unexpected size: ", len(value), " at level: ", level,
                       " expected size: ", shape[level])
    for item in value:
        _check_dense(item, level + 1, shape, dtype)


def _leaves(value):
    """(object array of the leaves, their Python types) for a dense nested JSON list, or
    (None, None) when it is ragged."""
    arr = np.empty((), dtype=object)
    if isinstance(value, list):
        try:
            arr = np.array(value, dtype=object)
        except (ValueError, RuntimeError):  # ragged in depth, or deeper than numpy goes
            return None, None
    else:
        arr[()] = value
    kinds = set(map(type, arr.flat))
    if list in kinds:  # numpy keeps the rows of a ragged list as list objects
        return None, None
    return arr, kinds


def json_value_to_tensor(value, dtype: int) -> tensor_pb2.TensorProto:
    """One JSON value (scalar or nested list) as a TensorProto of `dtype` (a DataType enum).

    Raises the INVALID_ARGUMENT that TF Serving gives for a ragged list, a value of
    the wrong JSON type or a number that does not fit the type.
    """
    if dtype not in _FLOATS and dtype not in _INTS and dtype not in (types_pb2.DT_BOOL,
                                                                     types_pb2.DT_STRING):
        raise _Error(grpc.StatusCode.UNIMPLEMENTED,
                     f"Conversion of JSON Value: {_json_str(value)} to type: {dtype_string(dtype)}")
    shape = _dense_shape(value)
    if len(shape) > MAX_TENSOR_RANK:
        # TF Serving would build the TensorProto and let the model refuse it; numpy (and
        # so the core) cannot hold it: INVALID_ARGUMENT, in TensorShape's words.
        raise _invalid("JSON Value: ", _json_str(value), f" has {len(shape)} dimensions which is "
                       f"over the limit of {MAX_TENSOR_RANK}.")
    leaves, kinds = _leaves(value)
    if leaves is None:
        _check_dense(value, 0, shape, dtype)  # recurses at most MAX_TENSOR_RANK + 1 deep
        raise _invalid("JSON Value: ", _json_str(value), " is not a dense tensor")  # pragma: no cover
    flat = leaves.ravel()
    allowed = ({bool} if dtype == types_pb2.DT_BOOL else {str, dict} if dtype == types_pb2.DT_STRING
               else {int, float} if dtype in _FLOATS else {int})
    if not kinds <= allowed:
        for x in flat:
            _check_leaf(x, dtype)  # raises, naming the first value that does not fit
    proto = tensor_pb2.TensorProto(
        dtype=dtype,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in leaves.shape]),
    )
    if dtype == types_pb2.DT_STRING:
        proto.string_val.extend(
            _b64decode(x) if isinstance(x, dict) else x.encode("utf-8") for x in flat)
        return proto
    if dtype == types_pb2.DT_BOOL:
        proto.tensor_content = flat.astype(np.bool_).tobytes()
        return proto
    # The fast path converts in numpy and checks ranges in bulk; the exact check, value by
    # value, runs only when a value might not fit, and raises TF Serving's message.
    try:
        if dtype in _INTS:
            array = flat.astype(_INTS[dtype])
        else:
            np_type, max_int, _ = _FLOATS[dtype]
            wide = flat.astype(np.float64)
            finite = wide[np.isfinite(wide)]
            if finite.size and np.abs(finite).max() > max_int:
                raise OverflowError
            array = wide.astype(np_type)
    except OverflowError:
        for x in flat:
            _check_leaf(x, dtype)
        array = flat.astype(np.float64).astype(_FLOATS[dtype][0]) if dtype in _FLOATS else None
    proto.tensor_content = array.tobytes()
    return proto


def _parse_json(body: bytes, max_depth: int):
    if not body:
        raise _invalid("JSON Parse error: The document is empty")
    depth = _json_depth(body, max_depth)
    if depth > max_depth:
        raise _invalid(f"JSON Parse error: The document is nested {depth} levels deep, "
                       f"more than the limit of {max_depth}")
    try:
        # Python's parser, like TF Serving's (kParseNanAndInfFlag), accepts NaN and Infinity.
        doc = json.loads(body)
    except json.JSONDecodeError as e:
        raise _invalid(f"JSON Parse error: {e.msg} at offset: {e.pos}") from None
    except UnicodeDecodeError as e:
        raise _invalid(f"JSON Parse error: Invalid encoding in string. at offset: {e.start}") from None
    except RecursionError:
        raise _invalid("JSON Parse error: The document is nested too deeply") from None
    if not isinstance(doc, dict):
        raise _invalid("JSON Value: ", _json_str(doc), " Is not object")
    return doc


# A JSON string literal, quotes and escapes included (the "unrolled loop" form, fast in re).
_JSON_STRING_RE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _bracket_depth(brackets: bytes) -> int:
    step = np.frombuffer(brackets, np.uint8)
    step = np.where((step == ord("[")) | (step == ord("{")), 1, -1)
    return int(np.cumsum(step).max(initial=0))


def _json_depth(body: bytes, limit: int) -> int:
    """How deeply arrays and objects nest in a JSON text (exactly once above `limit`),
    counted without parsing it."""
    brackets = body.translate(None, _NOT_BRACKETS)
    if len(brackets) <= limit or _bracket_depth(brackets) <= limit:
        # Brackets inside strings count here too, which only errs on the deep side.
        return min(len(brackets), limit)
    # Brackets inside string literals do not nest: count again without them.
    return _bracket_depth(_JSON_STRING_RE.sub(b'""', body).translate(None, _NOT_BRACKETS))


def _signature_name(doc: dict) -> str:
    name = doc.get("signature_name", "")
    if not isinstance(name, str):
        raise _invalid("JSON Value: ", _json_str(doc),
                       " not formatted correctly. 'signature_name' key must be a string value.")
    return name


def _tensor_map_from_instances(instances: list, infos: dict) -> dict:
    """Row format: every element of "instances" is one row of every input."""
    def is_object(v):
        return isinstance(v, dict) and not _is_b64(v)

    if not is_object(instances[0]) and len(infos) > 1:
        raise _invalid("instances is a plain list, but expecting list of objects as multiple "
                       "input tensors required as per tensorinfo_map")
    named = is_object(instances[0])
    names = sorted(infos)
    for i, item in enumerate(instances):
        if named and not is_object(item):
            raise _invalid(f"Expecting object but got list at item {i} of input list")
        if not named and is_object(item):
            raise _invalid(f"Expecting value/list but got object at item {i} of input list")
        if named:
            for key in item:
                if key not in infos:
                    raise _invalid(f"Failed to process element: {i} key: {key} of 'instances' list. "
                                   f"Error: INVALID_ARGUMENT: JSON object: does not have named input: {key}")
            if len(item) != len(infos):
                raise _invalid(f"Failed to process element: {i} of 'instances' list. JSON object: "
                               f"{_json_str(item)} must only have keys: {','.join(names)}")
    tensors = {}
    for name in names if named else names[:1]:
        rows = [item[name] for item in instances] if named else instances
        dtype = infos[name].dtype
        try:
            tensors[name] = json_value_to_tensor(rows, dtype)
        except _Error as batch_error:
            raise _row_error(rows, name if named else None, dtype) or batch_error
    return tensors


def _row_error(rows: list, key, dtype: int):
    """Which row of "instances" broke the batch, in TF Serving's words."""
    where = f" key: {key}" if key is not None else ""
    first_shape = first_size = None
    for i, row in enumerate(rows):
        try:
            tensor = json_value_to_tensor(row, dtype)
        except _Error as e:
            return _invalid(f"Failed to process element: {i}{where} of 'instances' list. "
                            f"Error: {e.code.name}: {e.message}")
        shape = [d.size for d in tensor.tensor_shape.dim]
        size = int(np.prod(shape))
        if first_shape is None:
            first_shape, first_size = shape, size
        elif size != first_size:
            return _invalid(f"Failed to process element: {i}{where} of 'instances' list. Error: "
                            f"INVALID_ARGUMENT: Expecting tensor size: {first_size} but got: {size}")
        elif shape != first_shape:
            return _invalid(f"Failed to process element: {i}{where} of 'instances' list. Error: "
                            f"INVALID_ARGUMENT: Expecting shape [{','.join(map(str, first_shape))}] "
                            f"but got: [{','.join(map(str, shape))}]")
    return None


def _tensor_map_from_inputs(inputs, infos: dict) -> dict:
    """Columnar format: "inputs" is one tensor, or an object of named tensors."""
    if not isinstance(inputs, dict) or _is_b64(inputs):
        if len(infos) > 1:
            raise _invalid("inputs is a plain value/list, but expecting an object as multiple "
                           "input tensors required as per tensorinfo_map")
        name = next(iter(infos))
        return {name: json_value_to_tensor(inputs, infos[name].dtype)}
    tensors = {}
    for name in sorted(infos):
        if name not in inputs:
            raise _invalid(f"Missing named input: {name} in 'inputs' object.")
        tensors[name] = json_value_to_tensor(inputs[name], infos[name].dtype)
    return tensors


def _feature_kind_error(name: str, feature: feature_pb2.Feature) -> _Error:
    kind = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}.get(
        feature.WhichOneof("kind"), "UNKNOWN")
    return _invalid(f"Unexpected element type in feature: {name} expecting type: {kind}")


def _add_feature_value(value, name: str, feature: feature_pb2.Feature) -> None:
    kind = feature.WhichOneof("kind")

    def want(k):
        if kind not in (None, k):
            raise _feature_kind_error(name, feature)

    if value is None or isinstance(value, list) or (isinstance(value, dict) and not _is_b64(value)):
        raise _invalid(f"Feature: {name} has element with unexpected JSON type: {_json_type(value)}")
    if isinstance(value, bool):
        want("int64_list")
        feature.int64_list.value.append(int(value))
    elif isinstance(value, dict):
        want("bytes_list")
        feature.bytes_list.value.append(_b64decode(value))
    elif isinstance(value, str):
        want("bytes_list")
        feature.bytes_list.value.append(value.encode("utf-8"))
    elif isinstance(value, float):
        want("float_list")
        if np.isfinite(value) and abs(value) > _FLOATS[types_pb2.DT_FLOAT][2]:
            raise _lossy_error(value, "float")
        feature.float_list.value.append(value)
    else:
        want("int64_list")
        if value > _INT64_MAX:
            raise _invalid(f"Feature: {name} has uint64 element. Only int64 is supported.")
        if value < -_INT64_MAX - 1:
            raise _invalid(f"Feature: {name} has element with unexpected JSON type: Number")
        feature.int64_list.value.append(value)


def _example_from_json(value, example: example_pb2.Example) -> None:
    if not isinstance(value, dict):
        raise _invalid(f"Example must be JSON object but got JSON {_json_type(value)}")
    for name, content in value.items():
        feature = example.features.feature[name]
        for item in content if isinstance(content, list) else [content]:
            _add_feature_value(item, name, feature)


def _fill_examples(doc: dict, request) -> None:
    """The body of :classify and :regress, as json_tensor.cc reads it."""
    request.model_spec.signature_name = _signature_name(doc)
    has_context = "context" in doc
    if has_context:
        _example_from_json(doc["context"], request.input.example_list_with_context.context)
    if "examples" not in doc:
        raise _invalid("JSON Value: ", _json_str(doc),
                       " When method is classify, key 'examples' is expected and was not found")
    examples = doc["examples"]
    if not isinstance(examples, list):
        raise _invalid("JSON Value: ", _json_str(doc), " Expecting 'examples' value to be an list/array")
    if not examples:
        raise _invalid("JSON Value: ", _json_str(doc), " 'examples' value is an empty array")
    target = (request.input.example_list_with_context.examples if has_context
              else request.input.example_list.examples)
    for value in examples:
        _example_from_json(value, target.add())


# ---------------------------------------------------------------------------
# tensors -> JSON (json_tensor.cc MakeJsonFromTensors and friends)
# ---------------------------------------------------------------------------

_NONFINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
# Up to this many float32/float16 values are written in their shortest exact form
# (0.2, as TF Serving's WriteDecimal writes it); beyond, numpy's per-value formatting
# costs too much and the value is written as the float64 it widens to (0.20000000298),
# which reads back as the same float32.
SHORT_FLOAT_LIMIT = 1 << 16
_COMPACT = {"separators": (",", ":"), "ensure_ascii": False}


def _b64_value(value: bytes) -> dict:
    return {"b64": base64.b64encode(value).decode("ascii")}


def _string_values(values: list, as_bytes: bool) -> list:
    """bytes -> JSON values: text when it is UTF-8 (and not a *_bytes tensor), else b64."""
    values = [v.encode("utf-8") if isinstance(v, str) else v for v in values]
    if not as_bytes:
        try:
            return [v.decode("utf-8") for v in values]
        except UnicodeDecodeError:
            pass  # JSON cannot carry these bytes as text: send those as {"b64": ...}
        out = []
        for v in values:
            try:
                out.append(v.decode("utf-8"))
            except UnicodeDecodeError:
                out.append(_b64_value(v))
        return out
    return [_b64_value(v) for v in values]


def _join_texts(texts: np.ndarray) -> str:
    """Nested JSON arrays from an array of already-rendered leaf texts."""
    if texts.ndim == 0:
        return str(texts[()])
    if texts.size == 0:
        return json.dumps(np.zeros(texts.shape).tolist())
    level = ["[" + ",".join(row) + "]" for row in texts.reshape(-1, texts.shape[-1]).tolist()]
    for size in reversed(texts.shape[:-1]):
        level = ["[" + ",".join(level[i:i + size]) + "]" for i in range(0, len(level), size)]
    return level[0]


def _render(array: np.ndarray, as_bytes: bool, short_floats: bool = True) -> str:
    """An array as nested JSON text, with TF Serving's conventions (json_tensor.cc)."""
    kind = array.dtype.kind
    if kind == "f" and array.dtype.itemsize < 8 and short_floats and array.size <= SHORT_FLOAT_LIMIT:
        texts = array.astype(str)
        if not np.isfinite(array).all():
            texts = np.vectorize(lambda t: _NONFINITE.get(t, t), otypes=[object])(texts)
        return _join_texts(texts)
    if kind == "f":
        # Python writes each double in its shortest exact form; NaN/Infinity as TF Serving does.
        return json.dumps(array.astype(np.float64).tolist(), **_COMPACT)
    if kind in "iub":
        return json.dumps(array.tolist(), **_COMPACT)
    if kind in "OSU":
        values = _string_values(array.ravel().tolist(), as_bytes)
        nested = np.empty(len(values), dtype=object)
        nested[:] = values
        return json.dumps(nested.reshape(array.shape).tolist(), **_COMPACT)
    raise _invalid(f"Failed to write JSON value for tensor type: {array.dtype}")


def _as_ndarray(value) -> np.ndarray:
    return tf.make_ndarray(value) if isinstance(value, tensor_pb2.TensorProto) else np.asarray(value)


def tensor_json(value, name: str = "", short_floats: bool = True) -> str:
    """A tensor (TensorProto or numpy array) as nested JSON text.

    Floats are written in their shortest exact form (`short_floats`, up to
    SHORT_FLOAT_LIMIT float32 values) with NaN/Infinity tokens; strings as JSON text,
    or `{"b64": ...}` when `name` ends in `_bytes` (TF Serving's rule for binary
    outputs) or when the bytes are not valid UTF-8.
    """
    return _render(_as_ndarray(value), name.endswith("_bytes"), short_floats)


def _predict_json(outputs, row_format: bool) -> str:
    if not outputs:
        raise _invalid("Cannot convert empty tensor map to JSON")
    arrays = {name: _as_ndarray(outputs[name]) for name in sorted(outputs)}
    if not row_format:
        if len(arrays) == 1:
            (name, a), = arrays.items()
            return '{"outputs": ' + _render(a, name.endswith("_bytes")) + "}"
        return '{"outputs": {' + ", ".join(
            f"{json.dumps(n)}: {_render(a, n.endswith('_bytes'))}" for n, a in arrays.items()) + "}}"
    batch = 0
    for name, a in arrays.items():
        if a.ndim == 0:
            raise _invalid(f"Tensor name: {name} has no shape information ")
        if a.shape[0] < 1:
            raise _invalid(f"Tensor name: {name} has invalid batch size: {a.shape[0]}")
        if batch and a.shape[0] != batch:
            raise _invalid(f"Tensor name: {name} has inconsistent batch size: {a.shape[0]} "
                           f"expecting: {batch}")
        batch = a.shape[0]
    columns = {name: [_render(a[i, ...], name.endswith("_bytes")) for i in range(batch)]
               for name, a in arrays.items()}
    if len(columns) == 1:
        rows = next(iter(columns.values()))
    else:
        rows = ["{" + ", ".join(f"{json.dumps(n)}: {c[i]}" for n, c in columns.items()) + "}"
                for i in range(batch)]
    return '{"predictions": [' + ", ".join(rows) + "]}"


def _float_text(x: float) -> str:
    return _render(np.asarray(x, np.float32), False)


def _classification_json(result) -> str:
    if not result.classifications:
        raise _invalid("Cannot convert empty ClassificationResults to JSON")
    rows = []
    for classifications in result.classifications:
        rows.append("[" + ", ".join(
            f"[{json.dumps(c.label, ensure_ascii=False)}, {_float_text(c.score)}]"
            for c in classifications.classes) + "]")
    return '{"results": [' + ", ".join(rows) + "]}"


def _regression_json(result) -> str:
    if not result.regressions:
        raise _invalid("Cannot convert empty RegressionResults to JSON")
    return '{"results": [' + ", ".join(_float_text(r.value) for r in result.regressions) + "]}"


def _proto_json(message) -> str:
    return json_format.MessageToJson(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True,
        indent=1, ensure_ascii=False)


# ---------------------------------------------------------------------------
# The API: method + path + body -> HTTP status + JSON
# ---------------------------------------------------------------------------


def _status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The gRPC code and message of an error from the core."""
    if isinstance(exc, ServingError):
        return exc.code, exc.message
    if isinstance(exc, tf.errors.OpError):
        return code_from_int(exc.error_code), exc.message
    return grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}"


class _RestApi:
    """TF Serving's HttpRestApiHandler: (method, path, body) -> (status code, JSON text).

    The REST deadline (--rest_api_timeout_in_ms) starts when the request's body has
    been read; whatever of it is left when the model is called goes to the core as
    `timeout`, which answers DEADLINE_EXCEEDED (HTTP 504) once the run outlasts it.
    """

    def __init__(self, core: ServerCore, timeout_ms: int | None, max_json_depth: int):
        self._core = core
        self._timeout = timeout_ms / 1000.0 if timeout_ms and timeout_ms > 0 else None
        self._max_depth = max_json_depth

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, str]:
        deadline = time.monotonic() + self._timeout if self._timeout is not None else None
        try:
            text = self._dispatch(method, path, body, deadline)
            return 200, text
        except Exception as e:  # noqa: BLE001 - every error becomes a JSON answer
            code, message = _status_of(e)
            if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
                logger.exception("REST %s %s failed", method, path)
        return HTTP_STATUS.get(code, 500), json.dumps({"error": message}, ensure_ascii=False)

    def _time_left(self, deadline: float | None) -> float | None:
        """Seconds left of the request's deadline (None: no deadline), for the core's `timeout`."""
        if deadline is None:
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Error(grpc.StatusCode.DEADLINE_EXCEEDED,
                         f"Deadline exceeded: the request ran longer than the REST API timeout of "
                         f"{self._timeout * 1000:.0f} ms (--rest_api_timeout_in_ms)")
        return left

    def _dispatch(self, method: str, path: str, body: bytes, deadline: float | None) -> str:
        malformed = _invalid(f"Malformed request: {method} {path}")
        if method == "POST":
            m = _PREDICT_RE.fullmatch(path)
            if not m:
                raise malformed
            name, version, label, verb = m.groups()
            spec = _model_spec(name, version, label)
            verb = verb.lower()
            if verb == "predict":
                return self._predict(spec, body, deadline)
            doc = _parse_json(body, self._max_depth)
            if verb == "classify":
                request = classification_pb2.ClassificationRequest(model_spec=spec)
                _fill_examples(doc, request)
                response = self._core.classify(request, timeout=self._time_left(deadline), entrypoint="REST")
                return _classification_json(response.result)
            request = regression_pb2.RegressionRequest(model_spec=spec)
            _fill_examples(doc, request)
            response = self._core.regress(request, timeout=self._time_left(deadline), entrypoint="REST")
            return _regression_json(response.result)
        if method == "GET":
            m = _STATUS_RE.fullmatch(path)
            if not m:
                raise malformed
            name, version, label, metadata = m.groups()
            if not name:
                raise _invalid("Missing model name in request.")
            spec = _model_spec(name, version, label)
            if metadata:
                return self._metadata_json(spec)
            request = get_model_status_pb2.GetModelStatusRequest(model_spec=spec)
            return _proto_json(self._core.get_model_status(request, entrypoint="REST"))
        raise malformed

    def _predict(self, spec, body: bytes, deadline: float | None) -> str:
        doc = _parse_json(body, self._max_depth)
        request = predict_pb2.PredictRequest()
        request.model_spec.CopyFrom(spec)
        request.model_spec.signature_name = _signature_name(doc)
        infos = self._signature_inputs(spec, request.model_spec.signature_name)
        if not infos:
            raise _invalid("Failed to get input map for signature: ",
                           request.model_spec.signature_name or "DEFAULT")
        if "instances" in doc:
            if "inputs" in doc:
                raise _invalid("JSON Value: ", _json_str(doc), " Not formatted correctly expecting only "
                               "one of 'inputs' or 'instances' keys to exist ")
            instances = doc["instances"]
            if not isinstance(instances, list):
                raise _invalid("JSON Value: ", _json_str(doc),
                               " Excepting 'instances' to be an list/array")
            if not instances:
                raise _invalid("JSON Value: ", _json_str(doc), " No values in 'instances' array")
            tensors, row_format = _tensor_map_from_instances(instances, infos), True
        elif "inputs" in doc:
            tensors, row_format = _tensor_map_from_inputs(doc["inputs"], infos), False
        else:
            raise _invalid("Missing 'inputs' or 'instances' key")
        for name, tensor in tensors.items():
            request.inputs[name].CopyFrom(tensor)
        response = self._core.predict(request, timeout=self._time_left(deadline), entrypoint="REST")
        return _predict_json(response.outputs, row_format)

    def _signature_inputs(self, spec, signature_name: str) -> dict:
        """The signature's inputs (name -> TensorInfo), whose dtypes type the JSON values
        (http_rest_api_handler.cc GetInfoMap)."""
        name = signature_name or _DEFAULT_SIGNATURE
        lookup = model_pb2.ModelSpec()
        lookup.CopyFrom(spec)
        lookup.signature_name = name
        try:
            return dict(self._core.resolve_signature(lookup)[1].inputs)
        except ServingError as e:
            if e.code == grpc.StatusCode.FAILED_PRECONDITION:  # no such signature
                raise _invalid(f'Serving signature name: "{name}" not found in signature def') from None
            raise

    def _metadata_json(self, spec) -> str:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.CopyFrom(spec)
        response = self._core.get_model_metadata(request, entrypoint="REST")
        if "signature_def" not in response.metadata:
            raise _Error(grpc.StatusCode.INTERNAL, "Failed to find 'signature_def' key in the "
                         "GetModelMetadataResponse metadata map.")
        sigs = get_model_metadata_pb2.SignatureDefMap()
        if not response.metadata["signature_def"].Unpack(sigs):
            raise _Error(grpc.StatusCode.INTERNAL, "Failed to unpack 'Any' object to 'SignatureDefMap'.")
        # TF Serving nests the SignatureDefMap's own JSON under "signature_def" (hence the
        # doubled key), and we keep that shape for clients written against it.
        return ('{\n"model_spec":' + _proto_json(response.model_spec) + ",\n"
                '"metadata": {"signature_def": ' + _proto_json(sigs) + "}\n}\n")


def _model_spec(name: str, version: str | None, label: str | None):
    spec = model_pb2.ModelSpec(name=urllib.parse.unquote(name))
    if version:
        if int(version) > _INT64_MAX:
            raise _invalid(f"Failed to convert version: {version} to numeric.")
        spec.version.value = int(version)
    if label:
        spec.version_label = urllib.parse.unquote(label)
    return spec


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------


class _BadFraming(Exception):
    """A request whose body cannot be delimited safely: answered, then the connection closes."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


_DIGITS_RE = re.compile(r"[0-9]+")
_HEX_RE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_MAX_TRAILERS = 100


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a client reuses its connection
    server_version = "zoo-model-server"
    timeout = REQUEST_READ_TIMEOUT_S  # seconds a request may pause mid-headers or mid-body

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        logger.debug("%s %s", self.address_string(), format % args)

    def handle_one_request(self):
        # Between requests the connection is idle: it waits up to the idle timeout for
        # the first byte of the next one (and may be closed to make room for a new
        # connection); from that byte on it is busy until the answer is written.
        server = self.server
        try:
            self.connection.settimeout(server.idle_timeout)
            first = self.rfile.peek(1)
        except OSError:  # the idle timeout passed, or the connection was closed
            first = b""
        if not first or not server.begin_request(self.connection):
            self.close_connection = True
            return
        try:
            self.connection.settimeout(self.timeout)
            super().handle_one_request()
        finally:
            if server.stopping:
                self.close_connection = True
            server.end_request(self.connection)

    def handle_expect_100(self):
        # Refuse a body that is oversized, or cannot be delimited, before the client sends it.
        try:
            kind, length = self._framing()
        except _BadFraming as e:
            self._refuse(e)
            return False
        if kind == "length" and length > self.server.max_body_bytes:
            self._refuse_too_large(length)
            return False
        return super().handle_expect_100()

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_PUT(self):
        self._serve("PUT")

    def do_DELETE(self):
        self._serve("DELETE")

    def do_PATCH(self):
        self._serve("PATCH")

    def _framing(self) -> tuple[str, int | None]:
        """How the body is delimited (RFC 7230 §3.3.3): ("chunked", None), ("length", n) or
        ("none", None). Raises _BadFraming for headers that two parsers could read two ways
        (request smuggling) or that name a coding this server does not decode."""
        codings = [c.strip().lower() for v in self.headers.get_all("Transfer-Encoding", [])
                   for c in v.split(",") if c.strip()]
        lengths = [p.strip() for v in self.headers.get_all("Content-Length", []) for p in v.split(",")]
        if codings:
            if lengths:
                raise _BadFraming(400, "Request has both Transfer-Encoding and Content-Length headers")
            if self.request_version == "HTTP/1.0":
                raise _BadFraming(400, "Transfer-Encoding is not allowed in an HTTP/1.0 request")
            if codings[-1] != "chunked":
                raise _BadFraming(400, "Transfer-Encoding of a request must end with chunked")
            unknown = [c for c in codings if c != "chunked"]
            if unknown:
                raise _BadFraming(501, f"Transfer-Encoding {unknown[0]} is not supported")
            if len(codings) > 1:
                raise _BadFraming(400, "Transfer-Encoding applies chunked more than once")
            return "chunked", None
        if not lengths:
            return "none", None
        if not all(_DIGITS_RE.fullmatch(p) for p in lengths):
            raise _BadFraming(400, "Invalid Content-Length header")
        if len({p.lstrip("0") for p in lengths}) > 1:
            raise _BadFraming(400, "Multiple Content-Length headers with different values")
        digits = lengths[0].lstrip("0") or "0"
        # More digits than an int64 holds is larger than any limit (and int() refuses
        # strings of thousands of digits).
        return "length", (int(digits) if len(digits) <= 18 else 10**18)

    def _refuse(self, error: _BadFraming):
        self.close_connection = True
        self._reply(error.status, json.dumps({"error": error.message}))

    def _refuse_too_large(self, length):
        limit = self.server.max_body_bytes
        self.close_connection = True
        self._reply(413, json.dumps({"error": f"Request body of {length} bytes is larger than the "
                                              f"limit of {limit} bytes"}))

    def _read_chunked(self):
        limit = self.server.max_body_bytes
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(65537)
            size = line.split(b";", 1)[0].strip()
            if not line.endswith(b"\n") or not _HEX_RE.fullmatch(size):
                raise _BadFraming(400, "Malformed chunked request body")
            size = int(size, 16)
            if size == 0:
                for _ in range(_MAX_TRAILERS):
                    trailer = self.rfile.readline(65537)
                    if trailer in (b"\r\n", b"\n"):
                        return b"".join(chunks)
                    if not trailer.endswith(b"\n"):
                        break  # gone, or a line too long
                raise _BadFraming(400, "Malformed chunked request body")
            total += size
            if total > limit:
                self._refuse_too_large(f"more than {limit}")
                return None
            chunk = self.rfile.read(size)
            if len(chunk) != size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise _BadFraming(400, "Malformed chunked request body")
            chunks.append(chunk)

    def _read_body(self):
        """The request body, or None after answering 4xx/5xx for a bad or oversized one."""
        try:
            kind, length = self._framing()
            if kind == "chunked":
                return self._read_chunked()
        except _BadFraming as e:
            self._refuse(e)
            return None
        if kind == "none":
            return b""
        if length > self.server.max_body_bytes:
            self._refuse_too_large(length)
            return None
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            return None  # the client went away mid-body
        return body

    def _serve(self, method: str):
        server = self.server
        path = urllib.parse.urlsplit(self.path).path
        body = self._read_body()
        if body is None:
            return
        if server.metrics_path and path == server.metrics_path and server.metrics_fn:
            if method != "GET":
                self._reply(405, json.dumps({"error": f"{method} not allowed on {path}"}))
                return
            content_type, payload = server.metrics_fn()
            self._reply(200, payload, content_type)
            return
        if not _API_PATH_RE.fullmatch(path):
            self._reply(404, json.dumps({"error": f"Not found: {method} {path}"}))
            return
        status, text = server.api.handle(method, path, body)
        self._reply(status, text)

    def _reply(self, status: int, body, content_type: str = "application/json"):
        payload = body.encode("utf-8") if isinstance(body, str) else body
        if self.server.stopping:
            self.close_connection = True
        head = [f"{self.protocol_version} {status} {self.responses.get(status, ('',))[0]}",
                f"Server: {self.server_version}",
                f"Content-Type: {content_type}",
                f"Content-Length: {len(payload)}"]
        if self.close_connection:
            head.append("Connection: close")
        self.log_request(status, len(payload))
        # One write for head and body: a second small write waits on delayed ACKs.
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)


_IDLE, _BUSY, _EVICTED = "idle", "busy", "evicted"


class _HTTPServer(http.server.ThreadingHTTPServer):
    """One thread per connection, at most `max_connections` of them.

    A connection is idle while it waits for a request and busy from a request's first
    byte to its answer. At the cap, a new connection closes the one idle the longest
    (a client reconnects, as it must for any closed keep-alive connection); when all
    are busy it waits, unaccepted, in the listen queue until one finishes.
    """

    daemon_threads = True
    # socketserver's default backlog of 5 drops the SYNs of a burst of new clients, who
    # then wait a full second to retry; TF Serving's listener takes many more.
    request_queue_size = 1024

    def __init__(self, address, api, metrics_path, metrics_fn, max_body_bytes, max_connections, idle_timeout):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.api = api
        self.metrics_path = metrics_path
        self.metrics_fn = metrics_fn
        self.max_body_bytes = max_body_bytes
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.stopping = False
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._connections = {}  # socket -> [state, monotonic time it entered that state]
        super().__init__(address, _Handler)

    def handle_error(self, request, client_address):
        # A client that went away mid-request; socketserver would print a traceback.
        logger.debug("REST connection from %s failed", client_address, exc_info=True)

    def process_request(self, request, client_address):
        with self._lock:
            while len(self._connections) >= self.max_connections and not self.stopping:
                if not any(c[0] == _EVICTED for c in self._connections.values()):
                    self._evict_idlest()
                self._changed.wait(0.1)
            if self.stopping:
                admitted = False
            else:
                admitted = True
                self._connections[request] = [_IDLE, time.monotonic()]
        if not admitted:
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:  # no thread could be started
            self.shutdown_request(request)
            raise

    def _evict_idlest(self):
        idle = [(since, sock) for sock, (state, since) in self._connections.items() if state == _IDLE]
        if not idle:
            return
        _, sock = min(idle, key=lambda t: t[0])
        self._connections[sock][0] = _EVICTED
        _shut(sock)

    def shutdown_request(self, request):
        with self._lock:
            self._connections.pop(request, None)
            self._changed.notify_all()
        super().shutdown_request(request)

    def begin_request(self, sock) -> bool:
        """Marks a connection busy as a request starts; False if it was closed meanwhile."""
        with self._lock:
            entry = self._connections.get(sock)
            if entry is None or entry[0] == _EVICTED:
                return False
            entry[:] = [_BUSY, time.monotonic()]
            self._changed.notify_all()
            return True

    def end_request(self, sock):
        with self._lock:
            entry = self._connections.get(sock)
            if entry is not None and entry[0] == _BUSY:
                entry[:] = [_IDLE, time.monotonic()]
            self._changed.notify_all()

    def shutdown(self):
        with self._lock:
            self.stopping = True  # also frees an accept waiting for room
            self._changed.notify_all()
        super().shutdown()

    def drain(self, grace: float):
        """Lets requests in flight finish (up to `grace` s) and closes idle connections."""
        with self._lock:
            self.stopping = True
            self._changed.wait_for(
                lambda: not any(c[0] == _BUSY for c in self._connections.values()), timeout=grace)
            for sock in list(self._connections):
                _shut(sock)


def _shut(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class RestServer:
    """A running REST server: `.port` (the bound one), `.url`, `.stop()`."""

    def __init__(self, httpd: _HTTPServer):
        self._httpd = httpd
        self.host = httpd.server_address[0]
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"rest-api:{self.port}", daemon=True)
        self._thread.start()
        self._stopped = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self, grace: float = 5.0) -> None:
        """Stops accepting, lets requests in flight finish (up to `grace` s), closes."""
        if self._stopped:
            return
        self._stopped = True
        self._httpd.shutdown()
        self._httpd.drain(grace)
        self._httpd.server_close()
        self._thread.join(timeout=5)


def start_rest_server(core: ServerCore, host: str, port: int, timeout_ms: int | None = 30000,
                      metrics_path: str | None = None, metrics_fn=None, *,
                      max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                      max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
                      max_connections: int = DEFAULT_MAX_CONNECTIONS,
                      idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT_S) -> RestServer:
    """Serves TF Serving's REST API for `core` on host:port (port 0 picks a free one).

    Args:
        core: the `serving.core.ServerCore` to serve.
        host, port: where to listen.
        timeout_ms: --rest_api_timeout_in_ms, the deadline of a request from the moment
            its body has been read; the core gets what is left of it as `timeout`, and a
            request that outlasts it answers 504 DEADLINE_EXCEEDED. 0 or None: no limit.
        metrics_path, metrics_fn: serve `metrics_fn() -> (content_type, body)` at
            this path (the monitoring config's Prometheus path); without a
            metrics_fn, the core's `metrics_exposition`.
        max_body_bytes: larger bodies are refused with 413.
        max_json_depth: deeper JSON is refused with 400.
        max_connections: connections open at once (one thread each); past it the
            connection idle the longest is closed, or, when none is idle, new ones
            wait to be accepted.
        idle_timeout: seconds a connection may wait for its next request before it
            is closed; None: no limit.

    Example:
        server = start_rest_server(core, "localhost", 8501, timeout_ms=30000)
        ...
        server.stop()
    """
    if max_connections < 1:
        raise ValueError(f"max_connections must be at least 1, not {max_connections}")
    if metrics_path and metrics_fn is None:
        metrics_fn = core.metrics_exposition
    api = _RestApi(core, timeout_ms, max_json_depth)
    httpd = _HTTPServer((host, port), api, metrics_path, metrics_fn, max_body_bytes, max_connections,
                        idle_timeout if idle_timeout and idle_timeout > 0 else None)
    server = RestServer(httpd)
    logger.info("REST API listening on %s", server.url)
    return server
