"""Several trained networks as one recurrent step (`segment --ensemble_models`): at every frame each network gets
the same previous probabilities and boxes, and the mean of their probabilities (and of their boxes) is what is
segmented and carried on.

With online finetuning each network is finetuned (and checked) on its own as `--finetune` says, with its own
time budget, and the finetuned steps are averaged.

Without ImageNet weights one training of the CPU recipe is a draw: seeds of the same recipe differ by up to 3.4 J
on the held-out split and 14.7 J on val (docs/RESULTS.md, "Other seeds", "Two seeds as one step"). Averaging the
networks' answers at every step keeps what they agree on. Costs one model step per network per frame (and each
network's finetuning).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

from maskrnn_tf.inference.propagation import MASK_THRESHOLD_KEY, StepFn


def mean_boxes(boxes: Sequence[np.ndarray]) -> np.ndarray:
    """Per object, the mean of the non-empty boxes (positive height and width) of K [N, 4] box sets; an object
    whose boxes are all empty keeps the first set's box."""
    stacked = np.stack([np.asarray(b, np.float32) for b in boxes])  # [K, N, 4]
    valid = (stacked[..., 2] > stacked[..., 0]) & (stacked[..., 3] > stacked[..., 1])  # [K, N]
    count = valid.sum(axis=0)  # [N]
    total = np.where(valid[..., None], stacked, 0.0).sum(axis=0)
    mean = total / np.maximum(count, 1)[:, None]
    return np.where((count > 0)[:, None], mean, stacked[0]).astype(np.float32)


def ensemble_step(steps: Sequence[StepFn]) -> StepFn:
    """One step function from K >= 1 steps of the same signature: 'probs' is the mean of their probabilities,
    'boxes' `mean_boxes` of theirs; a 'mask_threshold' the first step returns (a served export's) is passed on.
    Every step is given the same inputs (the ensemble's carried state)."""
    steps = list(steps)
    if not steps:
        raise ValueError("ensemble_step needs at least one step function.")

    def run(frame, flow_to_prev, flow_to_next, prev_probs, prev_boxes) -> Dict[str, Any]:
        outs = [step(frame, flow_to_prev, flow_to_next, prev_probs, prev_boxes) for step in steps]
        result: Dict[str, Any] = {
            "probs": np.mean([np.asarray(out["probs"], np.float32) for out in outs], axis=0).astype(np.float32),
            "boxes": mean_boxes([out["boxes"] for out in outs]),
        }
        first: Mapping[str, Any] = outs[0]
        if MASK_THRESHOLD_KEY in first:
            result[MASK_THRESHOLD_KEY] = first[MASK_THRESHOLD_KEY]
        return result

    return run


class EnsemblePrepare:
    """A `prepare(source, first) -> step_fn` callback (online finetuning) for an ensemble: each network's own
    callback (None: its plain step, not finetuned) prepares its step, and `ensemble_step` averages them.

    `log` (a dict kept up to date in place, as segment_run.json reads it) maps each video's name to the sum of the
    networks' `updates` and `seconds` and, under "members", each network's own entry (None where it keeps none).
    """

    def __init__(self, prepares: Sequence[Optional[Callable[..., StepFn]]], steps: Sequence[StepFn]):
        if len(prepares) != len(steps) or not steps:
            raise ValueError(f"EnsemblePrepare needs one prepare callback (or None) per step: {len(prepares)} "
                             f"callbacks, {len(steps)} steps.")
        self._prepares = list(prepares)
        self._steps = list(steps)
        self.log: Dict[str, Dict[str, Any]] = {}

    def __call__(self, source, first) -> StepFn:
        prepared = [step if prepare is None else prepare(source, first)
                    for prepare, step in zip(self._prepares, self._steps)]
        self._merge_logs()
        return ensemble_step(prepared)

    def _merge_logs(self) -> None:
        logs = [getattr(prepare, "log", None) for prepare in self._prepares]
        names = sorted({name for log in logs if isinstance(log, dict) for name in log})
        for name in names:
            members: List[Optional[Dict[str, Any]]] = [
                dict(log[name]) if isinstance(log, dict) and name in log else None for log in logs]
            present = [entry for entry in members if entry is not None]
            self.log[name] = {"updates": int(sum(int(entry.get("updates", 0)) for entry in present)),
                              "seconds": float(sum(float(entry.get("seconds", 0.0)) for entry in present)),
                              "members": members}
