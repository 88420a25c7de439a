"""The finetuning table reads what segment and evaluate really write, and refuses folders missing either."""
import csv
import json
import os
import subprocess
import sys

import pytest

from maskrnn_tf.experiments.finetune_comparison import (ComparisonInputError, compare, parse_labelled,
                                                        read_run)
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
        assert lines[name][0] == f"{100 * float(row['J-Mean']):.1f}" and lines[name][1] == f"{100 * float(row['F-Mean']):.1f}"
    # The same step and flows in both runs: the same scores.
    assert lines["blackswan_1"][:2] == lines["blackswan_1"][2:4]
    with open(scored / "logged" / "segment_run.json") as f:
        record = json.load(f)
    assert record["finetune_log"]["libby"] == {"updates": 5, "seconds": 7.5}
    assert lines["libby_1"][5] == f"5, 8 ({record['segment_seconds']['libby']:.0f})"
    assert lines["libby_1"][4] == f"0, 0 ({runs[0].segment_seconds['libby']:.0f})"
    j_mean = sum(float(r["J-Mean"]) for r in rows.values()) / 2
    with open(scored / "none" / "global_results-val.csv", newline="") as f:
        assert float(next(csv.DictReader(f))["J-Mean"]) == pytest.approx(j_mean, abs=1e-6)  # the mean row is DAVIS's
    assert lines["**mean**"][0] == f"**{100 * j_mean:.1f}**"
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


def test_runs_over_different_objects_or_damaged_records_are_refused_by_name(scored, tmp_path):
    """Means over different objects side by side would compare nothing; a damaged CSV or segment_run.json is
    named, not a bare KeyError or JSONDecodeError."""
    import shutil

    partial = tmp_path / "partial"
    shutil.copytree(scored / "none", partial)
    rows = (partial / "per-sequence_results-val.csv").read_text().splitlines()
    (partial / "per-sequence_results-val.csv").write_text("\n".join(r for r in rows if not r.startswith("libby")) + "\n")
    with pytest.raises(ComparisonInputError, match=r"different objects: libby_1 only in none"):
        compare([("none", str(scored / "none")), ("partial", str(partial))])

    (partial / "per-sequence_results-val.csv").write_text("Sequence,J\nblackswan_1,0.5\n")
    with pytest.raises(ComparisonInputError, match=r"per-sequence_results-val.csv: no 'J-Mean' column"):
        read_run("p", str(partial))
    shutil.copy(scored / "none" / "per-sequence_results-val.csv", partial)
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
