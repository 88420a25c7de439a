"""WeightMixPrepare: online finetuning's change to the weights kept in part."""
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from maskrnn_tf.inference import VideoSource
from maskrnn_tf.inference.cycle_check import cycle_checked_prepare
from maskrnn_tf.inference.first_mask import FirstMask
from maskrnn_tf.inference.weight_mix import WeightMixPrepare
from maskrnn_tf.io import davis_palette


class Weights:
    """What the wrapper needs of a model: its weights (a float32 kernel, a float32 scalar, an int64 counter)."""

    def __init__(self, drift=0.0):
        self.weights = [tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3)), tf.Variable(float(drift)),
                        tf.Variable(np.int64(7))]


def finetuning(model, change, trained):
    """A `prepare` callback that starts every video from `trained` and adds `change` to each weight, with the log,
    results and budget reserve the real ones keep."""
    def prepare(source, first):
        del first
        for variable, value, delta in zip(model.weights, trained, change):
            variable.assign(value + delta)
        prepare.log[source] = {"updates": 1}
        prepare.results.append(source)
        return "step"

    prepare.log, prepare.results, prepare.reserve_s = {}, [], 0.0
    return prepare


def test_the_weights_move_the_fraction_asked_of_finetuning_s_change_on_every_video():
    model = Weights(drift=1.0)
    trained = [v.numpy() for v in model.weights]
    change = [np.array([[1.0, -2.0, 0.5], [0.0, 4.0, -8.0]], np.float32), np.float32(3.0), np.int64(5)]
    mixed = WeightMixPrepare(finetuning(model, change, trained), model, 0.25)
    for video in ("a", "b"):  # the second video mixes from the trained weights again, not from the first mix
        assert mixed(video, None) == "step"
        np.testing.assert_allclose(model.weights[0].numpy(), trained[0] + 0.25 * change[0], rtol=0, atol=1e-6)
        assert model.weights[1].numpy() == pytest.approx(1.75)
        assert model.weights[2].numpy() == 12  # an integer has nothing between its two values: finetuning's
    assert mixed.log == {"a": {"updates": 1}, "b": {"updates": 1}} and mixed.results == ["a", "b"]


def test_mix_one_keeps_the_finetuned_weights_and_mixes_outside_zero_to_one_are_refused():
    model = Weights()
    trained = [v.numpy() for v in model.weights]
    change = [np.full((2, 3), 0.1, np.float32), np.float32(0.3), np.int64(0)]
    WeightMixPrepare(finetuning(model, change, trained), model, 1.0)("a", None)
    np.testing.assert_array_equal(model.weights[0].numpy(), trained[0] + change[0])
    for mix in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match=r"mix must be in \(0, 1\]"):
            WeightMixPrepare(finetuning(model, change, trained), model, mix)


def test_the_budget_reserve_reaches_the_wrapped_finetuning_and_is_absent_when_it_has_none():
    model = Weights()
    inner = finetuning(model, [0, 0, 0], [v.numpy() for v in model.weights])
    mixed = WeightMixPrepare(inner, model, 0.5)
    mixed.reserve_s = 4.5
    assert inner.reserve_s == 4.5 and mixed.reserve_s == 4.5
    bare = WeightMixPrepare(lambda source, first: "step", model, 0.5)
    assert not hasattr(bare, "reserve_s") and not hasattr(bare, "log") and not hasattr(bare, "results")


SIDE, SPEED = 8, 2


@pytest.fixture()
def square_on_disk(tmp_path):
    """A bright SIDE x SIDE square moving SPEED px right per frame (6 frames) and its first mask."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for t in range(6):
        frame = np.full((24, 40, 3), 20, np.uint8)
        frame[8:8 + SIDE, 6 + SPEED * t:6 + SPEED * t + SIDE] = 230
        Image.fromarray(frame).save(folder / f"{t:05d}.png")
    ids = np.zeros((24, 40), np.uint8)
    ids[8:8 + SIDE, 6:6 + SIDE] = 1
    return VideoSource(str(folder)), FirstMask(ids, (1,), davis_palette())


def centroid_flow(frame_a, frame_b):
    """The exact flow a -> b of the square video: the shift of the bright square's centroid, everywhere."""
    flow = np.zeros(frame_a.shape[:2] + (2,), np.float32)
    flow[..., 0] = np.nonzero(frame_b[..., 0] > 128)[1].mean() - np.nonzero(frame_a[..., 0] > 128)[1].mean()
    return flow


@pytest.mark.parametrize("drift_before, drift_finetuned, kept, drift_now", [
    (0.0, 2.0, False, 0.0),  # the mix drifts 1 px a step where the trained weights went round exactly: undone
    (2.0, 0.0, True, 1.0),  # the mix drifts half as far as the trained weights: kept, halfway
])
def test_the_cycle_check_judges_the_mixed_weights(square_on_disk, drift_before, drift_finetuned, kept, drift_now):
    """A step that ignores the flow and moves the previous mask by the model's drift weight (px per frame)."""
    source, first = square_on_disk
    model = Weights(drift_before)
    trained = [v.numpy() for v in model.weights]

    def step(frame, flow_to_prev, flow_to_next, prev_probs, prev_boxes):
        del frame, flow_to_prev, flow_to_next, prev_boxes
        return {"probs": np.roll(prev_probs, int(round(float(model.weights[1].numpy()))), axis=2),
                "boxes": np.zeros((len(prev_probs), 4))}

    inner = finetuning(model, [0.0, drift_finetuned - drift_before, 0], trained)
    checked = cycle_checked_prepare(WeightMixPrepare(inner, model, 0.5), model, step, centroid_flow, max_size=None,
                                    frames=1)
    checked(source, first)
    entry = checked.log[os.path.basename(source.path)]
    iou = {0.0: 1.0, 1.0: (SIDE - 2) / (SIDE + 2), 2.0: (SIDE - 4) / (SIDE + 4)}  # 2 px off per px of drift
    assert entry["cycle_before"] == pytest.approx(iou[drift_before], abs=1e-4)
    assert entry["cycle_after"] == pytest.approx(iou[(drift_before + drift_finetuned) / 2], abs=1e-4)
    assert entry["kept_finetuning"] is kept and model.weights[1].numpy() == drift_now
