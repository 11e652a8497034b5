"""TensorProto <-> numpy, strictly, in both of TF Serving's encodings.

A request may carry a tensor as raw bytes (`tensor_content`) or as typed values
(`float_val`, `int64_val`, `string_val`, ...); responses use `tensor_content` for
numbers (what TF Serving's gRPC Predict returns, and the cheapest to encode) and
`string_val` for strings. Parsing follows `Tensor::FromProto`: typed values shorter
than the shape are padded with the last value (zeros when there are none), longer
ones are cut; anything it rejects (a wrong `tensor_content` length, a negative or
unknown dimension, an element count that overflows) is INVALID_ARGUMENT
"tensor parsing error: <alias>", the text TF Serving gives, plus what was wrong.

Example:
    >>> proto = from_ndarray(np.ones([2, 3], np.float32))
    >>> to_ndarray(proto, "x").shape
    (2, 3)
"""

import math

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from serving.errors import ServingError

# Beyond this a request is refused before anything is allocated: a shape such as
# [2**40] with one float_val would otherwise ask for terabytes of padding. It is
# above gRPC's 2 GiB message cap for raw bytes, so no honest request is refused.
MAX_TENSOR_BYTES = 1 << 31
# Strings become Python objects; a shape asking for more than this many is refused.
MAX_STRING_ELEMENTS = 1 << 24
# TensorShape's own limit.
MAX_DIMS = 254

_VAL_FIELD = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_STRING: "string_val",
    types_pb2.DT_HALF: "half_val",
    types_pb2.DT_BFLOAT16: "half_val",
    types_pb2.DT_COMPLEX64: "scomplex_val",
    types_pb2.DT_COMPLEX128: "dcomplex_val",
}

# DataTypeString(), the names TF Serving's messages use ("Expects arg[0] to be float").
_DTYPE_STRING = {
    types_pb2.DT_INVALID: "INVALID",
    types_pb2.DT_FLOAT: "float",
    types_pb2.DT_DOUBLE: "double",
    types_pb2.DT_INT32: "int32",
    types_pb2.DT_INT16: "int16",
    types_pb2.DT_INT8: "int8",
    types_pb2.DT_UINT8: "uint8",
    types_pb2.DT_UINT16: "uint16",
    types_pb2.DT_INT64: "int64",
    types_pb2.DT_UINT32: "uint32",
    types_pb2.DT_UINT64: "uint64",
    types_pb2.DT_BOOL: "bool",
    types_pb2.DT_STRING: "string",
    types_pb2.DT_HALF: "half",
    types_pb2.DT_BFLOAT16: "bfloat16",
    types_pb2.DT_COMPLEX64: "complex64",
    types_pb2.DT_COMPLEX128: "complex128",
}


def dtype_string(dtype: int) -> str:
    """TF's DataTypeString for a DataType enum value: DT_FLOAT -> "float"."""
    if dtype in _DTYPE_STRING:
        return _DTYPE_STRING[dtype]
    name = types_pb2.DataType.Name(dtype) if dtype in types_pb2.DataType.values() else str(dtype)
    return name.removeprefix("DT_").lower()


# Both conversions ask tf.dtypes, which costs microseconds a call; every request
# makes a few, so the answers are remembered (a handful of entries at most).
_NUMPY_DTYPES = {}
_DATATYPES = {}


def numpy_dtype(dtype: int) -> np.dtype:
    """The numpy dtype that holds a DataType (object for DT_STRING)."""
    np_dtype = _NUMPY_DTYPES.get(dtype)
    if np_dtype is None:
        if dtype == types_pb2.DT_STRING:
            np_dtype = np.dtype(object)
        else:
            np_dtype = np.dtype(tf.dtypes.as_dtype(dtype).as_numpy_dtype)
        _NUMPY_DTYPES[dtype] = np_dtype
    return np_dtype


def datatype_of(array: np.ndarray) -> int:
    """The DataType enum for a numpy array's dtype (strings and bytes -> DT_STRING)."""
    np_dtype = array.dtype
    datatype = _DATATYPES.get(np_dtype)
    if datatype is None:
        if np_dtype.kind in "OUS":
            datatype = types_pb2.DT_STRING
        else:
            datatype = tf.dtypes.as_dtype(np_dtype).as_datatype_enum
        _DATATYPES[np_dtype] = datatype
    return datatype


def shape_string(dims) -> str:
    """A shape as TF Serving prints it: [2,3]."""
    return "[" + ",".join(str(d) for d in dims) + "]"


def _parse_error(alias, detail):
    message = f"tensor parsing error: {alias}"
    if detail:
        message += f" ({detail})"
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def _dims(proto, alias):
    shape = proto.tensor_shape
    if shape.unknown_rank:
        raise _parse_error(alias, "the shape has an unknown rank")
    dims = [d.size for d in shape.dim]
    if len(dims) > MAX_DIMS:
        raise _parse_error(alias, f"{len(dims)} dimensions, more than {MAX_DIMS}")
    for d in dims:
        if d < 0:
            raise _parse_error(alias, f"shape {shape_string(dims)} has a negative dimension")
    return dims


def to_ndarray(proto: tensor_pb2.TensorProto, alias: str = "") -> np.ndarray:
    """Decode a TensorProto into a numpy array, refusing what TF would refuse.

    Args:
        proto: the TensorProto, with `tensor_content` or typed `*_val` fields.
        alias: the input name, for the error message.

    Returns:
        A numpy array (object dtype holding bytes for DT_STRING). Arrays decoded
        from `tensor_content` are read-only views of the request's bytes.

    Raises:
        ServingError: INVALID_ARGUMENT "tensor parsing error: <alias> (...)".
    """
    dtype = proto.dtype
    if dtype not in _VAL_FIELD:
        name = types_pb2.DataType.Name(dtype) if dtype in types_pb2.DataType.values() else dtype
        raise _parse_error(alias, f"unsupported dtype {name}")
    dims = _dims(proto, alias)
    n = math.prod(dims)
    if n >= 1 << 63:
        raise _parse_error(alias, f"shape {shape_string(dims)} overflows the element count")
    np_dtype = numpy_dtype(dtype)
    if dtype == types_pb2.DT_STRING:
        if n > MAX_STRING_ELEMENTS:
            raise _parse_error(
                alias, f"shape {shape_string(dims)} holds {n} strings, more than {MAX_STRING_ELEMENTS}"
            )
    elif n * np_dtype.itemsize > MAX_TENSOR_BYTES:
        raise _parse_error(
            alias,
            f"shape {shape_string(dims)} of {dtype_string(dtype)} needs {n * np_dtype.itemsize} bytes, "
            f"more than {MAX_TENSOR_BYTES}",
        )

    if proto.tensor_content:
        if dtype == types_pb2.DT_STRING:
            raise _parse_error(alias, "string tensors must use string_val, not tensor_content")
        expected = n * np_dtype.itemsize
        if len(proto.tensor_content) != expected:
            raise _parse_error(
                alias,
                f"tensor_content has {len(proto.tensor_content)} bytes but shape "
                f"{shape_string(dims)} of {dtype_string(dtype)} needs {expected}",
            )
        return np.frombuffer(proto.tensor_content, dtype=np_dtype).reshape(dims)

    values = getattr(proto, _VAL_FIELD[dtype])
    if dtype == types_pb2.DT_STRING:
        flat = np.empty(n, dtype=object)
        if n:
            given = list(values[:n])
            flat[: len(given)] = given
            flat[len(given):] = given[-1] if given else b""
        return flat.reshape(dims)
    if dtype in (types_pb2.DT_HALF, types_pb2.DT_BFLOAT16):
        # half_val holds the 16-bit patterns, one per int32.
        raw = np.asarray(values, dtype=np.int64).astype(np.uint16).view(np_dtype)
    elif dtype in (types_pb2.DT_COMPLEX64, types_pb2.DT_COMPLEX128):
        pairs = np.asarray(values, dtype=np.float64).reshape(-1, 2)
        raw = (pairs[:, 0] + 1j * pairs[:, 1]).astype(np_dtype)
    else:
        raw = np.asarray(values).astype(np_dtype, copy=False)
    if n == 0:
        return np.zeros(dims, np_dtype)
    if raw.size >= n:
        return raw[:n].reshape(dims)
    out = np.empty(n, np_dtype)
    out[: raw.size] = raw
    out[raw.size:] = raw[-1] if raw.size else 0
    return out.reshape(dims)


def _as_array(value, dtype):
    array = np.asarray(value)
    if dtype is not None:
        if dtype == types_pb2.DT_STRING:
            return array.astype(object) if array.dtype.kind != "O" else array
        return array.astype(numpy_dtype(dtype), copy=False)
    return array


def _as_bytes(item):
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode("utf-8")
    if isinstance(item, np.bytes_):
        return bytes(item)
    raise TypeError(f"cannot put {type(item).__name__} into a string tensor")


def from_ndarray(value, dtype: int | None = None) -> tensor_pb2.TensorProto:
    """Encode an array as a TensorProto: numbers in `tensor_content`, strings in `string_val`.

    Args:
        value: a numpy array or anything `np.asarray` takes (str and bytes become
            DT_STRING).
        dtype: optional DataType enum to cast to first.

    Returns:
        The TensorProto.
    """
    proto = tensor_pb2.TensorProto()
    fill(proto, value, dtype)
    return proto


def fill(proto: tensor_pb2.TensorProto, value, dtype: int | None = None) -> None:
    """`from_ndarray` into an existing, empty TensorProto (such as a response's
    `outputs[alias]`), which saves building a message and copying it there."""
    array = _as_array(value, dtype)
    datatype = datatype_of(array)
    proto.dtype = datatype
    add = proto.tensor_shape.dim.add
    for d in array.shape:
        add().size = d
    if datatype == types_pb2.DT_STRING:
        items = array.ravel().tolist()
        if all(type(item) is bytes for item in items):
            proto.string_val.extend(items)
        else:
            proto.string_val.extend(_as_bytes(item) for item in items)
    else:
        proto.tensor_content = array.tobytes()
