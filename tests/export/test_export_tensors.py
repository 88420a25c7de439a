"""export/tensors.py: NumPy <-> TensorProto in both encodings the model server uses (raw bytes in requests, the
typed `*_val` fields in its Predict answers)."""
import numpy as np
import pytest
import tensorflow as tf

from maskrnn_tf.export.tensors import ndarray_to_field_proto, ndarray_to_proto, proto_to_ndarray

# dtype -> the field Tensor::AsProtoField fills (TensorFlow's tensor.cc), by hand.
FIELDS = {np.float32: "float_val", np.float64: "double_val", np.int32: "int_val", np.uint8: "int_val",
          np.int64: "int64_val", np.bool_: "bool_val", np.float16: "half_val"}


@pytest.mark.parametrize("dtype", list(FIELDS))
@pytest.mark.parametrize("shape", [(2, 3, 4), (5,), ()])
def test_typed_field_protos_round_trip_through_tensorflow_and_the_client_decoder(dtype, shape):
    rng = np.random.default_rng(0)
    array = (rng.normal(size=shape) * 100).astype(dtype)
    proto = ndarray_to_field_proto(array)
    assert not proto.tensor_content and len(getattr(proto, FIELDS[dtype])) == array.size
    assert [d.size for d in proto.tensor_shape.dim] == list(shape)
    for decoded in (tf.make_ndarray(proto), proto_to_ndarray(proto)):
        assert decoded.dtype == array.dtype and decoded.shape == array.shape
        np.testing.assert_array_equal(decoded, array)
    # The request encoding (raw bytes; bool through tf.make_tensor_proto) decodes to the same array.
    raw = ndarray_to_proto(array)
    assert bool(raw.tensor_content) == (array.size > 0 and dtype is not np.bool_)
    np.testing.assert_array_equal(proto_to_ndarray(raw), array)


def test_half_values_go_as_their_bit_patterns():
    proto = ndarray_to_field_proto(np.float16([1.0, -2.0, 65504.0]))
    assert list(proto.half_val) == [0x3C00, 0xC000, 0x7BFF]


def test_string_outputs_go_in_string_val_as_tensorflow_writes_them():
    """A session returns string tensors (step_batched's input_error) as bytes objects; the stand-in server answers
    them in string_val, as TensorFlow's own proto of the tensor holds them, and the client reads them back."""
    array = np.array([b"", b"input prev_boxes must be finite (no NaN or Inf)"], dtype=object)
    proto = ndarray_to_field_proto(array)
    reference = tf.make_tensor_proto(array)
    assert proto.dtype == reference.dtype and list(proto.string_val) == list(reference.string_val)
    assert [d.size for d in proto.tensor_shape.dim] == [2]
    decoded = proto_to_ndarray(proto)
    assert decoded.shape == (2,) and decoded.tolist() == array.tolist()
    assert proto_to_ndarray(ndarray_to_field_proto(np.array([["a", "é"]]))).tolist() == [[b"a", "é".encode()]]
