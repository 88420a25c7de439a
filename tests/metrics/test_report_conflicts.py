"""evaluate's CSVs carry davis2017-evaluation's names, which do not say which sequences were scored: scores of
other sequences already there (the whole split, then --sequences=one) were replaced without a word."""
import csv
import os
import re
import shutil

import numpy as np
import pytest

from davis_files import gt_stack, write_results  # tests/davis_files.py
from maskrnn_tf.metrics import EvaluationConfig, EvaluationInputError, evaluate_dataset, write_reports
from maskrnn_tf.metrics.report import ReportConflictError, not_these_results_scores

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


THEIR_GLOBAL = ("J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay\n"
                "0.500,0.500,0.500,0.000,0.500,0.500,0.000\n")
THEIR_PER_SEQUENCE = "Sequence,J-Mean,F-Mean\nbear_1,0.500,0.500\ntennis_1,0.500,0.500\ntennis_2,0.500,0.500\n"


def _texts(folder):
    return {n: open(os.path.join(folder, n)).read() for n in sorted(os.listdir(folder)) if n.endswith(".csv")}


@needs_data
def test_csvs_in_an_output_dir_are_replaced_only_when_evaluate_wrote_them_for_these_results(tmp_path):
    """--output_dir=<a folder of scores>: another method's CSVs there (the same objects, davis2017-evaluation's
    tables) were replaced without a word; nothing tells whose scores they are."""
    out, mine = str(tmp_path / "scores"), str(tmp_path / "mine")
    os.makedirs(out)
    for name, text in (("global_results-val.csv", THEIR_GLOBAL), ("per-sequence_results-val.csv", THEIR_PER_SEQUENCE)):
        with open(os.path.join(out, name), "w") as f:
            f.write(text)
    theirs = _texts(out)
    with pytest.raises(ReportConflictError, match=r"scores/global_results-val.csv: evaluate has no record of writing "
                                                  r"it .*--overwrite"):
        write_reports(_scores(mine, None), out, results_dir=mine)
    assert _texts(out) == theirs
    write_reports(_scores(mine, None), out, results_dir=mine, overwrite=True)
    assert _rows(os.path.join(out, "per-sequence_results-val.csv")) == ["bear_1", "tennis_1", "tennis_2"]
    assert "1.000,1.000" in open(os.path.join(out, "per-sequence_results-val.csv")).read()
    # A rerun on the same results replaces evaluate's own CSVs.
    write_reports(_scores(mine, None), out, results_dir=mine)
    ours = _texts(out)
    # Scores of other results (a copy of the folder) are refused, naming the results the CSVs hold.
    other = str(tmp_path / "other")
    shutil.copytree(mine, other)
    with pytest.raises(ReportConflictError, match=rf"global_results-val.csv: holds the scores of {re.escape(mine)}"):
        write_reports(_scores(other, None), out, results_dir=other)
    assert _texts(out) == ours
    # A CSV changed since evaluate wrote it (notes added by hand) is no longer evaluate's.
    with open(os.path.join(out, "per-sequence_results-val.csv"), "a") as f:
        f.write("# checked by hand\n")
    edited = _texts(out)
    with pytest.raises(ReportConflictError, match=r"per-sequence_results-val.csv: changed since evaluate wrote it"):
        write_reports(_scores(mine, None), out, results_dir=mine)
    assert _texts(out) == edited


@needs_data
@pytest.mark.parametrize("name", ["per-sequence_results-val.csv", "global_results-val.csv"])
def test_a_file_under_a_score_name_that_is_no_score_table_is_not_replaced(tmp_path, name):
    """A file under the CSV names beside the results that is not a table of scores was replaced (a per-sequence
    file without the `Sequence` header counted as no file at all)."""
    res = str(tmp_path / "res")
    scores = _scores(res, None)
    path = os.path.join(res, name)
    with open(path, "w") as f:
        f.write("my notes on these results\n")
    with pytest.raises(ReportConflictError, match=rf"res/{name}: not a table of scores.*--overwrite"):
        write_reports(scores, res)
    assert open(path).read() == "my notes on these results\n"
    write_reports(scores, res, overwrite=True)
    assert open(path).read().startswith(("Sequence,", "J&F-Mean,"))


@needs_data
def test_someone_elses_file_under_the_record_name_is_kept(tmp_path):
    res = str(tmp_path / "res")
    scores = _scores(res, None)
    record = os.path.join(res, "evaluate_run.json")
    with open(record, "w") as f:
        f.write('{"mine": true}\n')
    with pytest.raises(ReportConflictError, match=r"res/evaluate_run.json: not the record evaluate keeps"):
        write_reports(scores, res)
    assert open(record).read() == '{"mine": true}\n' and not _texts(res)


@needs_data
def test_rescoring_results_in_place_replaces_their_scores(tmp_path):
    """The CSVs beside the results are those results' scores: evaluate's own, also after the folder moved, and
    those of earlier versions or of davis2017-evaluation (the same tables, no record)."""
    res = str(tmp_path / "res")
    scores = _scores(res, None)
    for name, text in (("global_results-val.csv", THEIR_GLOBAL), ("per-sequence_results-val.csv", THEIR_PER_SEQUENCE)):
        with open(os.path.join(res, name), "w") as f:
            f.write(text)
    write_reports(scores, res)
    assert "1.000,1.000" in open(os.path.join(res, "per-sequence_results-val.csv")).read()
    moved = str(tmp_path / "moved")
    os.rename(res, moved)
    write_reports(_scores(moved, None), moved)
    assert _rows(os.path.join(moved, "per-sequence_results-val.csv")) == ["bear_1", "tennis_1", "tennis_2"]


@needs_data
def test_scores_a_tool_replacing_the_results_must_keep_are_named(tmp_path):
    out, other = str(tmp_path / "res"), str(tmp_path / "other")
    write_reports(_scores(out, ("bear", "tennis")), out)
    assert not_these_results_scores(out) == []  # every CSV scores the results beside it
    write_reports(_scores(other, ("bear", "tennis")), out, other, overwrite=True)
    assert not_these_results_scores(out) == ["evaluate_run.json", "global_results-val.csv",
                                             "per-sequence_results-val.csv"]
    write_reports(_scores(out, ("bear", "tennis")), out, None, overwrite=True)
    with open(os.path.join(out, "global_results-val.csv"), "a") as f:
        f.write("a note of the user's\n")
    assert not_these_results_scores(out) == ["evaluate_run.json", "global_results-val.csv"]
    with open(os.path.join(out, "evaluate_run.json"), "w") as f:
        f.write("someone else's file\n")
    assert not_these_results_scores(out) == ["evaluate_run.json"]


@needs_data
@pytest.mark.parametrize("form", ["palette", "DAVIS colours", "0/255"])
def test_results_davis2017_evaluation_would_refuse_are_noted(tmp_path, form):
    """RGB results in DAVIS colours, and 0/255 masks of a one-object DAVIS-2017 sequence, are read here, but
    davis2017-evaluation refuses them (a 3-D array; id 255 above the object count): the scores came without a word
    that the official tool would not give them."""
    from PIL import Image

    from maskrnn_tf.io import davis_palette

    out = str(tmp_path / "res")
    names, gt = gt_stack(DAVIS17, "bear")  # one object
    labels = np.where(gt == 255, 0, gt).astype(np.uint8)
    write_results(out, "bear", names, labels)
    if form != "palette":
        for name, label in zip(names, labels):
            pixels = davis_palette()[label] if form == "DAVIS colours" else (label * 255).astype(np.uint8)
            Image.fromarray(pixels).save(os.path.join(out, "bear", name))
    results = evaluate_dataset(DAVIS17, out, EvaluationConfig(skip_first_last=False, sequences=("bear",)))
    noted = [n for n in results.notes if "davis2017-evaluation" in n]
    if form == "palette":
        assert noted == []
    else:
        kind = "RGB" if form == "DAVIS colours" else "0/255"
        assert len(noted) == 1 and kind in noted[0] and "bear" in noted[0], results.notes


def _tiny_results(j):
    """Scores of one object over two frames, J = F = `j` in both (no dataset needed)."""
    from maskrnn_tf.metrics.evaluation import EvaluationResults, ObjectResult, SequenceResult

    values = np.array([j, j])
    obj = ObjectResult("alpha", 1, values, values.copy())
    return EvaluationResults("val", 2017, [SequenceResult("alpha", ("00001", "00002"), [obj])])


def test_a_failed_write_leaves_the_old_scores_whole(tmp_path, monkeypatch):
    """The global CSV was renamed into place before the per-sequence CSV and the record were written: a failure in
    between (a full disk) left new global scores beside old per-sequence ones and an old record, whose `values`
    then disagreed with the table. All three are written first now, then renamed."""
    import errno

    from maskrnn_tf.metrics import report

    out = str(tmp_path / "scores")
    write_reports(_tiny_results(0.5), out)
    before = {n: open(os.path.join(out, n)).read() for n in sorted(os.listdir(out))}
    assert sorted(before) == ["evaluate_run.json", "global_results-val.csv", "per-sequence_results-val.csv"]
    writes = []

    def open_failing_second_write(path, mode="r", *args, **kwargs):
        if "w" in mode:
            writes.append(path)
            if len(writes) == 2:
                raise OSError(errno.ENOSPC, "No space left on device", path)
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(report, "open", open_failing_second_write, raising=False)
    with pytest.raises(OSError, match="No space left"):
        write_reports(_tiny_results(1.0), out)
    assert len(writes) == 2
    assert {n: open(os.path.join(out, n)).read() for n in sorted(os.listdir(out))} == before  # no temporary left
    monkeypatch.undo()
    write_reports(_tiny_results(1.0), out)  # the old scores are still evaluate's: a rerun replaces them
    assert open(os.path.join(out, "global_results-val.csv")).read().splitlines()[1].startswith("1.000,1.000")
