"""Typed configuration of the MaskRNN network (every architectural knob, with strict overrides)."""
from __future__ import annotations

import dataclasses
import functools
import math
import typing
from typing import Any, Dict, Mapping, Optional, Tuple, Union

SIDE_STAGES = ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3")
FLOW_REFERENCES = ("none", "median")  # MaskRNNConfig.flow_reference

# How the type errors of `typed_value` name what a field takes and what it was given.
_EXPECTED = {bool: "a boolean (true or false)", int: "an integer", float: "a number", str: "a string"}
_PLURAL = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}
_GIVEN = {bool: "a bool", int: "an integer", float: "a float", str: "a string", type(None): "null", dict: "an object"}
_MISMATCH = object()


@functools.lru_cache(maxsize=None)
def field_types(cls: type) -> Dict[str, Any]:
    """The declared type of every field of dataclass `cls` (the annotations are strings here: resolved)."""
    return typing.get_type_hints(cls)


def describe_type(kind: Any) -> str:
    """'an integer', 'a string or null', 'a list of 4 numbers', ... for a field type."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) is Union:
        return " or ".join(describe_type(a) for a in args if a is not type(None)) + " or null"
    if typing.get_origin(kind) is tuple:
        if args[1:] == (Ellipsis,):
            return f"a list of {_PLURAL.get(args[0], args[0])}"
        return f"a list of {len(args)} {_PLURAL.get(args[0], args[0])}"
    return _EXPECTED.get(kind, getattr(kind, "__name__", str(kind)))


def _converted(kind: Any, value: Any) -> Any:
    """`value` as a field of type `kind` holds it (lists become tuples), or _MISMATCH."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) is Union:  # Optional[X]
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            out = _converted(option, value)
            if out is not _MISMATCH:
                return out
        return _MISMATCH
    if typing.get_origin(kind) is tuple:
        if args[1:] == (Ellipsis,) and args[0] is str and isinstance(value, str):
            value = [part.strip() for part in value.split(",")]  # one comma-separated string, as list flags take
        if not isinstance(value, (list, tuple)):
            return _MISMATCH
        kinds = [args[0]] * len(value) if args[1:] == (Ellipsis,) else list(args)
        if len(kinds) != len(value):
            return _MISMATCH
        out = tuple(_converted(k, v) for k, v in zip(kinds, value))
        return _MISMATCH if any(v is _MISMATCH for v in out) else out
    # bool is an int to Python, but 1 is no answer to a yes/no setting and True no step count.
    if kind is bool:
        return value if isinstance(value, bool) else _MISMATCH
    if kind is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _MISMATCH
    if kind is float:  # an integer is a number (32 for 32.0), as Python's typing has it
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else _MISMATCH
    if kind is str:
        return value if isinstance(value, str) else _MISMATCH
    return value  # other types (the nested configs) check their own fields


def type_problem(name: str, kind: Any, value: Any) -> Optional[str]:
    """'name=value: expected <type>, got <type>' when `value` is not of field type `kind`, else None."""
    if _converted(kind, value) is not _MISMATCH:
        return None
    given = "" if isinstance(value, (list, tuple)) else f", got {_GIVEN.get(type(value), type(value).__name__)}"
    return f"{name}={value!r}: expected {describe_type(kind)}{given}"


def typed_value(name: str, kind: Any, value: Any) -> Any:
    """`value` for a field of type `kind` (a list for a tuple field becomes a tuple); ValueError naming `name`,
    the value and the type expected when it is of another type (a string "False" for a bool is truthy, a
    float step count never reaches its step)."""
    out = _converted(kind, value)
    if out is _MISMATCH:
        raise ValueError(type_problem(name, kind, value) + ".")
    return out


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
    # How boxes reach conv5_3 for RoI pooling: 16 maps them onto the cells that cover them (stride 16); 0 normalizes
    # them by the frame's size, which lands them up to 0.47 of a cell off at sides that are multiples of 16 and up to
    # 0.84 at 854 (DAVIS' width), squeezed towards the frame's centre (how
    # the recipes' networks were trained; kept as the default so that their saved configs mean what they did, and
    # the recipe trained with 16 did worse held out: docs/RESULTS.md).
    roi_feature_stride: int = 0
    fc_units: int = 1024
    box_enlarge: float = 1.25
    # True: the localization head reads conv5_3 through stop_gradient, so the box loss trains the head only and
    # the trunk learns from the segmentation loss alone (a departure from the paper's joint training).
    loc_stop_gradient: bool = False
    delta_weights: Tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    mask_threshold: float = 0.5  # proposal box from (warped > threshold); fusion threshold
    mask_input_scale: float = 128.0  # the mask channel enters the trunk as (m - 0.5) * scale, like pixels
    flow_input_scale: float = 8.0  # flow magnitudes (pixels) are multiplied by this
    # What the flow stream's magnitudes measure: 'none' = the raw flow (the paper); 'median' = the flow minus its
    # per-frame median, i.e. motion relative to the camera's where the background fills most of the frame.
    flow_reference: str = "none"
    # True: the appearance stream also sees each object's first-frame colour prior, the share of the pixel's
    # colour in the object's histogram against the background's within color_prior_band of it (inputs
    # 'color_model', one table per object; maskrnn_tf.ops.color_tables), entered like the mask.
    color_prior_input: bool = False
    color_prior_band: float = 0.03  # the background band's width, a fraction of the frame's longer side
    vgg_weights: Optional[str] = None  # None, 'imagenet' or a local .h5 path (VGG16 include_top=False)

    def __post_init__(self) -> None:
        if self.width <= 0:
            raise ValueError(f"MaskRNNConfig.width must be > 0, got {self.width}.")
        unknown = [s for s in self.side_stages if s not in SIDE_STAGES]
        if unknown or not self.side_stages:
            raise ValueError(f"MaskRNNConfig.side_stages {self.side_stages}: choose from {SIDE_STAGES}.")
        if self.flow_reference not in FLOW_REFERENCES:
            raise ValueError(f"MaskRNNConfig.flow_reference must be one of {FLOW_REFERENCES}, got "
                             f"{self.flow_reference!r}.")
        if not 0.0 < self.color_prior_band <= 1.0:
            raise ValueError(f"MaskRNNConfig.color_prior_band must be in (0, 1], got {self.color_prior_band}.")
        if self.roi_feature_stride not in (0, 16):
            raise ValueError(f"MaskRNNConfig.roi_feature_stride must be 0 (boxes normalized by the frame) or 16 "
                             f"(conv5_3's stride), got {self.roi_feature_stride}.")
        if not math.isfinite(self.box_enlarge) or self.box_enlarge < 1.0:
            raise ValueError(f"MaskRNNConfig.box_enlarge must be a finite number >= 1, got {self.box_enlarge}.")
        if len(self.delta_weights) != 4:
            raise ValueError("MaskRNNConfig.delta_weights needs 4 values (ty, tx, th, tw).")
        # Targets are multiplied by them and predictions divided: NaN or 0 would train in silence or divide by 0.
        if any(isinstance(w, (int, float)) and not (math.isfinite(w) and w > 0) for w in self.delta_weights):
            raise ValueError(f"MaskRNNConfig.delta_weights {tuple(self.delta_weights)}: each must be a finite "
                             "number > 0 (the paper's are 10, 10, 5, 5).")

    def to_dict(self) -> Dict[str, Any]:
        """JSON-friendly dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "MaskRNNConfig":
        """Builds a config; unknown keys are an error (strict overrides)."""
        return cls().override(values)

    def override(self, values: Mapping[str, Any]) -> "MaskRNNConfig":
        """A copy with `values` replaced; unknown keys and values of another type than the field's raise
        ValueError naming them."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"Unknown MaskRNNConfig field(s) {unknown}; known: {sorted(names)}.")
        kinds = field_types(type(self))
        return dataclasses.replace(self, **{k: typed_value(k, kinds[k], v) for k, v in values.items()})
