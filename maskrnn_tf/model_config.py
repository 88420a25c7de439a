"""Typed configuration of the MaskRNN network (every architectural knob, with strict overrides)."""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional, Tuple

SIDE_STAGES = ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3")


@dataclasses.dataclass(frozen=True)
class MaskRNNConfig:
    """Architecture of one MaskRNN step (the paper's section 3).

    The ablation switches follow the paper's Table 2: `use_flow_stream` (FStream), `warp_mask` (Warp mask),
    `apply_localization` (Apply; the localization loss is a training setting). `use_warped_mask=False` drops
    the mask input altogether (a per-frame segmenter, not a row of Table 2).
    """

    width: float = 1.0  # VGG-16 channel multiplier; 1.0 is the paper
    side_stages: Tuple[str, ...] = ("conv2_2", "conv3_3", "conv4_3", "conv5_3")  # OSVOS side outputs
    side_channels: int = 16
    use_flow_stream: bool = True
    use_warped_mask: bool = True  # feed the flow-warped previous prediction to both streams
    warp_mask: bool = True  # False: the previous prediction is fed (and boxed) where it was, unwarped (Table 2)
    apply_localization: bool = True  # zero the mask outside the predicted box enlarged by box_enlarge
    roi_size: int = 7  # RoI pooling output k (crop to 2k x 2k, then 2x2 max-pool)
    fc_units: int = 1024
    box_enlarge: float = 1.25
    # True: the localization head reads conv5_3 through stop_gradient, so the box loss trains the head only and
    # the trunk learns from the segmentation loss alone (a departure from the paper's joint training).
    loc_stop_gradient: bool = False
    delta_weights: Tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    mask_threshold: float = 0.5  # proposal box from (warped > threshold); fusion threshold
    mask_input_scale: float = 128.0  # the mask channel enters the trunk as (m - 0.5) * scale, like pixels
    flow_input_scale: float = 8.0  # flow magnitudes (pixels) are multiplied by this
    vgg_weights: Optional[str] = None  # None, 'imagenet' or a local .h5 path (VGG16 include_top=False)

    def __post_init__(self) -> None:
        if self.width <= 0:
            raise ValueError(f"MaskRNNConfig.width must be > 0, got {self.width}.")
        unknown = [s for s in self.side_stages if s not in SIDE_STAGES]
        if unknown or not self.side_stages:
            raise ValueError(f"MaskRNNConfig.side_stages {self.side_stages}: choose from {SIDE_STAGES}.")
        if self.box_enlarge < 1.0:
            raise ValueError(f"MaskRNNConfig.box_enlarge must be >= 1, got {self.box_enlarge}.")
        if len(self.delta_weights) != 4:
            raise ValueError("MaskRNNConfig.delta_weights needs 4 values (ty, tx, th, tw).")

    def to_dict(self) -> Dict[str, Any]:
        """JSON-friendly dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "MaskRNNConfig":
        """Builds a config; unknown keys are an error (strict overrides)."""
        return cls().override(values)

    def override(self, values: Mapping[str, Any]) -> "MaskRNNConfig":
        """A copy with `values` replaced; unknown keys raise ValueError naming them."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"Unknown MaskRNNConfig field(s) {unknown}; known: {sorted(names)}.")
        fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return dataclasses.replace(self, **fixed)
