"""`python -m maskrnn_tf.evaluate` flags, each through the CLI, each checked by its effect on the CSVs it writes:
--all_frames, --exclude_void, --t, --output_dir, --overwrite, --year."""
import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from davis_files import gt_stack, write_results  # tests/davis_files.py
from maskrnn_tf.metrics.temporal import temporal_stability

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _evaluate(davis_root, results, *flags):
    return subprocess.run([sys.executable, "-m", "maskrnn_tf.evaluate", f"--davis_root={davis_root}",
                           f"--results={results}", "--processes=1", *flags], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], {row[0]: row[1:] for row in rows[1:]}


def _davis17(shared_data):
    return os.path.join(shared_data, "DAVIS-2017-sample")


@pytest.fixture
def void_as_object(shared_data, tmp_path):
    """DAVIS-2017 sample results: the ground truth, with tennis's void pixels (255) labelled object 1."""
    root = _davis17(shared_data)
    results = str(tmp_path / "results")
    for sequence in ("bear", "tennis"):
        names, gt = gt_stack(root, sequence)
        write_results(results, sequence, names, np.where(gt == 255, 1, gt).astype(np.uint8))
    return root, results


def _iou(a, b):
    return np.sum(a & b) / np.sum(a | b)


def test_all_frames_is_needed_for_two_frame_sequences_and_scores_both(void_as_object):
    root, results = void_as_object
    refused = _evaluate(root, results)
    assert refused.returncode == 2 and "--all_frames" in refused.stderr and "bear" in refused.stderr
    assert not os.path.exists(os.path.join(results, "global_results-val.csv"))
    proc = _evaluate(root, results, "--all_frames")
    assert proc.returncode == 0, proc.stderr
    header, rows = _rows(os.path.join(results, "per-sequence_results-val.csv"))
    assert header == ["Sequence", "J-Mean", "F-Mean"]  # DAVIS-2017: no T column by default
    # By default void is background, as davis2017-evaluation scores it: the void pixels labelled 1 count against
    # object 1 of tennis.
    _, gt = gt_stack(root, "tennis")
    want = np.mean([_iou(g == 1, (g == 1) | (g == 255)) for g in gt])
    assert want < 0.995  # the sample's void is large enough to show at 3 decimals
    assert rows["tennis_1"][0] == f"{want:.3f}"
    assert rows["bear_1"][0] == "1.000" and rows["tennis_2"][0] == "1.000"


def test_exclude_void_leaves_void_pixels_out_of_j_and_f(void_as_object):
    root, results = void_as_object
    proc = _evaluate(root, results, "--all_frames", "--exclude_void")
    assert proc.returncode == 0, proc.stderr
    _, rows = _rows(os.path.join(results, "per-sequence_results-val.csv"))
    # The void pixels labelled 1 do not count: every object scores 1.
    assert rows == {"bear_1": ["1.000", "1.000"], "tennis_1": ["1.000", "1.000"], "tennis_2": ["1.000", "1.000"]}


def test_t_on_adds_t_from_the_predicted_masks_and_t_off_removes_it(void_as_object, tmp_path):
    root, results = void_as_object
    proc = _evaluate(root, results, "--all_frames", "--t=on")
    assert proc.returncode == 0, proc.stderr
    header, rows = _rows(os.path.join(results, "per-sequence_results-val.csv"))
    assert header == ["Sequence", "J-Mean", "F-Mean", "T"]
    _, bear = gt_stack(root, "bear")
    assert rows["bear_1"][2] == f"{temporal_stability(bear == 1):.3f}"
    global_header, global_rows = _rows(os.path.join(results, "global_results-val.csv"))
    assert global_header[-1] == "T-Mean"
    # --t=off on DAVIS-2016 (where auto would compute T): no T column.
    davis16 = os.path.join(os.path.dirname(root), "DAVIS-2016")
    names, gt = gt_stack(davis16, "blackswan")
    out16 = str(tmp_path / "res16")
    write_results(out16, "blackswan", names, gt)
    off = _evaluate(davis16, out16, "--sequences=blackswan", "--t=off")
    assert off.returncode == 0, off.stderr
    header, rows = _rows(os.path.join(out16, "per-sequence_results-val.csv"))
    assert header == ["Sequence", "J-Mean", "F-Mean"] and rows == {"blackswan_1": ["1.000", "1.000"]}
    assert "T-Mean" not in _rows(os.path.join(out16, "global_results-val.csv"))[0]


def test_output_dir_takes_the_csvs_and_the_results_folder_stays_untouched(void_as_object, tmp_path):
    root, results = void_as_object
    before = sorted(os.listdir(results))
    out = tmp_path / "reports" / "nested"
    proc = _evaluate(root, results, "--all_frames", f"--output_dir={out}")
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(out)) == ["evaluate_run.json", "global_results-val.csv", "per-sequence_results-val.csv"]
    assert sorted(os.listdir(results)) == before
    assert _rows(str(out / "per-sequence_results-val.csv"))[1]["tennis_2"] == ["1.000", "1.000"]
    assert f"wrote {out}" in proc.stdout


def test_overwrite_replaces_csvs_of_other_results_in_the_output_dir(void_as_object, tmp_path):
    """An --output_dir holding another method's CSVs (the same objects), which evaluate refuses to replace
    (tests/metrics/test_report_conflicts.py): --overwrite replaces them."""
    root, results = void_as_object
    out = tmp_path / "scores"
    out.mkdir()
    (out / "per-sequence_results-val.csv").write_text("Sequence,J-Mean,F-Mean\nbear_1,0.5,0.5\ntennis_1,0.5,0.5\n"
                                                      "tennis_2,0.5,0.5\n")
    proc = _evaluate(root, results, "--all_frames", f"--output_dir={out}", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert _rows(str(out / "per-sequence_results-val.csv"))[1]["bear_1"] == ["1.000", "1.000"]


def test_year_picks_the_layout_when_a_root_holds_both(tmp_path):
    """A root with a DAVIS-2017 list (sequence `beta`) and a DAVIS-2016 list (sequence `alpha`): detection
    prefers 2017; --year=2016 reads the other list and applies the 2016 rule (T computed)."""
    root = tmp_path / "davis"
    results = str(tmp_path / "results")
    lines = []
    for s, sequence in enumerate(("alpha", "beta")):
        labels = np.zeros((4, 40, 60), np.uint8)
        for t in range(4):
            labels[t, 10:22 + t, 8 + 3 * t:26 + 3 * t + s] = 1
        names = [f"{t:05d}.png" for t in range(4)]
        write_results(str(root / "Annotations" / "480p"), sequence, names, labels)
        write_results(results, sequence, names, labels)
        if sequence == "alpha":
            lines += [f"/JPEGImages/480p/alpha/{n[:-4]}.jpg /Annotations/480p/alpha/{n}" for n in names]
    (root / "ImageSets" / "480p").mkdir(parents=True)
    (root / "ImageSets" / "480p" / "val.txt").write_text("\n".join(lines) + "\n")
    (root / "ImageSets" / "2017").mkdir()
    (root / "ImageSets" / "2017" / "val.txt").write_text("beta\n")
    per_sequence = os.path.join(results, "per-sequence_results-val.csv")

    detected = _evaluate(root, results)
    assert detected.returncode == 0, detected.stderr
    assert _rows(per_sequence) == (["Sequence", "J-Mean", "F-Mean"], {"beta_1": ["1.000", "1.000"]})
    assert _evaluate(root, results, "--year=2017").returncode == 0
    assert _rows(per_sequence) == (["Sequence", "J-Mean", "F-Mean"], {"beta_1": ["1.000", "1.000"]})
    # Another sequence's scores do not replace beta's CSVs (evaluate refuses); they go to --output_dir.
    refused = _evaluate(root, results, "--year=2016")
    assert refused.returncode == 2 and "holds the scores of beta_1" in refused.stderr
    assert _rows(per_sequence)[1] == {"beta_1": ["1.000", "1.000"]}
    forced = _evaluate(root, results, "--year=2016", f"--output_dir={tmp_path / 'scores16'}")
    assert forced.returncode == 0, forced.stderr
    header, rows = _rows(str(tmp_path / "scores16" / "per-sequence_results-val.csv"))
    assert header == ["Sequence", "J-Mean", "F-Mean", "T"] and list(rows) == ["alpha_1"]
    assert "db_info.yml not found" in forced.stdout


def test_an_empty_sequences_list_is_refused_as_segment_refuses_it(void_as_object):
    """`--sequences=` (an empty shell variable, say) scored the whole split in silence, where segment refuses it."""
    root, results = void_as_object
    done = _evaluate(root, results, "--sequences=")
    assert done.returncode == 2 and "--sequences is empty" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not os.path.exists(os.path.join(results, "global_results-val.csv"))
