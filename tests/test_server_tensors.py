"""TensorProto <-> numpy: both encodings, every common dtype, and strict refusals."""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from serving import tensors
from serving.errors import ServingError


def _proto(dtype, dims, **fields):
    proto = tensor_pb2.TensorProto(
        dtype=dtype,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]
        ),
    )
    for name, value in fields.items():
        if name == "tensor_content":
            proto.tensor_content = value
        else:
            getattr(proto, name).extend(value)
    return proto


@pytest.mark.parametrize(
    "array",
    [
        np.arange(6, dtype=np.float32).reshape(2, 3),
        np.arange(6, dtype=np.float64).reshape(3, 2),
        np.arange(4, dtype=np.int32),
        np.array([[2**40, -5]], dtype=np.int64),
        np.array([0, 255], dtype=np.uint8),
        np.array([True, False]),
        np.array([0.5, -2.0], dtype=np.float16),
        np.zeros([0, 3], np.float32),
        np.float32(3.5),
    ],
    ids=lambda a: f"{a.dtype}{list(np.shape(a))}",
)
def test_numeric_round_trip_uses_tensor_content(array):
    proto = tensors.from_ndarray(array)
    assert proto.tensor_content or np.size(array) == 0
    back = tensors.to_ndarray(proto, "x")
    assert back.dtype == np.asarray(array).dtype
    np.testing.assert_array_equal(back, array)
    # TF itself reads what we write.
    np.testing.assert_array_equal(tf.make_ndarray(proto), array)


def test_strings_round_trip_in_string_val():
    proto = tensors.from_ndarray(np.array([["a", "bé"], ["", "c"]]))
    assert proto.dtype == types_pb2.DT_STRING and not proto.tensor_content
    back = tensors.to_ndarray(proto, "text")
    assert back.tolist() == [[b"a", "bé".encode()], [b"", b"c"]]


@pytest.mark.parametrize(
    "array",
    [np.array([[1.5, 2.5]], np.float32), np.array([3, 4], np.int64), np.array([b"x", b"yz"]),
     np.array([True, False]), np.array([1.0, 2.0], np.float16)],
    ids=lambda a: str(a.dtype),
)
def test_typed_val_fields_are_read(array):
    # tf.make_tensor_proto writes typed fields for these small inputs when asked to.
    proto = tf.make_tensor_proto(array, shape=array.shape)
    proto.ClearField("tensor_content")
    field = {np.float32: "float_val", np.int64: "int64_val", np.bool_: "bool_val"}.get(array.dtype.type)
    if field:
        getattr(proto, field).extend(array.ravel().tolist())
    elif array.dtype == np.float16:
        proto.half_val.extend(array.view(np.uint16).ravel().tolist())
    else:
        proto.ClearField("string_val")
        proto.string_val.extend(array.ravel().tolist())
    np.testing.assert_array_equal(tensors.to_ndarray(proto, "x"), array)


def test_short_typed_values_repeat_the_last_like_tensorflow():
    proto = _proto(types_pb2.DT_FLOAT, [2, 2], float_val=[1.0, 2.0])
    np.testing.assert_array_equal(tensors.to_ndarray(proto), [[1, 2], [2, 2]])
    np.testing.assert_array_equal(tf.make_ndarray(proto), [[1, 2], [2, 2]])
    assert tensors.to_ndarray(_proto(types_pb2.DT_INT32, [3])).tolist() == [0, 0, 0]


@pytest.mark.parametrize(
    "proto, detail",
    [
        (_proto(types_pb2.DT_FLOAT, [2, 2], tensor_content=b"\0" * 12), "tensor_content has 12 bytes"),
        (_proto(types_pb2.DT_FLOAT, [-1, 4], float_val=[1.0]), "negative dimension"),
        (_proto(types_pb2.DT_FLOAT, [1 << 40], float_val=[1.0]), "more than"),
        (_proto(types_pb2.DT_FLOAT, [1 << 62, 1 << 62], float_val=[1.0]), "overflows"),
        (_proto(types_pb2.DT_STRING, [1 << 30], string_val=[b"a"]), "strings"),
        (_proto(types_pb2.DT_RESOURCE, [1]), "unsupported dtype"),
        (tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT,
                                tensor_shape=tensor_shape_pb2.TensorShapeProto(unknown_rank=True)),
         "unknown rank"),
    ],
    ids=["content-length", "negative-dim", "huge-dim", "overflow", "huge-strings", "resource", "unknown-rank"],
)
def test_malformed_protos_are_invalid_argument(proto, detail):
    with pytest.raises(ServingError) as info:
        tensors.to_ndarray(proto, "image")
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.message.startswith("tensor parsing error: image")
    assert detail in info.value.message


def test_dtype_names_match_tensorflow():
    assert tensors.dtype_string(types_pb2.DT_FLOAT) == "float"
    assert tensors.dtype_string(types_pb2.DT_INT64) == "int64"
    assert tensors.dtype_string(types_pb2.DT_STRING) == "string"
