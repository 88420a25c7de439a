"""The finetuning table reads what segment and evaluate really write, and refuses folders missing either."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from maskrnn_tf.experiments.finetune_comparison import (ComparisonInputError, compare, comparison_markdown,
                                                        parse_labelled, read_run)
from maskrnn_tf.inference import SegmentOptions, flow_propagation_step, make_flow_fn, segment_davis

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _segment_and_score(davis, out, prepare=None):
    segment_davis(davis, "val", make_flow_fn("dis-ultrafast"), str(out), step_fn=flow_propagation_step,
                  options=SegmentOptions(max_size=96, need_next_flow=False, progress=False, min_size=0),
                  prepare=prepare, sequences=["blackswan", "libby"], metadata={"finetune": "none"})
    done = subprocess.run([sys.executable, "-m", "maskrnn_tf.evaluate", f"--davis_root={davis}", f"--results={out}",
                           "--sequences=blackswan,libby", "--processes=1"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture(scope="module")
def scored(shared_data, tmp_path_factory):
    davis = os.path.join(shared_data, "DAVIS-2016")
    root = tmp_path_factory.mktemp("ft")
    _segment_and_score(davis, root / "none")

    def prepare(source, first):  # stands in for a finetuning callback: it keeps a log as both real ones do
        prepare.log[source.name] = {"updates": len(source.name), "seconds": 1.5 * len(source.name)}
        return flow_propagation_step

    prepare.log = {}
    _segment_and_score(davis, root / "logged", prepare)
    return root


def _csv_rows(path):
    with open(path, newline="") as f:
        return {r["Sequence"]: r for r in csv.DictReader(f)}


def test_the_table_holds_evaluates_numbers_and_segments_times(scored):
    runs, table = compare([("none", str(scored / "none")), ("logged", str(scored / "logged"))])
    rows = _csv_rows(scored / "none" / "per-sequence_results-val.csv")
    assert set(rows) == {"blackswan_1", "libby_1"}
    lines = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in table.splitlines()[2:]}
    for name, row in rows.items():
        assert lines[name][0] == f"{100 * float(row['J-Mean']):.1f}"
        assert lines[name][1] == f"{100 * float(row['F-Mean']):.1f}"
    # The same step and flows in both runs: the same scores.
    assert lines["blackswan_1"][:2] == lines["blackswan_1"][2:4]
    with open(scored / "logged" / "segment_run.json") as f:
        record = json.load(f)
    assert record["finetune_log"]["libby"] == {"updates": 5, "seconds": 7.5}
    assert lines["libby_1"][5] == f"5, 8 ({record['segment_seconds']['libby']:.0f})"
    assert lines["libby_1"][4] == f"0, 0 ({runs[0].segment_seconds['libby']:.0f})"
    with open(scored / "none" / "global_results-val.csv", newline="") as f:
        global_scores = next(csv.DictReader(f))
    # The mean row is evaluate's J-Mean / F-Mean (not the mean of the 3-decimal cells, which may differ by 0.001).
    mean = lines["**mean; updates, s: total**"]
    assert mean[:2] == [f"**{100 * float(global_scores[k]):.1f}**" for k in ("J-Mean", "F-Mean")]
    # The time columns' last row: totals in the per-sequence cells' form (it held seconds under "updates, s").
    segmenting = sum(runs[1].segment_seconds.values())
    assert mean[5] == f"{len('blackswan') + len('libby')}, {13.5 + 7.5:.0f} ({segmenting:.0f})"
    assert mean[4] == f"0, 0 ({sum(runs[0].segment_seconds.values()):.0f})"
    assert float(global_scores["J-Mean"]) == pytest.approx(sum(float(r["J-Mean"]) for r in rows.values()) / 2,
                                                           abs=1e-3)
    assert runs[1].finetune_seconds == {"blackswan": 13.5, "libby": 7.5}


def test_the_cli_prints_and_writes_the_table(scored, tmp_path):
    out = tmp_path / "table.md"
    done = subprocess.run([sys.executable, "-m", "maskrnn_tf.finetune_table",
                           f"--results=none={scored / 'none'},{scored / 'logged'}", f"--output={out}"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == out.read_text() and "| object | none J | none F | logged J |" in done.stdout


def test_an_existing_output_file_is_kept_unless_overwrite_is_given(scored, tmp_path):
    """--output may name a file of the user's (notes, another table): it is not replaced without --overwrite,
    and the refusal says so before anything is printed or written."""
    out = tmp_path / "notes.md"
    out.write_text("my notes\n")
    command = [sys.executable, "-m", "maskrnn_tf.finetune_table", f"--results=none={scored / 'none'}",
               f"--output={out}"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and f"{out} exists" in done.stderr and "--overwrite" in done.stderr
    assert out.read_text() == "my notes\n" and done.stdout == ""
    done = subprocess.run(command + ["--overwrite"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert out.read_text() == done.stdout and "| object | none J |" in done.stdout
    folder = tmp_path / "folder"
    folder.mkdir()
    done = subprocess.run(command[:-1] + [f"--output={folder}", "--overwrite"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "is a folder" in done.stderr and folder.is_dir()


def test_folders_missing_scores_or_the_segment_record_are_refused_by_name(scored, tmp_path):
    unscored = tmp_path / "unscored"
    unscored.mkdir()
    with pytest.raises(ComparisonInputError, match="per-sequence_results-val.csv: missing; score the folder"):
        read_run("x", str(unscored))
    (unscored / "per-sequence_results-val.csv").write_text("Sequence,J-Mean,F-Mean\nblackswan_1,0.5,0.5\n")
    with pytest.raises(ComparisonInputError, match="segment_run.json: missing"):
        read_run("x", str(unscored))
    done = subprocess.run([sys.executable, "-m", "maskrnn_tf.finetune_table", f"--results={unscored}"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "segment_run.json: missing" in done.stderr
    assert parse_labelled(["a=x/y", "x/z/"]) == [("a", "x/y"), ("z", "x/z/")]
    with pytest.raises(ComparisonInputError, match="LABEL=FOLDER"):
        parse_labelled(["=x"])
    # Two columns under one label could not be told apart (a label defaults to the folder's name).
    with pytest.raises(ComparisonInputError, match=r"label 'res' given to x/a/res and to x/b/res; label each "
                                                   r"folder once \(LABEL=FOLDER\)"):
        parse_labelled(["x/a/res", "x/b/res"])
    with pytest.raises(ComparisonInputError, match="label 'a' given to x and to y"):
        parse_labelled(["a=x", "a=y"])


def test_runs_over_different_objects_or_damaged_records_are_refused_by_name(scored, tmp_path):
    """Means over different objects side by side would compare nothing; a damaged CSV or segment_run.json is
    named, not a bare KeyError or JSONDecodeError."""
    import shutil

    partial = tmp_path / "partial"
    shutil.copytree(scored / "none", partial)
    rows = (partial / "per-sequence_results-val.csv").read_text().splitlines()
    (partial / "per-sequence_results-val.csv").write_text(
        "\n".join(r for r in rows if not r.startswith("libby")) + "\n")
    # Its global CSV as evaluate --sequences=blackswan --overwrite writes it: the means of the object it holds.
    kept = _csv_rows(partial / "per-sequence_results-val.csv")["blackswan_1"]
    (partial / "global_results-val.csv").write_text(f"J-Mean,F-Mean\n{kept['J-Mean']},{kept['F-Mean']}\n")
    with pytest.raises(ComparisonInputError, match=r"different objects: libby_1 only in none"):
        compare([("none", str(scored / "none")), ("partial", str(partial))])

    (partial / "per-sequence_results-val.csv").write_text("Sequence,J\nblackswan_1,0.5\n")
    with pytest.raises(ComparisonInputError, match=r"per-sequence_results-val.csv: no 'J-Mean' column"):
        read_run("p", str(partial))
    shutil.copy(scored / "none" / "per-sequence_results-val.csv", partial)
    shutil.copy(scored / "none" / "global_results-val.csv", partial)
    (partial / "segment_run.json").write_text("{broken")
    with pytest.raises(ComparisonInputError, match=r"segment_run.json: not readable JSON"):
        read_run("p", str(partial))
    (partial / "segment_run.json").write_text(json.dumps({"finetune": "static", "finetune_log": {"libby": 3}}))
    with pytest.raises(ComparisonInputError, match=r"segment_run.json: finetune_log\['libby'\] is not"):
        read_run("p", str(partial))


def test_a_folder_holding_another_folders_scores_is_refused(tmp_path):
    """evaluate --results=A --output_dir=B puts A's scores into B under the same names; its evaluate_run.json
    says so, and the table does not show them as B's."""
    folder = tmp_path / "static"
    folder.mkdir()
    (folder / "segment_run.json").write_text(json.dumps({"finetune": "static"}))
    (folder / "per-sequence_results-val.csv").write_text("Sequence,J-Mean,F-Mean\nbear_1,0.600,0.300\n")

    def recorded(results):
        (folder / "evaluate_run.json").write_text(json.dumps({"written_by": "maskrnn_tf.evaluate", "files": {
            "per-sequence_results-val.csv": {"results": results, "size": 1, "mtime_ns": 1}}}))

    recorded(str(tmp_path / "none"))
    with pytest.raises(ComparisonInputError, match=f"the scores of {tmp_path / 'none'} "):
        read_run("static", str(folder))
    for results in (".", os.path.realpath(folder)):  # its own scores (beside it, or by path)
        recorded(results)
        assert read_run("static", str(folder)).mean() == pytest.approx((0.6, 0.3))


def _hand_scored(folder, j, f, split="val"):
    """A results folder as segment and evaluate leave it, scored by evaluate's own writer: objects alpha_1,
    alpha_2, beta_1, ... whose J-Mean and F-Mean are the hand-chosen `j` and `f` (one scored frame each)."""
    from maskrnn_tf.metrics import EvaluationResults, ObjectResult, SequenceResult, write_reports

    names = [("alpha", 1), ("alpha", 2)] + [("beta", k) for k in range(1, len(j) - 1)]
    objects = [ObjectResult(s, k, np.array([jv]), np.array([fv])) for (s, k), jv, fv in zip(names, j, f)]
    sequences = [SequenceResult(s, ("00001",), [o for o in objects if o.sequence == s]) for s in ("alpha", "beta")]
    results = EvaluationResults(split, 2017, sequences)
    os.makedirs(folder)
    with open(os.path.join(folder, "segment_run.json"), "w") as fh:
        json.dump({"finetune": "none"}, fh)
    write_reports(results, str(folder))
    return results.global_metrics()


def _mean_cells(table):
    last = table.splitlines()[-1].split("|")
    return [c.strip() for c in last[2:4]]


# Averaging the CSV's 3-decimal cells: (0.600 + 0.600 + 0.601) / 3 = 0.6003 -> 60.0, but evaluate's J-Mean
# (full precision) is 0.6006 -> 0.601 -> 60.1. The same for F.
ROUNDING_J, ROUNDING_F = (0.6004, 0.6004, 0.6010), (0.3004, 0.3004, 0.3010)


def test_the_mean_row_is_evaluates_mean_not_the_mean_of_its_rounded_cells(tmp_path):
    """The table averaged per-object values read back from the CSV at 3 decimals: its mean could differ in the
    last digit from the J-Mean / F-Mean evaluate reports for the same folder."""
    folder = tmp_path / "none"
    scores = _hand_scored(folder, ROUNDING_J, ROUNDING_F)
    assert f"{scores['J-Mean']:.3f}" == "0.601" and f"{scores['F-Mean']:.3f}" == "0.301"  # what evaluate reports
    # The CSVs keep davis2017-evaluation's format: same columns, 3 decimals.
    assert (folder / "per-sequence_results-val.csv").read_text() == (
        "Sequence,J-Mean,F-Mean\nalpha_1,0.600,0.300\nalpha_2,0.600,0.300\nbeta_1,0.601,0.301\n")
    assert (folder / "global_results-val.csv").read_text().splitlines()[1].startswith("0.451,0.601,")
    run = read_run("none", str(folder))
    assert run.mean() == pytest.approx((scores["J-Mean"], scores["F-Mean"]), abs=1e-12)
    assert run.objects["beta_1"] == (0.6010, 0.3010)  # full precision
    table = comparison_markdown([run])
    assert _mean_cells(table) == ["**60.1**", "**30.1**"]
    assert "| alpha_1 | 60.0 | 30.0 |" in table and "| beta_1 | 60.1 | 30.1 |" in table


def test_cells_show_evaluates_digits_at_ties(tmp_path):
    """A value halfway between two table digits (J = 1/80 = 0.0125) is shown as evaluate writes it (0.013 ->
    1.3), not rounded a second time from 1.25 (-> 1.2)."""
    folder = tmp_path / "none"
    _hand_scored(folder, (0.0125, 0.0375, 0.5), (0.0375, 0.0125, 0.5))
    assert (folder / "per-sequence_results-val.csv").read_text().splitlines()[1:3] == ["alpha_1,0.013,0.037",
                                                                                      "alpha_2,0.037,0.013"]
    table = comparison_markdown([read_run("none", str(folder))])
    assert "| alpha_1 | 1.3 | 3.7 |" in table and "| alpha_2 | 3.7 | 1.3 |" in table


def test_folders_scored_before_full_precision_was_recorded_show_evaluates_global_means(tmp_path):
    """A folder scored by an earlier evaluate (no full-precision values in evaluate_run.json, or no record at
    all, as davis2017-evaluation leaves its CSVs) still works: per object the CSV's cells, and for the mean row
    the folder's global_results CSV, evaluate's own J-Mean / F-Mean at 3 decimals, not the mean of the cells."""
    folder = tmp_path / "old"
    _hand_scored(folder, ROUNDING_J, ROUNDING_F)
    record_path = folder / "evaluate_run.json"
    record = json.loads(record_path.read_text())
    for entry in record["files"].values():
        del entry["values"]  # the record as evaluate wrote it before
    record_path.write_text(json.dumps(record))
    for step in ("old record", "no record"):
        run = read_run("old", str(folder))
        assert run.objects["beta_1"] == (0.601, 0.301) and run.mean() == (0.601, 0.301), step
        assert _mean_cells(comparison_markdown([run])) == ["**60.1**", "**30.1**"], step
        record_path.unlink(missing_ok=True)
    # Values recorded for CSVs that were replaced since (here: rescored by another tool beside the results) are
    # not used for them: the CSVs are what the table shows.
    _hand_scored(tmp_path / "new", ROUNDING_J, ROUNDING_F)
    (tmp_path / "new" / "per-sequence_results-val.csv").write_text(
        "Sequence,J-Mean,F-Mean\nalpha_1,0.500,0.400\nalpha_2,0.500,0.400\nbeta_1,0.500,0.400\n")
    (tmp_path / "new" / "global_results-val.csv").write_text(
        "J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay\n0.450,0.500,1.000,0.000,0.400,1.000,0.000\n")
    run = read_run("new", str(tmp_path / "new"))
    assert run.objects["beta_1"] == (0.5, 0.4) and run.mean() == (0.5, 0.4)
    # A global CSV that is not the mean of the per-object one (not one evaluation's) is refused by name.
    (folder / "global_results-val.csv").write_text(
        "J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay\n0.500,0.700,1.000,0.000,0.300,1.000,0.000\n")
    with pytest.raises(ComparisonInputError, match=r"global_results-val.csv: J-Mean 0.700 is not the mean of "
                                                   r"the objects of .*per-sequence_results-val.csv \(0.600\)"):
        read_run("old", str(folder))


def test_the_totals_count_only_the_sequences_in_the_table():
    """A folder segmented over more sequences than were scored (evaluate --sequences): its log's times of the
    sequences the table does not show are not in the last row's totals, which would then not be the column's sum."""
    from maskrnn_tf.experiments.finetune_comparison import FinetuneRun

    scores = {"alpha_1": (0.5, 0.4), "beta_1": (0.7, 0.6)}
    recurrent = FinetuneRun("recurrent", "recurrent", scores, updates={"alpha": 40, "beta": 30, "gamma": 500},
                            finetune_seconds={"alpha": 55.0, "beta": 50.0, "gamma": 900.0},
                            segment_seconds={"alpha": 10.0, "beta": 8.0, "gamma": 70.0})
    none = FinetuneRun("none", "none", scores, updates={}, finetune_seconds={},
                       segment_seconds={"alpha": 9.0, "beta": 7.0, "gamma": 60.0})
    table = comparison_markdown([none, recurrent])
    assert "| alpha_1 | 50.0 | 40.0 | 50.0 | 40.0 | 0, 0 (9) | 40, 55 (10) |" in table
    assert "gamma" not in table
    assert table.splitlines()[-1].endswith("| 0, 0 (16) | 70, 105 (18) |")
