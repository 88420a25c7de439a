"""The MaskRNN network: config, VGG-16 trunk, segmentation streams, localization head, the step."""
from maskrnn_tf.model.config import MaskRNNConfig
from maskrnn_tf.model.maskrnn import MaskRNN, fuse_probabilities
from maskrnn_tf.model.resize_like import ResizeLike
from maskrnn_tf.model.segmentation_stream import build_segmentation_stream
from maskrnn_tf.model.vgg_trunk import VGGWeightsError, build_vgg_trunk, caffe_preprocess_rgb, load_vgg_weights

__all__ = [
    "MaskRNN",
    "MaskRNNConfig",
    "ResizeLike",
    "VGGWeightsError",
    "build_segmentation_stream",
    "build_vgg_trunk",
    "caffe_preprocess_rgb",
    "fuse_probabilities",
    "load_vgg_weights",
]
