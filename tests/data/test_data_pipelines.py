"""Synthetic videos, augmentation, perturbation and the three tf.data pipelines."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from maskrnn_tf.data.augment import AugmentConfig, apply_transform, object_maps, sample_transform
from maskrnn_tf.data.perturb import PerturbConfig, mask_iou, perturb_mask
from maskrnn_tf.data.pipelines import make_clip_dataset, make_finetune_dataset, make_static_dataset
from maskrnn_tf.data.sources import ArraySource, synthetic_source
from maskrnn_tf.data.synthetic import SyntheticConfig, generate_video
from maskrnn_tf.ops import warp_with_flow

# One large object with mild motion. Backward warping cannot be right on the band an object uncovers (its
# trailing edge shows background that was hidden at t-1), so comparisons skip the pixels that fail the
# forward-backward check (the standard occlusion test): flow_to_prev(p) + flow_to_next(p + flow_to_prev(p)).
SMOOTH = SyntheticConfig(height=96, width=128, num_frames=6, min_objects=1, max_objects=1, min_radius=0.3,
                         max_radius=0.38, max_speed=0.6, max_rotation=0.02, max_scale_amplitude=0.04,
                         background_speed=0.0)


def _consistent(to_prev, next_of_prev, tolerance=0.5):
    """[n, H, W] bool: pixels of frames 1..n whose backward flow is undone by the forward flow of t-1."""
    back = warp_with_flow(next_of_prev, to_prev)  # flow_to_next of frame t-1 sampled at p + flow_to_prev(p)
    return (tf.norm(to_prev + back, axis=-1) < tolerance).numpy()


def _iou(a, b):
    a, b = np.asarray(a) > 0.5, np.asarray(b) > 0.5
    return (a & b).sum() / max((a | b).sum(), 1)


def test_generate_video_is_deterministic_and_consistent():
    config = SyntheticConfig(height=32, width=48, num_frames=5)
    a, b, c = generate_video(3, config), generate_video(3, config), generate_video(4, config)
    for key in ("frames", "masks", "flows_to_prev", "flows_to_next"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["frames"], c["frames"])
    assert a["frames"].shape == (5, 32, 48, 3) and a["frames"].dtype == np.uint8
    assert a["flows_to_prev"].shape == (5, 32, 48, 2) and a["flows_to_prev"].dtype == np.float32
    assert not a["flows_to_prev"][0].any() and not a["flows_to_next"][-1].any()
    n = int(a["num_objects"])
    assert 1 <= n <= 4
    assert set(np.unique(a["masks"])) <= set(range(n + 1))
    assert set(np.unique(a["masks"][0])) == set(range(n + 1))  # every object visible in the first frame


def test_synthetic_flow_is_exact():
    video = generate_video(1, SMOOTH)
    masks = tf.constant(video["masks"] == 1, tf.float32)[..., None]
    to_prev = tf.constant(video["flows_to_prev"][1:])
    warped = warp_with_flow(masks[:-1], to_prev)[..., 0].numpy() > 0.5
    valid = _consistent(to_prev, tf.constant(video["flows_to_next"][:-1]))
    assert valid.mean() > 0.9
    truth = masks[1:, ..., 0].numpy() > 0.5
    assert (warped & truth & valid).sum() / ((warped | truth) & valid).sum() >= 0.98
    # The frames agree too: the exact flow explains frame t from frame t-1 far better than no motion.
    frames = tf.constant(video["frames"], tf.float32)
    moved = warp_with_flow(frames[:-1], tf.constant(video["flows_to_prev"][1:]))
    error_exact = float(tf.reduce_mean(tf.abs(moved - frames[1:])))
    error_still = float(tf.reduce_mean(tf.abs(frames[:-1] - frames[1:])))
    assert error_exact < 0.5 * error_still


def test_flow_transform_against_hand_computed_values():
    height, width = 8, 10
    flow = tf.constant(np.tile(np.array([1.0, 2.0], np.float32), (1, height, width, 1)))
    frames = tf.zeros((1, height, width, 3))

    def transformed(a):
        affine = tf.constant(a, tf.float32)
        _, _, _, flows = apply_transform(frames, {}, {"f": flow}, affine, (height, width))
        return flows["f"].numpy()[0, 3, 4]  # an interior pixel

    cx, cy = (width - 1) / 2, (height - 1) / 2
    # Horizontal flip: x_in = W - 1 - x_out -> u negated.
    np.testing.assert_allclose(transformed([[-1, 0, width - 1], [0, 1, 0]]), [-1.0, 2.0], atol=1e-5)
    # Resize by 2 (p_in = p_out / 2): vectors double.
    np.testing.assert_allclose(transformed([[0.5, 0, 0], [0, 0.5, 0]]), [2.0, 4.0], atol=1e-5)
    # Rotation by 90 degrees about the centre: p_in = R(90) (p_out - c) + c, so f_out = R(-90) f_in.
    np.testing.assert_allclose(transformed([[0, -1, cx + cy], [1, 0, cy - cx]]), [2.0, -1.0], atol=1e-5)


def test_masks_and_frames_follow_the_transform():
    frames = tf.constant(np.arange(2 * 6 * 8 * 3, dtype=np.float32).reshape(2, 6, 8, 3))
    mask = tf.constant(np.arange(2 * 6 * 8).reshape(2, 6, 8) % 3 == 0, tf.float32)
    affine = tf.constant([[-1, 0, 7], [0, 1, 0]], tf.float32)  # flip
    out_frames, maps, inside, _ = apply_transform(frames, {"m": mask}, {}, affine, (6, 8))
    np.testing.assert_allclose(out_frames.numpy(), frames.numpy()[:, :, ::-1], atol=1e-4)
    np.testing.assert_array_equal(maps["m"].numpy(), mask.numpy()[:, :, ::-1])
    assert inside.numpy().min() == 1.0
    # A crop shifted by 2 columns to the left of the image: the first two output columns are outside.
    shift = tf.constant([[1, 0, -2], [0, 1, 0]], tf.float32)
    _, maps, inside, _ = apply_transform(frames, {"m": mask}, {}, shift, (6, 8))
    np.testing.assert_array_equal(inside.numpy()[:, :, :2], 0)
    np.testing.assert_array_equal(maps["m"].numpy()[:, :, 2:], mask.numpy()[:, :, :6])


def test_antialiased_frames_are_opencv_inter_area_at_a_quarter_scale():
    import cv2

    frames = np.random.default_rng(0).integers(0, 256, (2, 64, 96, 3)).astype(np.float32)
    affine = sample_transform(tf.constant([0, 0]), tf.constant([64, 96]), AugmentConfig((16, 24), random=False))
    np.testing.assert_allclose(affine.numpy(), [[4, 0, 1.5], [0, 4, 1.5]])  # p_in = 4 p_out + 1.5
    area = np.stack([cv2.resize(f, (24, 16), interpolation=cv2.INTER_AREA) for f in frames])
    smooth, _, _, _ = apply_transform(tf.constant(frames), {}, {}, affine, (16, 24), antialias=True)
    np.testing.assert_allclose(smooth.numpy(), area, atol=1e-3)
    # Bilinear sampling alone at 4p + 1.5 reads the 2x2 pixels in the middle of each 4x4 block.
    sharp, _, _, _ = apply_transform(tf.constant(frames), {}, {}, affine, (16, 24))
    middle = frames.reshape(2, 16, 4, 24, 4, 3)[:, :, 1:3, :, 1:3].mean(axis=(2, 4))
    np.testing.assert_allclose(sharp.numpy(), middle, atol=1e-3)
    assert np.abs(sharp.numpy() - area).mean() > 10


@pytest.mark.parametrize("seed", range(4))
def test_antialiasing_leaves_every_output_pixel_where_it_was(seed):
    """A linear ramp keeps its values under box means: with the resize composed into the map, a random
    shrinking transform (scale, rotation, flip, shift) gives the ramp's values at the same places as without it."""
    height, width = 120, 200
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = np.stack([2 * x + 3 * y, x - y + 300, 0.5 * x + 10], axis=-1)[None]
    config = AugmentConfig((40, 56), min_scale=0.9, max_scale=1.3, max_rotation_deg=10)
    affine = sample_transform(tf.constant([seed, 7]), tf.constant([height, width]), config)
    assert float(tf.sqrt(tf.abs(tf.linalg.det(affine[:, :2])))) > 2  # the frames are shrunk
    smooth, _, _, _ = apply_transform(tf.constant(ramp), {}, {}, affine, (40, 56), antialias=True)
    sharp, _, _, _ = apply_transform(tf.constant(ramp), {}, {}, affine, (40, 56))
    # Output pixels that land 3 input pixels or more inside the image (at its border both blend with the fill).
    rows, cols = np.mgrid[0:40, 0:56]
    p_in = np.einsum("ij,hwj->hwi", affine.numpy()[:, :2], np.stack([cols, rows], -1)) + affine.numpy()[:, 2]
    keep = (p_in.min(-1) >= 3) & (p_in[..., 0] <= width - 4) & (p_in[..., 1] <= height - 4)
    assert keep.sum() > 0.5 * keep.size
    # Within a tenth of an input pixel (the ramp rises at most 3.6 per pixel): area means at a fractional
    # factor are that close to a linear function's value at the box centre (OpenCV's INTER_AREA too); a map
    # that missed the half-pixel shift of the resize would be a pixel off.
    np.testing.assert_allclose(smooth.numpy()[0][keep], sharp.numpy()[0][keep], atol=0.36)


def test_the_training_data_config_turns_antialiasing_on_in_both_stages():
    from maskrnn_tf.training.config import DataConfig
    from maskrnn_tf.training.inputs import make_train_datasets

    source = synthetic_source(2, seed=0)
    firsts = {}
    for antialias in (False, True):
        data = DataConfig(height=24, width=32, batch_size=1, clip_batch_size=1, clip_length=2, antialias=antialias)
        static, clips = make_train_datasets(data, source, seed=0)
        firsts[antialias] = (next(iter(static))["frame"].numpy(), next(iter(clips))["frames"].numpy())
    for plain, smooth in zip(firsts[False], firsts[True]):
        assert plain.shape == smooth.shape and np.abs(plain - smooth).mean() > 0.5


def test_augmented_clip_keeps_flow_and_masks_consistent():
    larger = dataclasses.replace(SMOOTH, height=144, width=192)  # resampling errors shrink with the object
    source = ArraySource([generate_video(s, larger) for s in (1, 2)])
    config = AugmentConfig(crop_size=(128, 160), min_scale=0.9, max_scale=1.3, max_rotation_deg=10, flip=True)
    dataset = make_clip_dataset(source, clip_length=4, augment=config, seed=5)
    inter = union = 0.0
    for clip in dataset.take(4):
        masks, flows, void = clip["masks"], clip["flows_to_prev"], clip["void"]
        warped = warp_with_flow(masks[:-1, ..., None], flows[1:])[..., 0].numpy() > 0.5
        truth = masks[1:].numpy() > 0.5
        # Skip void pixels and pixels whose match in frame t-1 falls in a void area (off the image).
        source_void = warp_with_flow(void[:-1, ..., None], flows[1:])[..., 0].numpy()
        valid = (void[1:].numpy() < 0.5) & (source_void == 0) & _consistent(flows[1:], clip["flows_to_next"][:-1])
        inter += (warped & truth & valid).sum()
        union += ((warped | truth) & valid).sum()
    assert inter / union >= 0.98


def test_clip_seed_masks_perturb_the_ends_in_the_seeded_share_of_clips():
    source = synthetic_source(3, seed=0, config=SyntheticConfig(height=48, width=64, num_frames=6))
    strong = PerturbConfig(max_scale=0.3, max_dilation=6, elastic_alpha=6.0, min_iou=0.3)
    kwargs = dict(clip_length=4, augment=AugmentConfig(crop_size=(48, 64)), seed=3, shuffle=False,
                  repeat=False, seed_perturb=strong)
    assert "seed_masks" not in next(iter(make_clip_dataset(source, **kwargs)))  # seed_fraction 0: as before
    every = list(make_clip_dataset(source, seed_fraction=1.0, **kwargs))
    again = list(make_clip_dataset(source, seed_fraction=1.0, **kwargs))
    changed = 0
    for clip, twin in zip(every, again):
        seeds, masks = clip["seed_masks"].numpy(), clip["masks"].numpy()
        np.testing.assert_array_equal(seeds, twin["seed_masks"].numpy())  # seeded: the same every time
        assert set(np.unique(seeds)) <= {0.0, 1.0}
        for seed_mask, truth in ((seeds[0], masks[0]), (seeds[1], masks[-1])):
            iou = _iou(seed_mask, truth)
            assert iou >= strong.min_iou - 1e-6  # perturb_mask's bound holds for each end
            changed += iou < 1.0
    assert changed >= len(every)  # most ends really move
    half = list(make_clip_dataset(source, seed_fraction=0.5, **kwargs))
    untouched = [np.array_equal(c["seed_masks"].numpy(), c["masks"].numpy()[[0, -1]]) for c in half]
    assert 0 < sum(untouched) < len(half)  # one draw per clip: some keep the truth, some are perturbed
    grown = list(make_clip_dataset(source, seed_fraction=1.0, seed_grow_only=True, **kwargs))
    for clip, free in zip(grown, every):  # the same draws, each seed joined with its truth
        seeds, masks = clip["seed_masks"].numpy(), clip["masks"].numpy()[[0, -1]]
        np.testing.assert_array_equal(seeds, np.maximum(free["seed_masks"].numpy(), masks))
        assert np.all(seeds >= masks)  # only extra pixels: a grown mask, never a shrunk one
    assert sum(not np.array_equal(c["seed_masks"].numpy(), c["masks"].numpy()[[0, -1]]) for c in grown) > 0
    with pytest.raises(ValueError, match="seed_fraction"):
        make_clip_dataset(source, seed_fraction=1.5, **kwargs)


def test_transforms_are_identical_eagerly_and_in_tf_data():
    config = AugmentConfig(crop_size=(24, 32))
    video = generate_video(7, SyntheticConfig(height=32, width=48, num_frames=2))
    frames = tf.constant(video["frames"], tf.float32)
    ids = tf.constant(video["masks"])
    flows = {"p": tf.constant(video["flows_to_prev"])}
    perturb = PerturbConfig()

    def run(seed):
        affine = sample_transform(seed, tf.shape(frames)[1:3], config)
        out_frames, maps, _, out_flows = apply_transform(frames, object_maps(ids, 1), flows, affine, config.crop_size)
        mask = maps["mask"][0]
        return out_frames, out_flows["p"], perturb_mask(mask, seed, perturb)

    seeds = tf.constant([[1, 2], [3, 4], [5, 6]], tf.int64)
    eager = [run(s) for s in seeds]
    graph = list(tf.data.Dataset.from_tensor_slices(seeds).map(run))
    for a, b in zip(eager, graph):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x.numpy(), y.numpy(), atol=1e-4)


@pytest.mark.parametrize("min_iou,max_iou", [(0.6, 1.0), (0.75, 0.95)])
def test_perturbed_masks_stay_in_iou_range(min_iou, max_iou):
    video = generate_video(2, SyntheticConfig(height=64, width=96, num_frames=1, min_objects=1, max_objects=1,
                                              min_radius=0.25, max_radius=0.3))
    mask = tf.constant(video["masks"][0] == 1, tf.float32)
    config = PerturbConfig(max_scale=0.3, max_dilation=4, elastic_alpha=5.0, min_iou=min_iou, max_iou=max_iou)
    ious = [float(mask_iou(perturb_mask(mask, tf.constant([i, 9]), config), mask)) for i in range(12)]
    assert min(ious) >= min_iou
    if max_iou < 1.0:
        assert max(ious) <= max_iou
    assert min(ious) < 0.97  # it does perturb
    empty = perturb_mask(tf.zeros((16, 16)), tf.constant([0, 1]), config)
    assert float(tf.reduce_sum(empty)) == 0.0


def test_static_dataset_contract_and_determinism():
    source = synthetic_source(2, seed=11, config=SyntheticConfig(height=32, width=48, num_frames=4))
    config = AugmentConfig(crop_size=(24, 40))
    first = list(make_static_dataset(source, augment=config, seed=3).take(3))
    again = list(make_static_dataset(source, augment=config, seed=3).take(3))
    other = list(make_static_dataset(source, augment=config, seed=4).take(3))
    for a, b in zip(first, again):
        for key in a:
            np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())
    assert any(not np.array_equal(a["frame"].numpy(), b["frame"].numpy()) for a, b in zip(first, other))
    element = first[0]
    shapes = {k: tuple(v.shape) for k, v in element.items()}
    assert shapes == {"frame": (24, 40, 3), "flow_to_prev": (24, 40, 2), "flow_to_next": (24, 40, 2),
                      "prev_mask": (24, 40), "mask": (24, 40), "void": (24, 40)}
    assert all(v.dtype == tf.float32 for v in element.values())
    assert set(np.unique(element["mask"].numpy())) <= {0.0, 1.0}
    batched = next(iter(make_static_dataset(source, augment=config, batch_size=3)))
    assert batched["frame"].shape == (3, 24, 40, 3)


def test_finetune_dataset_cycles_objects():
    video = generate_video(0, SyntheticConfig(height=32, width=48, num_frames=2, min_objects=2, max_objects=2))
    config = AugmentConfig(crop_size=(32, 48), random=False)
    dataset = make_finetune_dataset(video["frames"][0], video["masks"][0], [1, 2],
                                    flow_to_next=video["flows_to_next"][0], augment=config)
    elements = list(dataset.take(2))
    for object_id, element in zip((1, 2), elements):
        np.testing.assert_array_equal(element["mask"].numpy(), video["masks"][0] == object_id)
        np.testing.assert_allclose(element["flow_to_next"].numpy(), video["flows_to_next"][0], atol=1e-4)
        # no previous frame: the flow to the second frame stands in (zeros taught the flow stream "no motion")
        np.testing.assert_allclose(element["flow_to_prev"].numpy(), video["flows_to_next"][0], atol=1e-4)
        np.testing.assert_allclose(element["frame"].numpy(), video["frames"][0], atol=1e-3)
        assert _iou(element["prev_mask"], element["mask"]) >= PerturbConfig().min_iou


def test_finetune_dataset_gives_each_view_its_objects_colour_table():
    """With colour tables (a colour prior network), element i carries the row of the object it shows; a table
    count that does not match the objects is refused."""
    video = generate_video(0, SyntheticConfig(height=32, width=48, num_frames=2, min_objects=2, max_objects=2))
    config = AugmentConfig(crop_size=(32, 48), random=False)
    tables = np.stack([np.full(4096, 0.25, np.float32), np.linspace(0, 1, 4096, dtype=np.float32)])
    dataset = make_finetune_dataset(video["frames"][0], video["masks"][0], [2, 1], augment=config,
                                    color_model=tables)
    for row, (object_id, element) in enumerate(zip((2, 1, 2), dataset.take(3))):
        np.testing.assert_array_equal(element["mask"].numpy(), video["masks"][0] == object_id)
        np.testing.assert_array_equal(element["color_model"].numpy(), tables[row % 2])
    assert "color_model" not in next(iter(make_finetune_dataset(video["frames"][0], video["masks"][0], [1],
                                                                augment=config)))
    with pytest.raises(ValueError, match="one table"):
        make_finetune_dataset(video["frames"][0], video["masks"][0], [1, 2], color_model=tables[:1])


def test_every_pipeline_runs_without_the_tf_data_autotuner_and_autograph(no_autograph):
    """The autotuner's model thread sleeps up to a minute between rounds and deleting an iterator waits for it
    (38 s measured after 45 s of finetuning on one video; bench/iterator_teardown.py): every pipeline the
    project iterates turns it off. Their map functions are traced without autograph's conversion."""
    from maskrnn_tf.training.config import DataConfig
    from maskrnn_tf.training.inputs import make_train_datasets

    source = synthetic_source(2, seed=0, config=SyntheticConfig(height=32, width=48, num_frames=4))
    augment = AugmentConfig(crop_size=(32, 48))
    frame, ids = np.zeros((32, 48, 3), np.uint8), np.zeros((32, 48), np.uint8)
    ids[8:20, 10:30] = 1
    datasets = {
        "static": make_static_dataset(source, augment=augment, batch_size=2),
        "clip": make_clip_dataset(source, clip_length=3, augment=augment, batch_size=1),
        "finetune": make_finetune_dataset(frame, ids, [1], batch_size=2),
    }
    data = DataConfig(height=32, width=48, batch_size=2, clip_batch_size=1, clip_length=3)
    for dream_fraction in (0.0, 0.5):
        static, clips = make_train_datasets(dataclasses.replace(data, dream_fraction=dream_fraction, dream_videos=2),
                                            source, seed=0)
        datasets[f"train static (dream {dream_fraction})"] = static
        datasets[f"train clips (dream {dream_fraction})"] = clips
    for name, dataset in datasets.items():
        assert dataset.options().autotune.enabled is False, name
        assert dataset.options().deterministic is True, name
        next(iter(dataset))  # and they still run
    assert no_autograph == []


def _jitter_reference(frames, params):
    """NumPy restatement of the documented colour jitter (gains, offset, contrast about the clip mean,
    saturation about the luma, clip)."""
    gains, offset, contrast, saturation = params[:3], params[3], params[4], params[5]
    x = frames.astype(np.float64) * gains + offset
    x = x.mean() + (x - x.mean()) * contrast
    luma = (x * np.array([0.299, 0.587, 0.114])).sum(-1, keepdims=True)
    return np.clip(luma + (x - luma) * saturation, 0, 255)


def test_color_jitter_against_numpy_and_its_ranges():
    from maskrnn_tf.data.augment import apply_color_jitter, sample_color_jitter

    frames = np.random.default_rng(0).uniform(0, 255, (3, 9, 11, 3)).astype(np.float32)
    hand = np.array([1.1, 0.9, 1.0, 10.0, 1.2, 0.5], np.float32)
    np.testing.assert_allclose(apply_color_jitter(frames, hand).numpy(), _jitter_reference(frames, hand), atol=1e-3)
    # A grey pixel stays grey under saturation; at zero strength the parameters are the identity.
    identity = sample_color_jitter(tf.constant([1, 2], tf.int64), 0.0).numpy()
    np.testing.assert_array_equal(identity, [1, 1, 1, 0, 1, 1])
    np.testing.assert_allclose(apply_color_jitter(frames, identity).numpy(), frames, atol=1e-3)
    draws = np.stack([sample_color_jitter(tf.constant([7, i], tf.int64), 1.0).numpy() for i in range(200)])
    assert np.all(np.abs(np.log(draws[:, :3])) <= 0.1 + 1e-6) and np.all(np.abs(draws[:, 3]) <= 25.0 + 1e-4)
    assert np.all(np.abs(np.log(draws[:, 4])) <= 0.25 + 1e-6) and np.all(np.abs(np.log(draws[:, 5])) <= 0.4 + 1e-6)
    assert np.abs(np.log(draws[:, 5])).max() > 0.3  # the range is used, not a constant
    np.testing.assert_array_equal(sample_color_jitter(tf.constant([7, 3], tf.int64), 1.0).numpy(), draws[3])


@pytest.mark.parametrize("stage", ["static", "clip"])
def test_color_jitter_changes_only_the_frames_one_change_per_clip(stage):
    source = synthetic_source(3, seed=0)
    size = (32, 48)

    def first(jitter):
        augment = AugmentConfig(crop_size=size, color_jitter=jitter)
        if stage == "static":
            dataset = make_static_dataset(source, augment=augment, seed=3, shuffle=False, repeat=False)
        else:
            dataset = make_clip_dataset(source, clip_length=3, augment=augment, seed=3, shuffle=False, repeat=False)
        return {k: v.numpy() for k, v in next(iter(dataset)).items()}

    plain, jittered, again = first(0.0), first(1.0), first(1.0)
    key = "frame" if stage == "static" else "frames"
    for name in plain:  # the crop, masks, flows and void are those of the unjittered element
        if name != key:
            np.testing.assert_array_equal(plain[name], jittered[name])
    for name in jittered:  # deterministic
        np.testing.assert_array_equal(jittered[name], again[name])
    assert np.abs(jittered[key] - plain[key]).mean() > 1.0
    assert jittered[key].min() >= 0 and jittered[key].max() <= 255
    if stage == "clip":  # one change for the whole clip: the clip's frames, jittered with one set of parameters
        from maskrnn_tf.data.augment import sample_color_jitter
        from maskrnn_tf.data.pipelines import _seeds

        aug_seed, _ = _seeds(3, tf.constant(0, tf.int64))
        params = sample_color_jitter(tf.random.experimental.stateless_fold_in(aug_seed, 1), 1.0).numpy()
        np.testing.assert_allclose(jittered[key], _jitter_reference(plain[key], params), atol=2e-3)
    with pytest.raises(ValueError, match="color_jitter"):
        AugmentConfig(color_jitter=-1.0)


def _two_object_video():
    """3 frames 32x48: object 1 (red) in all, object 2 (blue) from frame 1 on; frame 0's background green,
    later ones grey, so a table fitted on another frame differs."""
    frames = np.zeros((3, 32, 48, 3), np.uint8)
    frames[0, ..., 1] = 180
    frames[1:] = 90
    masks = np.zeros((3, 32, 48), np.uint8)
    masks[:, 4:14, 4:16] = 1
    masks[1:, 18:28, 26:40] = 2
    frames[masks == 1] = (230, 20, 20)
    frames[masks == 2] = (20, 20, 230)
    zeros = np.zeros((3, 32, 48, 2), np.float32)
    return {"frames": frames, "masks": masks, "num_objects": 2, "flows_to_prev": zeros, "flows_to_next": zeros}


def test_both_pipelines_carry_each_objects_table_from_the_first_frame_it_is_seen_in():
    """color_prior_band: every element holds its object's colour table, fitted (RGB bins, the band) on the first
    frame that object is visible in, as segmenting fits a video's objects on its first frame."""
    from maskrnn_tf.inference.color_gate import fit_color_model

    video = _two_object_video()
    source = ArraySource([video])
    want = {1: fit_color_model(video["frames"][0], video["masks"][0], [1], 0.2, space="rgb")[0],
            2: fit_color_model(video["frames"][1], video["masks"][1], [2], 0.2, space="rgb")[0]}
    # Object 1's table from a later frame (grey background, not green) differs: the elements of t = 2 show which.
    assert not np.allclose(want[1], fit_color_model(video["frames"][1], video["masks"][1], [1], 0.2, space="rgb")[0])
    config = AugmentConfig(crop_size=(32, 48), random=False)
    static = list(make_static_dataset(source, augment=config, shuffle=False, repeat=False, color_prior_band=0.2))
    # Items (t, object): (1, 1), (2, 1), (2, 2): the previous frame must show the object.
    assert len(static) == 3
    for element, k in zip(static, (1, 1, 2)):
        assert element["color_model"].shape == (4096,)
        np.testing.assert_array_equal(element["color_model"].numpy(), want[k])
    clips = list(make_clip_dataset(source, clip_length=2, augment=config, shuffle=False, repeat=False,
                                   color_prior_band=0.2))
    assert len(clips) == 3  # clips from frame 0 (object 1) and frame 1 (objects 1, 2)
    for element, k in zip(clips, (1, 1, 2)):
        np.testing.assert_array_equal(element["color_model"].numpy(), want[k])
    assert "color_model" not in next(iter(make_static_dataset(source, augment=config, shuffle=False)))


@pytest.mark.parametrize("stage", ["static", "clip"])
def test_jittered_elements_keep_the_table_of_the_unchanged_first_frame(stage):
    """Colour jitter with the prior: the frames change, the table stays the one fitted on the unchanged first
    frame (the mismatch a change of light makes at inference)."""
    from maskrnn_tf.inference.color_gate import fit_color_model

    video = _two_object_video()
    source = ArraySource([video])
    want = fit_color_model(video["frames"][0], video["masks"][0], [1], 0.2, space="rgb")[0]

    def first(jitter):
        augment = AugmentConfig(crop_size=(32, 48), color_jitter=jitter)
        make = make_static_dataset if stage == "static" else make_clip_dataset
        extra = {} if stage == "static" else {"clip_length": 2}
        return {k: v.numpy() for k, v in next(iter(make(source, augment=augment, seed=5, shuffle=False,
                                                        repeat=False, color_prior_band=0.2, **extra))).items()}

    plain, jittered = first(0.0), first(1.0)
    key = "frame" if stage == "static" else "frames"
    assert np.abs(jittered[key] - plain[key]).mean() > 1.0
    np.testing.assert_array_equal(jittered["color_model"], want)
    np.testing.assert_array_equal(plain["color_model"], want)

