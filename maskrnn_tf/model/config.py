"""The network's config: `MaskRNNConfig` lives in `maskrnn_tf.model_config`, which loads without TensorFlow."""
from maskrnn_tf.model_config import SIDE_STAGES, MaskRNNConfig

__all__ = ["MaskRNNConfig", "SIDE_STAGES"]
