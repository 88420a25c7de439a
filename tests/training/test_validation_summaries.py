"""Validation and TensorBoard images during a training run (`--eval_every`, `--image_every`), read back from the
event files the run writes."""
import glob
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_cli


def _events(folder):
    """{tag: [(step, tensor ndarray), ...]} of every event file in `folder`."""
    found = {}
    files = sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*")))
    assert files, f"no event file in {folder}"
    for path in files:
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                found.setdefault(value.tag, []).append((event.step, tf.make_ndarray(value.tensor)))
    return found


@pytest.mark.slow
def test_validation_j_and_overlay_images_reach_the_event_files(tmp_path):
    run_dir = str(tmp_path / "run")
    # eval_every=2 over 4 steps: validation at steps 2 (stage A) and 4 (stage B), none extra at the end.
    proc = run_cli(run_dir, "--stage_a_steps=2", "--stage_b_steps=2", "--checkpoint_every=4", "--eval_every=2",
                   "--image_every=1", "--val_videos=1", "--val_frames=3")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert proc.stdout.count("validation J ") == 3, proc.stdout[-3000:]  # steps 2 and 4, then the summary line

    val = _events(os.path.join(run_dir, "logs", "val"))
    assert [step for step, _ in val["J"]] == [2, 4]
    for _, value in val["J"]:
        assert value.shape == () and 0.0 <= float(value) <= 1.0 and math.isfinite(float(value))
    # The last line of the run's console output reports the final J: the one of step 4.
    assert f"validation J {float(val['J'][-1][1]):.4f} at step 4" in proc.stdout

    images = val["frame_truth_prediction"]
    assert [step for step, _ in images] == [2, 4]
    for _, tensor in images:
        # An image summary is [width, height, encoded PNG...] as strings.
        assert tensor.dtype == object and int(tensor[0]) == 3 * 48 and int(tensor[1]) == 32
        png = tf.io.decode_png(tensor[2]).numpy()
        assert png.shape == (32, 3 * 48, 3) and png.dtype == np.uint8
        # Panel 1 is the frame, panel 2 the frame tinted by the truth: the tint changes some pixels.
        assert np.any(png[:, :48] != png[:, 48:96])

    train = _events(os.path.join(run_dir, "logs", "train"))
    for tag in ("loss/total", "loss/seg", "loss/loc", "grad_norm", "learning_rate", "step_time_s"):
        assert [step for step, _ in train[tag]] == [1, 2, 3, 4], tag
        assert all(math.isfinite(float(v)) for _, v in train[tag]), (tag, train[tag])
    # The decayed learning rate after each step: 1e-3 * 0.5^(step / 1000) (decay_rate, decay_steps defaults).
    for step, value in train["learning_rate"]:
        assert float(value) == pytest.approx(1e-3 * 0.5 ** (step / 1000), rel=1e-6), step
