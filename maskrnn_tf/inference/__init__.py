"""Segmenting videos: reading, the propagation loop, online finetuning, the flow baseline, writers.

CLI: `python -m maskrnn_tf.segment`.
"""
from maskrnn_tf.inference.baseline import flow_propagation_step
from maskrnn_tf.inference.box_prompt import BoxError, first_mask_from_boxes, mask_from_boxes, parse_boxes
from maskrnn_tf.inference.finetune import (
    FinetuneConfig,
    finetune,
    finetune_on_video,
    finetuning_prepare,
    first_frame_loss,
)
from maskrnn_tf.inference.first_mask import FirstMask, MaskError, read_first_mask
from maskrnn_tf.inference.flow_source import (CachedFlowFn, FloFileFlow, backend_flow_fn, cached_davis_flow_fn,
                                              cached_segtrack_flow_fn, make_flow_fn)
from maskrnn_tf.inference.model_loading import ModelLoadError, load_model, trained_step, training_config
from maskrnn_tf.inference.model_step import model_step_fn
from maskrnn_tf.inference.output_dir import (OutputExistsError, UnsafeOutputError, atomic_output_dir,
                                             check_output_dir)
from maskrnn_tf.inference.recurrent_finetune import (RecurrentFinetuneConfig, recurrent_finetune,
                                                     recurrent_finetuning_prepare)
from maskrnn_tf.inference.propagation import AnyFlowFn, FlowFn, FrameResult, NamedFlowFn, StepFn, propagate
from maskrnn_tf.inference.segmenter import (SegmentOptions, check_overlay_path, segment_davis, segment_frames,
                                           segment_segtrack, segment_video)
from maskrnn_tf.inference.video_reader import VideoReadError, VideoSource

__all__ = [
    "AnyFlowFn",
    "BoxError",
    "FinetuneConfig",
    "FirstMask",
    "FloFileFlow",
    "FlowFn",
    "FrameResult",
    "MaskError",
    "ModelLoadError",
    "NamedFlowFn",
    "OutputExistsError",
    "RecurrentFinetuneConfig",
    "SegmentOptions",
    "StepFn",
    "UnsafeOutputError",
    "VideoReadError",
    "VideoSource",
    "atomic_output_dir",
    "backend_flow_fn",
    "check_output_dir",
    "check_overlay_path",
    "finetune",
    "finetune_on_video",
    "finetuning_prepare",
    "first_frame_loss",
    "first_mask_from_boxes",
    "flow_propagation_step",
    "load_model",
    "make_flow_fn",
    "CachedFlowFn",
    "cached_davis_flow_fn",
    "cached_segtrack_flow_fn",
    "mask_from_boxes",
    "model_step_fn",
    "parse_boxes",
    "propagate",
    "read_first_mask",
    "recurrent_finetune",
    "recurrent_finetuning_prepare",
    "segment_davis",
    "segment_segtrack",
    "segment_frames",
    "segment_video",
    "trained_step",
    "training_config",
]
