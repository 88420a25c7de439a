"""Dreamt clips (maskrnn_tf.data.dreaming): exact masks and flows, depth order, determinism, inpainting."""
import dataclasses
import os

import cv2
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from scipy import ndimage
from scipy.spatial import cKDTree

from maskrnn_tf.data.dreaming import (MEDIAN_SPEED_FRACTION, DreamConfig, _speeds, dream_clip, estimate_flows,
                                      inpaint_background, video_motion)
from maskrnn_tf.data.flow_backends import DISFlow
from maskrnn_tf.ops import warp_with_flow

# Strong enough motion that a wrong flow (sign, axis order, frame pair) cannot pass the checks below.
BRISK = DreamConfig(num_frames=5, camera_shift=0.02, camera_rotation_deg=1.0, camera_zoom=0.01,
                    object_shift=0.04, object_rotation_deg=3.0, object_zoom=0.02, nonrigid=0.05)
STILL = DreamConfig(num_frames=4, camera_shift=0, camera_rotation_deg=0, camera_zoom=0, object_shift=0,
                    object_rotation_deg=0, object_zoom=0, nonrigid=0, gain_drift=0, bias_drift=0, gamma_drift=0)


def _texture(rng, height, width, low, high):
    """A smooth random colour texture (uint8) with each channel in [low, high]."""
    coarse = rng.uniform(0, 1, size=(height // 8 + 2, width // 8 + 2, 3)).astype(np.float32)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    return (np.asarray(low) + smooth * (np.asarray(high) - np.asarray(low))).astype(np.uint8)


def _two_objects(height=96, width=128):
    """A frame with a reddish ellipse (id 1) and a bluish one (id 2) side by side on a green background."""
    rng = np.random.default_rng(0)
    frame = _texture(rng, height, width, (20, 120, 20), (60, 200, 60))
    ids = np.zeros((height, width), np.uint8)
    cv2.ellipse(ids, (44, 48), (20, 26), 10, 0, 360, 1, -1)
    cv2.ellipse(ids, (80, 50), (18, 24), -15, 0, 360, 2, -1)  # drawn over the first one's edge: they touch
    frame[ids == 1] = _texture(rng, height, width, (170, 10, 10), (250, 70, 60))[ids == 1]
    frame[ids == 2] = _texture(rng, height, width, (10, 10, 170), (60, 70, 250))[ids == 2]
    return frame, ids


@pytest.fixture(scope="module")
def davis_frame(shared_data):
    """Frame 0 of the DAVIS-2016 train sequence `lucia` and its mask, downscaled to 120x216."""
    root = os.path.join(shared_data, "DAVIS-2016")
    frame = np.array(Image.open(os.path.join(root, "JPEGImages", "480p", "lucia", "00000.jpg")).convert("RGB"))
    mask = np.array(Image.open(os.path.join(root, "Annotations", "480p", "lucia", "00000.png")).convert("L"))
    frame = cv2.resize(frame, (216, 120), interpolation=cv2.INTER_AREA)
    ids = cv2.resize((mask > 127).astype(np.uint8), (216, 120), interpolation=cv2.INTER_NEAREST)
    return frame, ids


def _fb_consistent(flow_bwd, flow_fwd, tolerance=0.5):
    """[T-1, H, W] bool: pixels of frame t+1 whose flow to t is undone by frame t's flow to t+1 there."""
    back = warp_with_flow(tf.constant(flow_fwd), tf.constant(flow_bwd)).numpy()
    return np.linalg.norm(flow_bwd + back, axis=-1) < tolerance


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


@pytest.mark.parametrize("source", ["davis", "two_objects"])
def test_warped_previous_mask_reproduces_the_mask(source, davis_frame):
    frame, ids = davis_frame if source == "davis" else _two_objects()
    clip = dream_clip(frame, ids, seed=1, config=BRISK)
    valid = _fb_consistent(clip.flow_bwd, clip.flow_fwd)
    assert valid.mean() > 0.9  # the occlusion bands are a small part of the frame
    for object_id in np.unique(ids)[1:]:
        previous = tf.constant(clip.masks[:-1] == object_id, tf.float32)[..., None]
        truth = clip.masks[1:] == object_id
        # As the model does it: mask t-1 moved into frame t with the flow from t to t-1.
        warped = warp_with_flow(previous, tf.constant(clip.flow_bwd))[..., 0].numpy() > 0.5
        assert _iou(warped & valid, truth & valid) >= 0.98
        # The bar discriminates: no flow, the reversed flow or (v, u) for (u, v) all miss it.
        for wrong in (0 * clip.flow_bwd, -clip.flow_bwd, clip.flow_bwd[..., ::-1].copy()):
            moved = warp_with_flow(previous, tf.constant(wrong))[..., 0].numpy() > 0.5
            assert _iou(moved & valid, truth & valid) < 0.975


def test_forward_and_backward_flow_agree(davis_frame):
    frame, ids = davis_frame
    clip = dream_clip(frame, ids, seed=2, config=BRISK)
    _, height, width = clip.masks.shape
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    checked = 0
    for t in range(clip.flow_fwd.shape[0]):
        tx, ty = xx + clip.flow_fwd[t, ..., 0], yy + clip.flow_fwd[t, ..., 1]
        # Independent bilinear lookup of the backward flow at the forward target.
        back = np.stack([ndimage.map_coordinates(clip.flow_bwd[t, ..., c], [ty, tx], order=1, mode="nearest")
                         for c in range(2)], -1)
        error = np.hypot(clip.flow_fwd[t, ..., 0] + back[..., 0], clip.flow_fwd[t, ..., 1] + back[..., 1])
        # Occlusions from the masks alone: the target lies in the image, shows the same label, and is not
        # within 2 px of a label edge (where bilinear lookup mixes two layers' flows).
        inside = (tx >= 0) & (tx <= width - 1) & (ty >= 0) & (ty <= height - 1)
        nearest = clip.masks[t + 1][np.clip(np.rint(ty), 0, height - 1).astype(int),
                                    np.clip(np.rint(tx), 0, width - 1).astype(int)]
        edges = ndimage.binary_dilation(ndimage.morphological_gradient(clip.masks[t + 1], size=3) > 0,
                                        iterations=2)
        edge_at_target = edges[np.clip(np.rint(ty), 0, height - 1).astype(int),
                               np.clip(np.rint(tx), 0, width - 1).astype(int)]
        valid = inside & (nearest == clip.masks[t]) & ~edge_at_target
        assert valid.mean() > 0.8
        assert error[valid].max() < 0.5
        checked += valid.sum()
    assert checked > 0.8 * clip.flow_fwd[..., 0].size


@pytest.fixture(scope="module")
def overlapping_clips():
    """For each depth order of the two objects, the first seed's clip in which they overlap (deterministic)."""
    frame, ids = _two_objects()
    config = dataclasses.replace(BRISK, num_frames=4, object_shift=0.06)
    background = inpaint_background(frame, ids)
    found = {}
    for seed in range(30):
        clip = dream_clip(frame, ids, seed, config, background=background, keep_layers=True)
        both = (clip.layer_alpha[:, 0] >= 0.5) & (clip.layer_alpha[:, 1] >= 0.5)
        if both.sum() > 50 and clip.depth_order not in found:
            found[clip.depth_order] = (clip, both)
        if len(found) == 2:
            return list(found.values())
    raise AssertionError(f"seeds 0..29 made the objects overlap only in the orders {sorted(found)}")


@pytest.mark.parametrize("which", [0, 1])
def test_depth_order_decides_mask_and_flow(which, overlapping_clips):
    clip, both = overlapping_clips[which]
    back_id, front_id = clip.depth_order
    assert sorted(clip.depth_order) == [1, 2]
    # The mask shows the front object wherever the two overlap.
    assert np.all(clip.masks[both] == front_id)
    # The flow there is the front object's own flow, not the back one's (they differ where they overlap).
    front, back = clip.layer_flow_fwd[:, front_id - 1], clip.layer_flow_fwd[:, back_id - 1]
    overlap = both[:-1]
    np.testing.assert_array_equal(clip.flow_fwd[overlap], front[overlap])
    assert np.median(np.linalg.norm(front[overlap] - back[overlap], axis=-1)) > 1.0
    # Elsewhere every object pixel carries its own layer's flow.
    for object_id in (1, 2):
        own = clip.masks[:-1] == object_id
        np.testing.assert_array_equal(clip.flow_fwd[own], clip.layer_flow_fwd[:, object_id - 1][own])
    # The frames agree: the front object's colours (red or blue) are what the overlap shows.
    red_front = front_id == 1
    pixels = clip.frames[both].astype(int)
    assert np.mean((pixels[:, 0] > pixels[:, 2]) == red_front) > 0.95


def test_object_windows_change_nothing(davis_frame):
    """Objects are rendered on their windows; over the whole frame (keep_layers) the clip is the same."""
    frame, ids = davis_frame
    windowed = dream_clip(frame, ids, seed=4, config=BRISK)
    whole = dream_clip(frame, ids, seed=4, config=BRISK, keep_layers=True)
    np.testing.assert_array_equal(windowed.masks, whole.masks)
    assert np.abs(windowed.frames.astype(int) - whole.frames).max() <= 1
    np.testing.assert_allclose(windowed.flow_fwd, whole.flow_fwd, atol=1e-3)
    np.testing.assert_allclose(windowed.flow_bwd, whole.flow_bwd, atol=1e-3)
    # A single object is visible exactly where its coverage reaches one half.
    assert whole.layer_alpha.shape == (BRISK.num_frames, 1) + ids.shape
    np.testing.assert_array_equal(whole.layer_alpha[:, 0] >= 0.5, whole.masks == 1)


def test_same_seed_same_clip_other_seed_other_clip(davis_frame):
    frame, ids = davis_frame
    config = dataclasses.replace(BRISK, num_frames=3)
    a, b, c = (dream_clip(frame, ids, s, config) for s in (5, 5, 6))
    for key in ("frames", "masks", "flow_fwd", "flow_bwd"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
        assert not np.array_equal(getattr(a, key), getattr(c, key)), key
    assert a.frames.shape == (3, 120, 216, 3) and a.frames.dtype == np.uint8
    assert a.masks.dtype == np.uint8 and set(np.unique(a.masks)) <= {0, 1}
    assert a.flow_fwd.shape == a.flow_bwd.shape == (2, 120, 216, 2) and a.flow_fwd.dtype == np.float32
    # The model's per-frame flows: zeros before the first frame, the flow to the unrendered next frame after
    # the last (a clip cut from a video has it too).
    assert a.flows_to_prev.shape == (3, 120, 216, 2) and not a.flows_to_prev[0].any()
    np.testing.assert_array_equal(a.flows_to_prev[1:], a.flow_bwd)
    np.testing.assert_array_equal(a.flows_to_next[:-1], a.flow_fwd)
    np.testing.assert_array_equal(a.flows_to_next[-1], a.flow_next)


def test_the_last_frames_flow_to_next_is_the_flow_to_the_frame_a_longer_clip_renders(davis_frame):
    """A clip is the start of a longer clip of the same seed; its last frame's flow to the next frame is the
    longer clip's flow to the frame it renders next (on the model's input, not zeros)."""
    frame, ids = davis_frame
    short = dream_clip(frame, ids, seed=7, config=dataclasses.replace(BRISK, num_frames=3))
    longer = dream_clip(frame, ids, seed=7, config=dataclasses.replace(BRISK, num_frames=4))
    for key in ("frames", "masks", "flow_fwd", "flow_bwd"):
        np.testing.assert_array_equal(getattr(short, key), getattr(longer, key)[:len(getattr(short, key))], key)
    np.testing.assert_array_equal(short.flows_to_next, longer.flows_to_next[:3])
    assert np.linalg.norm(short.flows_to_next[-1], axis=-1).mean() > 0.5  # BRISK moves every layer


def test_estimated_flows_ask_for_each_pair_in_the_models_direction(davis_frame):
    """estimate_flows keeps the first T-1 frames and their exact masks, and takes every flow the model reads
    (to the previous frame, to the next one, the last frame's included) from flow_fn on the rendered frames;
    DIS gets close to the exact flow (median error 0.07 px for 1.5 px of motion here) but not equal."""
    frame, ids = davis_frame
    longer = dream_clip(frame, ids, seed=7, config=dataclasses.replace(BRISK, num_frames=4))
    short = dream_clip(frame, ids, seed=7, config=dataclasses.replace(BRISK, num_frames=3))
    index = {f.tobytes(): t for t, f in enumerate(longer.frames)}

    def tagging(a, b):  # the flow (u, v) = (index of frame a, index of frame b) everywhere
        return np.broadcast_to(np.float32([index[a.tobytes()], index[b.tobytes()]]), a.shape[:2] + (2,))

    tagged = estimate_flows(longer, tagging)
    np.testing.assert_array_equal(tagged.frames, short.frames)
    np.testing.assert_array_equal(tagged.masks, short.masks)
    assert tagged.flows_to_prev[1:, 5, 5].tolist() == [[1, 0], [2, 1]]
    assert tagged.flows_to_next[:, 5, 5].tolist() == [[0, 1], [1, 2], [2, 3]]
    assert tagged.flows_to_prev.shape == short.flows_to_prev.shape
    assert tagged.flows_to_next.shape == short.flows_to_next.shape

    dis = estimate_flows(longer, DISFlow("medium").flow)
    for name in ("flows_to_prev", "flows_to_next"):
        error = np.linalg.norm(getattr(dis, name) - getattr(short, name), axis=-1)
        assert np.median(error) < 0.3 and error.max() > 0.5, name
    with pytest.raises(ValueError, match="at least 3 frames"):
        estimate_flows(dream_clip(frame, ids, seed=7, config=dataclasses.replace(BRISK, num_frames=2)), tagging)


def test_a_crop_dreamt_with_the_frames_motion_size_moves_as_the_frame_does():
    """Shifts are fractions of a length: min(H, W) by default, the whole frame's for a crop of it
    (recurrent finetuning's --finetune_crop), so that cropping does not slow the dreamt motion down."""
    frame, _ = _two_objects(96, 128)
    ids = np.zeros((96, 128), np.uint8)  # background only: the camera's translation is the flow everywhere
    camera = dataclasses.replace(STILL, num_frames=3, camera_shift=0.03)
    whole = dream_clip(frame, ids, seed=3, config=camera)
    crop = (slice(24, 72), slice(32, 96))  # 48 x 64
    same = dream_clip(frame[crop], ids[crop], seed=3, config=camera, motion_size=96)
    slower = dream_clip(frame[crop], ids[crop], seed=3, config=camera)
    shift = whole.flow_fwd[:, 48, 64]
    assert np.abs(shift).max() > 0.5
    np.testing.assert_allclose(whole.flow_fwd[:, :, :].reshape(2, -1, 2), np.repeat(shift[:, None], 96 * 128, 1),
                               atol=1e-4)  # a pure translation
    np.testing.assert_allclose(same.flow_fwd[:, 24, 32], shift, atol=1e-4)
    np.testing.assert_allclose(slower.flow_fwd[:, 24, 32], shift / 2, atol=1e-4)  # min side 48, not 96
    with pytest.raises(ValueError, match="motion_size"):
        dream_clip(frame, ids, seed=3, config=camera, motion_size=0)


def test_speed_multiplies_the_camera_and_object_translations():
    """DreamConfig.with_speed(k): the camera's and each object's translation paths times k, nothing else."""
    frame, ids = _two_objects(96, 128)
    moving = dataclasses.replace(STILL, num_frames=3, camera_shift=0.01, object_shift=0.02)
    slow = dream_clip(frame, ids, seed=2, config=moving)
    fast = dream_clip(frame, ids, seed=2, config=moving.with_speed(3))
    assert moving.with_speed(3) == dataclasses.replace(moving, camera_shift=0.03, object_shift=0.06)
    # Translations only: every layer's flow is one vector. Where a layer shows in both clips, 3x the vector.
    for t in range(2):
        for object_id in (0, 1, 2):
            on = (slow.masks[t] == object_id) & (fast.masks[t] == object_id)
            assert on.sum() > 100
            vector = np.median(slow.flow_fwd[t][on], axis=0)
            assert np.abs(vector).max() > 0.1
            np.testing.assert_allclose(fast.flow_fwd[t][on], np.broadcast_to(3 * vector, (on.sum(), 2)), atol=1e-3)
    with pytest.raises(ValueError, match="speed must be > 0"):
        moving.with_speed(0)


def test_median_speed_fraction_is_the_median_of_the_sampled_speeds():
    speeds = []
    for seed in range(3000):
        rng = np.random.default_rng(seed)
        dx, dy = _speeds(rng, 9, 1.0), _speeds(rng, 9, 1.0)  # the camera's or an object's (dx, dy) draws
        speeds.append(np.hypot(dx, dy))
    assert np.median(np.concatenate(speeds)) == pytest.approx(MEDIAN_SPEED_FRACTION, abs=0.01)


def test_video_motion_and_with_motion():
    """video_motion: hand-computed medians; with_motion: shifts whose median speed is the measured motion,
    kept within speed_range of the defaults."""
    ids = np.zeros((40, 60), np.uint8)
    ids[10:20, 10:30] = 1
    ids[25:30, 40:50] = 2
    ids[0, :] = 255  # void: neither object nor background
    flow = np.zeros((40, 60, 2), np.float32)
    flow[..., 0] = -0.5  # the camera pans left half a pixel
    flow[ids == 1] = (0.3, 0.2)
    flow[ids == 2] = (0.3, 0.2)
    flow[0, :] = (100.0, 100.0)
    obj, camera = video_motion(flow, ids)
    assert (obj, camera) == pytest.approx((np.hypot(0.8, 0.2) / 40, 0.5 / 40))
    assert video_motion(flow, np.zeros_like(ids)) == (0.0, 0.0)
    base = DreamConfig()
    matched = base.with_motion(obj, camera)
    assert matched.object_shift == pytest.approx(obj / MEDIAN_SPEED_FRACTION)
    assert matched.camera_shift == pytest.approx(camera / MEDIAN_SPEED_FRACTION)
    assert (matched.camera_rotation_deg, matched.nonrigid) == (base.camera_rotation_deg, base.nonrigid)
    still = base.with_motion(0.0, 0.0)
    assert (still.object_shift, still.camera_shift) == (0.5 * base.object_shift, 0.5 * base.camera_shift)
    wild = base.with_motion(1.0, 1.0)
    assert (wild.object_shift, wild.camera_shift) == pytest.approx((8 * base.object_shift, 8 * base.camera_shift))
    with pytest.raises(ValueError, match="does not fit"):
        video_motion(flow[:10], ids)


def test_without_motion_the_clip_is_the_frame():
    frame, ids = _two_objects()
    clip = dream_clip(frame, ids, seed=0, config=STILL)
    assert not clip.flow_fwd.any() and not clip.flow_bwd.any()
    for t in range(STILL.num_frames):
        np.testing.assert_array_equal(clip.masks[t], ids)
        # Objects are exactly the source pixels; only the dilated ring around them shows inpainting.
        np.testing.assert_array_equal(clip.frames[t][ids > 0], frame[ids > 0])
        far = cv2.dilate((ids > 0).astype(np.uint8), np.ones((13, 13), np.uint8)) == 0
        np.testing.assert_array_equal(clip.frames[t][far], frame[far])


def test_illumination_changes_frames_only():
    frame, ids = _two_objects()
    lit = dataclasses.replace(STILL, num_frames=6, gain_drift=0.05, bias_drift=4.0, gamma_drift=0.05)
    clip = dream_clip(frame, ids, seed=3, config=lit)
    assert not clip.flow_fwd.any()
    np.testing.assert_array_equal(clip.masks, np.broadcast_to(ids, clip.masks.shape))
    np.testing.assert_array_equal(clip.frames[0][ids > 0], frame[ids > 0])  # frame 0 is unlit
    change = [np.abs(clip.frames[t].astype(float) - clip.frames[0]).mean() for t in range(lit.num_frames)]
    assert change[-1] > 4.0
    # The drift is smooth: consecutive frames differ less than the first and last.
    steps = [np.abs(clip.frames[t + 1].astype(float) - clip.frames[t]).mean() for t in range(lit.num_frames - 1)]
    assert max(steps) < change[-1]
    # A global photometric change: per channel, frame t is one non-decreasing function of (unlit) frame 0.
    for c in range(3):
        before, after = clip.frames[0][..., c].ravel(), clip.frames[-1][..., c].ravel()
        levels = np.unique(before)
        lowest = np.array([after[before == v].min() for v in levels])
        highest = np.array([after[before == v].max() for v in levels])
        np.testing.assert_array_equal(lowest, highest)  # same input level, same output level
        assert np.all(np.diff(lowest.astype(int)) >= 0)


@pytest.mark.parametrize("source", ["davis", "two_objects"])
def test_background_has_no_object_colours_left(source, davis_frame):
    frame, ids = davis_frame if source == "davis" else _two_objects()
    background = inpaint_background(frame, ids)
    hole = ids > 0
    ring = (cv2.dilate(hole.astype(np.uint8), np.ones((31, 31), np.uint8)) > 0) & ~cv2.dilate(
        hole.astype(np.uint8), np.ones((11, 11), np.uint8)).astype(bool)
    for object_id in np.unique(ids)[1:]:
        region = ids == object_id
        obj, around = frame[region].astype(float), frame[ring].astype(float)
        labels = np.r_[np.ones(len(obj)), np.zeros(len(around))]
        tree = cKDTree(np.concatenate([obj, around]))

        def object_like(colours, skip=0):
            """Fraction of colours whose 5 nearest colours (class sizes balanced) are mostly the object's."""
            _, index = tree.query(colours, k=5 + skip)
            votes = labels[index[:, skip:]]
            return np.mean(votes.sum(1) / len(obj) > (1 - votes).sum(1) / len(around))

        # In the frame, the object's pixels are told apart from its surroundings by colour (leave-one-out) ...
        assert object_like(obj, skip=1) > 0.9
        # ... in the inpainted background, where the object was, hardly a pixel looks like the object.
        assert object_like(background[region].astype(float)) < 0.05
    # Outside the dilated hole the background is the frame, untouched.
    untouched = cv2.dilate(hole.astype(np.uint8), np.ones((11, 11), np.uint8)) == 0
    np.testing.assert_array_equal(background[untouched], frame[untouched])


def test_void_is_background_and_bad_inputs_are_named():
    frame, ids = _two_objects()
    ids = ids.copy()
    ids[:5] = 255
    clip = dream_clip(frame, ids, seed=0, config=dataclasses.replace(STILL, num_frames=2))
    assert set(np.unique(clip.masks)) == {0, 1, 2}  # void is not an object and is not carried over
    with pytest.raises(ValueError, match=r"frame must be uint8 \[H, W, 3\], got float32"):
        dream_clip(frame.astype(np.float32), ids, seed=0)
    with pytest.raises(ValueError, match=r"ids must be uint8 \[H, W\] matching the frame \(96, 128\)"):
        dream_clip(frame, ids[:50], seed=0)
    with pytest.raises(ValueError, match="num_frames must be >= 2"):
        DreamConfig(num_frames=1)
    with pytest.raises(ValueError, match="negative: object_shift"):
        DreamConfig(object_shift=-1.0)
