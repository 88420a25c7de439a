"""The first-frame colour gate (`segment --color_gate`): bins of known colours, hand-computed colour shares, the
background band, void pixels, the gated step and its per-video callback."""
import numpy as np
import pytest

from maskrnn_tf.inference.color_gate import (BINS, ColorGatedPrepare, color_bins, color_gated_step, fit_color_model,
                                             gate_probs)
from maskrnn_tf.inference.first_mask import FirstMask

RED, BLUE, GREEN, GREY = (220, 30, 30), (30, 30, 220), (30, 200, 30), (128, 128, 128)
NBINS = BINS ** 3


def _bin(rgb):
    return int(color_bins(np.full((1, 1, 3), rgb, np.uint8))[0, 0])


def _scene():
    """A 40x60 frame: a red 10x10 object at rows 15-24, columns 10-19; blue background up to column 29, green
    beyond (at least 10 px from the object); labels 1 on the object, 0 elsewhere."""
    frame = np.zeros((40, 60, 3), np.uint8)
    frame[:, :30] = BLUE
    frame[:, 30:] = GREEN
    frame[15:25, 10:20] = RED
    labels = np.zeros((40, 60), np.uint8)
    labels[15:25, 10:20] = 1
    return frame, labels


def test_bins_of_black_and_white_are_their_cielab_levels():
    # OpenCV's 8-bit CIELAB: black is (0, 128, 128), white (255, 128, 128); 16 levels of 16 values each.
    assert _bin((0, 0, 0)) == (0 * 16 + 8) * 16 + 8
    assert _bin((255, 255, 255)) == (15 * 16 + 8) * 16 + 8
    assert len({_bin(c) for c in (RED, BLUE, GREEN, GREY)}) == 4


def test_bins_refuse_what_is_not_an_rgb_frame():
    with pytest.raises(ValueError, match="uint8 RGB"):
        color_bins(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="divide 256"):
        color_bins(np.zeros((4, 4, 3), np.uint8), bins=12)


def _band_background(labels, object_id, radius):
    """Pixels of label 0 within `radius` px (Euclidean) of the object's bounding rectangle (the objects here are
    rectangles, so that is the distance to the object)."""
    ys, xs = np.nonzero(labels == object_id)
    yy, xx = np.mgrid[:labels.shape[0], :labels.shape[1]]
    dy = np.maximum(np.maximum(ys.min() - yy, yy - ys.max()), 0)
    dx = np.maximum(np.maximum(xs.min() - xx, xx - xs.max()), 0)
    return (np.hypot(dy, dx) <= radius) & (labels == 0)


def _unseen(n, m):
    """The share of a colour neither histogram saw: (0.5 / (n + 2048)) / (0.5 / (n + 2048) + 0.5 / (m + 2048))."""
    return (m + 0.5 * NBINS) / (n + m + NBINS)


def test_shares_against_the_background_within_the_band():
    frame, labels = _scene()
    band = 8 / 60  # 8 px of the longer side: the blue within 8 px of the object, never the green (10 px away)
    model = fit_color_model(frame, labels, [1], band)
    assert model.shape == (1, NBINS) and model.dtype == np.float32
    around = _band_background(labels, 1, 8)
    n, m = 100, int(np.count_nonzero(around))  # object pixels (all red), band background pixels (all blue)
    assert np.all(frame[around] == BLUE)
    obj = lambda count: (count + 0.5) / (n + 0.5 * NBINS)  # noqa: E731
    bg = lambda count: (count + 0.5) / (m + 0.5 * NBINS)  # noqa: E731
    share = model[0]
    np.testing.assert_allclose(share[_bin(RED)], obj(n) / (obj(n) + bg(0)), rtol=1e-6)
    np.testing.assert_allclose(share[_bin(BLUE)], obj(0) / (obj(0) + bg(m)), rtol=1e-6)
    # Green lies outside the band: seen by neither histogram, its share is that of an unseen colour (about 0.51).
    np.testing.assert_allclose(share[_bin(GREEN)], _unseen(n, m), rtol=1e-6)
    assert share[_bin(RED)] > 0.99 and share[_bin(BLUE)] < 0.01
    # A band reaching the green counts it against the object.
    wide = fit_color_model(frame, labels, [1], 0.5)[0]
    assert wide[_bin(GREEN)] < 0.01


def test_void_and_other_objects_are_not_background():
    frame, labels = _scene()
    frame[15:25, 20:26] = GREY
    labels[15:25, 20:23] = 255  # void next to object 1
    labels[15:25, 23:26] = 2  # a second, grey object beside it
    model = fit_color_model(frame, labels, [1, 2], 8 / 60)
    m1 = int(np.count_nonzero(_band_background(labels, 1, 8)))
    m2 = int(np.count_nonzero(_band_background(labels, 2, 8)))
    # Grey (void and object 2) is in neither of object 1's histograms; red (object 1) in neither of object 2's.
    np.testing.assert_allclose(model[0, _bin(GREY)], _unseen(100, m1), rtol=1e-6)
    np.testing.assert_allclose(model[1, _bin(RED)], _unseen(30, m2), rtol=1e-6)
    assert model[1, _bin(GREY)] > 0.98 and model[1, _bin(BLUE)] < 0.01


def test_gate_zeroes_the_object_where_its_colour_share_is_at_most_the_threshold():
    frame, labels = _scene()
    model = fit_color_model(frame, labels, [1], 8 / 60)
    probs = np.full((1, 40, 60), 0.9, np.float32)
    out = gate_probs(probs, frame, model, 0.2)
    share = model[0][color_bins(frame)]
    np.testing.assert_array_equal(out[0], np.where(share > 0.2, 0.9, 0.0).astype(np.float32))
    # Red (the object) and green (unseen: share (m + 2048) / (n + m + 4096), about 0.51) stay; blue goes.
    assert out[0, 20, 15] == np.float32(0.9) and out[0, 20, 50] == np.float32(0.9) and out[0, 5, 5] == 0.0
    # At a threshold equal to a colour's share the colour goes (strictly above keeps).
    at_green = float(model[0, _bin(GREEN)])
    out = gate_probs(probs, frame, model, at_green)
    assert out[0, 20, 50] == 0.0 and out[0, 20, 15] == np.float32(0.9)
    with pytest.raises(ValueError, match="one colour model per object"):
        gate_probs(np.zeros((2, 40, 60), np.float32), frame, model, 0.2)


def test_each_object_is_gated_by_its_own_model():
    frame, labels = _scene()
    frame[15:25, 40:50] = GREY  # a grey object on the green
    labels[15:25, 40:50] = 2
    model = fit_color_model(frame, labels, [1, 2], 8 / 60)
    probs = np.full((2, 40, 60), 0.9, np.float32)
    out = gate_probs(probs, frame, model, 0.2)
    # Object 1 (red on blue) loses the blue and keeps the green (unseen by it); object 2 (grey on green) the
    # other way round for the green, and keeps the blue (unseen by it).
    assert out[0, 20, 15] > 0 and out[0, 5, 5] == 0 and out[0, 5, 55] > 0
    assert out[1, 20, 45] > 0 and out[1, 5, 55] == 0 and out[1, 5, 5] > 0


def test_gated_step_gates_probs_and_passes_the_other_outputs():
    frame, labels = _scene()
    model = fit_color_model(frame, labels, [1], 8 / 60)
    seen = {}

    def step(frame_t, flow_prev, flow_next, prev_probs, prev_boxes):
        seen["prev"] = prev_probs
        return {"probs": np.ones((1, 40, 60), np.float32), "boxes": np.array([[1, 2, 3, 4]], np.float32),
                "mask_threshold": np.array([0.5], np.float32)}

    gated = color_gated_step(step, model, 0.2)
    prev = np.zeros((1, 40, 60), np.float32)
    out = gated(frame, np.zeros((40, 60, 2), np.float32), np.zeros((40, 60, 2), np.float32), prev,
                np.zeros((1, 4), np.float32))
    assert seen["prev"] is prev
    np.testing.assert_array_equal(out["probs"][0], (model[0][color_bins(frame)] > 0.2).astype(np.float32))
    np.testing.assert_array_equal(out["boxes"], [[1, 2, 3, 4]])
    np.testing.assert_array_equal(out["mask_threshold"], [0.5])


class _Frames:
    """An iterator over frames that records whether it was closed (a video file's reader holds the file)."""

    def __init__(self, frames):
        self._frames = iter(frames)
        self.closed = False

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._frames)

    def close(self):
        self.closed = True


class _Source:
    def __init__(self, frames):
        self.reader = _Frames(frames)  # kept here: garbage collection cannot close it for the callback

    def frames(self):
        return self.reader


class _Finetuning:
    """A prepare callback that records what it was given and keeps a log."""

    def __init__(self, step):
        self.step = step
        self.log = {"video": {"updates": 3}}
        self.calls = []

    def __call__(self, source, first):
        self.calls.append((source, first))
        return self.step


def test_prepare_fits_on_the_first_frame_and_gates_the_finetuned_step():
    frame, labels = _scene()
    later = np.zeros_like(frame)
    later[:] = RED  # a frame that is all the object's colour: nothing would be gated if the model came from it
    first = FirstMask(labels=labels, object_ids=(1,), palette=None)

    def step(*args):
        return {"probs": np.ones((1, 40, 60), np.float32), "boxes": np.zeros((1, 4), np.float32)}

    finetuning = _Finetuning(step)
    prepare = ColorGatedPrepare(lambda *args: pytest.fail("the finetuned step is gated, not step_fn"), finetuning,
                                0.2, 8 / 60)
    source = _Source([frame, later])
    gated = prepare(source, first)
    assert finetuning.calls == [(source, first)] and source.reader.closed
    assert prepare.log == {"video": {"updates": 3}}  # read through, for segment_run.json
    zeros = np.zeros((40, 60, 2), np.float32)
    out = gated(frame, zeros, zeros, np.zeros((1, 40, 60), np.float32), np.zeros((1, 4), np.float32))
    expected = fit_color_model(frame, labels, [1], 8 / 60)[0][color_bins(frame)] > 0.2
    np.testing.assert_array_equal(out["probs"][0] > 0, expected)
    # Without finetuning the plain step is gated, and there is no log to read.
    plain = ColorGatedPrepare(step, None, 0.2, 8 / 60)
    assert getattr(plain, "log", None) is None
    out = plain(_Source([frame]), first)(frame, zeros, zeros, np.zeros((1, 40, 60), np.float32),
                                         np.zeros((1, 4), np.float32))
    np.testing.assert_array_equal(out["probs"][0] > 0, expected)


@pytest.mark.parametrize("threshold,band", [(0.0, 0.06), (1.0, 0.06), (0.2, 0.0), (0.2, 1.5)])
def test_out_of_range_settings_are_refused(threshold, band):
    with pytest.raises(ValueError, match="color gate"):
        ColorGatedPrepare(lambda *args: None, None, threshold, band)


def test_prior_prepare_binds_tables_of_the_first_frame_before_the_finetuning_runs():
    """ColorPriorPrepare (a colour prior network): the tables are fitted on the first frame and its ids at the
    video's own size, as training fits them on its videos, and bound to the model's step before the wrapped
    finetuning runs; the finetuning's step is returned and its log read through. first_frame_tables at a working
    size fits the resized frame (OpenCV's area resize) and labels_at_size instead."""
    import cv2

    from maskrnn_tf.inference.color_gate import ColorPriorPrepare, first_frame_tables
    from maskrnn_tf.inference.first_mask import labels_at_size

    frame, labels = _scene()  # 40 x 60
    first = FirstMask(labels=labels, object_ids=(1,), palette=None)

    def bound(*args, **kwargs):
        return None

    bound.color_model = None
    seen = []

    class Finetuning(_Finetuning):
        def __call__(self, source, first):
            seen.append(None if bound.color_model is None else bound.color_model.copy())
            return super().__call__(source, first)

    def source():
        video = _Source([frame])
        video.size = (40, 60)
        return video

    finetuning = Finetuning("finetuned step")
    prepare = ColorPriorPrepare([(bound, 0.1)], "plain step", finetuning)
    assert prepare(source(), first) == "finetuned step" and prepare.log == {"video": {"updates": 3}}
    want = fit_color_model(frame, labels, [1], 0.1, space="rgb")
    assert len(seen) == 1 and seen[0] is not None
    np.testing.assert_array_equal(seen[0], want)
    bound.color_model = None
    assert ColorPriorPrepare([(bound, 0.1)], "plain step", None)(source(), first) == "plain step"
    np.testing.assert_array_equal(bound.color_model, want)
    small = cv2.resize(frame, (30, 20), interpolation=cv2.INTER_AREA)
    at_size = fit_color_model(small, labels_at_size(labels, (20, 30)), [1], 0.1, space="rgb")
    np.testing.assert_array_equal(first_frame_tables(source(), first, 0.1, max_size=30), at_size)
    assert not np.array_equal(at_size, want)


def test_prior_prepare_binds_each_networks_tables_at_its_own_band():
    """ColorPriorPrepare with several networks (an ensemble of colour prior networks): every bound step gets the first frame's
    tables at its own band before the wrapped callback (finetuning) runs; a band out of range is refused."""
    from maskrnn_tf.inference.color_gate import ColorPriorPrepare

    frame, labels = _scene()
    first = FirstMask(labels=labels, object_ids=(1,), palette=None)
    steps = []
    for _ in range(3):
        def step(*args, **kwargs):
            return None

        step.color_model = None
        steps.append(step)
    video = _Source([frame])
    video.size = (40, 60)
    seen = []

    class Finetuning(_Finetuning):
        def __call__(self, source, first):
            seen.append([None if step.color_model is None else step.color_model.copy() for step in steps])
            return super().__call__(source, first)

    prepare = ColorPriorPrepare([(steps[0], 0.1), (steps[1], 0.4), (steps[2], 0.1)], "plain step",
                                Finetuning("finetuned step"))
    assert prepare(video, first) == "finetuned step"
    assert len(seen) == 1  # bound before the finetuning ran
    for step, tables, band in zip(steps, seen[0], (0.1, 0.4, 0.1)):
        want = fit_color_model(frame, labels, [1], band, space="rgb")
        np.testing.assert_array_equal(tables, want)
        np.testing.assert_array_equal(step.color_model, want)
    assert not np.array_equal(steps[0].color_model, steps[1].color_model)
    with pytest.raises(ValueError, match="band"):
        ColorPriorPrepare([(steps[0], 0.1), (steps[1], 1.5)], "plain step", None)
