"""The MaskRNN network: one recurrent step for a batch of objects, and the argmax fusion.

Every loop (training, online finetuning, segmenting, serving) calls `MaskRNN.call` (batched: one object per
batch element, each with its own frame) or `MaskRNN.step` (one video: the frame and flows shared by N objects).
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Union

import keras
import tensorflow as tf

from maskrnn_tf.model.config import MaskRNNConfig
from maskrnn_tf.model.localization_head import build_localization_head
from maskrnn_tf.model.segmentation_stream import build_segmentation_stream
from maskrnn_tf.model.vgg_trunk import caffe_preprocess_rgb, vgg_filters
from maskrnn_tf.ops import (
    box_mask,
    boxes_on_feature_map,
    boxes_to_normalized,
    clip_boxes,
    color_prior,
    decode_box_deltas,
    enlarge_boxes,
    flow_magnitude,
    mask_to_box,
    roi_pool,
    subtract_median_flow,
    warp_with_flow,
)

# VGG-16's four 2x2 pools leave conv5_3 1/16 of the frame: below 16 pixels a side it has no rows, and the side
# outputs' resize and the localization head's crops fail deep inside TensorFlow.
NETWORK_MIN_SIDE = 16


@keras.saving.register_keras_serializable(package="maskrnn_tf")
class MaskRNN(keras.Model):
    """MaskRNN (Hu, Huang, Schwing, NIPS 2017), one recurrent step.

    Inputs of `call` (a dict; B = objects, each with its own frame):
      frame [B, H, W, 3] RGB 0..255; flow_to_prev, flow_to_next [B, H, W, 2] (u, v) flows from frame t to t-1
      and to t+1 (zeros where the frame does not exist); prev_probs [B, H, W] the previous prediction in frame
      t-1 (not yet warped); optional prev_boxes [B, 4] (the previous frame's boxes, used when the warped mask
      is empty); color_model [B, 4096] each object's first-frame colour table, required with
      `config.color_prior_input` (see `maskrnn_tf.ops.color_tables`).
    Outputs (all float32): probs [B, H, W] (restricted to the enlarged box when `apply_localization`),
      logits [B, H, W] (the unrestricted combined logits), boxes [B, 4] predicted, proposals [B, 4],
      deltas [B, 4], warped [B, H, W].
    """

    def __init__(self, config: Union[MaskRNNConfig, Mapping[str, Any], None] = None, *,
                 read_vgg_weights: bool = True, **kwargs):
        """read_vgg_weights=False: the trunks are not initialised from `config.vgg_weights` (left random), for a
        caller that sets every weight right after (a saved model or a checkpoint being loaded): the file may be
        gone, or 'imagenet' need a download, and its weights would be overwritten anyway. The config keeps it."""
        super().__init__(**kwargs)
        # Keras would cast every float input to the compute dtype before `call` (arrays are still made tensors):
        # the flows, the previous mask and boxes feed float32 geometry (warp, boxes), so `call` casts its inputs
        # itself and each layer what it computes on.
        self.autocast = False
        if config is None:
            config = MaskRNNConfig()
        elif not isinstance(config, MaskRNNConfig):
            config = MaskRNNConfig.from_dict(config)
        self.config = config
        mask_channels = 1 if config.use_warped_mask else 0
        common = dict(
            width=config.width,
            side_stages=config.side_stages,
            side_channels=config.side_channels,
            vgg_weights=config.vgg_weights if read_vgg_weights else None,
        )
        prior_channels = 1 if config.color_prior_input else 0
        self.appearance_stream = build_segmentation_stream(3 + mask_channels + prior_channels,
                                                           name="appearance_stream", **common)
        self.flow_stream = None
        if config.use_flow_stream:
            self.flow_stream = build_segmentation_stream(2 + mask_channels, name="flow_stream", **common)
        # The learned linear combination of the two streams' logits (weights and bias), started as the mean.
        n_streams = 2 if config.use_flow_stream else 1
        self.stream_fusion = keras.layers.Dense(
            1, kernel_initializer=keras.initializers.Constant(1.0 / n_streams), name="stream_fusion"
        )
        self.stream_fusion.build((None, n_streams))
        self.localization_head = build_localization_head(
            config.roi_size, vgg_filters(512, config.width), config.fc_units, name="localization_head"
        )
        # Every weight exists now: built, so a model saved before its first call is saved whole (and Keras
        # does not warn that it "has not yet been built").
        self.build()

    # -- serialization -----------------------------------------------------------------------------------
    def get_config(self) -> Dict[str, Any]:
        base = super().get_config()
        base.update({"config": self.config.to_dict()})
        return base

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "MaskRNN":
        # keras.models.load_model builds the model here and then restores its saved weights.
        config = dict(config)
        # The sub-networks are built under the global policy: so is the whole model. The saved dtype (a model
        # saved in mixed precision) would make only the outer one compute in it, rounding the inputs of float32
        # trunks; rebuild_with_precision gives a network in another precision.
        config.pop("dtype", None)
        return cls(config.pop("config"), read_vgg_weights=False, **config)

    def build(self, input_shape=None) -> None:
        # Every sub-model is built in __init__; nothing depends on the input shape.
        self.built = True

    # -- the step ------------------------------------------------------------------------------------------
    def _cast(self, x: tf.Tensor) -> tf.Tensor:
        return tf.cast(x, self.compute_dtype)

    def call(self, inputs: Mapping[str, tf.Tensor], training: bool = False) -> Dict[str, tf.Tensor]:
        cfg = self.config
        frame = tf.cast(inputs["frame"], tf.float32)
        flow_prev = tf.cast(inputs["flow_to_prev"], tf.float32)
        flow_next = tf.cast(inputs["flow_to_next"], tf.float32)
        prev = tf.cast(inputs["prev_probs"], tf.float32)
        shape = tf.shape(frame)
        height, width = shape[1], shape[2]
        static = frame.shape[1:3]
        if any(side is not None and side < NETWORK_MIN_SIDE for side in static):
            raise ValueError(f"MaskRNN: frames of {static[0]}x{static[1]} pixels are too small: the network needs "
                             f"at least {NETWORK_MIN_SIDE} pixels a side (conv5_3 sees 1/16 of the frame); upscale "
                             "the frames (segment refuses frames below 32 pixels a side).")

        # 1. Move the previous prediction into this frame (float32: coordinates need the precision).
        # warp_mask=False is the paper's "no Warp mask" ablation: the mask stays where it was.
        warped = warp_with_flow(prev[..., None], flow_prev) if cfg.warp_mask else prev[..., None]  # [B, H, W, 1]

        # 2. Two-stream binary segmentation.
        mask_in = (warped - 0.5) * cfg.mask_input_scale
        app_parts = [caffe_preprocess_rgb(frame)] + ([mask_in] if cfg.use_warped_mask else [])
        if cfg.color_prior_input:
            tables = inputs.get("color_model") if hasattr(inputs, "get") else None
            if tables is None:
                raise ValueError("this MaskRNN was built with color_prior_input: its inputs need 'color_model' "
                                 "[B, 4096], each object's first-frame colour table (fit_color_model, space 'rgb').")
            # The prior is a share in 0..1 like the mask: it enters at the mask's scale.
            app_parts.append((color_prior(frame, tables)[..., None] - 0.5) * cfg.mask_input_scale)
        appearance = self.appearance_stream(self._cast(tf.concat(app_parts, -1)), training=training)
        stream_logits = [tf.cast(appearance["logits"], tf.float32)]
        if self.flow_stream is not None:
            # The flow stream sees how fast each pixel moves; with flow_reference 'median', relative to the frame's
            # median motion (the camera's), so that a tracked object moves and its still background does not.
            flows = [flow_prev, flow_next]
            if cfg.flow_reference == "median":
                flows = [subtract_median_flow(f) for f in flows]
            flow_parts = [flow_magnitude(f) * cfg.flow_input_scale for f in flows]
            flow_parts += [mask_in] if cfg.use_warped_mask else []
            flow_out = self.flow_stream(self._cast(tf.concat(flow_parts, -1)), training=training)
            stream_logits.append(tf.cast(flow_out["logits"], tf.float32))
        logits = tf.cast(self.stream_fusion(tf.concat(stream_logits, -1)), tf.float32)[..., 0]

        # 3. Localization: proposal from the warped mask, RoI pooling on conv5_3, Fast R-CNN deltas.
        proposals, valid = mask_to_box(warped, cfg.mask_threshold)
        full = tf.cast(tf.stack([0, 0, height, width]), tf.float32)
        fallback = tf.broadcast_to(full, tf.shape(proposals))
        prev_boxes = inputs.get("prev_boxes") if hasattr(inputs, "get") else None
        if prev_boxes is not None:
            prev_boxes = tf.cast(prev_boxes, tf.float32)
            prev_ok = (prev_boxes[:, 2] > prev_boxes[:, 0]) & (prev_boxes[:, 3] > prev_boxes[:, 1])
            fallback = tf.where(prev_ok[:, None], prev_boxes, fallback)
        proposals = tf.where(valid[:, None], proposals, fallback)
        loc_features = tf.stop_gradient(appearance["conv5_3"]) if cfg.loc_stop_gradient else appearance["conv5_3"]
        if cfg.roi_feature_stride:
            cells = tf.shape(loc_features)
            normalized = boxes_on_feature_map(proposals, cfg.roi_feature_stride, cells[1], cells[2])
        else:
            normalized = boxes_to_normalized(proposals, height, width)
        rois = roi_pool(loc_features, normalized, tf.range(tf.shape(proposals)[0]), cfg.roi_size)
        deltas = tf.cast(self.localization_head(rois, training=training), tf.float32)
        predicted = decode_box_deltas(deltas, proposals, cfg.delta_weights)
        boxes = clip_boxes(predicted, height, width)

        # 4. Restrict the mask to the predicted box enlarged about its centre (the box as predicted: clipped first,
        # a box over the frame's edge would be enlarged about another centre).
        probs = tf.sigmoid(logits)
        if cfg.apply_localization:
            probs = probs * box_mask(enlarge_boxes(predicted, cfg.box_enlarge), height, width)
        return {
            "probs": probs,
            "logits": logits,
            "boxes": boxes,
            "proposals": proposals,
            "deltas": deltas,
            "warped": warped[..., 0],
        }

    def step(
        self,
        frame: tf.Tensor,
        flow_to_prev: tf.Tensor,
        flow_to_next: tf.Tensor,
        prev_probs: tf.Tensor,
        prev_boxes: Optional[tf.Tensor] = None,
        training: bool = False,
        color_model: Optional[tf.Tensor] = None,
    ) -> Dict[str, tf.Tensor]:
        """One recurrent step for the N objects of one video.

        frame [H, W, 3] (uint8 or float 0..255) and flows [H, W, 2] are shared; prev_probs [N, H, W] and
        prev_boxes [N, 4] carry the objects on the batch axis; color_model [N, 4096] (with
        `config.color_prior_input`) their first-frame colour tables. Returns the outputs of `call`.
        """
        prev_probs = tf.convert_to_tensor(prev_probs, tf.float32)
        if prev_probs.shape.rank is not None and prev_probs.shape[0] == 0:
            # An empty batch fails deep in oneDNN's convolution with an error that names none of this.
            raise ValueError("MaskRNN.step: prev_probs holds no object ([0, H, W]); a video step needs at least one "
                             "object: skip the frame, or give the first frame's masks.")
        n = tf.shape(prev_probs)[0]

        def tile(x: tf.Tensor) -> tf.Tensor:
            x = tf.cast(x, tf.float32)[None]
            return tf.tile(x, [n, 1, 1, 1])

        inputs = {
            "frame": tile(frame),
            "flow_to_prev": tile(flow_to_prev),
            "flow_to_next": tile(flow_to_next),
            "prev_probs": prev_probs,
        }
        if prev_boxes is not None:
            inputs["prev_boxes"] = prev_boxes
        if color_model is not None:
            inputs["color_model"] = tf.cast(color_model, tf.float32)
        return self(inputs, training=training)

    def fuse(self, probs: tf.Tensor) -> tf.Tensor:
        """Label map [H, W] int32 from [N, H, W] probabilities; see `fuse_probabilities`."""
        return fuse_probabilities(probs, self.config.mask_threshold)


def fuse_probabilities(probs: tf.Tensor, threshold: float = 0.5) -> tf.Tensor:
    """Argmax fusion: label i + 1 where object i has the highest probability and it exceeds `threshold`.

    Ties go to the lowest object index; pixels where no object exceeds the threshold are background (0).
    N = 0 gives an all-background map.
    """
    probs = tf.cast(probs, tf.float32)
    shape = tf.shape(probs)
    padded = tf.concat([tf.fill([1, shape[1], shape[2]], -1.0), probs], axis=0)  # index 0 = background
    best = tf.reduce_max(padded, axis=0)
    label = tf.argmax(padded, axis=0, output_type=tf.int32)
    return tf.where(best > threshold, label, tf.zeros_like(label))
