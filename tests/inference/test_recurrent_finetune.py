"""Recurrent online finetuning on dreamt clips (maskrnn_tf.inference.recurrent_finetune), with a tiny model."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from maskrnn_tf.data.dreaming import DreamConfig, dream_clip, estimate_flows
from maskrnn_tf.data.flow_backends import DISFlow
from maskrnn_tf.inference import load_model
from maskrnn_tf.inference.recurrent_finetune import (
    RecurrentFinetuneConfig, RecurrentFinetuner, budget_note, clip_batch, crop_window, recurrent_finetune,
)
from maskrnn_tf.ops import mask_to_box
from maskrnn_tf.training.losses import frame_losses

SHORT = DreamConfig(num_frames=3, object_shift=0.03)


def _first(synthetic_video):
    return synthetic_video["frames"][0], synthetic_video["masks"][0]


def _reference_first_loss(model, clip, object_ids=(1, 2)):
    """The recurrence written out with MaskRNN.step: from the true first mask, each prediction fed on."""
    prev = np.stack([clip.masks[0] == i for i in object_ids]).astype(np.float32)
    boxes, _ = mask_to_box(tf.constant(prev))
    total = 0.0
    for t in range(1, clip.frames.shape[0]):
        out = model.step(clip.frames[t], clip.flows_to_prev[t], clip.flows_to_next[t], prev, boxes, training=True)
        truth = np.stack([clip.masks[t] == i for i in object_ids]).astype(np.float32)
        total += frame_losses(out, truth, None, model.config.delta_weights, 1.0, 1.0)["total"].numpy()
        prev, boxes = out["probs"], out["boxes"]
    return float(np.mean(total))


def test_recurrent_finetuning_fits_the_dreamt_clips_within_its_budget(synthetic_video, tiny_model_path):
    # One finetuner for all checks: tracing the unrolled step dominates the time of this test.
    model = load_model(tiny_model_path)
    frame, ids = _first(synthetic_video)
    config = RecurrentFinetuneConfig(steps=20, time_budget_s=0, num_clips=2, dream=SHORT, learning_rate=1e-3,
                                     reverse_every_other=True)
    finetuner = RecurrentFinetuner(model, 2, config)
    expected_first = _reference_first_loss(model, dream_clip(frame, ids, seed=0, config=SHORT))  # clip 0
    before = finetuner.loss(frame, ids, [1, 2])
    result = finetuner.run(frame, ids, [1, 2])
    after = finetuner.loss(frame, ids, [1, 2])
    # The first update's loss is the unrolled recurrence on the first clip, all objects, before any update.
    assert result.losses[0] == pytest.approx(expected_first, rel=1e-4)
    assert result.steps == 20 and not result.stopped_by_budget and np.isfinite(result.losses).all()
    assert 0 < result.dream_seconds < result.seconds
    assert after < 0.8 * before, (before, after)

    # The budget ends a run that would go on much longer; no update starts unless the last one's duration
    # still fits, so the overshoot is at most about one update.
    budget = 3.0
    finetuner.config = dataclasses.replace(config, steps=100000, time_budget_s=budget)
    result = finetuner.run(frame, ids, [1, 2])
    assert result.stopped_by_budget and 1 <= result.steps < 100000
    assert len(result.step_seconds) == result.steps
    assert result.seconds <= budget + max(result.step_seconds) + 0.1, (result.seconds, result.step_seconds)


def test_crop_window_centres_the_grown_object_box_inside_the_frame():
    ids = np.zeros((120, 200), np.uint8)
    ids[40:60, 90:110] = 1  # a 20x20 box: grown by 0.25 * 20 + 8 = 13 px per side, 46x46 in all
    ids[70:74, 10:14] = 2
    assert crop_window(ids, [1], 64) == (18, 68, 64, 64)  # centred on (50, 100)
    assert crop_window(ids, [1], 46) == (27, 77, 46, 46)  # just fits
    assert crop_window(ids, [1], 45) is None  # does not: the whole frame
    assert crop_window(ids, [2], 64) == (40, 0, 64, 64)  # near the left edge: shifted inside the frame
    assert crop_window(ids, [1, 2], 180) == (0, 0, 120, 180)  # taller than the frame: its full height
    assert crop_window(ids, [1], 0) is None and crop_window(ids, [1], 500) is None  # off, or the whole frame
    with pytest.raises(ValueError, match="crop >= 0"):
        RecurrentFinetuneConfig(crop=-1)


def test_a_cropped_run_dreams_from_the_window_around_the_objects(tiny_model_path):
    """With `crop`, the first update's loss is the recurrence on a clip dreamt from the crop of the frame, its
    motion as fast as in the whole frame (shifts are fractions of the frame's shorter side, 48, not the crop's)."""
    rng = np.random.default_rng(4)
    frame = rng.integers(0, 256, (48, 80, 3)).astype(np.uint8)
    ids = np.zeros((48, 80), np.uint8)
    ids[20:30, 50:62] = 3
    model = load_model(tiny_model_path)
    config = RecurrentFinetuneConfig(steps=1, time_budget_s=0, num_clips=1, dream=SHORT, crop=40)
    window = crop_window(ids, [3], 40)
    assert window == (5, 36, 40, 40)
    top, left, height, width = window
    expected = _reference_first_loss(model, dream_clip(frame[top:top + height, left:left + width],
                                                       ids[top:top + height, left:left + width], seed=0,
                                                       config=SHORT, motion_size=48), object_ids=(3,))
    finetuner = RecurrentFinetuner(model, 1, config)
    assert finetuner.loss(frame, ids, [3]) == pytest.approx(expected, rel=1e-4)
    result = finetuner.run(frame, ids, [3])
    assert result.window == window and result.losses[0] == pytest.approx(expected, rel=1e-4)

    # dream_flow: the same clips (one frame more dreamt) with their flows estimated by DIS from the frames.
    crop = frame[top:top + height, left:left + width], ids[top:top + height, left:left + width]
    longer = dream_clip(*crop, seed=0, config=dataclasses.replace(SHORT, num_frames=4), motion_size=48)
    dis = estimate_flows(longer, DISFlow("medium").flow)
    finetuner.config = dataclasses.replace(config, dream_flow="dis")
    assert finetuner.loss(frame, ids, [3]) == pytest.approx(_reference_first_loss(model, dis, object_ids=(3,)),
                                                            rel=1e-4)
    for bad in ("flo", "raft"):
        with pytest.raises(ValueError, match="dream_flow must be 'exact' or a flow computed from pixels"):
            RecurrentFinetuneConfig(dream_flow=bad)


def test_clip_batch_and_bad_object_ids(synthetic_video):
    frame, ids = _first(synthetic_video)
    clip = dream_clip(frame, ids, seed=1, config=SHORT)
    batch = clip_batch(clip, [2, 1])
    assert batch["frames"].shape == (2, 3) + frame.shape
    np.testing.assert_array_equal(batch["masks"][0].numpy(), clip.masks == 2)
    np.testing.assert_array_equal(batch["masks"][1].numpy(), clip.masks == 1)
    for key, flows in (("flows_to_prev", clip.flows_to_prev), ("flows_to_next", clip.flows_to_next)):
        np.testing.assert_array_equal(batch[key][1].numpy(), flows)
    with pytest.raises(ValueError, match=r"object ids \[7\] are not in the first-frame mask"):
        recurrent_finetune(None, frame, ids, [1, 7])
    with pytest.raises(ValueError, match="object_ids is empty"):
        recurrent_finetune(None, frame, ids, [])
    with pytest.raises(ValueError, match="num_clips >= 1"):
        RecurrentFinetuneConfig(num_clips=0)


def test_prepare_restores_weights_and_finetunes_each_video_at_the_processing_size(video_on_disk, synthetic_video):
    """The segment callback's contract, with a recording stand-in for the (slow to trace) finetuner."""
    from maskrnn_tf.inference import VideoSource, read_first_mask
    from maskrnn_tf.inference.recurrent_finetune import RecurrentFinetuneResult, recurrent_finetuning_prepare
    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    model = MaskRNN(MaskRNNConfig(width=0.125, fc_units=16))
    initial = [v.numpy().copy() for v in model.weights]
    calls = []

    class Recorder:
        def __init__(self, model_, num_objects, config):
            self.num_objects = num_objects
            calls.append(("new", num_objects))

        def run(self, frame, ids, object_ids):
            calls.append(("run", frame.shape, ids.shape, list(object_ids)))
            np.testing.assert_array_equal(model.weights[0].numpy(), initial[0])  # starts from the given weights
            model.weights[0].assign(model.weights[0] + 1.0)  # "finetuning" changes them
            return RecurrentFinetuneResult([1.0], 0.1, [0.1], 0.0, False)

    frames_dir, mask_path = video_on_disk
    source, first = VideoSource(frames_dir), read_first_mask(mask_path)
    step_fn = object()
    prepare = recurrent_finetuning_prepare(model, step_fn, max_size=28, config=RecurrentFinetuneConfig(),
                                           finetuner_factory=Recorder)
    assert prepare(source, first) is step_fn
    assert prepare(source, first) is step_fn  # a second video of the same shape reuses the finetuner
    # 40x56 processed at --max_size=28: 20x28; both objects of the synthetic video are still there.
    assert calls == [("new", 2), ("run", (20, 28, 3), (20, 28), [1, 2]), ("run", (20, 28, 3), (20, 28), [1, 2])]
    assert [name for name, _ in prepare.results] == [source.name, source.name]
    # Steps 0: nothing runs, and the weights are the ones the callback was made with.
    snapshot = [v.numpy().copy() for v in model.weights]
    none = recurrent_finetuning_prepare(model, step_fn, 28, RecurrentFinetuneConfig(steps=0), Recorder)
    model.weights[0].assign(model.weights[0] + 5.0)
    assert none(source, first) is step_fn and len(calls) == 3
    for variable, value in zip(model.weights, snapshot):
        np.testing.assert_array_equal(variable.numpy(), value)


def test_prepare_matches_each_videos_motion_from_its_first_flow(video_on_disk):
    """match_video_motion: each video's clips get the speeds of its first frame pair's flow (the flow function
    segment uses, at the processing size), recorded in the log; without a flow function it is refused."""
    from maskrnn_tf.data.dreaming import video_motion
    from maskrnn_tf.inference import VideoSource, read_first_mask
    from maskrnn_tf.inference.finetune import first_ids_at_size
    from maskrnn_tf.inference.recurrent_finetune import RecurrentFinetuneResult, recurrent_finetuning_prepare
    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    model = MaskRNN(MaskRNNConfig(width=0.125, fc_units=16))
    seen, pairs = [], []

    class Recorder:
        def __init__(self, model_, num_objects, config):
            self.config = config

        def run(self, frame, ids, object_ids):
            seen.append(self.config)
            return RecurrentFinetuneResult([1.0], 0.1, [0.1], 0.0, False)

    def flow_fn(a, b):  # the objects move 2 px right, the background 1 px down (20x28: short side 20)
        pairs.append((a.shape, b.shape))
        flow = np.zeros(a.shape[:2] + (2,), np.float32)
        flow[..., 1] = 1.0
        flow[ids > 0] = (2.0, 0.0)
        return flow

    frames_dir, mask_path = video_on_disk
    source, first = VideoSource(frames_dir), read_first_mask(mask_path)
    ids, _ = first_ids_at_size(first, (20, 28))
    config = RecurrentFinetuneConfig(match_video_motion=True)
    prepare = recurrent_finetuning_prepare(model, object(), 28, config, Recorder, flow_fn=flow_fn)
    prepare(source, first)
    assert pairs == [((20, 28, 3), (20, 28, 3))]
    motion = video_motion(flow_fn(np.zeros((20, 28, 3)), np.zeros((20, 28, 3))), ids)
    assert motion == pytest.approx((np.hypot(2, -1) / 20, 1 / 20))  # hand-computed
    want = config.dream.with_motion(*motion)
    assert seen[0].dream == want and seen[0].dream.camera_shift > config.dream.camera_shift
    log = prepare.log[source.name]
    assert log["motion"] == [round(m, 5) for m in motion]
    assert log["speeds"] == [round(want.object_shift / 0.012, 3), round(want.camera_shift / 0.006, 3)]
    # Fixed speeds leave the config as it is.
    fixed = recurrent_finetuning_prepare(model, object(), 28, RecurrentFinetuneConfig(), Recorder, flow_fn=flow_fn)
    fixed(source, first)
    assert seen[1] == RecurrentFinetuneConfig() and "motion" not in fixed.log[source.name]
    with pytest.raises(ValueError, match="pass flow_fn"):
        recurrent_finetuning_prepare(model, object(), 28, config, Recorder)


def test_tracing_is_not_charged_to_the_first_videos_budget(synthetic_video, tiny_model_path, monkeypatch):
    """Tracing the unrolled step happens once per finetuner (object count and frame size), on its first video:
    charged to that video's budget, it would leave the first video fewer updates than the others (on a 2-core
    AVX2 CPU at 432x243, ~40 s of tracing left 1-2 updates of 10 s in a 60 s budget). The first update is
    charged as long as the second; the rest of it is reported as trace_seconds. The clock is the test's:
    only the updates take time (0.6 s for the one that traces, then 0.05 s)."""
    import importlib
    import types

    import tensorflow as tf

    module = importlib.import_module("maskrnn_tf.inference.recurrent_finetune")

    now = [0.0]
    monkeypatch.setattr(module, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    frame, ids = _first(synthetic_video)
    finetuner = RecurrentFinetuner(load_model(tiny_model_path), 2, RecurrentFinetuneConfig(
        steps=1000, time_budget_s=1.0, num_clips=1, dream=SHORT))
    calls = []

    def fake_clip_step(batch, reverse):
        now[0] += 0.6 if not calls else 0.05
        calls.append(int(batch["frames"].shape[0]))
        return {"loss": tf.constant(1.0), "grad_norm": tf.constant(1.0)}

    finetuner._steps.clip_step = fake_clip_step
    first = finetuner.run(frame, ids, [1, 2])
    second = finetuner.run(frame, ids, [1, 2])  # traced already: every update costs 0.05 s
    assert first.stopped_by_budget and second.stopped_by_budget
    # 1.0 s of 0.05-s updates: 20 (one fewer if rounding puts the last one just over the budget).
    assert 19 <= second.steps <= 20 and abs(first.steps - second.steps) <= 1, (first.steps, second.steps)
    assert first.trace_seconds == pytest.approx(0.55) and second.trace_seconds == 0.0
    assert first.seconds == pytest.approx(first.trace_seconds + 0.05 * first.steps)


def test_prepare_takes_the_reserved_seconds_off_each_videos_budget(video_on_disk):
    """`prepare.reserve_s` (set by the cycle check to what its checks cost) comes out of the time budget of the
    next video's finetuning; without a budget there is nothing to take it from."""
    from maskrnn_tf.inference import VideoSource, read_first_mask
    from maskrnn_tf.inference.recurrent_finetune import RecurrentFinetuneResult, recurrent_finetuning_prepare
    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    model = MaskRNN(MaskRNNConfig(width=0.125, fc_units=16))
    budgets = []

    class Recorder:
        def __init__(self, model_, num_objects, config):
            self.config = config

        def run(self, frame, ids, object_ids):
            budgets.append(self.config.time_budget_s)
            return RecurrentFinetuneResult([1.0], 0.1, [0.1], 0.0, False)

    frames_dir, mask_path = video_on_disk
    source, first = VideoSource(frames_dir), read_first_mask(mask_path)
    prepare = recurrent_finetuning_prepare(model, object(), 28, RecurrentFinetuneConfig(time_budget_s=60.0),
                                           finetuner_factory=Recorder)
    assert prepare.reserve_s == 0.0
    prepare(source, first)
    prepare.reserve_s = 12.5
    prepare(source, first)
    prepare.reserve_s = 100.0  # more than the budget: the finetuning gets next to nothing (its first update)
    prepare(source, first)
    assert budgets == [60.0, 47.5, 1e-3]
    unbudgeted = recurrent_finetuning_prepare(model, object(), 28, RecurrentFinetuneConfig(time_budget_s=0.0),
                                              finetuner_factory=Recorder)
    unbudgeted.reserve_s = 12.5
    unbudgeted(source, first)
    assert budgets[-1] == 0.0


def test_a_video_with_more_objects_than_an_update_takes_trains_them_in_turns():
    """Every object of an update is a batch element through the whole unrolled clip (memory grows with it): with
    objects_per_update=2 a 3-object video trains 2 at a time, cycling (ids 1 2, 3 1, 2 3, ...), each with its own
    mask and colour table; 0 trains all of them in every update."""
    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    tf.keras.utils.set_random_seed(2)
    model = MaskRNN(MaskRNNConfig(width=0.125, fc_units=16, color_prior_input=True, color_prior_band=0.2))
    frame = np.random.default_rng(1).integers(0, 256, (48, 64, 3)).astype(np.uint8)
    ids = np.zeros((48, 64), np.uint8)
    ids[4:16, 4:18], ids[24:40, 6:20], ids[10:30, 36:56] = 1, 2, 3
    tables = np.stack([np.full(4096, v, np.float32) for v in (0.1, 0.2, 0.3)])
    config = RecurrentFinetuneConfig(steps=5, time_budget_s=0, num_clips=1, dream=SHORT, objects_per_update=2)
    finetuner = RecurrentFinetuner(model, 3, config)
    assert finetuner.batch_objects == 2 and finetuner._steps.config.data.clip_batch_size == 2
    seen = []

    def fake_clip_step(batch, reverse):
        first_masks = batch["masks"].numpy()[:, 0]
        seen.append(([next(i for i in (1, 2, 3) if np.array_equal(m > 0.5, clip.masks[0] == i)) for m in first_masks],
                     [round(float(v), 2) for v in batch["color_model"].numpy()[:, 0]]))
        return {"loss": tf.constant(1.0), "grad_norm": tf.constant(1.0)}

    finetuner._steps.clip_step = fake_clip_step
    clip = finetuner._clips(frame, ids, [1, 2, 3])[0][0]  # the one clip every update uses (made the same way)
    finetuner.run(frame, ids, [1, 2, 3], color_model=tables)
    assert [objects for objects, _ in seen] == [[1, 2], [3, 1], [2, 3], [1, 2], [3, 1]]
    assert [rows for _, rows in seen] == [[0.1, 0.2], [0.3, 0.1], [0.2, 0.3], [0.1, 0.2], [0.3, 0.1]]
    assert RecurrentFinetuner(model, 3, dataclasses.replace(config, objects_per_update=0)).batch_objects == 3
    assert RecurrentFinetuner(model, 1, config).batch_objects == 1
    with pytest.raises(ValueError, match="objects_per_update >= 0"):
        RecurrentFinetuneConfig(objects_per_update=-1)


def test_objects_in_turns_each_get_every_clip_and_both_directions():
    """The clip and its direction follow the pass over the objects: with 2 objects trained 1 at a time, both see
    clip 0 played forwards, then clip 1 backwards (by the update count, one object got only even clips, forwards)."""
    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    model = MaskRNN(MaskRNNConfig(width=0.125, fc_units=16))
    frame = np.random.default_rng(3).integers(0, 256, (40, 56, 3)).astype(np.uint8)
    ids = np.zeros((40, 56), np.uint8)
    ids[4:16, 4:18], ids[20:34, 30:50] = 1, 2
    config = RecurrentFinetuneConfig(steps=4, time_budget_s=0, num_clips=2, dream=SHORT, objects_per_update=1,
                                     reverse_every_other=True)
    finetuner = RecurrentFinetuner(model, 2, config)
    clips = finetuner._clips(frame, ids, [1, 2])[0]
    seen = []

    def fake_clip_step(batch, reverse):
        mask = batch["masks"].numpy()[0, 0] > 0.5
        clip = next(k for k in (0, 1) if np.array_equal(batch["frames"].numpy()[0], clips[k].frames))
        seen.append((next(i for i in (1, 2) if np.array_equal(mask, clips[clip].masks[0] == i)), clip, bool(reverse)))
        return {"loss": tf.constant(1.0), "grad_norm": tf.constant(1.0)}

    finetuner._steps.clip_step = fake_clip_step
    finetuner.run(frame, ids, [1, 2])
    assert seen == [(1, 0, False), (2, 0, False), (1, 1, True), (2, 1, True)]


def test_objects_in_turns_that_do_not_divide_the_count_still_get_every_clip_and_both_directions():
    """With 3 objects, 2 per update, a pass over the objects is 2 updates (the second wraps: 3 1) and no update
    crosses a pass: every object sees clip 0 forwards in passes 0 and 2 and clip 1 backwards in pass 1. (The clip
    chosen by the pass an update starts in gave object 1 clip 0 forwards only: passes 0, 0, 1, 2, 2, 3.)"""
    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    model = MaskRNN(MaskRNNConfig(width=0.125, fc_units=16))
    frame = np.random.default_rng(3).integers(0, 256, (40, 56, 3)).astype(np.uint8)
    ids = np.zeros((40, 56), np.uint8)
    ids[4:16, 4:18], ids[20:34, 30:50], ids[24:36, 4:16] = 1, 2, 3
    config = RecurrentFinetuneConfig(steps=6, time_budget_s=0, num_clips=2, dream=SHORT, objects_per_update=2,
                                     reverse_every_other=True)
    finetuner = RecurrentFinetuner(model, 3, config)
    clips = finetuner._clips(frame, ids, [1, 2, 3])[0]
    seen = []

    def fake_clip_step(batch, reverse):
        clip = next(k for k in (0, 1) if np.array_equal(batch["frames"].numpy()[0], clips[k].frames))
        objects = [next(i for i in (1, 2, 3) if np.array_equal(m > 0.5, clips[clip].masks[0] == i))
                   for m in batch["masks"].numpy()[:, 0]]
        seen.append((objects, clip, bool(reverse)))
        return {"loss": tf.constant(1.0), "grad_norm": tf.constant(1.0)}

    finetuner._steps.clip_step = fake_clip_step
    finetuner.run(frame, ids, [1, 2, 3])
    assert seen == [([1, 2], 0, False), ([3, 1], 0, False), ([2, 3], 1, True), ([1, 2], 1, True),
                    ([3, 1], 0, False), ([2, 3], 0, False)]
    for obj in (1, 2, 3):
        assert {(c, r) for objects, c, r in seen if obj in objects} == {(0, False), (1, True)}


def test_a_finetuner_in_turns_runs_videos_of_any_count_that_trains_as_many_per_update(video_on_disk):
    """One traced step per (objects per update, frame size): a finetuner of 4 objects per update, built for a
    5-object video, runs a 6-object one in turns of 4 (rows 0-3, then 4 5 0 1, then 2-5) and refuses 3 objects
    (3 per update: another step); segment's callback keeps one finetuner for the 5- and the 6-object video."""
    from maskrnn_tf.inference import VideoSource
    from maskrnn_tf.inference.first_mask import FirstMask
    from maskrnn_tf.inference.recurrent_finetune import RecurrentFinetuneResult, recurrent_finetuning_prepare
    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    model = MaskRNN(MaskRNNConfig(width=0.125, fc_units=16))
    ids = np.zeros((40, 56), np.uint8)
    for k in range(6):
        ids[2 + 6 * k:6 + 6 * k, 4:12] = k + 1
    frame = np.random.default_rng(4).integers(0, 256, (40, 56, 3)).astype(np.uint8)
    config = RecurrentFinetuneConfig(steps=3, time_budget_s=0, num_clips=1, dream=SHORT, objects_per_update=4)
    finetuner = RecurrentFinetuner(model, 5, config)
    rows = []
    finetuner._steps.clip_step = lambda batch, reverse: rows.append(int(batch["masks"].shape[0])) or {
        "loss": tf.constant(1.0), "grad_norm": tf.constant(1.0)}
    finetuner.run(frame, ids, [1, 2, 3, 4, 5, 6])
    assert rows == [4, 4, 4] and [finetuner._group(i, 6) for i in range(3)] == [[0, 1, 2, 3], [4, 5, 0, 1],
                                                                                 [2, 3, 4, 5]]
    with pytest.raises(ValueError, match="3 object ids for a finetuner whose updates train 4 objects"):
        finetuner.run(frame, np.where(ids > 3, 0, ids), [1, 2, 3])

    built = []

    class Recorder:
        def __init__(self, model_, num_objects, config_):
            built.append(num_objects)

        def run(self, frame_, ids_, object_ids):
            return RecurrentFinetuneResult([1.0], 0.1, [0.1], 0.0, False)

    frames_dir, _ = video_on_disk
    source = VideoSource(frames_dir)
    prepare = recurrent_finetuning_prepare(model, object(), None, config, finetuner_factory=Recorder)
    for count in (5, 6):
        labels = np.where(ids > count, 0, ids).astype(np.uint8)
        prepare(source, FirstMask(labels, tuple(range(1, count + 1)), np.zeros((256, 3), np.uint8)))
    assert built == [5]


def test_a_colour_prior_network_is_finetuned_with_tables_of_the_whole_first_frame():
    """model.color_prior_input: every update's recurrence gets the objects' tables, by default fitted on the whole
    first frame (not its crop window): the first loss is the recurrence written out with those tables, and differs
    with tables of the crop; tables given are used instead."""
    from maskrnn_tf.inference.color_gate import fit_color_model
    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    tf.keras.utils.set_random_seed(6)
    model = MaskRNN(MaskRNNConfig(width=0.125, fc_units=16, color_prior_input=True, color_prior_band=0.2))
    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, (48, 80, 3)).astype(np.uint8)
    frame[:, :30] = (30, 160, 40)  # a green left part that the crop window leaves out
    ids = np.zeros((48, 80), np.uint8)
    ids[20:30, 50:62] = 3
    frame[ids == 3] = (200, 30, 30)
    config = RecurrentFinetuneConfig(steps=1, time_budget_s=0, num_clips=1, dream=SHORT, crop=40)
    top, left, height, width = crop_window(ids, [3], 40)
    clip = dream_clip(frame[top:top + height, left:left + width], ids[top:top + height, left:left + width], seed=0,
                      config=SHORT, motion_size=48)

    def reference(tables):
        prev = (clip.masks[0] == 3).astype(np.float32)[None]
        boxes, _ = mask_to_box(tf.constant(prev))
        total = 0.0
        for t in range(1, clip.frames.shape[0]):
            out = model.step(clip.frames[t], clip.flows_to_prev[t], clip.flows_to_next[t], prev, boxes,
                             training=True, color_model=tables)
            truth = (clip.masks[t] == 3).astype(np.float32)[None]
            total += frame_losses(out, truth, None, model.config.delta_weights, 1.0, 1.0)["total"].numpy()
            prev, boxes = out["probs"], out["boxes"]
        return float(np.mean(total))

    whole = fit_color_model(frame, ids, [3], 0.2, space="rgb")
    cropped = fit_color_model(frame[top:top + height, left:left + width], ids[top:top + height, left:left + width],
                              [3], 0.2, space="rgb")
    expected = reference(whole)
    finetuner = RecurrentFinetuner(model, 1, config)
    assert finetuner.loss(frame, ids, [3]) == pytest.approx(expected, rel=1e-4)
    assert abs(expected - reference(cropped)) > 1e-4 * abs(expected)
    assert clip_batch(clip, [3], whole)["color_model"].shape == (1, 4096)
    # Tables given (segment's, from the video's own first frame) are the ones used.
    assert finetuner.loss(frame, ids, [3], color_model=cropped) == pytest.approx(reference(cropped), rel=1e-4)
    result = finetuner.run(frame, ids, [3])  # the loss of its one update is taken before the update
    assert result.losses[0] == pytest.approx(expected, rel=1e-4)


def test_the_finetuning_step_takes_every_loss_setting(tiny_model_path):
    """The soft Jaccard term and the localization loss's IoU floor reach stage B's step (they were left out: a
    network trained with them was finetuned without)."""
    from maskrnn_tf.inference.recurrent_finetune import _train_steps
    from maskrnn_tf.training.config import LossConfig

    config = RecurrentFinetuneConfig(seg_weight=2.0, loc_weight=0.1, class_balance=False, loc_min_iou=0.4,
                                     iou_weight=0.5)
    steps = _train_steps(load_model(tiny_model_path), 2, config)
    assert steps.config.loss == LossConfig(seg_weight=2.0, loc_weight=0.1, class_balance=False, loc_min_iou=0.4,
                                           iou_weight=0.5)


def test_budget_note_counts_the_videos_and_updates_the_budget_cut():
    log = {"a": {"updates": 8, "skipped_updates": 1, "stopped_by_budget": True},
           "b": {"updates": 50, "skipped_updates": 0, "stopped_by_budget": False},
           "c": {"updates": 11, "skipped_updates": 0, "stopped_by_budget": True, "kept_finetuning": False}}
    note = budget_note(log, 60.0)
    # applied: 8 on a (1 more skipped), 11 on c; b ran all its steps
    assert "the --finetune_budget of 60 s per video" in note
    assert ("on 2 of 3 videos, after 8-11 applied updates (1 more whose gradient was not finite and was dropped);"
            in note)
    assert "--finetune_budget=0 runs every update" in note
    assert "after 11 applied updates;" in budget_note({"c": log["c"]}, 60.0)


def test_budget_note_reads_an_ensembles_members_and_is_silent_when_nothing_was_cut():
    members = [{"updates": 7, "skipped_updates": 0, "stopped_by_budget": True}, None,
               {"updates": 12, "skipped_updates": 0, "stopped_by_budget": True}]
    log = {"a": {"updates": 19, "seconds": 120.0, "members": members},
           "b": {"updates": 100, "seconds": 90.0, "members": [{"updates": 50, "stopped_by_budget": False}, None,
                                                             {"updates": 50, "stopped_by_budget": False}]}}
    assert "on 1 of 2 videos, after 7-12 applied updates;" in budget_note(log, 30.0)
    assert budget_note({"b": log["b"]}, 30.0) is None
    assert budget_note({"a": {"updates": 200, "seconds": 9.0}}, 60.0) is None  # static finetuning keeps no budget
    assert budget_note({}, 60.0) is None and budget_note(None, 60.0) is None
