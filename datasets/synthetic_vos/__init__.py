"""synthetic_vos: procedurally generated videos with exact masks and exact optical flow."""
from maskrnn_tf.datasets.synthetic_vos.synthetic_vos import SyntheticVos, SyntheticVosConfig

__all__ = ["SyntheticVos", "SyntheticVosConfig"]
