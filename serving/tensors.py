"""TensorProto <-> numpy, strictly, in both of TF Serving's encodings.

A request may carry a tensor as raw bytes (`tensor_content`) or as typed values
(`float_val`, `int64_val`, `string_val`, ...). Responses carry typed values, as
TF Serving's Predict writes them (`Tensor::AsProtoField`, the default
`kAsProtoField` of predict_util.cc): floats in `float_val`, int8/16/32 and
uint8/16 in `int_val`, half and bfloat16 bit patterns in `half_val`, complex
numbers as (re, im) pairs, strings in `string_val`. `from_ndarray`, which builds
requests, writes `tensor_content` instead, as `tf.make_tensor_proto` does.

Parsing follows `Tensor::FromProto`: typed values shorter than the shape are
padded with the last value (zeros when there are none), longer ones are cut;
anything it rejects (a wrong `tensor_content` length, a bool byte that is neither
0 nor 1, a negative or unknown dimension, an element count that overflows) is
INVALID_ARGUMENT "tensor parsing error: <alias>", the text TF Serving gives, plus
what was wrong in parentheses. Two refusals are this server's own, made before
anything is allocated: a tensor whose shape asks for more than `max_bytes`
(`DEFAULT_MAX_REQUEST_TENSOR_BYTES`, whatever the encoding: one float_val can
declare terabytes), and one with more dimensions than numpy holds (`MAX_DIMS`).

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

# The most a request tensor may ask for, in bytes, before anything is allocated.
# A TensorProto's shape is a promise the message does not have to keep: a shape
# [300000000, 1] with a single float_val is 30 bytes on the wire and 1.2 GB once
# padded (TF Serving's Tensor::FromProto allocates it all). 1 GiB suits a 24 GiB
# machine: a tensor at the limit lives about three times while a request runs
# (the parsed array, TensorFlow's input copy, outputs of the same size), so a
# few such requests at once still leave room for the models, and it is half of
# gRPC's 2 GiB message cap, so honest raw-bytes requests are rarely near it.
# The server may pass its own limit (to_ndarray's `max_bytes`); None: no limit.
DEFAULT_MAX_REQUEST_TENSOR_BYTES = 1 << 30
# Typed values shorter than the shape are padded (Tensor::FromProto); past this many
# bytes of padding a request is refused: a shape [1000000,8,8,1] with one float_val
# is 46 bytes on the wire and 256 MB once padded, and a model run on it many times
# more. An honest request sends its values (or a small broadcast, such as one zero
# for a blank image), so this bounds only what a request amplifies.
MAX_PADDING_BYTES = 64 << 20
# Strings become Python objects; a shape asking for more than this many is refused.
MAX_STRING_ELEMENTS = 1 << 24
# What TensorFlow keeps per string element besides its bytes (sizeof(tstring)).
TSTRING_BYTES = 32
# TensorShape allows 254 dimensions; numpy arrays hold fewer (64 in numpy 2, 32
# before), and a tensor must become an array here, so that is the limit.
TF_MAX_DIMS = 254


def _numpy_max_dims():
    for dims in (64, 32):
        try:
            np.empty((1,) * dims, np.uint8)
            return dims
        except ValueError:
            continue
    return 32


MAX_DIMS = min(TF_MAX_DIMS, _numpy_max_dims())


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
        raise _parse_error(
            alias,
            f"the shape has {len(dims)} dimensions, more than the {MAX_DIMS} this server supports"
            + (f"; TensorFlow's limit is {TF_MAX_DIMS}" if len(dims) > TF_MAX_DIMS else ""),
        )
    for d in dims:
        if d < 0:
            raise _parse_error(alias, f"shape {shape_string(dims)} has a negative dimension")
    return dims


def _string_bytes(values, n):
    """What n strings padded from `values` (the last repeated) hold, TensorFlow's way."""
    given = min(n, len(values))
    payload = sum(len(v) for v in values[:given])
    if n > given and given:
        payload += (n - given) * len(values[given - 1])
    return n * TSTRING_BYTES + payload


def _check_size(proto, alias, dtype, dims, n, max_bytes):
    if dtype == types_pb2.DT_STRING:
        if n > MAX_STRING_ELEMENTS:
            raise _parse_error(
                alias, f"shape {shape_string(dims)} holds {n} strings, more than {MAX_STRING_ELEMENTS}"
            )
        if max_bytes is not None and max_bytes > 0:
            needed = _string_bytes(proto.string_val, n)
            if needed > max_bytes:
                raise _parse_error(
                    alias,
                    f"shape {shape_string(dims)} of strings needs {needed} bytes, more than the "
                    f"{max_bytes} this server accepts in one tensor",
                )
        _check_padding(alias, dtype, dims, n, len(proto.string_val), TSTRING_BYTES)
        return
    itemsize = numpy_dtype(dtype).itemsize
    needed = n * itemsize
    if max_bytes is not None and 0 < max_bytes < needed:
        raise _parse_error(
            alias,
            f"shape {shape_string(dims)} of {dtype_string(dtype)} needs {needed} bytes, more than the "
            f"{max_bytes} this server accepts in one tensor",
        )
    if proto.tensor_content:
        return
    given = len(getattr(proto, _VAL_FIELD[dtype]))
    if dtype in (types_pb2.DT_COMPLEX64, types_pb2.DT_COMPLEX128):
        given //= 2
    _check_padding(alias, dtype, dims, n, given, itemsize)


def _check_padding(alias, dtype, dims, n, given, itemsize):
    padding = max(0, n - given) * itemsize
    if padding > MAX_PADDING_BYTES:
        raise _parse_error(
            alias,
            f"shape {shape_string(dims)} of {dtype_string(dtype)} holds {n} values but the request "
            f"carries {given}; padding the rest would take {padding} bytes, more than the "
            f"{MAX_PADDING_BYTES} this server pads a request tensor with: send the values",
        )


def to_ndarray(
    proto: tensor_pb2.TensorProto,
    alias: str = "",
    *,
    max_bytes: int | None = DEFAULT_MAX_REQUEST_TENSOR_BYTES,
) -> np.ndarray:
    """Decode a TensorProto into a numpy array, refusing what TF would refuse.

    Args:
        proto: the TensorProto, with `tensor_content` or typed `*_val` fields.
        alias: the input name, for the error message.
        max_bytes: refuse a tensor whose shape needs more than this many bytes
            (for strings: 32 per element plus their bytes, padding included),
            checked before anything is allocated. None or 0: no limit.

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
    _check_size(proto, alias, dtype, dims, n, max_bytes)
    np_dtype = numpy_dtype(dtype)

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
        if dtype == types_pb2.DT_BOOL and n and np.frombuffer(proto.tensor_content, np.uint8).max() > 1:
            # Tensor::FromProto refuses bool bytes other than 0 and 1.
            raise _parse_error(alias, "tensor_content holds a bool that is neither 0 nor 1")
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
    """Encode an array as a request TensorProto: numbers in `tensor_content`,
    strings in `string_val` (what `tf.make_tensor_proto` writes).

    Args:
        value: a numpy array or anything `np.asarray` takes (str and bytes become
            DT_STRING).
        dtype: optional DataType enum to cast to first.

    Returns:
        The TensorProto.
    """
    proto = tensor_pb2.TensorProto()
    fill(proto, value, dtype, as_content=True)
    return proto


# Floats, doubles, complex numbers and bools are written as their packed field's
# wire bytes and merged into the message: the same message as extending the
# repeated field value by value, but one copy of the array's bytes rather than a
# Python object per element (68 µs instead of 5.5 ms for a [64,32,32,3] float
# output). Integer fields are varints, which protobuf's extend is fastest at.

def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _tag(name):
    return _varint((tensor_pb2.TensorProto.DESCRIPTOR.fields_by_name[name].number << 3) | 2)


_FIXED = {  # DataType -> (field, little-endian dtype whose bytes are the packed values)
    types_pb2.DT_FLOAT: ("float_val", np.dtype("<f4")),
    types_pb2.DT_DOUBLE: ("double_val", np.dtype("<f8")),
    types_pb2.DT_COMPLEX64: ("scomplex_val", np.dtype("<c8")),  # (re, im) float pairs
    types_pb2.DT_COMPLEX128: ("dcomplex_val", np.dtype("<c16")),
}
_TAGS = {name: _tag(name) for name in set(_VAL_FIELD.values()) if name != "string_val"}


def _typed_values(array, datatype):
    """(field name, packed payload bytes or a list of values) for a numeric array,
    or None where only tensor_content can carry it."""
    fixed = _FIXED.get(datatype)
    if fixed is not None:
        field, wire = fixed
        return field, np.ascontiguousarray(array, dtype=wire).tobytes()
    field = _VAL_FIELD.get(datatype)
    if field is None:
        return None
    flat = array.ravel()
    if datatype == types_pb2.DT_BOOL:
        # One varint byte per bool: the packed field is the bytes 0 and 1.
        return field, np.not_equal(flat, 0).view(np.uint8).tobytes()
    if datatype in (types_pb2.DT_HALF, types_pb2.DT_BFLOAT16):
        flat = flat.view(np.uint16)
    # Varints: numpy encodes them no faster than protobuf extends a list.
    return field, flat.tolist()


def fill(proto: tensor_pb2.TensorProto, value, dtype: int | None = None, *, as_content: bool = False) -> None:
    """Encode an array into an existing, empty TensorProto (such as a response's
    `outputs[alias]`), which saves building a message and copying it there.

    Numbers go into their typed field, as `Tensor::AsProtoField` writes them
    (TF Serving's Predict responses), or into `tensor_content` when
    `as_content` (`AsProtoTensorContent`, what requests carry); strings always
    into `string_val`.
    """
    array = _as_array(value, dtype)
    datatype = datatype_of(array)
    proto.dtype = datatype
    shape = proto.tensor_shape
    shape.SetInParent()  # AsProto writes the shape even for a scalar
    add = shape.dim.add
    for d in array.shape:
        add().size = d
    if datatype == types_pb2.DT_STRING:
        items = array.ravel().tolist()
        if all(type(item) is bytes for item in items):
            proto.string_val.extend(items)
        else:
            proto.string_val.extend(_as_bytes(item) for item in items)
        return
    typed = None if as_content else _typed_values(array, datatype)
    if typed is None:
        proto.tensor_content = array.tobytes()
        return
    field, values = typed
    if isinstance(values, list):
        getattr(proto, field).extend(values)
    elif values:
        proto.MergeFromString(_TAGS[field] + _varint(len(values)) + values)
