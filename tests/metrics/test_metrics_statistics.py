"""db_statistics: mean, recall and the official decay bins, computed by hand."""
import math

import numpy as np
import pytest

from maskrnn_tf.metrics import db_statistics, decay_bin_ids


def test_bin_ids_by_hand():
    np.testing.assert_array_equal(decay_bin_ids(5), [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(decay_bin_ids(6), [0, 1, 3, 4, 5])  # 3.5 + 1e-10 rounds up to 4
    np.testing.assert_array_equal(decay_bin_ids(7), [0, 2, 3, 5, 6])  # 2.5 -> 3, 5.5 -> 6
    np.testing.assert_array_equal(decay_bin_ids(48), [0, 12, 24, 35, 47])


@pytest.mark.parametrize(
    "n,decay",
    [
        (5, (1 + 2) / 2 - (4 + 5) / 2),  # bins [v0,v1] ... [v3,v4]
        (6, (1 + 2) / 2 - (5 + 6) / 2),  # bins [v0,v1] ... [v4,v5]   (array_split would give 1.5 - 6)
        (7, (1 + 2 + 3) / 3 - (6 + 7) / 2),  # bins [v0..v2] ... [v5,v6] (array_split: 1.5 - 7)
        (3, (1 + 2) / 2 - 3),  # ids 0,1,1,2,2
        (1, 0.0),
    ],
)
def test_decay_short_sequences(n, decay):
    values = np.arange(1, n + 1, dtype=float)
    mean, recall, d = db_statistics(values)
    assert mean == pytest.approx(values.mean())
    assert recall == 1.0
    assert d == pytest.approx(decay)


def test_recall_and_nan_handling():
    values = np.array([0.2, 0.6, np.nan, 0.51, 0.5])
    mean, recall, _ = db_statistics(values)
    assert mean == pytest.approx((0.2 + 0.6 + 0.51 + 0.5) / 4)  # NaN ignored in the mean
    assert recall == pytest.approx(2 / 5)  # > 0.5 strictly; NaN counts as a miss


def test_empty_gives_nan():
    assert all(math.isnan(v) for v in db_statistics([]))
