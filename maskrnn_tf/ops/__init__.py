"""Pure tensor functions: warping, flow helpers, boxes and RoI pooling, `.flo` I/O."""
from maskrnn_tf.ops.boxes import (
    DEFAULT_DELTA_WEIGHTS,
    bilinear_crops,
    box_iou,
    box_mask,
    boxes_to_normalized,
    clip_boxes,
    decode_box_deltas,
    encode_box_deltas,
    enlarge_boxes,
    mask_to_box,
    roi_pool,
)
from maskrnn_tf.ops.flo_io import FloFormatError, read_flo, write_flo
from maskrnn_tf.ops.flow import flip_flow_left_right, flow_magnitude, resize_flow, warp_with_flow
from maskrnn_tf.ops.warp import dense_image_warp

__all__ = [
    "DEFAULT_DELTA_WEIGHTS",
    "FloFormatError",
    "bilinear_crops",
    "box_iou",
    "box_mask",
    "boxes_to_normalized",
    "clip_boxes",
    "decode_box_deltas",
    "dense_image_warp",
    "encode_box_deltas",
    "enlarge_boxes",
    "flip_flow_left_right",
    "flow_magnitude",
    "mask_to_box",
    "read_flo",
    "resize_flow",
    "roi_pool",
    "warp_with_flow",
    "write_flo",
]
