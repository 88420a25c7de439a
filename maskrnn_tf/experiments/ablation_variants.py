"""The paper's Table 2 ablation: which components a run enables, and the table of what each scores.

Each row adds one component to the previous one, as in the paper: the appearance stream alone (fed the
previous mask where it was), the flow stream, warping the mask with the flow, the localization loss, applying
the localization box, and recurrent training (stage B). Rows without 'RNN' train stage A only, so
'+ Loc. net: apply' deploys the network trained for '+ Loc. net: train' with the box switched on (see
`training_variant`): the paper's two rows differ only in what is deployed.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

# Results-folder records and scores live in their own module; imported here for the ablation's callers.
from maskrnn_tf.experiments.results_records import read_scores, record_mismatch, results_record  # noqa: F401


@dataclasses.dataclass(frozen=True)
class AblationVariant:
    """One row of Table 2: a name (run folder), its label and which components it enables."""

    name: str
    label: str
    flow_stream: bool
    warp_mask: bool
    loc_train: bool
    loc_apply: bool
    rnn: bool


ABLATION_VARIANTS: Tuple[AblationVariant, ...] = (
    AblationVariant("astream", "AStream", False, False, False, False, False),
    AblationVariant("fstream", "+ FStream", True, False, False, False, False),
    AblationVariant("warp", "+ Warp mask", True, True, False, False, False),
    AblationVariant("loc_train", "+ Loc. net: train", True, True, True, False, False),
    AblationVariant("loc_apply", "+ Loc. net: apply", True, True, True, True, False),
    AblationVariant("rnn", "+ RNN (full model)", True, True, True, True, True),
)


def variant_overrides(variant: AblationVariant) -> Dict[str, object]:
    """TrainConfig dotted-key overrides that switch the components of `variant` off.

    Enabled components keep the base flag file's values (its loc_weight and stage_b_steps).
    """
    out: Dict[str, object] = {
        "model.use_flow_stream": variant.flow_stream,
        "model.warp_mask": variant.warp_mask,
        "model.apply_localization": variant.loc_apply,
    }
    if not variant.loc_train:
        out["loss.loc_weight"] = 0.0
    if not variant.rnn:
        out["stage_b_steps"] = 0
    return out


def training_variant(variant: AblationVariant) -> AblationVariant:
    """The row whose trained network `variant` deploys (often itself).

    Without recurrent training, applying the box changes nothing in training: stage A feeds a perturbed
    ground-truth mask (not the model's restricted prediction) and its losses are on the unrestricted logits
    and the box deltas. So a stage-A-only row that applies the box deploys the network of the same row
    without it, switched on at segmentation (`segment --apply_localization`); one training less.
    """
    if variant.rnn or not variant.loc_apply:
        return variant
    wanted = dataclasses.replace(variant, loc_apply=False)
    for other in ABLATION_VARIANTS:
        if dataclasses.replace(other, name=wanted.name, label=wanted.label) == wanted:
            return other
    return variant


def finetune_loc_weight(variant: AblationVariant, weight: float) -> float:
    """The localization-loss weight of `variant`'s online finetuning: `weight` where its network was trained
    with the loss, else 0 (its box head is untrained, and the box loss would reach the trunk through conv5_3)."""
    return weight if training_variant(variant).loc_train else 0.0


def _mark(on: bool) -> str:
    return "x" if on else ""


def _pct(scores: Optional[Mapping[str, float]], key: str) -> str:
    if not scores or key not in scores:
        return "-"
    return f"{100.0 * scores[key]:.1f}"


def _minutes(variant: AblationVariant, seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    shared = training_variant(variant) is not variant
    return f"{seconds / 60.0:.1f}" + (" (shared)" if shared else "")


def ablation_markdown(
    rows: Sequence[Tuple[AblationVariant, Optional[Mapping[str, float]], Optional[Mapping[str, float]], float]],
) -> str:
    """A markdown table: components, J-Mean / F-Mean without and with online finetuning, training minutes.

    rows: (variant, scores without finetuning, scores with finetuning, training seconds) per variant; scores
    are `read_scores` dicts (fractions; shown in %), None where not measured; seconds NaN where not known. A
    row that deploys another row's training shows that training's minutes, marked '(shared)'.
    """
    lines = [
        "| Row | FStream | Warp mask | Loc. train | Loc. apply | RNN | J w/o FT | F w/o FT | J w/ FT | F w/ FT "
        "| train min |",
        "|---|:-:|:-:|:-:|:-:|:-:|--:|--:|--:|--:|--:|",
    ]
    for variant, plain, tuned, seconds in rows:
        lines.append(
            f"| {variant.label} | {_mark(variant.flow_stream)} | {_mark(variant.warp_mask)} | "
            f"{_mark(variant.loc_train)} | {_mark(variant.loc_apply)} | {_mark(variant.rnn)} | "
            f"{_pct(plain, 'J-Mean')} | {_pct(plain, 'F-Mean')} | {_pct(tuned, 'J-Mean')} | {_pct(tuned, 'F-Mean')} "
            f"| {_minutes(variant, seconds)} |"
        )
    return "\n".join(lines) + "\n"


def select_variants(names: Optional[Sequence[str]]) -> List[AblationVariant]:
    """The variants named (all when None), in table order; an unknown name raises ValueError."""
    if not names:
        return list(ABLATION_VARIANTS)
    known = {v.name: v for v in ABLATION_VARIANTS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown ablation variant(s) {unknown}; known: {list(known)}.")
    return [v for v in ABLATION_VARIANTS if v.name in set(names)]
