"""The propagation loop contract and the flow-propagation baseline (exact flow, real DAVIS frames)."""
import dataclasses
import os

import numpy as np
import pytest
from scipy import ndimage

from maskrnn_tf.data.synthetic import generate_video
from maskrnn_tf.inference.baseline import flow_propagation_step
from maskrnn_tf.inference.flow_source import make_flow_fn
from maskrnn_tf.inference.propagation import propagate
from maskrnn_tf.io import read_frame, read_mask
from maskrnn_tf.ops import mask_to_box

from .conftest import TINY_VIDEO


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else np.logical_and(a, b).sum() / union


def exact_flow_fn(video):
    """A FlowFn returning the generator's exact flow between two consecutive frames of `video`."""
    frames = video["frames"]

    def index(frame):
        return next(t for t in range(len(frames)) if np.array_equal(frames[t], frame))

    def flow(a, b):
        ta, tb = index(a), index(b)
        return video["flows_to_prev"][ta] if tb == ta - 1 else video["flows_to_next"][ta]

    return flow


@pytest.mark.parametrize("read_ahead", [0, 3])
def test_loop_feeds_the_step_exactly_what_the_contract_says(synthetic_video, read_ahead):
    video = synthetic_video
    first = np.stack([(video["masks"][0] == k).astype(np.float32) for k in (1, 2)])
    calls = []

    def flow_fn(a, b):
        # A recognisable fake flow: u = mean of a, v = mean of b.
        return np.stack([np.full(a.shape[:2], a.mean()), np.full(a.shape[:2], b.mean())], -1).astype(np.float32)

    def step_fn(frame, to_prev, to_next, prev_probs, prev_boxes):
        calls.append((frame, to_prev, to_next, np.array(prev_probs), np.array(prev_boxes)))
        probs = np.zeros_like(prev_probs)
        probs[len(calls) % 2, :10, :10] = 0.9  # alternate objects so the fused labels change
        probs[(len(calls) + 1) % 2, :5, :5] = 0.95
        boxes = np.full((2, 4), len(calls), np.float32)
        return {"probs": probs, "boxes": boxes}

    results = list(propagate(step_fn, iter(video["frames"]), first, flow_fn, read_ahead=read_ahead))
    assert [r.index for r in results] == list(range(6)) and len(calls) == 5
    np.testing.assert_array_equal(results[0].probs, first)
    np.testing.assert_array_equal(results[0].labels, video["masks"][0])
    # First step: the one-hot first mask and its tight boxes.
    np.testing.assert_array_equal(calls[0][3], first)
    np.testing.assert_array_equal(calls[0][4], mask_to_box(first)[0].numpy())
    frames = video["frames"]
    for t in range(1, 6):
        frame, to_prev, to_next, prev_probs, prev_boxes = calls[t - 1]
        np.testing.assert_array_equal(frame, frames[t])
        np.testing.assert_allclose(to_prev[0, 0], [frames[t].mean(), frames[t - 1].mean()], rtol=1e-6)
        if t == 5:
            assert not to_next.any()  # last frame: zeros
        else:
            np.testing.assert_allclose(to_next[0, 0], [frames[t].mean(), frames[t + 1].mean()], rtol=1e-6)
        if t >= 2:  # the recurrence: previous outputs come back in
            np.testing.assert_array_equal(prev_probs, results[t - 1].probs)
            np.testing.assert_array_equal(prev_boxes, np.full((2, 4), t - 1))
        # labels = fuse(probs): object with the highest prob > 0.5, i + 1; background elsewhere.
        labels = results[t].labels
        winner = 1 + (t + 1) % 2
        assert labels[0, 0] == winner and labels[7, 7] == 1 + t % 2 and labels[20, 20] == 0


def test_baseline_with_exact_flow_reproduces_the_truth():
    # One translating object on a still background. Warping with the exact flow t -> t-1 finds every object
    # pixel; what it cannot undo is disocclusion: background uncovered behind the object has zero flow and
    # so inherits the object's old label (the "ghost" that makes this baseline drift on real videos too).
    config = dataclasses.replace(TINY_VIDEO, height=64, width=88, min_objects=1, max_objects=1, min_radius=0.3,
                                 max_radius=0.35, background_speed=0.0, max_rotation=0.0, max_scale_amplitude=0.0)
    for seed in (0, 1):
        video = generate_video(seed, config)
        masks = video["masks"] == 1
        first = masks[0][None].astype(np.float32)
        results = list(propagate(flow_propagation_step, iter(video["frames"]), first, exact_flow_fn(video),
                                 need_next_flow=False))
        for result, truth in zip(results, masks):
            predicted = result.labels == 1
            assert (predicted & truth).sum() / truth.sum() > 0.93  # recall: the object is tracked
            assert iou(predicted, truth) > 0.7
        ghost_free = iou(results[1].labels == 1, masks[1])
        assert ghost_free > 0.9  # one step: only a one-step disocclusion band is wrong
        assert iou(results[-1].labels == 1, masks[-1]) > iou(masks[0], masks[-1]) + 0.1  # it did move




def test_baseline_keeps_objects_apart_with_exact_flow(synthetic_video):
    # Two small objects that occlude each other: each keeps its own id and stays on its own object.
    video = synthetic_video
    first = np.stack([(video["masks"][0] == k).astype(np.float32) for k in (1, 2)])
    results = list(propagate(flow_propagation_step, iter(video["frames"]), first, exact_flow_fn(video),
                             need_next_flow=False))
    for t, result in enumerate(results):
        for k, other in ((1, 2), (2, 1)):
            predicted = result.labels == k
            truth = video["masks"][t] == k
            assert (predicted & truth).sum() > 0.8 * truth.sum(), (t, k)  # recall
            assert iou(predicted, truth) > iou(predicted, video["masks"][t] == other) + 0.3, (t, k)


def test_baseline_step_is_the_warped_thresholded_mask():
    rng = np.random.default_rng(0)
    prev = (rng.random((2, 12, 16)) > 0.5).astype(np.float32)
    # Flows in eighths of a pixel: the bilinear weights are exact in float32 and float64 alike, so values at
    # exactly 0.5 threshold the same way in both.
    flow = (rng.integers(-16, 17, (12, 16, 2)) / 8).astype(np.float32)
    out = flow_propagation_step(None, flow, None, prev, None)
    # Reference: SciPy's bilinear sampling of the previous mask at (y + v, x + u), border values repeated.
    yy, xx = np.mgrid[:12, :16]
    coords = [yy + flow[..., 1].astype(np.float64), xx + flow[..., 0].astype(np.float64)]
    want = np.stack([ndimage.map_coordinates(p.astype(np.float64), coords, order=1, mode="nearest") > 0.5
                     for p in prev])
    assert 0 < want.sum() < want.size and not np.array_equal(want, prev > 0.5)
    np.testing.assert_array_equal(out["probs"], want)
    for k in range(2):  # tight boxes (y1, x1, y2, x2), end-exclusive
        ys, xs = np.nonzero(want[k])
        np.testing.assert_array_equal(out["boxes"][k], [ys.min(), xs.min(), ys.max() + 1, xs.max() + 1])


def test_baseline_on_real_davis_frames(shared_data):
    folder = os.path.join(shared_data, "DAVIS-2016")
    frames = [read_frame(os.path.join(folder, "JPEGImages/480p/blackswan", f"{t:05d}.jpg")) for t in range(5)]
    truth = [read_mask(os.path.join(folder, "Annotations/480p/blackswan", f"{t:05d}.png")) for t in range(5)]
    results = list(propagate(flow_propagation_step, iter(frames), truth[0][None].astype(np.float32),
                             make_flow_fn("dis"), need_next_flow=False))
    scores = [iou(r.labels == 1, m == 1) for r, m in zip(results, truth)]
    assert scores[0] == 1.0
    # DIS propagation of the swan stays close for a few frames (README: 71.2 J over the whole sequence).
    assert min(scores[1:]) > 0.8, scores
    # ... and it really moved the mask: by the last frame the unmoved first mask is far worse (measured: 0.96
    # propagated against 0.72 unmoved).
    assert scores[-1] > iou(truth[0] == 1, truth[-1] == 1) + 0.15, scores


def _overlapping_step(calls, threshold_out=None):
    """A step whose two objects overlap: object 0 at 0.6 on [:10, :10] and 0.4 on [20:25, 20:25], object 1 at 0.9
    on [:5, :5] (it wins the fusion there); it records the previous probabilities it is given."""

    def step_fn(frame, to_prev, to_next, prev_probs, prev_boxes):
        calls.append(np.array(prev_probs))
        probs = np.zeros_like(prev_probs)
        probs[0, :10, :10] = 0.6
        probs[0, 20:25, 20:25] = 0.4
        probs[1, :5, :5] = 0.9
        out = {"probs": probs, "boxes": np.zeros((2, 4), np.float32)}
        if threshold_out is not None:
            out["mask_threshold"] = np.full((2,), threshold_out, np.float32)
        return out

    return step_fn


def test_carrying_labels_feeds_the_next_step_the_fused_masks(synthetic_video):
    # The paper's recurrence: the thresholded, argmax-fused prediction y_{t-1} is warped and fed back, one binary
    # mask per object; the soft probabilities are still what each frame's result holds.
    # A soft first mask (not what carried_masks would make of it): frame 1 gets it as given.
    first = np.stack([(synthetic_video["masks"][0] == k).astype(np.float32) for k in (1, 2)]) * 0.8
    zero_flow = lambda a, b: np.zeros(a.shape[:2] + (2,), np.float32)  # noqa: E731
    calls = []
    results = list(propagate(_overlapping_step(calls), iter(synthetic_video["frames"]), first, zero_flow,
                             read_ahead=0, carry="labels"))
    expected = np.zeros_like(first)
    expected[0, :10, :10] = 1.0
    expected[0, :5, :5] = 0.0  # object 1 wins there
    expected[1, :5, :5] = 1.0  # and object 0's 0.4 square is under the threshold: background
    np.testing.assert_array_equal(calls[0], first)
    for t in range(1, 5):
        np.testing.assert_array_equal(calls[t], expected)
        assert results[t].probs[0, 0, 0] == np.float32(0.6) and results[t].probs[0, 22, 22] == np.float32(0.4)
    # Carrying probabilities (the default) feeds the step's own output back.
    calls_probs = []
    plain = list(propagate(_overlapping_step(calls_probs), iter(synthetic_video["frames"]), first, zero_flow,
                           read_ahead=0))
    np.testing.assert_array_equal(calls_probs[0], first)
    for t in range(1, 5):
        np.testing.assert_array_equal(calls_probs[t], plain[t].probs)


def test_carrying_labels_fuses_at_the_served_threshold(synthetic_video):
    # A served step returns its model's threshold: 0.35 makes object 0's 0.4 square part of its carried mask.
    first = np.stack([(synthetic_video["masks"][0] == k).astype(np.float32) for k in (1, 2)])
    zero_flow = lambda a, b: np.zeros(a.shape[:2] + (2,), np.float32)  # noqa: E731
    calls = []
    list(propagate(_overlapping_step(calls, threshold_out=0.35), iter(synthetic_video["frames"][:3]), first,
                   zero_flow, read_ahead=0, carry="labels"))
    assert calls[1][0, 22, 22] == 1.0 and calls[1][0, 0, 0] == 0.0 and calls[1][1, 0, 0] == 1.0


def test_an_unknown_carry_is_refused(synthetic_video):
    from maskrnn_tf.inference.segmenter import SegmentOptions

    first = (synthetic_video["masks"][0] == 1).astype(np.float32)[None]
    with pytest.raises(ValueError, match="carry must be 'probs' or 'labels', got 'binary'"):
        list(propagate(_overlapping_step([]), iter(synthetic_video["frames"]), first, None, carry="binary"))
    with pytest.raises(ValueError, match="SegmentOptions.carry must be 'probs' or 'labels', got 'binary'"):
        SegmentOptions(carry="binary")
