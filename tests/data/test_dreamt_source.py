"""DreamtSource: dreamt clips as a video source, and as stage B training data (`data.dream_fraction`)."""
import cv2
import numpy as np
import pytest
import tensorflow as tf

from maskrnn_tf.data.dreaming import DreamConfig, dream_clip, estimate_flows
from maskrnn_tf.data.flow_backends import DISFlow
from maskrnn_tf.data.dreamt_source import DreamtSource
from maskrnn_tf.data.pipelines import make_clip_dataset
from maskrnn_tf.data.augment import AugmentConfig
from maskrnn_tf.data.sources import synthetic_source
from maskrnn_tf.data.synthetic import SyntheticConfig
from maskrnn_tf.training.config import DataConfig
from maskrnn_tf.training.inputs import make_train_datasets

BASE = SyntheticConfig(height=48, width=64, num_frames=6, min_objects=1, max_objects=2)
CLIP = DreamConfig(num_frames=3)


@pytest.fixture(scope="module")
def base():
    return synthetic_source(3, seed=5, config=BASE)


def test_each_clip_is_dreamt_from_its_origin_frame(base):
    source = DreamtSource(base, 4, CLIP, seed=1)
    assert len(source) == 4
    for video in range(4):
        v, t = source.origin(video)
        loaded = base.load(v, [t])
        expected = dream_clip(loaded["frames"][0], loaded["masks"][0], 1 * 1_000_003 + video, CLIP)
        got = source.load(video, [0, 1, 2])
        np.testing.assert_array_equal(got["frames"], expected.frames)
        np.testing.assert_array_equal(got["masks"], expected.masks)
        np.testing.assert_array_equal(got["flows_to_prev"], expected.flows_to_prev)
        np.testing.assert_array_equal(got["flows_to_next"], expected.flows_to_next)
        np.testing.assert_array_equal(got["masks"][0], loaded["masks"][0])  # frame 0's objects are the origin's
        presence = source.presence(video)
        assert presence.shape == (3, base.num_objects(v)) and presence[0].tolist() == base.presence(v)[t].tolist()
        assert source.num_objects(video) == base.num_objects(v) and base.name(v) in source.name(video)
    # Same seed, same clips; another seed, other picks or other motion.
    again = DreamtSource(base, 4, CLIP, seed=1)
    np.testing.assert_array_equal(again.load(2, [2])["frames"], source.load(2, [2])["frames"])
    other = DreamtSource(base, 4, CLIP, seed=2)
    assert any(not np.array_equal(other.load(i, [2])["frames"], source.load(i, [2])["frames"]) for i in range(4))


def test_scale_shrinks_the_frame_before_dreaming(base):
    source = DreamtSource(base, 1, CLIP, seed=0, scale=0.5)
    v, t = source.origin(0)
    got = source.load(0, [0])
    assert got["frames"].shape == (1, 24, 32, 3)
    small = cv2.resize(base.load(v, [t])["masks"][0], (32, 24), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(got["masks"][0], small)


def test_estimated_flows_are_those_of_the_rendered_frames(base):
    """flow='dis': the clip's frames and masks, its flows DIS's on them (one frame more dreamt for the last)."""
    exact = DreamtSource(base, 2, CLIP, seed=1)
    estimated = DreamtSource(base, 2, CLIP, seed=1, flow="dis")
    v, t = exact.origin(1)
    loaded = base.load(v, [t])
    longer = dream_clip(loaded["frames"][0], loaded["masks"][0], 1 * 1_000_003 + 1, DreamConfig(num_frames=4))
    expected = estimate_flows(longer, DISFlow("medium").flow)
    got, same = estimated.load(1, [0, 1, 2]), exact.load(1, [0, 1, 2])
    for key in ("frames", "masks"):
        np.testing.assert_array_equal(got[key], same[key])
    np.testing.assert_array_equal(got["flows_to_prev"], expected.flows_to_prev)
    np.testing.assert_array_equal(got["flows_to_next"], expected.flows_to_next)
    assert not np.array_equal(got["flows_to_next"], same["flows_to_next"])


@pytest.mark.parametrize("kwargs", [dict(num_videos=0), dict(num_videos=1, scale=0.0), dict(num_videos=1, scale=1.5),
                                    dict(num_videos=1, flow="flo")])
def test_bad_arguments_raise(base, kwargs):
    with pytest.raises(ValueError, match="DreamtSource"):
        DreamtSource(base, config=CLIP, **kwargs)


def _first_batch(dataset):
    return {k: v.numpy() for k, v in next(iter(dataset)).items()}


@pytest.mark.parametrize("speed", [1.0, 2.5])
def test_dream_fraction_one_trains_stage_b_on_dreamt_clips_only(base, speed):
    data = DataConfig(height=32, width=48, clip_length=3, clip_batch_size=2, dream_fraction=1.0, dream_videos=5,
                      dream_speed=speed)
    _, clips = make_train_datasets(data, base, seed=7)
    got = _first_batch(clips)
    # The same clips read straight from the DreamtSource the inputs build (seed + 2), through the same pipeline.
    dreamt = DreamtSource(base, 5, DreamConfig(num_frames=3).with_speed(speed), seed=9, scale=0.5)
    want = _first_batch(make_clip_dataset(dreamt, clip_length=3, augment=AugmentConfig(crop_size=(32, 48)),
                                          seed=10, batch_size=2))
    assert got.keys() == want.keys()
    for key in got:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    assert got["frames"].shape == (2, 3, 32, 48, 3)


def test_dream_fraction_zero_keeps_the_real_clips(base):
    data = DataConfig(height=32, width=48, clip_length=3, clip_batch_size=2)
    _, clips = make_train_datasets(data, base, seed=7)
    want = make_clip_dataset(base, clip_length=3, augment=AugmentConfig(crop_size=(32, 48)), seed=8, batch_size=2)
    got, want = _first_batch(clips), _first_batch(want)
    for key in got:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_a_mix_draws_from_both(base):
    data = DataConfig(height=32, width=48, clip_length=3, clip_batch_size=1, dream_fraction=0.5, dream_videos=5)
    _, clips = make_train_datasets(data, base, seed=7)
    real = make_clip_dataset(base, clip_length=3, augment=AugmentConfig(crop_size=(32, 48)), seed=8, batch_size=1)
    real_first = [b["frames"].numpy() for b in real.take(20)]
    from_real = 0
    for batch in clips.take(20):
        from_real += any(np.array_equal(batch["frames"].numpy(), r) for r in real_first)
    assert 3 <= from_real <= 17  # about half, and not all or none


@pytest.mark.parametrize("values", [dict(dream_fraction=1.5), dict(dream_videos=0), dict(dream_scale=0.0),
                                    dict(dream_flow="flo")])
def test_bad_dream_settings_raise(values):
    with pytest.raises(ValueError, match="dream_fraction|dream_flow"):
        DataConfig(**values)


def test_the_mixed_iterator_checkpoints_and_resumes_in_place(base, tmp_path):
    data = DataConfig(height=32, width=48, clip_length=3, clip_batch_size=1, dream_fraction=0.5, dream_videos=5)
    _, clips = make_train_datasets(data, base, seed=3)
    iterator = iter(clips)
    for _ in range(3):
        next(iterator)
    prefix = tf.train.Checkpoint(data=iterator).save(str(tmp_path / "ckpt"))
    expected = [next(iterator)["frames"].numpy() for _ in range(4)]
    _, fresh = make_train_datasets(data, base, seed=3)
    resumed = iter(fresh)
    tf.train.Checkpoint(data=resumed).restore(prefix).assert_consumed()
    for want in expected:
        np.testing.assert_array_equal(next(resumed)["frames"].numpy(), want)
