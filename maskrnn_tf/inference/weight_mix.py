"""Online finetuning taken part of the way: each video's weights interpolated between the trained and finetuned ones.

Finetuning on one video moves a network far both ways (docs/RESULTS.md): it recovers an object the trained network
loses and makes another's mask grow. Interpolating the finetuned weights back toward the trained ones (as WiSE-FT,
Wortsman et al., CVPR 2022, does for finetuned image models) keeps a fraction of what finetuning changed; for a
network and its finetuned copy that stay in one basin, the mix can be better than either end.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from maskrnn_tf.inference.first_mask import FirstMask
from maskrnn_tf.inference.propagation import StepFn
from maskrnn_tf.inference.video_reader import VideoSource

Prepare = Callable[[VideoSource, FirstMask], StepFn]


class WeightMixPrepare:
    """Wraps an online-finetuning `prepare` callback (`finetuning_prepare`, `recurrent_finetuning_prepare`): after it
    finetuned a video, every floating-point weight becomes `trained + mix * (finetuned - trained)`, `trained` being the
    weights `model` has when this wrapper is made (those `prepare` starts every video from).

    `log` and `results` are the wrapped callback's; so is `reserve_s` (a budget the cycle check takes its cost off) when
    it has one, so `cycle_checked_prepare` can wrap this in turn and judge the mixed weights.
    """

    def __init__(self, prepare: Prepare, model: Any, mix: float):
        if not 0.0 < mix <= 1.0:
            raise ValueError(f"WeightMixPrepare: mix must be in (0, 1] (the fraction of finetuning's change kept), "
                             f"got {mix}.")
        self._prepare = prepare
        self._model = model
        self.mix = float(mix)
        self._trained = [v.numpy() for v in model.weights]

    def __call__(self, source: VideoSource, first: FirstMask) -> StepFn:
        step_fn = self._prepare(source, first)
        if self.mix < 1.0:
            for variable, trained in zip(self._model.weights, self._trained):
                if not np.issubdtype(trained.dtype, np.floating):
                    continue  # a counter or an id: nothing between two values
                finetuned = variable.numpy().astype(np.float64)
                mixed = trained.astype(np.float64) + self.mix * (finetuned - trained.astype(np.float64))
                variable.assign(mixed.astype(trained.dtype))
        return step_fn

    @property
    def log(self):
        return self._prepare.log  # type: ignore[attr-defined]  # AttributeError when it has none, as unwrapped

    @property
    def results(self):
        return self._prepare.results  # type: ignore[attr-defined]

    @property
    def reserve_s(self) -> float:
        if not hasattr(self._prepare, "reserve_s"):
            raise AttributeError("the wrapped finetuning has no time budget (reserve_s)")
        return float(self._prepare.reserve_s)  # type: ignore[attr-defined]

    @reserve_s.setter
    def reserve_s(self, seconds: float) -> None:
        if not hasattr(self._prepare, "reserve_s"):
            raise AttributeError("the wrapped finetuning has no time budget (reserve_s)")
        self._prepare.reserve_s = seconds  # type: ignore[attr-defined]
