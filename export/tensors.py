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
