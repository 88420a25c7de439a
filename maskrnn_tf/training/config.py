"""Typed training configuration: the model, the data, the optimizer and the schedule, with strict overrides.

`TrainConfig` nests `MaskRNNConfig` (the network), `DataConfig`, `OptimConfig` and `LossConfig`. Overrides are
flat dicts with dotted keys (`{"model.width": 0.25, "optim.learning_rate": 1e-4, "stage_a_steps": 10}`); an
unknown key, or a value of another type than the field declares, is an error naming it. The resolved config is
written to `<run_dir>/config.json`.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, Dict, Mapping, Optional, Tuple

# No TensorFlow: --print_config stays instant.
from maskrnn_tf.model_config import MaskRNNConfig, field_types, typed_value

DATASETS = ("synthetic_vos", "davis16", "davis17")
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
STRATEGIES = ("default", "mirrored", "multi_worker")
SYNTHETIC_FLOWS = ("exact", "dis", "dis-medium", "dis-fast", "dis-ultrafast", "farneback")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which data to train on and how it is cut.

    Attributes:
      dataset: 'synthetic_vos' (built in), 'davis16' or 'davis17' (need the archives, see README).
      manual_dir: where the DAVIS archives/folders are.
      height, width: training crop size (frames are resized/cropped to it by the data pipeline).
      batch_size: global batch of stage A (objects); clip_batch_size: global batch of stage B (clips).
      clip_length: frames per clip in stage B (the first seeds the recurrence).
      clip_burn_in: frames run before each stage B clip, forwards only (no loss, no gradient): the clip is seeded
        by the network's own prediction after them, as at inference after that many frames, instead of the
        truth; 0 = seeded by the truth.
      synthetic_train_videos: number of distinct procedural training videos (synthetic_vos only);
        synthetic_video_frames: their length.
      flow: flow backend for real videos ('dis', 'dis-fast', 'farneback', ...; synthetic flows are exact);
        flow_cache_dir: where computed flows are cached (None: recomputed every run).
      val_videos: held-out videos scored for validation J every `eval_every` steps (without val_sequences:
        synthetic videos of unseen seeds, or the first DAVIS val sequences).
      val_sequences: DAVIS only: train-split sequences held out of training and scored for validation instead
        (all of them; val_videos is then unused): the split to choose settings on, so that the val split is
        only reported, never tuned on.
      val_frames: frames per validation video.
      synthetic_flow: flows of the synthetic_vos training and validation videos: 'exact' (the generator's) or
        a flow backend name ('dis', ...) computing them from the frames, as the demo's held-out videos are
        segmented (DIS misses much of the small objects' motion; a net trained only on exact flow trusts it).
      color_jitter: strength of one random photometric change per training clip or frame (channel gains,
        brightness, contrast, saturation; `data.augment.sample_color_jitter`), so that the appearance stream does
        not learn the training videos' colours; 0 = none. With model.color_prior_input the colour tables stay
        fitted on the unchanged first frame, so a changed clip shows the network a first-frame prior that no
        longer matches the object's colours, as a change of light in a video does.
      antialias: training frames the augmentation shrinks are area-averaged to the crop's scale before they are
        sampled (`AugmentConfig.antialias`), as segment and validation shrink frames (OpenCV INTER_AREA); off,
        they are sampled bilinearly alone (sharper, aliased: at the DAVIS recipe's ~0.5 scale a train/test gap).
      perturb_amount: multiplies every range of the stage A previous-mask perturbation (data.perturb.PerturbConfig
        defaults: scale, rotation, translation, dilation radius, elastic amplitude); 1 = those defaults.
      perturb_min_iou: lowest accepted IoU between the perturbed previous mask and the truth (0.6 = default).
      clip_seed_fraction: share of stage B clips whose seed mask (the first frame's truth that starts the
        recurrence) is perturbed, so that the unrolled steps learn to pull a wrong carried mask back to the object
        (at inference a mask that has grown is carried on); 0 = every clip starts from the truth.
      clip_seed_amount, clip_seed_min_iou: that perturbation, as perturb_amount and perturb_min_iou for stage A.
      clip_seed_grow_only: a perturbed seed is the union of the truth and its perturbation (only extra pixels,
        as a grown mask), so the steps learn to cut back, never to grow.
      dream_fraction: share of stage B clips dreamt from single training frames (`data.dreamt_source`: exact
        flows and masks, Lucid Data Dreaming) instead of read from the videos; 0 = real clips only.
      dream_videos: distinct dreamt clips (each made on first use from a seeded training frame).
      dream_scale: training frames are resized by this factor before dreaming (dreaming cost grows with area).
      dream_speed: multiplies the dreamt camera and object translation speeds (`DreamConfig.with_speed`).
      dream_flow: flows of the dreamt clips: 'exact' (the clip's own) or a flow backend name ('dis', ...)
        estimating them from the rendered frames, as the real videos' flows are (`dreaming.estimate_flows`).
    """

    dataset: str = "synthetic_vos"
    manual_dir: Optional[str] = None
    height: int = 64
    width: int = 96
    batch_size: int = 4
    clip_batch_size: int = 2
    clip_length: int = 7
    clip_burn_in: int = 0
    synthetic_train_videos: int = 200
    synthetic_video_frames: int = 12
    flow: str = "dis"
    flow_cache_dir: Optional[str] = None
    val_videos: int = 4
    val_frames: int = 8
    val_sequences: Tuple[str, ...] = ()
    synthetic_flow: str = "exact"
    perturb_amount: float = 1.0
    perturb_min_iou: float = 0.6
    color_jitter: float = 0.0
    antialias: bool = False
    clip_seed_fraction: float = 0.0
    clip_seed_amount: float = 3.0
    clip_seed_min_iou: float = 0.3
    clip_seed_grow_only: bool = False
    dream_fraction: float = 0.0
    dream_videos: int = 1000
    dream_scale: float = 0.5
    dream_speed: float = 1.0
    dream_flow: str = "exact"

    def __post_init__(self) -> None:
        # JSON and flags give lists (or one comma-separated string): keep a tuple so the config stays hashable.
        names = self.val_sequences
        if isinstance(names, str):
            names = [n for n in names.split(",")]
        names = tuple(str(n).strip() for n in names)
        if any(not n for n in names) or len(set(names)) != len(names):
            raise ValueError(f"DataConfig.val_sequences must be distinct non-empty names, got {list(names)}.")
        object.__setattr__(self, "val_sequences", names)
        if names and self.dataset == "synthetic_vos":
            raise ValueError("DataConfig.val_sequences names DAVIS train sequences to hold out; synthetic_vos "
                             "validates on videos of unseen seeds (use val_videos).")
        if not 0.0 <= self.dream_fraction <= 1.0 or self.dream_videos < 1 or not 0.0 < self.dream_scale <= 1.0:
            raise ValueError("DataConfig: need 0 <= dream_fraction <= 1, dream_videos >= 1, 0 < dream_scale <= 1, got "
                             f"{self.dream_fraction}, {self.dream_videos}, {self.dream_scale}.")
        if not self.dream_speed > 0:
            raise ValueError(f"DataConfig: need dream_speed > 0, got {self.dream_speed}.")
        if self.flow == "flo":
            raise ValueError("DataConfig.flow 'flo' (flows read from .flo files) is for segment (--flow=flo --flo_dir); "
                             f"training computes its flows and caches them: use one of {SYNTHETIC_FLOWS[1:]}.")
        if self.flow not in SYNTHETIC_FLOWS[1:]:
            raise ValueError(f"DataConfig.flow must be one of {SYNTHETIC_FLOWS[1:]}, got {self.flow!r}.")
        if self.synthetic_flow not in SYNTHETIC_FLOWS:
            raise ValueError(f"DataConfig.synthetic_flow must be one of {SYNTHETIC_FLOWS}, got {self.synthetic_flow!r}.")
        if self.dream_flow not in SYNTHETIC_FLOWS:
            raise ValueError(f"DataConfig.dream_flow must be one of {SYNTHETIC_FLOWS}, got {self.dream_flow!r}.")
        if self.perturb_amount < 0 or not 0.0 <= self.perturb_min_iou <= 1.0:
            raise ValueError("DataConfig: perturb_amount must be >= 0 and perturb_min_iou in [0, 1], got "
                             f"{self.perturb_amount} and {self.perturb_min_iou}.")
        if (not 0.0 <= self.clip_seed_fraction <= 1.0 or self.clip_seed_amount < 0
                or not 0.0 <= self.clip_seed_min_iou <= 1.0):
            raise ValueError("DataConfig: need clip_seed_fraction and clip_seed_min_iou in [0, 1] and "
                             f"clip_seed_amount >= 0, got {self.clip_seed_fraction}, {self.clip_seed_min_iou} "
                             f"and {self.clip_seed_amount}.")
        if self.dataset not in DATASETS:
            raise ValueError(f"DataConfig.dataset must be one of {DATASETS}, got {self.dataset!r}.")
        if not self.color_jitter >= 0:
            raise ValueError(f"DataConfig.color_jitter must be >= 0 (0 = none), got {self.color_jitter}.")
        if self.clip_burn_in < 0:
            raise ValueError(f"DataConfig.clip_burn_in must be >= 0, got {self.clip_burn_in}.")
        if self.clip_length < 2:
            raise ValueError(f"DataConfig.clip_length must be >= 2 (seed frame + 1), got {self.clip_length}.")
        if min(self.height, self.width, self.batch_size, self.clip_batch_size) < 1:
            raise ValueError("DataConfig: height, width, batch_size and clip_batch_size must be >= 1.")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """Adam with an exponentially decaying learning rate and global-norm gradient clipping.

    weight_decay: decoupled weight decay (AdamW): each update also subtracts learning_rate * weight_decay * w
      from every kernel (biases are spared); 0 = plain Adam.
    cooldown_steps: over the run's last N steps the decayed rate is scaled down linearly to 0; 0 = no cooldown.
    """

    learning_rate: float = 1e-5
    decay_steps: int = 1000
    decay_rate: float = 0.5
    clip_norm: float = 10.0  # 0 disables clipping
    epsilon: float = 1e-7
    weight_decay: float = 0.0
    cooldown_steps: int = 0


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Loss weights; loc_weight = 0 disables the localization loss (the paper's ablation).

    class_balance: True = OSVOS class-balanced BCE (the paper's recipe, after OSVOS); False = plain
      per-pixel BCE averaged over the valid pixels (no foreground up-weighting of uncertain boundary pixels).
    loc_min_iou: the localization loss only counts where the proposal's IoU with the true box is at least this
      (Fast R-CNN's rule; 0 = every proposal, as davis16_cpu.flags trains).
    iou_weight: weight of a soft Jaccard loss (1 - soft IoU of the probabilities with the mask, per frame)
      added to the BCE in 'seg' (not the paper's; 0 = none): it weighs a mask's mistakes against the object's size.
      The logged 'seg' then holds both terms; online finetuning (segment) uses the BCE alone.
    """

    seg_weight: float = 1.0
    loc_weight: float = 1.0
    class_balance: bool = True
    loc_min_iou: float = 0.0
    iou_weight: float = 0.0


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (written to `<run_dir>/config.json`).

    Attributes:
      stage_a_steps / stage_b_steps: optimizer steps of the static and the recurrent stage.
      precision: 'auto' (float16 on GPU; bfloat16 on a CPU with amx_bf16 or avx512_bf16 where it measures
        faster than float32 (`training.precision.resolve_precision`), float32 on other CPUs: see build notes),
        'float32', 'bfloat16' or 'float16' (with
        dynamic loss scaling). strategy 'multi_worker' refuses 'auto' (`distribution.check_strategy_settings`).
      jit_compile: XLA-compile the train steps. recompute: recompute each frame's activations in the
        backward pass of stage B (tf.recompute_grad) to cut memory.
      log_every / eval_every / checkpoint_every / image_every: in steps (eval_every=0 validates at the end
        only, image_every=0 writes no images).
      keep_checkpoints: how many checkpoints CheckpointManager keeps.
      reverse_clip_prob: probability that a stage B clip is played backwards (exact: the flows swap).
      seed: seeds the weights, the data order and the training RNG.
      inject_nan_at_step: test hook: the loss becomes NaN at this step (from 1, as logged; None = never).
      init_checkpoint: another run's checkpoint (prefix, or its run or checkpoints folder: the newest intact
        one) that a new run starts from: weights, optimizer, step and training RNG; the data pipelines start
        from their beginning, so a run started from the last step of a shared stage A trains stage B as that
        run would. Used only while the run has no checkpoint of its own (then it resumes from those).
    """

    model: MaskRNNConfig = dataclasses.field(default_factory=MaskRNNConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    stage_a_steps: int = 1000
    stage_b_steps: int = 1000
    precision: str = "auto"
    jit_compile: bool = False
    recompute: bool = False
    strategy: str = "default"
    log_every: int = 10
    eval_every: int = 200
    image_every: int = 200
    checkpoint_every: int = 100
    keep_checkpoints: int = 3
    reverse_clip_prob: float = 0.5
    seed: int = 0
    inject_nan_at_step: Optional[int] = None
    init_checkpoint: Optional[str] = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"TrainConfig.precision must be one of {PRECISIONS}, got {self.precision!r}.")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"TrainConfig.strategy must be one of {STRATEGIES}, got {self.strategy!r}.")
        if self.stage_a_steps < 0 or self.stage_b_steps < 0:
            raise ValueError("TrainConfig: stage_a_steps and stage_b_steps must be >= 0.")
        if self.checkpoint_every < 1 or self.log_every < 1 or self.keep_checkpoints < 1:
            raise ValueError("TrainConfig: checkpoint_every, log_every and keep_checkpoints must be >= 1.")

    @property
    def total_steps(self) -> int:
        return self.stage_a_steps + self.stage_b_steps

    # -- (de)serialization ---------------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        """Nested JSON-friendly dict."""
        out: Dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, MaskRNNConfig):
                value = value.to_dict()
            elif dataclasses.is_dataclass(value):
                value = dataclasses.asdict(value)
            out[f.name] = value
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        """Inverse of `to_dict` (retired keys of older config.json files are dropped); unknown keys raise."""
        return cls().override(flatten(drop_retired(values)))

    def override(self, values: Mapping[str, Any]) -> "TrainConfig":
        """A copy with dotted keys replaced (`model.width`, `data.height`, `seed`); unknown keys and values of
        another type than the field declares raise ValueError naming them."""
        top: Dict[str, Any] = {}
        nested: Dict[str, Dict[str, Any]] = {}
        names = {f.name for f in dataclasses.fields(self)}
        for key, value in values.items():
            head, _, rest = key.partition(".")
            if head not in names or (rest and head not in _NESTED) or (not rest and head in _NESTED):
                raise ValueError(f"Unknown TrainConfig key {key!r}; known: {sorted(known_keys())}.")
            kind = field_type(key)
            # Checked here, under the dotted key the user gave (unknown nested keys are named below).
            value = value if kind is None else typed_value(key, kind, value)
            if rest:
                nested.setdefault(head, {})[rest] = value
            else:
                top[key] = value
        for head, sub in nested.items():
            current = getattr(self, head)
            if isinstance(current, MaskRNNConfig):
                top[head] = current.override(sub)
            else:
                fields = {f.name for f in dataclasses.fields(current)}
                unknown = sorted(set(sub) - fields)
                if unknown:
                    raise ValueError(f"Unknown TrainConfig key(s) {[head + '.' + u for u in unknown]}; "
                                     f"known: {sorted(known_keys())}.")
                top[head] = dataclasses.replace(current, **sub)
        return dataclasses.replace(self, **top)


_NESTED = ("model", "data", "optim", "loss")

# Keys older versions wrote to config.json that no setting reads any more: dropped when a stored config is read,
# whatever their value, since they never changed a run. data.data_dir: training reads DAVIS from
# data.manual_dir, never from a tfds data dir.
RETIRED_KEYS = ("data.data_dir",)


def drop_retired(values: Mapping[str, Any]) -> Dict[str, Any]:
    """A copy of a nested config dict without RETIRED_KEYS."""
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in values.items()}
    for key in RETIRED_KEYS:
        head, _, rest = key.partition(".")
        if isinstance(out.get(head), dict):
            out[head].pop(rest, None)
    return out


def flatten(values: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    """{'model': {'width': 1}} -> {'model.width': 1} (one level of nesting, like TrainConfig)."""
    out: Dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping) and not prefix and key in _NESTED:
            out.update(flatten(value, key + "."))
        else:
            out[prefix + key] = value
    return out


def known_keys() -> Tuple[str, ...]:
    """Every dotted key `TrainConfig.override` accepts."""
    return tuple(sorted(flatten(TrainConfig().to_dict())))


def field_type(key: str) -> Any:
    """The declared type of dotted TrainConfig key `key` (None for an unknown key or a whole nested config)."""
    head, _, rest = key.partition(".")
    kinds = field_types(TrainConfig)
    if head not in kinds or bool(rest) != (head in _NESTED):
        return None
    return field_types(kinds[head]).get(rest) if rest else kinds[head]


def parse_override(text: str) -> Tuple[str, Any]:
    """'model.width=0.25' -> ('model.width', 0.25); the value is JSON when it parses, else a string.

    Three readings of the text depend on the field: a boolean also takes True/False in any case (Python's
    spelling, which absl's own boolean flags take), an optional field takes None in any case as null, and a
    string field keeps the text as given (data.manual_dir=2016 is a folder, not a number). The type is checked
    by `TrainConfig.override`.
    """
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ValueError(f"Override {text!r} must look like key=value (e.g. model.width=0.25).")
    key = key.strip()
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    kind = field_type(key)
    optional = type(None) in typing.get_args(kind)
    base = next((a for a in typing.get_args(kind) if a is not type(None)), kind) if optional else kind
    if optional and isinstance(value, str) and value.strip().lower() == "none":
        value = None  # Python's spelling of null, as --vgg_weights=None and the error messages spell it
    elif base is bool and isinstance(value, str) and value.strip().lower() in ("true", "false"):
        value = value.strip().lower() == "true"
    elif base is str and not isinstance(value, str) and not (value is None and optional):
        value = raw
    elif typing.get_origin(base) is tuple and isinstance(value, str) and not value.strip():
        value = []  # data.val_sequences= clears the list, as --val_sequences= does (not one empty name)
    return key, value
