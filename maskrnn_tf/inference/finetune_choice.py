"""Which online finetuning a model gets (`segment --finetune`), and its settings' defaults.

`auto` picks recurrent finetuning for a network trained with stage B (it runs recurrently on its own warped
predictions, and static finetuning pulls it back to the stage A regime) and static finetuning (the paper's)
otherwise, reading the run's config.json. Unset loss settings follow what the model was trained with: the
segmentation and box weights, the class balance, the soft Jaccard term (`loss.iou_weight`) and the box loss's IoU
floor (`loss.loc_min_iou`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional

FINETUNE_MODES = ("auto", "recurrent", "static", "none")
DEFAULT_STEPS = {"static": 200, "recurrent": 50}
DEFAULT_BUDGET_S = 60.0


@dataclasses.dataclass(frozen=True)
class FinetuneChoice:
    """The finetuning to run and why.

    Attributes:
      mode: 'recurrent', 'static' or 'none'.
      steps: updates per video (at most; a recurrent budget may end it sooner).
      seg_weight, loc_weight, class_balance, iou_weight, loc_min_iou: the finetuning losses (`LossConfig`'s).
      reason: one line for the console (which mode, why).
    """

    mode: str
    steps: int
    seg_weight: float
    loc_weight: float
    class_balance: bool
    reason: str
    iou_weight: float = 0.0
    loc_min_iou: float = 0.0

    def losses(self) -> Dict[str, Any]:
        """The loss settings as keyword arguments of FinetuneConfig and RecurrentFinetuneConfig."""
        return dict(seg_weight=self.seg_weight, loc_weight=self.loc_weight, class_balance=self.class_balance,
                    iou_weight=self.iou_weight, loc_min_iou=self.loc_min_iou)


def choose_finetuning(
    requested: str, train_config: Optional[Mapping[str, Any]], steps: Optional[int] = None,
    loc_weight: Optional[float] = None, class_balance: Optional[bool] = None, iou_weight: Optional[float] = None,
    trained_step: Optional[int] = None,
) -> FinetuneChoice:
    """Resolves `segment --finetune` and the unset finetuning flags.

    Args:
      requested: one of FINETUNE_MODES.
      train_config: the run's config.json (None when the model file has none beside it).
      steps: updates per video (None: 200 static, 50 recurrent); 0 turns finetuning off.
      loc_weight, class_balance, iou_weight: None = as the model was trained (loss.loc_weight,
        loss.class_balance, loss.iou_weight of config.json), or the paper's (1.0, class-balanced BCE, no soft
        Jaccard term) without config.json. The segmentation loss's
        weight is always the training's (loss.seg_weight; 1.0 without config.json): with loc_weight it sets
        the balance of the two losses, and the scale of the updates; so is the box loss's IoU floor
        (loss.loc_min_iou; 0 without config.json).
      trained_step: the step of the checkpoint the model comes from (None: a finished run's model.keras).
        config.json holds the planned step counts: a checkpoint from stage A was never trained recurrently.
    """
    if requested not in FINETUNE_MODES:
        raise ValueError(f"--finetune must be one of {FINETUNE_MODES}, got {requested!r}.")
    loss = dict((train_config or {}).get("loss") or {})
    if requested == "auto":
        if train_config is None:
            mode, reason = "static", "no config.json beside the model, so how it was trained is unknown"
        elif (int(train_config.get("stage_b_steps") or 0) > 0 and trained_step is not None
              and trained_step <= int(train_config.get("stage_a_steps") or 0)):
            mode, reason = "static", (f"the checkpoint (step {trained_step}) is from stage A (stage B starts after "
                                      f"step {int(train_config.get('stage_a_steps') or 0)})")
        elif int(train_config.get("stage_b_steps") or 0) > 0:
            mode, reason = "recurrent", "the model was trained recurrently (stage B)"
        else:
            mode, reason = "static", "the model was trained on static frames only (no stage B)"
    else:
        mode, reason = requested, "as asked"
    if mode != "none" and steps == 0:
        mode, reason = "none", "--finetune_steps=0"
    resolved_steps = 0 if mode == "none" else (DEFAULT_STEPS[mode] if steps is None else steps)
    return FinetuneChoice(
        mode=mode, steps=resolved_steps, seg_weight=float(loss.get("seg_weight", 1.0)),
        loc_weight=float(loss.get("loc_weight", 1.0)) if loc_weight is None else float(loc_weight),
        class_balance=bool(loss.get("class_balance", True)) if class_balance is None else bool(class_balance),
        reason=reason, iou_weight=float(loss.get("iou_weight", 0.0)) if iou_weight is None else float(iou_weight),
        loc_min_iou=float(loss.get("loc_min_iou", 0.0)),
    )


def describe_choice(choice: FinetuneChoice, budget_s: float) -> str:
    """'online finetuning: recurrent, at most 50 updates or 60 s per video (the model was trained ...)'."""
    if choice.mode == "none":
        return f"online finetuning: none ({choice.reason})"
    limit = f"{choice.steps} updates" + (f" or {budget_s:g} s" if choice.mode == "recurrent" and budget_s else "")
    return f"online finetuning: {choice.mode}, at most {limit} per video ({choice.reason})"
