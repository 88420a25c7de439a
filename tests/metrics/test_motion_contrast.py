"""maskrnn_tf.metrics.motion_contrast against SciPy and hand-made flows, its median against the model's op, and
`python -m maskrnn_tf.flow --motion_contrast` through the CLI with flows written as .flo files."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from scipy.stats import mannwhitneyu

from maskrnn_tf.io import write_palette_png
from maskrnn_tf.metrics.motion_contrast import (
    frame_motion_aucs,
    median_relative_flow,
    separation_auc,
    sequence_motion_aucs,
)
from maskrnn_tf.ops import write_flo

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
H, W = 40, 48


def _pan_with_still_object(u=3.0, v=-2.0):
    """A camera panning by (u, v) that follows a 10x12 object: the object's flow is 0, the background's (u, v)."""
    ids = np.zeros((H, W), np.uint8)
    ids[10:20, 12:24] = 1
    flow = np.broadcast_to(np.float32([u, v]), (H, W, 2)).copy()
    flow[ids == 1] = 0.0
    return ids, flow


def test_separation_auc_is_the_mann_whitney_u_over_all_pairs():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1.0, 1.0, 300).round(1), rng.normal(0.0, 1.0, 500).round(1)  # rounded: ties on purpose
    want = mannwhitneyu(pos, neg, method="asymptotic").statistic / (pos.size * neg.size)
    assert separation_auc(pos, neg) == pytest.approx(want, abs=1e-12)
    assert separation_auc([2.0, 3.0], [1.0]) == 1.0 and separation_auc([1.0], [2.0, 3.0]) == 0.0
    assert separation_auc([1.0, 1.0], [1.0]) == 0.5  # all tied
    assert np.isnan(separation_auc([], [1.0]))


def test_median_relative_flow_is_the_models_op():
    from maskrnn_tf.ops import subtract_median_flow

    flow = np.random.default_rng(1).normal(2.0, 3.0, (33, 47, 2)).astype(np.float32)
    np.testing.assert_allclose(median_relative_flow(flow), subtract_median_flow(flow[None]).numpy()[0], atol=1e-5)


def test_a_followed_object_is_slower_in_the_raw_flow_and_faster_relative_to_the_median():
    ids, flow = _pan_with_still_object()
    np.testing.assert_array_equal(frame_motion_aucs(ids, flow, 1), [[0.0, 1.0]])
    # A still camera and a moving object: faster in both.
    ids, flow = _pan_with_still_object(0.0, 0.0)
    flow[ids == 1] = (2.0, 1.0)
    np.testing.assert_array_equal(frame_motion_aucs(ids, flow, 1), [[1.0, 1.0]])


def test_other_objects_and_void_are_not_background_and_absent_objects_are_nan():
    ids, flow = _pan_with_still_object()
    ids[30:36, 30:40] = 2
    flow[ids == 2] = 0.0  # a second still object: it must not count as background of object 1
    ids[0:4, 0:48] = 255
    flow[ids == 255] = 0.0  # void moving like the object: left out too
    aucs = frame_motion_aucs(ids, flow, 3)
    np.testing.assert_array_equal(aucs[:2], [[0.0, 1.0], [0.0, 1.0]])
    assert np.isnan(aucs[2]).all()
    with pytest.raises(ValueError, match=r"\[H, W, 2\]"):
        frame_motion_aucs(ids, flow[:, :-1], 1)


def test_sequence_motion_aucs_takes_the_flow_from_each_frame_to_the_one_before():
    ids, flow = _pan_with_still_object()
    asked = []

    def flow_of(a, b):
        asked.append((a, b))
        return flow

    aucs = sequence_motion_aucs(lambda t: ids, flow_of, 3, 1)
    assert asked == [(1, 0), (2, 1)] and aucs.shape == (2, 1, 2)
    with pytest.raises(ValueError, match="two"):
        sequence_motion_aucs(lambda t: ids, flow_of, 1, 1)


def test_flow_cli_prints_the_motion_contrast_table(tmp_path):
    davis, cache, flo_dir = tmp_path / "davis", tmp_path / "cache", tmp_path / "flo"
    ids, flow = _pan_with_still_object()
    ids[28:34, 30:40] = 2  # a second object the camera does not follow: it moves with the background, AUC 0.5
    rng = np.random.default_rng(0)
    for sub in ("JPEGImages", "Annotations"):
        (davis / sub / "480p" / "seq").mkdir(parents=True)
    (flo_dir / "seq").mkdir(parents=True)
    for t in range(3):
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(
            davis / "JPEGImages" / "480p" / "seq" / f"{t:05d}.jpg")
        write_palette_png(davis / "Annotations" / "480p" / "seq" / f"{t:05d}.png", ids)
    for a, b in ((0, 1), (1, 0), (1, 2), (2, 1)):
        write_flo(flo_dir / "seq" / f"{a:05d}_{b:05d}.flo", flow)
    (davis / "ImageSets" / "2017").mkdir(parents=True)
    (davis / "ImageSets" / "2017" / "val.txt").write_text("seq\n")
    run = subprocess.run(
        [sys.executable, "-m", "maskrnn_tf.flow", "--noprogress", "--dataset=davis", "--year=2017",
         f"--manual_dir={davis}", f"--cache_dir={cache}", "--backend=flo", f"--flo_dir={flo_dir}",
         "--motion_contrast"], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    # Two objects in each of frames 1 and 2: 4 object-frames, AUC (0 + 0.5) / 2 raw and (1 + 0.5) / 2 relative.
    assert "| seq | 4 | 0.25 | 0.75 |" in run.stdout
    assert "| **mean of 1** | | **0.25** (0 above 0.5) | **0.75** (1 above 0.5) |" in run.stdout
