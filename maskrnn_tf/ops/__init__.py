"""Pure tensor functions: warping, flow helpers, boxes and RoI pooling, `.flo` I/O.

The names below are loaded on first use (PEP 562), so that `maskrnn_tf.ops.flo_io` (NumPy only) is imported
without TensorFlow: the flow CLI, which reads and writes `.flo` files with OpenCV and NumPy, then starts
without TensorFlow's several seconds of start-up.
"""
import importlib
from typing import Any

_SOURCES = {
    "maskrnn_tf.ops.boxes": ("DEFAULT_DELTA_WEIGHTS", "bilinear_crops", "box_iou", "box_mask", "boxes_on_feature_map",
                             "boxes_to_normalized", "clip_boxes", "decode_box_deltas", "encode_box_deltas", "enlarge_boxes", "mask_to_box",
                             "roi_pool"),
    "maskrnn_tf.ops.color_tables": ("color_prior", "rgb_bins"),
    "maskrnn_tf.ops.flo_io": ("FloFormatError", "read_flo", "write_flo"),
    "maskrnn_tf.ops.flow": ("flip_flow_left_right", "flow_magnitude", "resize_flow", "subtract_median_flow",
                            "warp_masks", "warp_with_flow"),
    "maskrnn_tf.ops.warp": ("dense_image_warp",),
}
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
