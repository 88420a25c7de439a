"""The valid range of every numeric TrainConfig field the training CLI sets, checked before a run starts.

The train CLI checks its flags against these bounds while parsing them and checks the resolved config
(flag file, flags and --set overrides) again before the run directory is touched. The library's
TrainConfig stays permissive (tests build tiny configs); the bounds are what a training run needs.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional

from maskrnn_tf.flag_validation import MIN_FRAME_SIDE, numeric_problem

if TYPE_CHECKING:  # the config module imports TensorFlow; flag definitions must not wait for it
    from maskrnn_tf.training.config import TrainConfig

# dotted TrainConfig key -> keyword bounds of maskrnn_tf.flag_validation.numeric_problem (+ optional hint).
FIELD_BOUNDS: Dict[str, Dict[str, Any]] = {
    "data.height": dict(minimum=MIN_FRAME_SIDE, hint=f"VGG-16 needs frames of at least {MIN_FRAME_SIDE} pixels"),
    "data.width": dict(minimum=MIN_FRAME_SIDE, hint=f"VGG-16 needs frames of at least {MIN_FRAME_SIDE} pixels"),
    "data.batch_size": dict(minimum=1),
    "data.clip_batch_size": dict(minimum=1),
    "data.clip_length": dict(minimum=2, hint="a seed frame and at least one frame to predict"),
    "data.clip_burn_in": dict(minimum=0),
    "data.synthetic_train_videos": dict(minimum=1),
    "data.synthetic_video_frames": dict(minimum=2),
    "data.val_videos": dict(minimum=0),
    "data.dream_fraction": dict(minimum=0, maximum=1, hint="share of stage B clips dreamt from training frames"),
    "data.dream_videos": dict(minimum=1),
    "data.dream_scale": dict(above=0, maximum=1),
    "data.dream_speed": dict(above=0, hint="1 = DreamConfig's speeds; DAVIS moves about 3x faster"),
    "data.val_frames": dict(minimum=2, hint="the first frame gives the mask, the others are scored"),
    "data.clip_seed_fraction": dict(minimum=0, maximum=1, hint="share of stage B clips seeded by a perturbed mask"),
    "data.clip_seed_amount": dict(minimum=0),
    "data.clip_seed_min_iou": dict(minimum=0, maximum=1),
    "data.perturb_amount": dict(minimum=0),
    "data.color_jitter": dict(minimum=0, hint="0 = no photometric augmentation"),
    "data.perturb_min_iou": dict(minimum=0, maximum=1),
    "model.width": dict(above=0),
    "model.fc_units": dict(minimum=1),
    # Without these a 0 crashed the model build or step 1 with a traceback, and NaN or a threshold no
    # probability reaches trained in silence.
    "model.side_channels": dict(minimum=1),
    "model.roi_size": dict(minimum=1),
    "model.box_enlarge": dict(minimum=1, hint="1 = the proposal box as it is"),
    "model.mask_threshold": dict(minimum=0, below=1, hint="the masks are probabilities in [0, 1]"),
    "model.mask_input_scale": dict(minimum=0),
    "model.flow_input_scale": dict(minimum=0),
    "optim.learning_rate": dict(above=0),
    "optim.decay_steps": dict(minimum=1),
    "optim.decay_rate": dict(above=0, maximum=1, hint="the rate is multiplied by it every decay_steps"),
    "optim.clip_norm": dict(minimum=0, hint="0 turns clipping off"),
    "optim.epsilon": dict(above=0),
    "optim.weight_decay": dict(minimum=0, hint="0 = plain Adam"),
    "optim.cooldown_steps": dict(minimum=0, hint="0 = no cooldown"),
    "loss.seg_weight": dict(minimum=0),
    "loss.loc_weight": dict(minimum=0, hint="0 turns the localization loss off"),
    "loss.loc_min_iou": dict(minimum=0, maximum=1, hint="0 regresses from every proposal"),
    "loss.iou_weight": dict(minimum=0, hint="0 = BCE alone"),
    "stage_a_steps": dict(minimum=0),
    "stage_b_steps": dict(minimum=0),
    "log_every": dict(minimum=1),
    "eval_every": dict(minimum=0, hint="0 validates only at the end"),
    "image_every": dict(minimum=0),
    "checkpoint_every": dict(minimum=1),
    "keep_checkpoints": dict(minimum=1),
    "reverse_clip_prob": dict(minimum=0, maximum=1),
    "seed": dict(minimum=0, maximum=2**32 - 1, hint="NumPy seeds are 32-bit unsigned"),
    "inject_nan_at_step": dict(minimum=1),
}


# Synthetic validation videos use seeds from here (training ones from --seed): kept apart by check_config_bounds.
VALIDATION_SEED_BASE = 1_000_000

def bounds_problem(key: str, value: Any) -> str | None:
    """What is wrong with `value` for config field `key` (None when it is fine or the key has no bounds)."""
    bounds = dict(FIELD_BOUNDS.get(key, {}))
    if not bounds:
        return None
    hint = bounds.pop("hint", "")
    problem = numeric_problem(value, **bounds)
    return None if problem is None else problem + (f" ({hint})" if hint else "")


def override_bounds_problems(overrides: Dict[str, Any]) -> List[str]:
    """'key=value: what is wrong' for each override (dotted key -> value) of its field's type and outside its
    bounds. Checked before the config is built: some config dataclasses refuse such a value themselves, naming
    their fields, not the setting given (DataConfig's "height, width, batch_size and clip_batch_size must be
    >= 1"); a value of another type is `TrainConfig.override`'s to name ("expected an integer")."""
    from maskrnn_tf.model_config import type_problem
    from maskrnn_tf.training.config import field_type

    return [f"{key}={value!r}: {problem}" for key, value in overrides.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
            and (kind := field_type(key)) is not None and type_problem(key, kind, value) is None
            and (problem := bounds_problem(key, value)) is not None]


def check_config_bounds(config: "TrainConfig") -> None:
    """Raises ValueError naming every field of `config` of another type than declared (a float step count) or
    outside its bounds (key=value: what is wrong)."""
    from maskrnn_tf.model_config import type_problem
    from maskrnn_tf.training.config import field_type, flatten

    values = flatten(config.to_dict())
    # A config made without `override` (TrainConfig(...) in code) has had no type check yet.
    problems = [problem for key, value in values.items()
                if (kind := field_type(key)) is not None and (problem := type_problem(key, kind, value)) is not None]
    wrong_type = {problem.split("=", 1)[0] for problem in problems}
    problems += [f"{key}={values[key]!r}: {problem}" for key in FIELD_BOUNDS
                 if key not in wrong_type and (problem := bounds_problem(key, values.get(key))) is not None]
    counts = {"optim.cooldown_steps", "stage_a_steps", "stage_b_steps"}
    if not counts & wrong_type and values.get("optim.cooldown_steps", 0) > config.total_steps:
        problems.append(f"optim.cooldown_steps={values['optim.cooldown_steps']!r}: more than the run's "
                        f"{config.total_steps} steps (stage_a_steps + stage_b_steps)")
    overlap = _synthetic_seed_overlap(config) if not {"seed", "data.synthetic_train_videos", "data.val_videos"} & \
        wrong_type else None
    if overlap:
        problems.append(overlap)
    if problems:
        raise ValueError("; ".join(problems))


def _synthetic_seed_overlap(config: "TrainConfig") -> Optional[str]:
    """Why synthetic training and validation videos would share seeds (the same videos), or None."""
    data = config.data
    if data.dataset != "synthetic_vos" or data.val_videos <= 0 or data.synthetic_train_videos <= 0:
        return None
    first, last = config.seed, config.seed + data.synthetic_train_videos - 1
    val_last = VALIDATION_SEED_BASE + data.val_videos - 1
    if last < VALIDATION_SEED_BASE or first > val_last:
        return None
    return (f"seed={config.seed}: the synthetic training videos (seeds {first} to {last}) include the validation "
            f"videos' ({VALIDATION_SEED_BASE} to {val_last}), so best/ would be chosen on training videos; choose "
            f"a seed below {VALIDATION_SEED_BASE - data.synthetic_train_videos + 1} or above {val_last}")
