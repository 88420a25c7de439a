"""Test-time mirroring (`segment --flip_average`): the mirrored flow and boxes against the real warp and box ops,
the averaged step against hand-computed means, and the exact equivariance of a step that has it."""
import numpy as np
import tensorflow as tf

from maskrnn_tf.inference.baseline import flow_propagation_step
from maskrnn_tf.inference.flip_average import FlipAveragedPrepare, flip_averaged_step, mirror_boxes
from maskrnn_tf.ops import flip_flow_left_right, mask_to_box
from maskrnn_tf.ops.flow import warp_with_flow


def _smooth_flow(height, width, seed=0):
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    u = 2.5 * np.sin(xs / 5.0 + rng.uniform(0, 3)) + 0.1 * ys
    v = 1.5 * np.cos(ys / 4.0 + rng.uniform(0, 3)) - 0.05 * xs
    return np.stack([u, v], -1).astype(np.float32)


def test_the_mirrored_flow_warps_the_mirrored_image_as_the_flow_warps_the_image():
    """warp(mirror(a), flip(f)) == mirror(warp(a, f)) through the model's own bilinear warp: the property the
    mirrored pass relies on."""
    height, width = 20, 31
    image = np.random.default_rng(1).uniform(0, 1, (1, height, width, 3)).astype(np.float32)
    flow = _smooth_flow(height, width)
    warped = warp_with_flow(image, flow[None]).numpy()
    mirrored = warp_with_flow(image[:, :, ::-1].copy(), flip_flow_left_right(flow).numpy()[None]).numpy()
    np.testing.assert_allclose(mirrored[:, :, ::-1], warped, atol=1e-5)
    # Hand case: a uniform flow of (u, v) = (2, -1) becomes (-2, -1).
    np.testing.assert_array_equal(flip_flow_left_right(np.tile([2.0, -1.0], (3, 4, 1))).numpy()[0, 0], [-2.0, -1.0])


def test_mirror_boxes_are_the_tight_boxes_of_the_mirrored_masks():
    masks = np.zeros((3, 12, 10), np.float32)
    masks[0, 1:4, 2:5] = 1  # columns 2..4 -> 5..7 in a 10-column frame
    masks[1, 5:12, 0:10] = 1
    boxes = mask_to_box(masks)[0].numpy()
    np.testing.assert_array_equal(mirror_boxes(boxes, 10)[0], [1, 5, 4, 8])
    np.testing.assert_array_equal(mirror_boxes(boxes, 10), mask_to_box(masks[:, :, ::-1].copy())[0].numpy()[[0, 1, 2]]
                                  * np.array([[1], [1], [0]], np.float32))  # the empty third stays all zeros
    np.testing.assert_array_equal(mirror_boxes(mirror_boxes(boxes, 10), 10), boxes)


def test_averaged_step_is_the_mean_of_the_plain_and_the_mirrored_step():
    """A step that is not mirror-equivariant: a left-to-right ramp and a fixed box. Mirrored back, the ramp's
    mean is 0.5 everywhere and the box's mean is the box centred in the frame."""
    height, width = 6, 9
    calls = []

    def ramp_step(frame, flow_to_prev, flow_to_next, prev_probs, prev_boxes):
        calls.append((frame.copy(), flow_to_prev.copy(), flow_to_next.copy(), prev_probs.copy(),
                      np.asarray(prev_boxes).copy()))
        ramp = np.broadcast_to(np.arange(width, dtype=np.float32) / (width - 1), (1, height, width))
        return {"probs": ramp, "boxes": np.array([[0.0, 0.0, 2.0, 3.0]], np.float32)}

    frame = np.arange(height * width * 3, dtype=np.float32).reshape(height, width, 3)
    flow = _smooth_flow(height, width)
    flow_next = _smooth_flow(height, width, seed=1)  # a different field: each flow must reach its own argument
    prev = np.zeros((1, height, width), np.float32)
    prev[0, 2:4, 1:3] = 1
    prev_boxes = np.array([[2.0, 1.0, 4.0, 3.0]], np.float32)
    out = flip_averaged_step(ramp_step)(frame, flow, flow_next, prev, prev_boxes)
    np.testing.assert_allclose(out["probs"], 0.5, atol=1e-7)
    np.testing.assert_allclose(out["boxes"], [[0.0, (width - 3) / 2, 2.0, (width + 3) / 2]])
    (frame0, flow0, next0, prev0, boxes0), (frame1, flow1, next1, prev1, boxes1) = calls
    np.testing.assert_array_equal(frame0, frame)
    np.testing.assert_array_equal(frame1, frame[:, ::-1])
    np.testing.assert_array_equal(flow0, flow)
    np.testing.assert_array_equal(next0, flow_next)
    np.testing.assert_array_equal(flow1[..., 0], -flow[:, ::-1, 0])
    # Both flows are mirrored for the mirrored pass: the field read right to left, u negated, v kept.
    np.testing.assert_array_equal(flow1, np.stack([-flow[:, ::-1, 0], flow[:, ::-1, 1]], -1))
    np.testing.assert_array_equal(next1, np.stack([-flow_next[:, ::-1, 0], flow_next[:, ::-1, 1]], -1))
    np.testing.assert_array_equal(prev1, prev[:, :, ::-1])
    np.testing.assert_array_equal(boxes1, [[2.0, width - 3.0, 4.0, width - 1.0]])


def test_an_empty_box_from_one_pass_takes_the_other_pass_box():
    answers = iter([np.array([[1.0, 2.0, 5.0, 6.0]], np.float32), np.zeros((1, 4), np.float32)])

    def step(frame, flow_to_prev, flow_to_next, prev_probs, prev_boxes):
        return {"probs": prev_probs, "boxes": next(answers)}

    zeros = np.zeros((8, 8, 2), np.float32)
    out = flip_averaged_step(step)(np.zeros((8, 8, 3)), zeros, zeros, np.zeros((1, 8, 8)), np.zeros((1, 4)))
    np.testing.assert_array_equal(out["boxes"], [[1.0, 2.0, 5.0, 6.0]])
    assert "mask_threshold" not in out


def test_a_served_steps_threshold_passes_through_the_averaging():
    def step(frame, flow_to_prev, flow_to_next, prev_probs, prev_boxes):
        return {"probs": prev_probs, "boxes": prev_boxes, "mask_threshold": np.array([0.7], np.float32)}

    zeros = np.zeros((8, 8, 2), np.float32)
    out = flip_averaged_step(step)(np.zeros((8, 8, 3)), zeros, zeros, np.zeros((1, 8, 8)), np.zeros((1, 4)))
    np.testing.assert_array_equal(out["mask_threshold"], np.array([0.7], np.float32))


def test_an_equivariant_step_is_unchanged_by_averaging():
    """The flow-propagation baseline (warp the mask, take its tight box) commutes with mirroring, so averaging
    the two passes gives its plain answer."""
    height, width = 24, 33
    flow = _smooth_flow(height, width, seed=3)
    prev = np.zeros((2, height, width), np.float32)
    prev[0, 4:12, 3:15] = 1
    prev[1, 10:20, 18:30] = 1
    boxes = mask_to_box(prev)[0].numpy()
    plain = flow_propagation_step(None, flow, flow, prev, boxes)
    averaged = flip_averaged_step(flow_propagation_step)(np.zeros((height, width, 3)), flow, flow, prev, boxes)
    np.testing.assert_allclose(averaged["probs"], plain["probs"], atol=1e-6)
    np.testing.assert_allclose(averaged["boxes"], plain["boxes"], atol=1e-6)


def test_flip_averaged_prepare_averages_the_finetuned_step_and_keeps_its_log():
    class Prepare:
        log = {"video": {"updates": 3}}
        results = [("video", "result")]

        def __call__(self, source, first):
            return lambda frame, f0, f1, probs, boxes: {"probs": tf.fill(tf.shape(probs), 0.25).numpy()
                                                        + (np.arange(probs.shape[2]) == 0), "boxes": boxes}

    wrapped = FlipAveragedPrepare(Prepare())
    assert wrapped.log == {"video": {"updates": 3}} and wrapped.results == [("video", "result")]
    assert getattr(FlipAveragedPrepare(lambda source, first: None), "log", None) is None
    step = wrapped(None, None)
    zeros = np.zeros((4, 5, 2), np.float32)
    out = step(np.zeros((4, 5, 3)), zeros, zeros, np.zeros((1, 4, 5), np.float32), np.zeros((1, 4), np.float32))
    # Column 0 is 1.25 in the plain pass and column 4 in the mirrored one: both average to 0.75, the rest 0.25.
    np.testing.assert_allclose(out["probs"][0, 0], [0.75, 0.25, 0.25, 0.25, 0.75])
