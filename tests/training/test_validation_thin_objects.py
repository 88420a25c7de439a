"""Validation of a video stored above the training size seeds and scores the objects segment would: every object
of the stored first frame (`labels_at_size`), scored at the stored size, not only those the resize kept."""
import os
from typing import Dict

import numpy as np
import pytest
from PIL import Image

from maskrnn_tf.inference import SegmentOptions, segment_video as segment
from maskrnn_tf.io import read_mask, write_palette_png
from maskrnn_tf.model import MaskRNN, MaskRNNConfig
from maskrnn_tf.training.inputs import _resize_video
from maskrnn_tf.training.validation import evaluate, video_j

FULL, SMALL, FRAMES = (48, 72), (16, 24), 3  # a third of the size: cells of 3x3 pixels


def _ids(scene: str) -> np.ndarray:
    """A first mask: object 1 a block; object 2 a 1 px wide line on a column neither OpenCV's nearest resize
    (column 3x) nor a cell centre (3x + 1) samples; "shared": object 3 one pixel in object 2's only cell."""
    ids = np.zeros(FULL, np.uint8)
    ids[12:36, 6:30] = 1
    if scene == "thin":
        ids[6:42, 50] = 2
    else:
        ids[6, 50], ids[8, 50] = 2, 3
    return ids


def _video(scene: str) -> Dict[str, np.ndarray]:
    """A still video at the stored size (the objects do not move), zero flows."""
    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 256, (1,) + FULL + (3,), dtype=np.uint8), FRAMES, axis=0)
    flows = np.zeros((FRAMES,) + FULL + (2,), np.float32)
    masks = np.repeat(_ids(scene)[None], FRAMES, axis=0)
    return {"frames": frames, "masks": masks, "flows_to_prev": flows, "flows_to_next": flows.copy(),
            "name": np.array(scene)}


def still_step(frame, flow_to_prev, flow_to_next, prev_probs, prev_boxes, **unused) -> Dict[str, object]:
    """Each object stays where it was: the step of validation and of segment alike. An empty row gets the whole
    frame at 0.9, as the network falls back to a whole-frame box for an empty previous mask: unless the caller
    zeroes an untracked object's row, it takes every pixel in the fusion."""
    probs = np.array(prev_probs, np.float32)
    empty = ~probs.reshape(len(probs), -1).any(axis=1)
    probs[empty] = 0.9
    return {"probs": probs, "boxes": prev_boxes}


def _segment_j(tmp_path, video: Dict[str, np.ndarray]) -> float:
    """J of segment's results at --max_size = the training size, scored at the stored size."""
    frames_dir, out = tmp_path / "frames", str(tmp_path / "out")
    frames_dir.mkdir()
    for t, frame in enumerate(video["frames"]):
        Image.fromarray(frame).save(frames_dir / f"{t:05d}.png")
    write_palette_png(str(tmp_path / "first.png"), video["masks"][0])
    zero_flow = lambda a, b: np.zeros(a.shape[:2] + (2,), np.float32)  # noqa: E731
    segment(still_step, str(frames_dir), str(tmp_path / "first.png"), zero_flow, out,
            SegmentOptions(max_size=max(SMALL), progress=False, need_next_flow=False))
    results = np.stack([read_mask(os.path.join(out, f"{t:05d}.png")) for t in range(FRAMES)])
    return video_j(results, video["masks"])


@pytest.mark.parametrize("scene", ["thin", "shared"])
def test_validation_keeps_and_scores_the_objects_segment_keeps(tmp_path, scene):
    stored = _video(scene)
    video = _resize_video(dict(stored), *SMALL)
    assert set(np.unique(video["masks"][0])) == {0, 1}  # the premise: the resize drops the small objects
    model = MaskRNN(MaskRNNConfig(width=0.125, fc_units=16))
    j, predictions = evaluate(model, [video], still_step)
    if scene == "thin":  # tracked: seeded in the cell its pixels lie in, predicted in every frame
        assert all((labels == 2).any() for labels in predictions[0])
    else:  # object 3 shares object 2's only cell: not tracked, and scored 0 rather than dropped
        assert not any((labels == 3).any() for labels in predictions[0][1:])
        assert j <= 2 / 3 + 1e-9  # its J of 0 counts in the mean of three objects
    assert j < 0.95  # the small objects are scored at the stored size (object 1 alone would give ~1)
    assert j == pytest.approx(_segment_j(tmp_path, stored), abs=1e-6)
