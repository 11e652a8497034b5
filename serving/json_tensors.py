"""TF Serving's REST JSON bodies, to and from tensorflow_serving.apis protos.

The formats, dtypes and error texts follow TF Serving's `json_tensor.cc`, so that a
request written for `tensorflow_model_server` reads the same here:

- :predict takes `{"instances": [...]}` (row format: one element per example) or
  `{"inputs": ...}` (columnar: one tensor, or an object of named tensors), and answers
  `{"predictions": [...]}` or `{"outputs": ...}` to match;
- :classify and :regress take `{"examples": [...], "context": {...}}` of tf.Example
  features and answer `{"results": [...]}`;
- JSON values become tensors of the signature's dtypes: a number becomes a float only
  where the signature wants one, `{"b64": "..."}` carries bytes, and a value that does
  not fit is INVALID_ARGUMENT (HTTP 400) naming the value and the expected type.

Example:
    >>> doc = parse_json(b'{"instances": [[1.0, 2.0]]}', max_depth=100)
    >>> inputs, row_format = predict_inputs(doc, signature.inputs, signature.defaults)
    >>> tensor_json(np.array([0.1], np.float32))
    '[0.1]'
"""

from __future__ import annotations

import base64
import binascii
import json
import re

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from serving.errors import ServingError
from serving.tensors import dtype_string

__all__ = [
    "MAX_TENSOR_RANK", "SHORT_FLOAT_LIMIT", "classification_json", "example_json", "fill_examples",
    "json_value_to_tensor", "model_metadata_json", "model_status_json", "parse_json",
    "predict_inputs", "predict_json", "regression_json", "signature_name", "tensor_json",
]

# The most dimensions a JSON tensor may have: numpy iterates arrays of at most 32.
MAX_TENSOR_RANK = 32
_INT64_MAX = 2**63 - 1


def _invalid(*parts) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, "".join(str(p) for p in parts))


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


def _type_error(value, dtype: int) -> ServingError:
    return _invalid(
        "JSON Value: ", _json_str(value), " Type: ", _json_type(value),
        " is not of expected type: ", dtype_string(dtype),
    )


def _lossy_error(value, target: str) -> ServingError:
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
        raise ServingError(grpc.StatusCode.UNIMPLEMENTED,
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
        raise ServingError(grpc.StatusCode.UNIMPLEMENTED,
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


def parse_json(body: bytes, max_depth: int) -> dict:
    """A request body as a JSON object, refused (INVALID_ARGUMENT) when it is empty, not
    an object, not JSON, or nested deeper than `max_depth` (counted before parsing)."""
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


def signature_name(doc: dict) -> str:
    """The body's "signature_name" ("" when absent: the server's default)."""
    name = doc.get("signature_name", "")
    if not isinstance(name, str):
        raise _invalid("JSON Value: ", _json_str(doc),
                       " not formatted correctly. 'signature_name' key must be a string value.")
    return name


def predict_inputs(doc: dict, infos, defaults=()) -> tuple[dict, bool]:
    """The input tensors of a :predict body, and whether it came in row format.

    An input with a default (SignatureDef.defaults) may be left out of the body: the
    request then lacks it, and Predict feeds the default, as for a gRPC request.

    Args:
        doc: the parsed body, `{"instances": [...]}` or `{"inputs": ...}`.
        infos: the signature's inputs (name -> TensorInfo), whose dtypes type the values.
        defaults: the names of the inputs that have a default.

    Returns:
        ({input name: TensorProto}, True for "instances", False for "inputs"), the
        second deciding whether the answer is "predictions" or "outputs".
    """
    if "instances" in doc:
        if "inputs" in doc:
            raise _invalid("JSON Value: ", _json_str(doc), " Not formatted correctly expecting only "
                           "one of 'inputs' or 'instances' keys to exist ")
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise _invalid("JSON Value: ", _json_str(doc), " Excepting 'instances' to be an list/array")
        if not instances:
            raise _invalid("JSON Value: ", _json_str(doc), " No values in 'instances' array")
        return _tensor_map_from_instances(instances, infos, defaults), True
    if "inputs" in doc:
        return _tensor_map_from_inputs(doc["inputs"], infos, defaults), False
    raise _invalid("Missing 'inputs' or 'instances' key")


def _sole_input(infos: dict, defaults) -> str | None:
    """The input a plain (unnamed) value feeds: the only input, or the only one without
    a default; None when that is ambiguous."""
    if len(infos) == 1:
        return next(iter(infos))
    required = [name for name in sorted(infos) if name not in defaults]
    return required[0] if len(required) == 1 else None


def _tensor_map_from_instances(instances: list, infos: dict, defaults=()) -> dict:
    """Row format: every element of "instances" is one row of every input it names
    (the same inputs in every row; an input with a default may be left out of all)."""
    def is_object(v):
        return isinstance(v, dict) and not _is_b64(v)

    named = is_object(instances[0])
    sole = None if named else _sole_input(infos, defaults)
    if not named and sole is None:
        raise _invalid("instances is a plain list, but expecting list of objects as multiple "
                       "input tensors required as per tensorinfo_map")
    # The inputs every row must name: all without a default, and those the first row gives.
    names = sorted({name for name in infos if name not in defaults} | set(instances[0])) if named else [sole]
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
            if len(item) != len(names) or any(name not in item for name in names):
                raise _invalid(f"Failed to process element: {i} of 'instances' list. JSON object: "
                               f"{_json_str(item)} must only have keys: {','.join(names)}")
    tensors = {}
    for name in names:
        rows = [item[name] for item in instances] if named else instances
        dtype = infos[name].dtype
        try:
            tensors[name] = json_value_to_tensor(rows, dtype)
        except ServingError as batch_error:
            raise _row_error(rows, name if named else None, dtype) or batch_error
    return tensors


def _row_error(rows: list, key, dtype: int):
    """Which row of "instances" broke the batch, in TF Serving's words."""
    where = f" key: {key}" if key is not None else ""
    first_shape = first_size = None
    for i, row in enumerate(rows):
        try:
            tensor = json_value_to_tensor(row, dtype)
        except ServingError as e:
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


def _tensor_map_from_inputs(inputs, infos: dict, defaults=()) -> dict:
    """Columnar format: "inputs" is one tensor, or an object of named tensors (an input
    with a default may be left out)."""
    if not isinstance(inputs, dict) or _is_b64(inputs):
        name = _sole_input(infos, defaults)
        if name is None:
            raise _invalid("inputs is a plain value/list, but expecting an object as multiple "
                           "input tensors required as per tensorinfo_map")
        return {name: json_value_to_tensor(inputs, infos[name].dtype)}
    tensors = {}
    for name in sorted(infos):
        if name not in inputs and name in defaults:
            continue
        if name not in inputs:
            raise _invalid(f"Missing named input: {name} in 'inputs' object.")
        tensors[name] = json_value_to_tensor(inputs[name], infos[name].dtype)
    return tensors


def _feature_kind_error(name: str, feature: feature_pb2.Feature) -> ServingError:
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


def fill_examples(doc: dict, request) -> None:
    """Fills a Classification/RegressionRequest's signature and examples from the body of
    :classify or :regress, as json_tensor.cc reads it."""
    request.model_spec.signature_name = signature_name(doc)
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


def example_json(example: example_pb2.Example) -> dict:
    """A tf.train.Example as one element of "examples" (bytes always as {"b64": ...}),
    what `fill_examples` reads back into the same Example."""
    out = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        if kind == "float_list":
            out[name] = [float(v) for v in feature.float_list.value]
        elif kind == "int64_list":
            out[name] = list(feature.int64_list.value)
        elif kind == "bytes_list":
            out[name] = [_b64_value(v) for v in feature.bytes_list.value]
        else:
            out[name] = []
    return out


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


def predict_json(outputs, row_format: bool) -> str:
    """The answer to :predict: `{"predictions": [...]}` in row format, else `{"outputs": ...}`."""
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


def classification_json(result) -> str:
    """The answer to :classify: `{"results": [[[label, score], ...], ...]}`."""
    if not result.classifications:
        raise _invalid("Cannot convert empty ClassificationResults to JSON")
    rows = []
    for classifications in result.classifications:
        rows.append("[" + ", ".join(
            f"[{json.dumps(c.label, ensure_ascii=False)}, {_float_text(c.score)}]"
            for c in classifications.classes) + "]")
    return '{"results": [' + ", ".join(rows) + "]}"


def regression_json(result) -> str:
    """The answer to :regress: `{"results": [value, ...]}`."""
    if not result.regressions:
        raise _invalid("Cannot convert empty RegressionResults to JSON")
    return '{"results": [' + ", ".join(_float_text(r.value) for r in result.regressions) + "]}"


def _proto_json(message) -> str:
    return json_format.MessageToJson(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True,
        indent=1, ensure_ascii=False)


def model_status_json(response) -> str:
    """The answer to GET /v1/models/NAME: a GetModelStatusResponse in proto JSON."""
    return _proto_json(response)


def model_metadata_json(response: get_model_metadata_pb2.GetModelMetadataResponse) -> str:
    """The answer to GET /v1/models/NAME/metadata, from a GetModelMetadataResponse."""
    if "signature_def" not in response.metadata:
        raise ServingError(grpc.StatusCode.INTERNAL, "Failed to find 'signature_def' key in the "
                           "GetModelMetadataResponse metadata map.")
    sigs = get_model_metadata_pb2.SignatureDefMap()
    if not response.metadata["signature_def"].Unpack(sigs):
        raise ServingError(grpc.StatusCode.INTERNAL, "Failed to unpack 'Any' object to 'SignatureDefMap'.")
    # TF Serving nests the SignatureDefMap's own JSON under "signature_def" (hence the
    # doubled key), and we keep that shape for clients written against it.
    return ('{\n"model_spec":' + _proto_json(response.model_spec) + ",\n"
            '"metadata": {"signature_def": ' + _proto_json(sigs) + "}\n}\n")


