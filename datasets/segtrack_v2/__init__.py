"""segtrack_v2: SegTrack v2 (single- and multi-object sequences) read from a manual directory."""
from maskrnn_tf.datasets.segtrack_v2.segtrack_v2 import SegtrackV2

__all__ = ["SegtrackV2"]
