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


# Responses: typed fields, as Tensor::AsProtoField writes them.

_TYPED = {
    np.float32: "float_val", np.float64: "double_val", np.int32: "int_val", np.int8: "int_val",
    np.uint8: "int_val", np.int16: "int_val", np.uint16: "int_val", np.int64: "int64_val",
    np.uint32: "uint32_val", np.uint64: "uint64_val", np.bool_: "bool_val", np.float16: "half_val",
    np.complex64: "scomplex_val", np.complex128: "dcomplex_val",
}


@pytest.mark.parametrize("array", [
    np.array([[0.5, -1.25, 3e38]], np.float32), np.array([1e-300, 2.0], np.float64),
    np.array([-(2**31), 2**31 - 1], np.int32), np.array([-128, 127], np.int8), np.array([0, 255], np.uint8),
    np.array([-5, 7], np.int16), np.array([65535], np.uint16), np.array([[2**62, -3]], np.int64),
    np.array([2**32 - 1], np.uint32), np.array([2**64 - 1], np.uint64), np.array([True, False, True]),
    np.array([0.5, -2.0], np.float16), np.array([1 + 2j, -3.5j], np.complex64),
    np.array([1e200 + 1j], np.complex128), np.float32(7.0), np.zeros([2, 0], np.float32),
], ids=lambda a: f"{a.dtype}{list(np.shape(a))}")
def test_responses_fill_the_typed_field_tensorflow_reads(array):
    proto = tensor_pb2.TensorProto()
    tensors.fill(proto, array)
    field = _TYPED[np.asarray(array).dtype.type]
    assert not proto.tensor_content
    assert len(getattr(proto, field)) == np.size(array) * (2 if np.iscomplexobj(array) else 1)
    assert proto.HasField("tensor_shape")
    np.testing.assert_array_equal(tf.make_ndarray(proto), array)
    np.testing.assert_array_equal(tensors.to_ndarray(proto, "y"), array)


def test_requests_still_carry_tensor_content():
    proto = tensors.from_ndarray(np.ones([2, 2], np.float32))
    assert proto.tensor_content and not proto.float_val


# Limits a request cannot get around.


def test_a_small_broadcast_is_padded_as_tensorflow_pads_it():
    # One zero for a blank image: what tf.make_tensor_proto(0.0, shape=...) sends.
    proto = tf.make_tensor_proto(0.0, shape=[1, 224, 224, 3])
    assert len(proto.float_val) == 1
    assert tensors.to_ndarray(proto, "image").shape == (1, 224, 224, 3)


@pytest.mark.parametrize("dtype, field, value, dims", [
    (types_pb2.DT_FLOAT, "float_val", 1.0, [1_000_000, 8, 8, 1]),
    (types_pb2.DT_INT64, "int64_val", 1, [1_000_000, 8, 8, 1]),
    (types_pb2.DT_STRING, "string_val", b"a", [100_000, 32]),  # 3.2 M strings of 32 bytes each in TF
])
def test_a_shape_that_amplifies_a_few_values_is_refused_before_allocating(dtype, field, value, dims):
    proto = _proto(dtype, dims, **{field: [value]})
    assert len(proto.SerializeToString()) < 64
    with pytest.raises(ServingError) as info:
        tensors.to_ndarray(proto, "image")
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "the request carries 1" in info.value.message and "send the values" in info.value.message


def test_the_declared_size_limit_is_the_callers():
    proto = tensors.from_ndarray(np.zeros([1024], np.float32))
    assert tensors.to_ndarray(proto, "x", max_bytes=4096).shape == (1024,)
    with pytest.raises(ServingError, match="needs 4096 bytes, more than the 4095"):
        tensors.to_ndarray(proto, "x", max_bytes=4095)


@pytest.mark.parametrize("rank", [tensors.MAX_DIMS + 1, 254, 255])
def test_more_dimensions_than_an_array_holds_is_invalid_argument(rank):
    proto = _proto(types_pb2.DT_FLOAT, [1] * rank, float_val=[1.0])
    with pytest.raises(ServingError) as info:
        tensors.to_ndarray(proto, "x")
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{rank} dimensions" in info.value.message
    assert tensors.to_ndarray(_proto(types_pb2.DT_FLOAT, [1] * tensors.MAX_DIMS, float_val=[1.0]), "x").size == 1


def test_bool_bytes_other_than_0_and_1_are_refused():
    with pytest.raises(ServingError, match="neither 0 nor 1"):
        tensors.to_ndarray(_proto(types_pb2.DT_BOOL, [2], tensor_content=b"\x01\x02"), "flag")
