"""maskrnn_tf.metrics.warp_iou against hand-computed cases, and `python -m maskrnn_tf.flow --warp_iou` through
the CLI with exact flows written as .flo files."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from maskrnn_tf.io import write_palette_png
from maskrnn_tf.metrics.warp_iou import sequence_warp_ious, warped_mask_ious
from maskrnn_tf.ops import write_flo

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
H, W = 40, 50


def _square(y, x, size=10, value=1, ids=None):
    ids = np.zeros((H, W), np.uint8) if ids is None else ids
    ids[y:y + size, x:x + size] = value
    return ids


def _constant_flow(u, v):
    return np.broadcast_to(np.array([u, v], np.float32), (H, W, 2)).copy()


def test_the_exact_flow_carries_a_moved_square_whole():
    prev, cur = _square(5, 8), _square(8, 13)  # moved by (dx, dy) = (5, 3)
    np.testing.assert_allclose(warped_mask_ious(prev, cur, _constant_flow(-5, -3), 1), [1.0])


def test_no_flow_scores_the_overlap_of_the_two_positions():
    prev, cur = _square(5, 8), _square(8, 13)
    # 10x10 squares offset by (5, 3): intersection 5 * 7 = 35, union 200 - 35 = 165.
    np.testing.assert_allclose(warped_mask_ious(prev, cur, _constant_flow(0, 0), 1), [35 / 165])


def test_a_flow_of_half_the_motion_scores_by_hand():
    prev, cur = _square(6, 10), _square(6, 14)  # moved 4 px right
    # Flow u = -2 warps the square 2 px right: x 12..21 against 14..23 -> 8 * 10 / (200 - 80).
    np.testing.assert_allclose(warped_mask_ious(prev, cur, _constant_flow(-2, 0), 1), [80 / 120])


def test_objects_are_scored_apart_void_left_out_and_absent_objects_nan():
    prev = _square(2, 2, value=1, ids=_square(20, 30, value=2))
    cur = _square(2, 2, value=1, ids=_square(20, 35, value=2))
    cur[2:12, 40:45] = 255  # void away from both objects: changes nothing
    ious = warped_mask_ious(prev, cur, _constant_flow(0, 0), 3)
    # Object 1 still; object 2 moved 5 px right under no flow: 50 / 150.
    assert ious[0] == 1.0
    assert ious[1] == pytest.approx(50 / 150)
    # Void over the part of object 2's new position that its warped mask misses (columns 40..44): the target
    # keeps columns 35..39 (50 px), the warped mask covers 30..39 (100 px): 50 / 100.
    cur[20:30, 40:45] = 255
    np.testing.assert_allclose(warped_mask_ious(prev, cur, _constant_flow(0, 0), 3)[:2], [1.0, 50 / 100])
    assert np.isnan(ious[2])


def test_an_object_the_flow_loses_scores_zero():
    prev, cur = _square(0, 0), _square(25, 35)
    np.testing.assert_array_equal(warped_mask_ious(prev, cur, _constant_flow(0, 0), 1), [0.0])


def test_shapes_that_do_not_fit_are_refused():
    with pytest.raises(ValueError, match=r"one size"):
        warped_mask_ious(_square(0, 0), _square(0, 0), np.zeros((H, W - 1, 2), np.float32), 1)


def test_sequence_warp_ious_takes_the_flow_from_each_frame_to_the_one_before():
    ids = [_square(5, 5 + 3 * t) for t in range(4)]  # 3 px right per frame
    asked = []

    def flow(a, b):
        asked.append((a, b))
        return _constant_flow(-3, 0)

    ious = sequence_warp_ious(lambda t: ids[t], flow, 4, 1)
    assert asked == [(1, 0), (2, 1), (3, 2)]
    np.testing.assert_allclose(ious, np.ones((3, 1)))
    with pytest.raises(ValueError, match="two"):
        sequence_warp_ious(lambda t: ids[t], flow, 1, 1)


def test_flow_cli_prints_the_table_for_exact_and_for_wrong_flows(tmp_path):
    davis, cache = tmp_path / "davis", tmp_path / "cache"
    rng = np.random.default_rng(0)
    for t in range(3):
        for sub in ("JPEGImages", "Annotations"):
            (davis / sub / "480p" / "seq").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(
            davis / "JPEGImages" / "480p" / "seq" / f"{t:05d}.jpg")
        write_palette_png(davis / "Annotations" / "480p" / "seq" / f"{t:05d}.png", _square(5, 8 + 4 * t))
    (davis / "ImageSets" / "2017").mkdir(parents=True)
    (davis / "ImageSets" / "2017" / "val.txt").write_text("seq\n")

    def run(flo_dir, u_back):
        for a, b in ((0, 1), (1, 0), (1, 2), (2, 1)):
            (flo_dir / "seq").mkdir(parents=True, exist_ok=True)
            write_flo(flo_dir / "seq" / f"{a:05d}_{b:05d}.flo", _constant_flow(u_back if b < a else -u_back, 0))
        return subprocess.run(
            [sys.executable, "-m", "maskrnn_tf.flow", "--noprogress", "--dataset=davis", "--year=2017",
             f"--manual_dir={davis}", f"--cache_dir={cache}", "--backend=flo", f"--flo_dir={flo_dir}", "--warp_iou"],
            cwd=REPO, env=ENV, capture_output=True, text=True, timeout=240)

    exact = run(tmp_path / "exact", -4)
    assert exact.returncode == 0, exact.stderr[-3000:]
    assert "| seq | 2 | 100.0 | 100.0 |" in exact.stdout
    assert "| **all** | 2 | **100.0** | 100.0 |" in exact.stdout
    # Half the motion (2 px of 4) on 10x10 squares: 8 * 10 / 120 = 66.7 on both pairs.
    half = run(tmp_path / "half", -2)
    assert half.returncode == 0, half.stderr[-3000:]
    assert "| seq | 2 | 66.7 | 66.7 |" in half.stdout
