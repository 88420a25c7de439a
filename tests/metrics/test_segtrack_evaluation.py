"""SegTrack v2 evaluation: IoU per object on the shared real sample and on a two-object folder made here."""
import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from maskrnn_tf.data.sequences import load_masks, read_segtrack_sequence_list
from maskrnn_tf.io import write_palette_png
from maskrnn_tf.metrics import DatasetLayoutError, MissingResultsError, ResultNameError, write_reports
from maskrnn_tf.metrics.segtrack_evaluation import evaluate_segtrack
from segtrack_files import make_segtrack  # tests/segtrack_files.py

needs_data = pytest.mark.usefixtures("shared_data")
SEGTRACK = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data",
                                        "SegTrackv2-sample"))


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def evaluate_cli(*args):
    return subprocess.run([sys.executable, "-m", "maskrnn_tf.evaluate", *args], capture_output=True, text=True,
                          timeout=120)


@needs_data
def test_cli_ground_truth_written_as_0_255_scores_one(tmp_path):
    (bmx,) = read_segtrack_sequence_list(SEGTRACK)
    ids = load_masks(bmx)  # the anti-aliased RGB masks, foreground above 127
    os.makedirs(tmp_path / "bmx")
    from PIL import Image

    for path, mask in zip(bmx.frame_paths, ids):  # a single-object result as users write it: grey 0/255
        stem = os.path.splitext(os.path.basename(path))[0]
        Image.fromarray(mask * 255).save(tmp_path / "bmx" / f"{stem}.png")
    proc = evaluate_cli(f"--segtrack_root={SEGTRACK}", f"--results={tmp_path}", "--processes=1")
    assert proc.returncode == 0, proc.stderr
    rows = read_csv(tmp_path / "global_results-segtrackv2.csv")
    assert rows[0][:2] == ["J&F-Mean", "J-Mean"] and "T-Mean" not in rows[0]
    assert float(rows[1][1]) == 1.0 and float(rows[1][4]) == 1.0
    assert read_csv(tmp_path / "per-sequence_results-segtrackv2.csv")[1][:2] == ["bmx_1", "1.000"]
    assert "first frame" in proc.stdout


def _two_objects(t=5, h=40, w=60):
    """Frames and two objects' anti-aliased grey layers: object 1 moves right, object 2 stays (no overlap)."""
    frames = np.random.default_rng(0).integers(0, 255, (t, h, w, 3), dtype=np.uint8)
    layers = np.zeros((2, t, h, w), np.uint8)
    for k in range(t):
        layers[0, k, 5:20, 5 + 2 * k:20 + 2 * k] = 255
        layers[0, k, 4, 5 + 2 * k:20 + 2 * k] = 128  # an anti-aliased edge row: foreground (> 127)
        layers[0, k, 20, 5 + 2 * k:20 + 2 * k] = 127  # and one that is not
        layers[1, k, 25:38, 30:50] = 255
    return frames, layers


def test_two_objects_match_numpy_iou(tmp_path):
    root = str(tmp_path / "SegTrackv2")
    frames, layers = _two_objects()
    stems = make_segtrack(root, "duo", frames, layers)
    truth = layers > 127
    pred = np.zeros(truth.shape[1:], np.uint8)
    pred[np.roll(truth[0], 3, axis=2)] = 1  # object 1 three pixels to the right
    pred[truth[1]] = 2
    pred[3][pred[3] == 2] = 0  # object 2 lost in frame 3
    results = str(tmp_path / "results")
    os.makedirs(os.path.join(results, "duo"))
    for stem, ids in zip(stems, pred):
        write_palette_png(os.path.join(results, "duo", stem + ".png"), ids)

    def iou(a, b):
        return np.sum(a & b) / np.sum(a | b)

    for all_frames, first in ((False, 1), (True, 0)):
        scored = evaluate_segtrack(root, results, all_frames=all_frames)
        obj1, obj2 = scored.objects
        ref1 = [iou(truth[0, t], pred[t] == 1) for t in range(first, 5)]
        ref2 = [iou(truth[1, t], pred[t] == 2) for t in range(first, 5)]
        np.testing.assert_allclose(obj1.j, ref1, atol=1e-12)
        np.testing.assert_allclose(obj2.j, ref2, atol=1e-12)
        assert ref2[3 - first] == 0 and 0.5 < ref1[0] < 1
        assert scored.global_metrics()["J-Mean"] == pytest.approx((np.mean(ref1) + np.mean(ref2)) / 2)
    assert [o.name for o in scored.objects] == ["duo_1", "duo_2"] and scored.year is None
    paths = write_reports(scored, results)
    assert [os.path.basename(p) for p in paths] == ["global_results-segtrackv2.csv",
                                                    "per-sequence_results-segtrackv2.csv"]


def test_overlapping_layers_score_each_object_against_its_whole_layer(tmp_path):
    """SegTrack v2 layers overlap (a rider over the bike): each object is scored against its own whole layer,
    as per-object IoU is defined. Merging the layers into one id map (the later layer winning) took the overlap
    out of object 1's ground truth, so a result that gave the overlap to object 1 lost J on it."""
    root = str(tmp_path / "SegTrackv2")
    t, h, w = 3, 24, 32
    layers = np.zeros((2, t, h, w), np.uint8)
    layers[0, :, 4:16, 4:20] = 255  # object 1
    layers[1, :, 10:20, 12:28] = 255  # object 2, overlapping object 1 in rows 10:16, columns 12:20
    stems = make_segtrack(root, "duo", np.zeros((t, h, w, 3), np.uint8), layers)
    truth = layers > 127
    pred = np.zeros((t, h, w), np.uint8)
    pred[truth[1]] = 2
    pred[truth[0]] = 1  # the overlap given to object 1
    results = str(tmp_path / "results")
    os.makedirs(os.path.join(results, "duo"))
    for stem, ids in zip(stems, pred):
        write_palette_png(os.path.join(results, "duo", stem + ".png"), ids)
    obj1, obj2 = evaluate_segtrack(root, results).objects
    overlap, area2 = np.sum(truth[0, 0] & truth[1, 0]), np.sum(truth[1, 0])
    np.testing.assert_allclose(obj1.j, [1.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(obj2.j, [(area2 - overlap) / area2] * 2, atol=1e-12)


def test_bad_input_is_named(tmp_path):
    root = str(tmp_path / "SegTrackv2")
    frames, layers = _two_objects(t=3)
    stems = make_segtrack(root, "duo", frames, layers)
    results = tmp_path / "results"
    with pytest.raises(MissingResultsError, match="results folder not found"):
        evaluate_segtrack(root, str(results))
    with pytest.raises(DatasetLayoutError, match=r"sequence 'nope' is not in .*all\.txt; choose from \['duo'\]"):
        evaluate_segtrack(root, str(results), sequences=["nope"])
    with pytest.raises(DatasetLayoutError, match=r"\['duo'\] named more than once"):  # it would count twice
        evaluate_segtrack(root, str(results), sequences=["duo", "duo"])
    os.makedirs(results / "duo")
    write_palette_png(str(results / "duo" / f"{stems[1]}.png"), np.zeros((40, 60), np.uint8))
    with pytest.raises(MissingResultsError, match=stems[2]):
        evaluate_segtrack(root, str(results))
    write_palette_png(str(results / "duo" / f"{stems[2]}.png"), np.full((40, 60), 3, np.uint8))
    with pytest.raises(Exception, match=r"object id\(s\) \[3\]"):
        evaluate_segtrack(root, str(results))
    with pytest.raises(DatasetLayoutError, match="not found"):
        evaluate_segtrack(str(tmp_path / "missing"), str(results))


def test_results_named_with_an_upper_case_extension_are_refused(tmp_path):
    """SegTrack v2 results are read as DAVIS results (`<frame stem>.png`): `.PNG` files are refused by name."""
    root = str(tmp_path / "SegTrackv2")
    frames, layers = _two_objects(t=3)
    stems = make_segtrack(root, "duo", frames, layers)
    results = tmp_path / "results"
    os.makedirs(results / "duo")
    for stem in stems:
        write_palette_png(str(results / "duo" / f"{stem}.PNG"), np.zeros((40, 60), np.uint8))
    with pytest.raises(ResultNameError) as raised:
        evaluate_segtrack(root, str(results))
    message = str(raised.value)
    assert message.startswith(f"{results / 'duo'}: 3 result file") and f"{stems[0]}.PNG" in message
    assert f"{stems[0]}.png" in message


def test_cli_refuses_davis_flags_and_two_roots(tmp_path):
    proc = evaluate_cli(f"--segtrack_root={tmp_path}", f"--results={tmp_path}", "--split=train")
    assert proc.returncode == 2 and "--split apply to DAVIS only" in proc.stderr
    proc = evaluate_cli(f"--segtrack_root={tmp_path}", f"--davis_root={tmp_path}", f"--results={tmp_path}")
    assert proc.returncode == 2 and "exactly one of --davis_root or --segtrack_root" in proc.stderr
