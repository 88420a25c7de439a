"""Per-object statistics over frames (mean, recall, decay), as davis2017-evaluation's `db_statistics`.

Decay bins (checked against the official definition): with n values and N_bins = 4,
    ids = round(linspace(1, n, 5) + 1e-10) - 1          (the 1e-10 makes .5 round up, not to even)
    bin_i = values[ids[i] : ids[i+1] + 1]               (inclusive end: neighbouring bins share one value)
    decay = nanmean(bin_0) - nanmean(bin_3)
e.g. n=5: ids 0,1,2,3,4 -> decay = mean(v0,v1) - mean(v3,v4); n=6: ids 0,1,3,4,5 -> mean(v0,v1) - mean(v4,v5);
n=7: ids 0,2,3,5,6 -> mean(v0,v1,v2) - mean(v5,v6). This is NOT np.array_split(values, 4).
The official code casts ids to uint8 (wrong beyond 256 frames); plain integers are used here, which is
identical for every DAVIS sequence.
"""
from __future__ import annotations

import warnings
from typing import Sequence, Tuple, Union

import numpy as np

N_BINS = 4


def decay_bin_ids(n: int, n_bins: int = N_BINS) -> np.ndarray:
    """Start/end indices (n_bins + 1 of them) of the decay bins for `n` values."""
    return (np.round(np.linspace(1, n, n_bins + 1) + 1e-10) - 1).astype(np.int64)


def db_statistics(per_frame_values: Union[Sequence[float], np.ndarray]) -> Tuple[float, float, float]:
    """(mean, recall, decay) of one object's per-frame values (J or F).

    mean = nanmean(values); recall = mean(values > 0.5) (a NaN counts as a miss); decay = nanmean of the first
    quarter minus nanmean of the last quarter (bins as in the module docstring). The caller passes the
    evaluated frames only (the DAVIS protocol drops the first and the last frame). No values -> NaNs.
    """
    values = np.asarray(per_frame_values, dtype=np.float64).reshape(-1)
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)  # all-NaN slices give NaN, as intended
        mean = float(np.nanmean(values))
        recall = float(np.mean(values > 0.5))
        ids = decay_bin_ids(values.size)
        bins = [values[ids[i] : ids[i + 1] + 1] for i in range(N_BINS)]
        decay = float(np.nanmean(bins[0]) - np.nanmean(bins[N_BINS - 1]))
    return mean, recall, decay
