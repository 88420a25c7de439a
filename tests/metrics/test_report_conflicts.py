"""evaluate's CSVs carry davis2017-evaluation's names, which do not say which sequences were scored: scores of
other sequences already there (the whole split, then --sequences=one) were replaced without a word."""
import csv
import os

import numpy as np
import pytest

from davis_files import gt_stack, write_results  # tests/davis_files.py
from maskrnn_tf.metrics import EvaluationConfig, EvaluationInputError, evaluate_dataset, write_reports

DAVIS17 = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data",
                                       "DAVIS-2017-sample"))
needs_data = pytest.mark.usefixtures("shared_data")


def _scores(out, sequences):
    for seq in ("bear", "tennis"):
        if not os.path.isdir(os.path.join(out, seq)):
            names, gt = gt_stack(DAVIS17, seq)
            write_results(out, seq, names, np.where(gt == 255, 0, gt).astype(np.uint8))
    return evaluate_dataset(DAVIS17, out, EvaluationConfig(skip_first_last=False, processes=1, sequences=sequences))


def _rows(path):
    with open(path, newline="") as f:
        return [row[0] for row in csv.reader(f)][1:]


@needs_data
def test_scores_of_other_sequences_are_not_replaced(tmp_path):
    out = str(tmp_path / "res")
    write_reports(_scores(out, ("bear", "tennis")), out)
    per_sequence = os.path.join(out, "per-sequence_results-val.csv")
    before = {n: open(os.path.join(out, n)).read() for n in os.listdir(out) if n.endswith(".csv")}
    with pytest.raises(EvaluationInputError, match=r"per-sequence_results-val.csv holds the scores of bear_1, "
                                                   r"tennis_1, tennis_2.*--output_dir"):
        write_reports(_scores(out, ("tennis",)), out)
    assert {n: open(os.path.join(out, n)).read() for n in before} == before
    # The same sequences again (a rerun) replace them, and another folder takes the subset.
    write_reports(_scores(out, ("bear", "tennis")), out)
    other = str(tmp_path / "tennis_only")
    write_reports(_scores(out, ("tennis",)), other)
    assert _rows(os.path.join(other, "per-sequence_results-val.csv")) == ["tennis_1", "tennis_2"]
    assert _rows(per_sequence) == ["bear_1", "tennis_1", "tennis_2"]
