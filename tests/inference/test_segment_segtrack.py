"""segment --segtrack_root: every SegTrack v2 sequence from its first frame's ground-truth layers, scored by
evaluate --segtrack_root (the shared real sample and a two-object folder made here)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from maskrnn_tf.data.sequences import load_masks, read_segtrack_sequence_list
from maskrnn_tf.inference import SegmentOptions, flow_propagation_step, segment_segtrack
from maskrnn_tf.io import read_mask
from maskrnn_tf.metrics.segtrack_evaluation import evaluate_segtrack
from segtrack_files import make_segtrack  # tests/segtrack_files.py

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SEGTRACK = os.path.abspath(os.path.join(REPO, "..", "shared", "data", "SegTrackv2-sample"))


def run(module, *flags):
    return subprocess.run([sys.executable, "-m", f"maskrnn_tf.{module}", *flags], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def zero_flow(a, b):
    return np.zeros(a.shape[:2] + (2,), np.float32)


@pytest.mark.usefixtures("shared_data")
def test_flow_propagation_on_the_shared_sample_scores_like_its_masks(tmp_path):
    out = tmp_path / "bmx_results"
    proc = run("segment", "--method=flow_propagation", f"--segtrack_root={SEGTRACK}", f"--output={out}",
               "--max_size=320", "--noprogress")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (bmx,) = read_segtrack_sequence_list(SEGTRACK)
    truth = load_masks(bmx)
    stems = [os.path.splitext(os.path.basename(p))[0] for p in bmx.frame_paths]
    assert sorted(os.listdir(out / "bmx")) == sorted(s + ".png" for s in stems)
    pred = np.stack([read_mask(out / "bmx" / f"{s}.png") for s in stems])
    np.testing.assert_array_equal(pred[0], truth[0])  # frame 0 is the given annotation, object 1
    record = json.loads((out / "segment_run.json").read_text())
    assert record["segtrack_root"] == SEGTRACK and record["sequences"] == ["bmx"]
    proc = run("evaluate", f"--segtrack_root={SEGTRACK}", f"--results={out}", "--processes=1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    t = truth[1:].astype(bool)
    p = pred[1:].astype(bool)
    ious = np.sum(t & p, axis=(1, 2)) / np.sum(t | p, axis=(1, 2))  # the object is in every frame
    iou = ious.mean()
    # The bike turns and grows fast: warping its first mask overlaps it at first, then loses it.
    assert ious[0] > 0.2 and ious[0] > ious[-1] and 0 < iou < 0.2
    with open(out / "global_results-segtrackv2.csv") as f:
        assert float(f.read().splitlines()[1].split(",")[1]) == pytest.approx(iou, abs=5e-4)


def test_layers_become_objects_one_to_n(tmp_path):
    root = str(tmp_path / "SegTrackv2")
    t, h, w = 4, 48, 64
    frames = np.random.default_rng(1).integers(0, 255, (t, h, w, 3), dtype=np.uint8)
    layers = np.zeros((2, t, h, w), np.uint8)
    for k in range(t):
        layers[0, k, 30:44, 4 + 3 * k:20 + 3 * k] = 255  # object 1 moves right
        layers[1, k, 5:20, 40:60] = 200  # object 2 stays (grey 200: foreground)
    make_segtrack(root, "duo", frames, layers)
    make_segtrack(root, "solo", frames[:3], layers[1:, :3])  # one object: GroundTruth/solo/<frame>.png
    out = str(tmp_path / "out")
    names = segment_segtrack(root, zero_flow, out, step_fn=flow_propagation_step,
                             options=SegmentOptions(need_next_flow=False, progress=False), sequences=["solo", "duo"])
    assert names == ["solo", "duo"]
    expected = np.zeros((h, w), np.uint8)
    expected[layers[0, 0] > 127], expected[layers[1, 0] > 127] = 1, 2
    for k in range(t):  # zero flow: every frame keeps the first frame's objects, with the layers' ids
        np.testing.assert_array_equal(read_mask(os.path.join(out, "duo", f"duo_{k:05d}.png")), expected)
    assert read_mask(os.path.join(out, "solo", "solo_00000.png")).max() == 1
    scored = evaluate_segtrack(root, out)
    moving, still, solo = scored.objects
    ref = [np.sum((layers[0, k] > 127) & (expected == 1)) / np.sum((layers[0, k] > 127) | (expected == 1))
           for k in range(1, t)]
    np.testing.assert_allclose(moving.j, ref, atol=1e-12)
    assert ref[-1] < ref[0] < 1 and list(still.j) == [1.0] * 3 and list(solo.j) == [1.0] * 2


def test_bad_flags_and_sequences_are_refused(tmp_path):
    root = str(tmp_path / "SegTrackv2")
    make_segtrack(root, "solo", np.zeros((2, 40, 40, 3), np.uint8), np.full((1, 2, 40, 40), 255, np.uint8))
    proc = run("segment", "--method=flow_propagation", f"--segtrack_root={root}", "--sequences=nope",
               f"--output={tmp_path / 'o1'}")
    assert proc.returncode == 2 and "sequence 'nope' is not in SegTrack v2" in proc.stderr and "solo" in proc.stderr
    proc = run("segment", "--method=flow_propagation", f"--segtrack_root={root}", f"--davis_root={root}",
               f"--output={tmp_path / 'o2'}")
    assert proc.returncode != 0 and "exactly one of --video" in proc.stderr
    proc = run("segment", "--method=flow_propagation", f"--segtrack_root={root}", f"--first_mask={root}/x.png",
               f"--output={tmp_path / 'o3'}")
    assert proc.returncode == 2 and "apply to a single --video" in proc.stderr
    assert not os.path.exists(tmp_path / "o1") and not os.path.exists(tmp_path / "o3")


def test_flow_cache_holds_the_sequences_flows(tmp_path):
    """--flow_cache_dir with --segtrack_root: flows are stored per SegTrack sequence (the namespace `python -m
    maskrnn_tf.flow --dataset=segtrack_v2` fills) and equal the backend's flows of the full frames."""
    from maskrnn_tf.data.flow_backends import make_backend
    from maskrnn_tf.io import read_frame

    root = str(tmp_path / "SegTrackv2")
    frames = np.random.default_rng(2).integers(0, 255, (3, 40, 56, 3), dtype=np.uint8)
    layers = np.zeros((1, 3, 40, 56), np.uint8)
    layers[0, :, 10:30, 10:30] = 255
    stems = make_segtrack(root, "solo", frames, layers)
    cache = tmp_path / "cache"
    proc = run("segment", "--method=flow_propagation", f"--segtrack_root={root}", "--flow=dis-ultrafast",
               f"--flow_cache_dir={cache}", f"--output={tmp_path / 'out'}", "--noprogress")
    assert proc.returncode == 0, proc.stderr[-2000:]
    folder = cache / "dis-ultrafast" / "segtrack_v2" / "solo"
    assert sorted(p.name for p in folder.iterdir()) == ["frames.json",  # the frames the flows came from
                                                        f"{stems[1]}_{stems[0]}.npy", f"{stems[2]}_{stems[1]}.npy"]
    paths = [os.path.join(root, "JPEGImages", "solo", s + ".png") for s in stems]
    full = make_backend("dis-ultrafast").flow(read_frame(paths[2]), read_frame(paths[1]))
    np.testing.assert_allclose(np.load(folder / f"{stems[2]}_{stems[1]}.npy"), full, atol=0.02)


def test_a_bad_first_mask_of_a_later_sequence_is_refused_before_any_work(tmp_path):
    """Each first mask was read only when its sequence came up: a bad one in the last sequence threw away every
    sequence segmented (and finetuned) before it, since the results folder is written whole or not at all."""
    from maskrnn_tf.io import ImageReadError

    root = str(tmp_path / "SegTrackv2")
    frames = np.full((3, 8, 10, 3), 90, np.uint8)
    layer = np.zeros((1, 3, 8, 10), np.uint8)
    layer[:, :, 2:5, 3:6] = 255
    make_segtrack(root, "aaa", frames, layer)
    make_segtrack(root, "bbb", frames, layer)
    red = np.zeros((8, 10, 3), np.uint8)
    red[2:5, 3:6, 0] = 255  # not a DAVIS colour: refused by name
    from PIL import Image
    Image.fromarray(red).save(os.path.join(root, "GroundTruth", "bbb", "bbb_00000.png"))
    steps = []

    def counted(*args, **kwargs):
        steps.append(1)
        return flow_propagation_step(*args, **kwargs)

    with pytest.raises(ImageReadError, match=r"bbb_00000.png: RGB annotation"):
        segment_segtrack(root, zero_flow, str(tmp_path / "out"), step_fn=counted,
                         options=SegmentOptions(progress=False))
    assert steps == [] and not os.path.exists(tmp_path / "out")


def test_the_record_says_which_object_each_probability_row_is(tmp_path):
    """A layer empty in the first frame is no object of the run, so --save_probs' rows are not the layers 1..N in
    order; segment_run.json named the rows of a single video's objects, not of a dataset's sequences."""
    root = str(tmp_path / "SegTrackv2")
    t, h, w = 3, 48, 64
    frames = np.random.default_rng(2).integers(0, 255, (t, h, w, 3), dtype=np.uint8)
    layers = np.zeros((2, t, h, w), np.uint8)
    layers[0, 1:, 30:44, 4:20] = 255  # object 1 enters after the first frame
    layers[1, :, 5:20, 40:60] = 255
    make_segtrack(root, "late", frames, layers)
    out = str(tmp_path / "out")
    segment_segtrack(root, zero_flow, out, step_fn=flow_propagation_step,
                     options=SegmentOptions(need_next_flow=False, progress=False, save_probs="npy"))
    with open(os.path.join(out, "segment_run.json")) as f:
        assert json.load(f)["object_ids"] == {"late": [2]}
    probs = np.load(os.path.join(out, "late", "probs", "late_00001.npy"))
    assert probs.shape[0] == 1 and probs[0, 10, 50] == 1.0  # the one row is layer 2's
