"""VGG-16 trunk: parameter counts, weights loading with first-conv surgery, clear errors."""
import keras
import numpy as np
import pytest

from maskrnn_tf.model import VGGWeightsError, build_vgg_trunk, caffe_preprocess_rgb, load_vgg_weights


@pytest.mark.parametrize("channels", [3, 4])
def test_width_one_parameter_count_is_vgg16(channels):
    trunk = build_vgg_trunk(channels, width=1.0)
    # 14,714,688 = keras VGG16(include_top=False); each extra input channel adds 3*3*64 first-conv weights.
    assert trunk.count_params() == 14_714_688 + (channels - 3) * 3 * 3 * 64


def test_stage_shapes_for_odd_sizes():
    trunk = build_vgg_trunk(4, width=0.125)
    out = trunk(np.zeros((2, 30, 50, 4), np.float32))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "conv1_2": (2, 30, 50, 8),
        "conv2_2": (2, 15, 25, 16),
        "conv3_3": (2, 7, 12, 32),
        "conv4_3": (2, 3, 6, 64),
        "conv5_3": (2, 1, 3, 64),
    }


@pytest.fixture(scope="module")
def vgg16_weights(tmp_path_factory):
    keras.utils.set_random_seed(0)
    plain = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    path = str(tmp_path_factory.mktemp("vgg") / "vgg16.weights.h5")
    plain.save_weights(path)
    return plain, path


def test_weights_round_trip_with_first_conv_surgery(vgg16_weights):
    plain, path = vgg16_weights
    trunk = build_vgg_trunk(4, width=1.0)
    load_vgg_weights(trunk, path)
    kernel = trunk.get_layer("block1_conv1").get_weights()[0]
    np.testing.assert_array_equal(kernel[:, :, 3], 0.0)
    rgb = np.random.default_rng(0).uniform(0, 255, (1, 32, 40, 3)).astype(np.float32)
    x = caffe_preprocess_rgb(rgb)
    extra = np.zeros((1, 32, 40, 1), np.float32)
    got = trunk(np.concatenate([x, extra], -1))["conv5_3"]
    conv5_3 = keras.Model(plain.input, plain.get_layer("block5_conv3").output)
    want = conv5_3(x)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-4)


def test_a_two_channel_trunk_takes_the_first_two_input_filters(vgg16_weights):
    """The flow stream without the warped mask (`use_warped_mask=False`) has 2 input channels: loading ImageNet
    weights raised "ImageNet weights need width=1.0" at width 1.0, as only more channels than 3 were handled."""
    plain, path = vgg16_weights
    trunk = build_vgg_trunk(2, width=1.0)
    load_vgg_weights(trunk, path)
    want = plain.get_layer("block1_conv1").get_weights()[0][:, :, :2]
    np.testing.assert_array_equal(trunk.get_layer("block1_conv1").get_weights()[0], want)
    np.testing.assert_array_equal(trunk.get_layer("block2_conv1").get_weights()[0],
                                  plain.get_layer("block2_conv1").get_weights()[0])


def test_missing_and_mismatched_weights_are_clear(vgg16_weights, tmp_path):
    _, path = vgg16_weights
    with pytest.raises(VGGWeightsError, match="not found"):
        load_vgg_weights(build_vgg_trunk(3, 0.125), str(tmp_path / "nope.h5"))
    with pytest.raises(VGGWeightsError, match=r"block1_conv1 .*expects"):
        load_vgg_weights(build_vgg_trunk(3, 0.125), path)
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an h5 file")
    with pytest.raises(VGGWeightsError, match="not loadable"):
        load_vgg_weights(build_vgg_trunk(3, 0.125), str(bad))


def test_caffe_preprocess_rgb_only():
    rgb = np.array([[[10.0, 20.0, 30.0]]], np.float32)
    np.testing.assert_allclose(np.asarray(caffe_preprocess_rgb(rgb)), [[[30 - 103.939, 20 - 116.779, 10 - 123.68]]], rtol=1e-6)
