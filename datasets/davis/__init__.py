"""maskrnn_davis: DAVIS-2016 and DAVIS-2017 (semi-supervised) read from a manual directory."""
from maskrnn_tf.datasets.davis.davis import DavisConfig, MaskrnnDavis, frame_decoders

__all__ = ["MaskrnnDavis", "DavisConfig", "frame_decoders"]
