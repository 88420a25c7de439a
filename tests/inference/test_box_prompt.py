"""A first mask from boxes (GrabCut): box parsing and validation, overlaps, a real DAVIS frame, segment end to end."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from absl import flags

from maskrnn_tf import segment
from maskrnn_tf.inference import BoxError, mask_from_boxes, parse_boxes
from maskrnn_tf.io import davis_palette, read_mask, read_palette
from maskrnn_tf.metrics import db_eval_iou

segment.define_flags()  # segment's flags, which these tests parse


def _davis(shared_data, sequence):
    return os.path.join(shared_data, "DAVIS-2016", "JPEGImages", "480p", sequence), \
        os.path.join(shared_data, "DAVIS-2016", "Annotations", "480p", sequence)


def _tight_box(mask):
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _run_cli(*args):
    """segment.main in-process with fresh flag values (errors propagate)."""
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["segment", "--noprogress", *args])
    return segment.main([])


def test_parse_boxes_and_its_errors():
    assert parse_boxes("10,20,30,40") == [(10, 20, 30, 40)]
    assert parse_boxes(" 1,2,30,40 ; 5,6,70,80;") == [(1, 2, 30, 40), (5, 6, 70, 80)]
    with pytest.raises(BoxError, match=r"box 2 '1,2,3': expected four integers x0,y0,x1,y1"):
        parse_boxes("0,0,10,10;1,2,3")
    with pytest.raises(BoxError, match=r"box 1 'a,b,c,d': expected four integers"):
        parse_boxes("a,b,c,d")
    with pytest.raises(BoxError, match=r"box 1 '30,0,10,10': needs x0 < x1 and y0 < y1"):
        parse_boxes("30,0,10,10")
    with pytest.raises(BoxError, match=r"box 1 '0,10,10,10': needs x0 < x1 and y0 < y1"):
        parse_boxes("0,10,10,10")
    with pytest.raises(BoxError, match="no box"):
        parse_boxes(" ; ")


def test_boxes_must_fit_the_frame():
    frame = np.zeros((40, 60, 3), np.uint8)
    with pytest.raises(BoxError, match=r"box 1 \(0,0,61,10\) is not inside the first frame \(60x40\)"):
        mask_from_boxes(frame, [(0, 0, 61, 10)])
    with pytest.raises(BoxError, match=r"box 2 \(-1,0,10,10\) is not inside"):
        mask_from_boxes(frame, [(0, 0, 10, 10), (-1, 0, 10, 10)])
    with pytest.raises(BoxError, match="smaller than 4x4"):
        mask_from_boxes(frame, [(5, 5, 7, 20)])
    with pytest.raises(BoxError, match="covers the whole frame"):
        mask_from_boxes(frame, [(0, 0, 60, 40)])


def test_each_box_is_cut_separately_and_the_smaller_box_wins_overlaps():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 60, (80, 120, 3), dtype=np.uint8)  # dark noisy background
    frame[10:70, 10:70] = (230, 200, 40)   # object 1: a large yellow square ...
    frame[30:50, 30:50] = (40, 60, 230)    # ... object 2, a blue square, in front of it
    frame[20:40, 85:110] = (200, 40, 200)  # object 3: apart
    labels = mask_from_boxes(frame, [(6, 6, 74, 74), (27, 27, 53, 53), (82, 17, 113, 43)])
    truth = np.zeros((80, 120), np.uint8)
    truth[10:70, 10:70] = 1
    truth[30:50, 30:50] = 2
    truth[20:40, 85:110] = 3
    for k in (1, 2, 3):
        assert db_eval_iou(truth == k, labels == k) > 0.9, k
    # The blue square lies in both boxes; the smaller box's object owns it, whatever the box order.
    assert (labels[32:48, 32:48] == 2).all()
    swapped = mask_from_boxes(frame, [(27, 27, 53, 53), (6, 6, 74, 74), (82, 17, 113, 43)])
    assert (swapped[32:48, 32:48] == 1).all() and (swapped[12:28, 12:68] == 2).all()


def test_segment_runs_end_to_end_from_a_box(tmp_path, shared_data):
    """GrabCut's mask from car-shadow's ground-truth box (J >= 0.7; blackswan's gives 0.44, see README), then
    the flow-propagation baseline from it, on the first 3 frames."""
    frames, masks = _davis(shared_data, "car-shadow")
    video = tmp_path / "car-shadow"
    video.mkdir()
    for name in ("00000.jpg", "00001.jpg", "00002.jpg"):
        shutil.copy(os.path.join(frames, name), video / name)
    truth = read_mask(os.path.join(masks, "00000.png")) > 0
    x0, y0, x1, y1 = _tight_box(truth)
    out = tmp_path / "out"
    assert _run_cli(f"--video={video}", f"--first_box={x0},{y0},{x1},{y1}", "--method=flow_propagation",
                    "--flow=dis-ultrafast", f"--output={out}") == 0
    assert sorted(os.listdir(out)) == ["00000.png", "00001.png", "00002.png", segment.BOX_MASK_FILE,
                                       "segment_run.json"]
    box_mask = read_mask(out / segment.BOX_MASK_FILE)
    np.testing.assert_array_equal(box_mask, read_mask(out / "00000.png"))  # frame 0's result is that mask
    np.testing.assert_array_equal(read_palette(out / segment.BOX_MASK_FILE), davis_palette())
    assert db_eval_iou(truth, box_mask == 1) >= 0.7
    for t in (1, 2):  # propagated by the flow: still on the car
        later = read_mask(os.path.join(masks, f"{t:05d}.png")) > 0
        assert db_eval_iou(later, read_mask(out / f"{t:05d}.png") == 1) >= 0.6
    # The box mask passed back as --first_mask gives the same results.
    again = tmp_path / "again"
    assert _run_cli(f"--video={video}", f"--first_mask={out / segment.BOX_MASK_FILE}", "--method=flow_propagation",
                    "--flow=dis-ultrafast", f"--output={again}") == 0
    for name in ("00001.png", "00002.png"):
        np.testing.assert_array_equal(read_mask(again / name), read_mask(out / name))


def test_box_errors_exit_2_and_keep_nothing(tmp_path, shared_data, capsys):
    frames, _ = _davis(shared_data, "car-shadow")
    out = tmp_path / "out"
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["segment", f"--video={frames}", "--first_box=0,0,900,100", "--method=flow_propagation",
                 f"--output={out}"])
    assert segment.guarded([]) == 2
    assert "Error: --first_box: box 1 (0,0,900,100) is not inside the first frame (854x480)" in capsys.readouterr().err
    assert not out.exists()
    # --first_mask and --first_box exclude each other (checked before TensorFlow loads).
    proc = subprocess.run([sys.executable, "-m", "maskrnn_tf.segment", f"--video={frames}", "--first_mask=m.png",
                           "--first_box=1,2,30,40", f"--output={out}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "--first_mask and --first_box exclude each other" in proc.stderr
    assert not out.exists()
    # A mask inside the output folder that --overwrite would replace is refused, the folder untouched.
    out.mkdir()
    (out / segment.BOX_MASK_FILE).write_bytes(b"the user's corrected mask")
    proc = subprocess.run([sys.executable, "-m", "maskrnn_tf.segment", f"--video={frames}", "--overwrite",
                           "--method=flow_propagation", f"--first_mask={out / segment.BOX_MASK_FILE}",
                           f"--output={out}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and f"--output {out} contains the input --first_mask" in proc.stderr, proc.stderr
    assert (out / segment.BOX_MASK_FILE).read_bytes() == b"the user's corrected mask"
