"""NumPy <-> TensorProto without a TensorFlow runtime call on the hot path.

Requests carry frames, flows and probability maps as raw bytes (`tensor_content`), the cheapest encoding;
responses from other servers may use the typed `*_val` fields, which `proto_to_ndarray` also reads.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

_NUMPY_TO_ENUM = {
    np.dtype(np.uint8): types_pb2.DT_UINT8,
    np.dtype(np.int32): types_pb2.DT_INT32,
    np.dtype(np.int64): types_pb2.DT_INT64,
    np.dtype(np.float32): types_pb2.DT_FLOAT,
    np.dtype(np.float64): types_pb2.DT_DOUBLE,
    np.dtype(np.float16): types_pb2.DT_HALF,
}
_ENUM_TO_NUMPY = {v: k for k, v in _NUMPY_TO_ENUM.items()}


def ndarray_to_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """A TensorProto of `array` (little-endian raw bytes); other dtypes go through tf.make_tensor_proto."""
    array = np.asarray(array)
    enum = _NUMPY_TO_ENUM.get(array.dtype)
    if enum is None:
        return tf.make_tensor_proto(array)
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in array.shape])
    return tensor_pb2.TensorProto(
        dtype=enum, tensor_shape=shape, tensor_content=np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes()
    )


def proto_to_ndarray(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """The NumPy array of a TensorProto (raises ValueError when its bytes do not match its shape)."""
    shape = [d.size for d in proto.tensor_shape.dim]
    dtype = _ENUM_TO_NUMPY.get(proto.dtype)
    if dtype is None or not proto.tensor_content:
        return tf.make_ndarray(proto)
    count = int(np.prod(shape)) if shape else 1
    expected = count * dtype.itemsize
    if len(proto.tensor_content) != expected:
        raise ValueError(f"tensor_content holds {len(proto.tensor_content)} bytes, shape {shape} of {dtype} needs {expected}.")
    return np.frombuffer(proto.tensor_content, dtype.newbyteorder("<")).astype(dtype, copy=False).reshape(shape)


# The typed field TensorFlow's Tensor::AsProtoField fills for each dtype (tensor.cc's ProtoHelper): 8- and 16-bit
# integers widen into int_val, float16 and bfloat16 go as their 16-bit patterns in half_val.
_FIELD_BY_ENUM = {
    types_pb2.DT_FLOAT: "float_val", types_pb2.DT_DOUBLE: "double_val", types_pb2.DT_INT32: "int_val",
    types_pb2.DT_UINT8: "int_val", types_pb2.DT_INT8: "int_val", types_pb2.DT_INT16: "int_val",
    types_pb2.DT_UINT16: "int_val", types_pb2.DT_INT64: "int64_val", types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val", types_pb2.DT_BOOL: "bool_val", types_pb2.DT_HALF: "half_val",
    types_pb2.DT_BFLOAT16: "half_val",
}


def ndarray_to_field_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """A TensorProto of `array` in the typed `*_val` field, as TensorFlow Serving's Predict answers by default
    (Tensor::AsProtoField, not tensor_content): for the stand-in server, so clients are tested on what the model
    server really sends."""
    array = np.asarray(array)
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in array.shape])
    if array.dtype.kind in "OSU":  # strings (a session returns bytes objects): string_val, as the model server
        values = [v.encode() if isinstance(v, str) else v for v in array.reshape(-1).tolist()]
        if not all(isinstance(v, bytes) for v in values):
            raise TypeError(f"a string tensor holds values that are neither str nor bytes: {values[:3]}")
        return tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=shape, string_val=values)
    enum = tf.dtypes.as_dtype(array.dtype).as_datatype_enum
    field = _FIELD_BY_ENUM.get(enum)
    if field is None:
        raise TypeError(f"no typed TensorProto field for dtype {array.dtype}")
    proto = tensor_pb2.TensorProto(dtype=enum, tensor_shape=shape)
    flat = array.reshape(-1)
    if field == "half_val":
        flat = flat.view(np.uint16).astype(np.int32)
    getattr(proto, field).extend(flat.tolist())
    return proto
