"""The growth cap (`segment --max_growth`): hand-computed masks, the warp it measures against, pass-through."""
import numpy as np
import pytest

from maskrnn_tf.inference.growth_limit import allowed_area, growth_limited_step, limit_growth
from maskrnn_tf.inference.propagation import StepWrappedPrepare
from maskrnn_tf.ops import warp_masks


def _square(size=8, top=2, left=2, side=2, value=1.0):
    mask = np.zeros((size, size), np.float32)
    mask[top:top + side, left:left + side] = value
    return mask


def test_over_the_cap_keeps_the_nearest_pixels_ties_by_probability():
    warped = _square()[None]  # 4 pixels
    probs = _square(value=0.9)
    probs[2:4, 4] = 0.8  # two pixels right of the square, 1 px from it
    probs[1, 2] = 0.7  # one pixel above it, 1 px too and first by position: loses to the more probable ones
    probs[7, 7] = 0.99  # far from it: the first to go whatever its probability
    out = limit_growth(probs[None], warped, 1.5)  # floor(1.5 * 4) = 4 + ceil(sqrt(4)) = 6 pixels
    expected = np.zeros((8, 8), bool)
    expected[2:4, 2:5] = True
    np.testing.assert_array_equal(out[0] > 0.5, expected)
    np.testing.assert_array_equal(out[0][expected], probs[expected])  # kept pixels keep their probability
    assert out[0, 7, 7] == 0.0 and out[0, 1, 2] == 0.0


def test_distance_is_euclidean_from_the_warped_mask():
    warped = _square(size=12, top=4, left=4, side=2)[None]
    probs = _square(size=12, top=4, left=4, side=2, value=0.9)
    probs[3, 3] = 0.95  # diagonal neighbour: sqrt(2) from the square
    probs[4, 7] = 0.6  # 2 px right of the square (column 7, the square ends at column 5)
    probs[4, 6] = 0.55  # 1 px right: nearest, kept although least probable
    out = limit_growth(probs[None], warped, 1.5)  # 6 pixels: the square, then distance 1, then sqrt(2)
    kept = {(int(y), int(x)) for y, x in zip(*np.nonzero(out[0] > 0.5))}
    assert kept == {(4, 4), (4, 5), (5, 4), (5, 5), (4, 6), (3, 3)}


def test_within_the_cap_lost_objects_and_other_objects_are_left_alone():
    rng = np.random.default_rng(0)
    warped = np.stack([_square(), np.zeros((8, 8), np.float32), _square(top=5, left=5)])
    probs = rng.uniform(0.0, 0.45, (3, 8, 8)).astype(np.float32)
    probs[0][_square() > 0] = 0.9
    probs[0, 4, 2:4] = 0.8  # object 0: 6 pixels, within 4 + sqrt(4)
    probs[1, :4, :4] = 0.9  # object 1 lost (empty warped mask): not capped
    probs[2, 4:, 4:] = 0.9  # object 2: 16 pixels against 4, cut to 4 + sqrt(4)
    before = probs.copy()
    out = limit_growth(probs, warped, 1.25)
    np.testing.assert_array_equal(probs, before)  # the input is not modified
    np.testing.assert_array_equal(out[:2], probs[:2])
    assert np.count_nonzero(out[2] > 0.5) == 6
    np.testing.assert_array_equal(out[2][(probs[2] <= 0.5)], probs[2][probs[2] <= 0.5])  # background untouched
    with pytest.raises(ValueError, match="at least 1"):
        limit_growth(probs, warped, 0.9)
    with pytest.raises(ValueError, match="same"):
        limit_growth(probs, warped[:2], 1.1)


def test_the_allowance_is_a_factor_or_a_ring_of_sqrt_area_pixels():
    assert allowed_area(100, 1.15) == 115  # not 114: 1.15 * 100 is 114.99999... in floating point
    assert allowed_area(10_000, 1.05) == 10_500
    assert allowed_area(12, 1.05) == 16  # a small object may still grow: 12 + ceil(sqrt(12))
    assert allowed_area(400, 1.05) == 420 == 400 + 20
    assert allowed_area(0, 2.0) == 0


def test_the_threshold_decides_what_counts_in_the_warped_mask_too():
    warped = _square(top=1, left=1, side=5, value=0.6)
    warped[2:5, 2:5] = 0.8  # 25 pixels over 0.5, 9 over 0.7
    probs = _square(top=1, left=1, side=5, value=0.9)
    probs[7, 3:8] = 0.9  # 30 mask pixels at either threshold
    out_default = limit_growth(probs[None], warped[None], 1.0)  # 25 + 5 allowed: all kept
    np.testing.assert_array_equal(out_default[0], probs)
    out_high = limit_growth(probs[None], warped[None], 1.0, threshold=0.7)  # 9 + 3 allowed
    assert np.count_nonzero(out_high[0] > 0.7) == 12
    assert np.all(out_high[0][2:5, 2:5] == 0.9)  # the warped mask's core first


def test_warp_masks_moves_the_previous_mask_by_the_flow_to_the_previous_frame():
    prev = _square(size=10, top=3, left=5, side=3)[None]
    flow = np.zeros((10, 10, 2), np.float32)
    flow[..., 0] = 2.0  # pixel x of this frame is pixel x + 2 of the previous one: the object moved 2 px left
    np.testing.assert_allclose(warp_masks(prev, flow)[0], _square(size=10, top=3, left=3, side=3), atol=1e-6)
    assert tuple(warp_masks(np.zeros((0, 10, 10), np.float32), flow).shape) == (0, 10, 10)


def test_growth_limited_step_caps_against_the_warped_mask_and_passes_other_outputs():
    prev = _square(size=10, top=3, left=5, side=3)[None]
    flow = np.zeros((10, 10, 2), np.float32)
    flow[..., 0] = 2.0
    predicted = _square(size=10, top=3, left=3, side=3, value=0.9)  # the object where the flow put it
    predicted[3:6, 6:8] = 0.95  # and a trail 1-2 px right of it, more probable than the object
    boxes = np.array([[3, 3, 6, 8]], np.float32)
    calls = []

    def step(frame, flow_to_prev, flow_to_next, prev_probs, prev_boxes):
        calls.append(prev_probs)
        return {"probs": predicted[None], "boxes": boxes, "mask_threshold": np.array([0.5], np.float32)}

    capped = growth_limited_step(step, 1.0)
    out = capped(np.zeros((10, 10, 3)), flow, np.zeros_like(flow), prev, np.zeros((1, 4), np.float32))
    expected = _square(size=10, top=3, left=3, side=4) > 0  # 9 + ceil(sqrt(9)): the square and the trail's
    expected[6] = False  # nearest column
    np.testing.assert_array_equal(out["probs"][0] > 0.5, expected)
    unwarped = growth_limited_step(step, 1.0, warp=False)(np.zeros((10, 10, 3)), flow, np.zeros_like(flow), prev,
                                                          np.zeros((1, 4), np.float32))
    kept = unwarped["probs"][0] > 0.5  # against the mask where it was (columns 5-7): the trail's pixels first
    assert kept[3:6, 5:8].all() and np.count_nonzero(kept) == 12
    assert out["boxes"] is boxes and out["mask_threshold"][0] == 0.5 and calls[0] is prev
    loose = growth_limited_step(step, 2.0)(np.zeros((10, 10, 3)), flow, np.zeros_like(flow), prev, boxes)
    np.testing.assert_array_equal(loose["probs"][0], predicted)  # 15 pixels against 9 * 2: within
    with pytest.raises(ValueError, match="at least 1"):
        growth_limited_step(step, 0.5)


def test_growth_limited_step_counts_at_the_threshold_the_step_returns():
    prev = _square(size=8)[None]
    predicted = np.zeros((8, 8), np.float32)
    predicted[2:4, 2:4] = 0.9
    predicted[2:4, 4:6] = 0.6  # mask pixels at 0.5, not at a served threshold of 0.7
    zeros = np.zeros((8, 8, 2), np.float32)

    def step(*args):
        return {"probs": predicted[None], "boxes": np.zeros((1, 4), np.float32),
                "mask_threshold": np.array([0.7], np.float32)}

    out = growth_limited_step(step, 1.0)(np.zeros((8, 8, 3)), zeros, zeros, prev, np.zeros((1, 4)))
    np.testing.assert_array_equal(out["probs"][0], predicted)  # 4 pixels over 0.7 against 4: within
    cut = growth_limited_step(lambda *a: {"probs": predicted[None], "boxes": np.zeros((1, 4))}, 1.0)(
        np.zeros((8, 8, 3)), zeros, zeros, prev, np.zeros((1, 4)))
    assert np.count_nonzero(cut["probs"][0] > 0.5) == 6  # at the default 0.5: 8 pixels cut to 4 + 2


def test_the_cap_wraps_the_finetuned_step_and_keeps_the_finetuning_log():
    prev = _square(size=8)[None]
    zeros = np.zeros((8, 8, 2), np.float32)

    class Prepare:
        log = {"video": {"updates": 3}}
        results = [("video", "result")]

        def __call__(self, source, first):
            assert (source, first) == ("source", "first")
            return lambda *args: {"probs": np.full((1, 8, 8), 0.9, np.float32), "boxes": np.zeros((1, 4))}

    wrapped = StepWrappedPrepare(Prepare(), lambda step: growth_limited_step(step, 1.0))
    assert wrapped.log == {"video": {"updates": 3}} and wrapped.results == [("video", "result")]
    out = wrapped("source", "first")(np.zeros((8, 8, 3)), zeros, zeros, prev, np.zeros((1, 4)))
    assert np.count_nonzero(out["probs"][0] > 0.5) == 6
