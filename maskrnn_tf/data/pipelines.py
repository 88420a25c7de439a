"""tf.data input pipelines for stage A (static frames), stage B (clips) and online finetuning.

Every element holds one object (sampled from multi-object videos): its binary mask and a `void` map (1 where
the ground truth is 255 or the augmented view falls outside the image). Elements are deterministic given
`seed`: element i is augmented with the stateless seed (seed, i), and sample order comes from a seeded
shuffle, so parallel maps (`deterministic=True`) give the same stream on every run. The datasets are plain
`tf.data.Dataset`s of dicts (batch with `batch_size` or by the caller), so they work with
`tf.distribute.Strategy.experimental_distribute_dataset`.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence as Seq, Tuple

import numpy as np
import tensorflow as tf

from maskrnn_tf.data.augment import (AugmentConfig, apply_color_jitter, apply_transform, finish_void, object_maps,
                                     sample_color_jitter, sample_transform)
from maskrnn_tf.data.perturb import PerturbConfig, perturb_mask
from maskrnn_tf.data.sources import VideoSource
from maskrnn_tf.ops.color_tables import BINS

AUTOTUNE = tf.data.AUTOTUNE


def _load_fn(source: VideoSource, offsets: Tuple[int, ...]):
    """A tf.numpy_function body loading frames `t + offsets` of video v."""

    def load(video, t):
        data = source.load(int(video), [int(t) + o for o in offsets])
        return (data["frames"].astype(np.uint8), data["masks"].astype(np.uint8),
                data["flows_to_prev"].astype(np.float32), data["flows_to_next"].astype(np.float32))

    return load


def _loaded(source: VideoSource, offsets: Tuple[int, ...], video: tf.Tensor, t: tf.Tensor):
    frames, masks, to_prev, to_next = tf.numpy_function(
        _load_fn(source, offsets), [video, t], [tf.uint8, tf.uint8, tf.float32, tf.float32], stateful=False)
    n = len(offsets)
    frames.set_shape([n, None, None, 3])
    masks.set_shape([n, None, None])
    to_prev.set_shape([n, None, None, 2])
    to_next.set_shape([n, None, None, 2])
    return frames, masks, to_prev, to_next


def _color_model_fn(source: VideoSource, band: float):
    """A tf.numpy_function body: object k's colour table [4096] (float32) of video v, fitted on the first frame
    the object is visible in, as segmenting fits it on a video's first frame (cached per video and object)."""
    from maskrnn_tf.inference.color_gate import fit_color_model

    cache = {}

    def fit(video, object_id):
        key = (int(video), int(object_id))
        if key not in cache:
            first = int(np.nonzero(source.presence(key[0])[:, key[1] - 1])[0][0])
            data = source.load(key[0], [first])
            cache[key] = fit_color_model(data["frames"][0].astype(np.uint8), data["masks"][0], [key[1]], band,
                                         bins=BINS, space="rgb")[0]
        return cache[key]

    return fit


def _color_model(fit, item: tf.Tensor) -> tf.Tensor:
    table = tf.numpy_function(fit, [item[0], item[2]], tf.float32, stateful=False)
    return tf.ensure_shape(table, [BINS ** 3])


def _items(source: VideoSource, first: int, span: int) -> np.ndarray:
    """int32 [M, 3] (video, t, object id): windows [t - first, t - first + span) with the object visible in
    frame t - first (the frame that seeds the recurrence or gives the previous mask)."""
    items: List[Tuple[int, int, int]] = []
    for v in range(len(source)):
        presence = source.presence(v)
        for t in range(first, presence.shape[0] - span + first + 1):
            for k in np.nonzero(presence[t - first])[0]:
                items.append((v, t, int(k) + 1))
    if not items:
        raise ValueError(f"no training items: no video of the source has {span} frames with a visible object.")
    return np.asarray(items, np.int32)


def _indexed(items: np.ndarray, seed: int, shuffle: bool, repeat: bool) -> tf.data.Dataset:
    dataset = tf.data.Dataset.from_tensor_slices(items)
    if shuffle:
        dataset = dataset.shuffle(len(items), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    return dataset.enumerate()


def _seeds(seed: int, index: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    base = tf.stack([tf.constant(seed, tf.int64), tf.cast(index, tf.int64)])
    pair = tf.random.experimental.stateless_split(base, num=2)
    return pair[0], pair[1]


def _jittered(frames: tf.Tensor, aug_seed: tf.Tensor, augment: AugmentConfig) -> tf.Tensor:
    """The clip's frames with its photometric change (none at color_jitter 0; its seed is apart from the
    geometric draw's, so turning it on moves no crop)."""
    if not (augment.random and augment.color_jitter > 0):
        return frames
    seed = tf.random.experimental.stateless_fold_in(aug_seed, 1)
    return apply_color_jitter(frames, sample_color_jitter(seed, augment.color_jitter))


def _mapped(dataset: tf.data.Dataset, element: Callable) -> tf.data.Dataset:
    """`dataset.map(element)` in parallel and in order, `element` traced without autograph: it has no
    tensor-dependent Python control flow, and converting it cost seconds at every start of a training."""
    return dataset.map(tf.autograph.experimental.do_not_convert(element), num_parallel_calls=AUTOTUNE,
                       deterministic=True)


def finish_dataset(dataset: tf.data.Dataset, batch_size: Optional[int]) -> tf.data.Dataset:
    """Batches (drop_remainder) when batch_size is given, keeps the order deterministic, prefetches.

    tf.data's autotuning is off: deleting a used iterator waited for the autotuner's model thread to wake from
    its sleep between optimisation rounds (TF 2.21; 24-38 s measured, intermittently, after a training run and
    after a finetuned video). Without the autotuner, AUTOTUNE parallel maps run at the CPU's core count and
    AUTOTUNE prefetch grows its buffer on demand; `python -m bench iterator_teardown` measured the same
    throughput both ways.
    """
    if batch_size:
        dataset = dataset.batch(batch_size, drop_remainder=True)
    options = tf.data.Options()
    options.deterministic = True
    options.autotune.enabled = False
    return dataset.with_options(options).prefetch(AUTOTUNE)


def make_static_dataset(source: VideoSource, augment: AugmentConfig = AugmentConfig(),
                        perturb: PerturbConfig = PerturbConfig(), seed: int = 0, shuffle: bool = True,
                        repeat: bool = True, batch_size: Optional[int] = None,
                        color_prior_band: Optional[float] = None) -> tf.data.Dataset:
    """Stage A: single frames t >= 1 with a perturbed ground truth of frame t-1 as the previous mask.

    Element (float32, H, W = augment.crop_size): frame [H,W,3] RGB 0..255; flow_to_prev, flow_to_next
    [H,W,2] (u, v) in output pixels; prev_mask [H,W] the object's ground truth at t-1, augmented like frame t
    and randomly perturbed, in frame t-1 coordinates; mask [H,W] 0/1 target at t; void [H,W] 1 where void.
    With color_prior_band also color_model [4096]: the object's colour table (`_color_model_fn`).
    """
    items = _items(source, first=1, span=2)
    size = tuple(augment.crop_size)
    fit = _color_model_fn(source, color_prior_band) if color_prior_band else None

    def element(index, item):
        aug_seed, perturb_seed = _seeds(seed, index)
        frames, masks, to_prev, to_next = _loaded(source, (-1, 0), item[0], item[1])
        affine = sample_transform(aug_seed, tf.shape(frames)[1:3], augment)
        frames, maps, inside, flows = apply_transform(
            frames[1:], object_maps(masks, item[2]), {"p": to_prev[1:], "n": to_next[1:]}, affine, size,
            augment.antialias)
        frames = _jittered(frames, aug_seed, augment)
        mask = maps["mask"]
        void = finish_void(maps["void"], tf.concat([inside, inside], axis=0))
        out = {
            "frame": tf.ensure_shape(frames[0], size + (3,)),
            "flow_to_prev": tf.ensure_shape(flows["p"][0], size + (2,)),
            "flow_to_next": tf.ensure_shape(flows["n"][0], size + (2,)),
            "prev_mask": tf.ensure_shape(perturb_mask(mask[0], perturb_seed, perturb), size),
            "mask": tf.ensure_shape(mask[1], size),
            "void": tf.ensure_shape(void[1], size),
        }
        if fit is not None:
            out["color_model"] = _color_model(fit, item)
        return out

    dataset = _mapped(_indexed(items, seed, shuffle, repeat), element)
    return finish_dataset(dataset, batch_size)


def make_clip_dataset(source: VideoSource, clip_length: int = 8, augment: AugmentConfig = AugmentConfig(),
                      seed: int = 0, shuffle: bool = True, repeat: bool = True,
                      batch_size: Optional[int] = None, seed_perturb: PerturbConfig = PerturbConfig(),
                      seed_fraction: float = 0.0, seed_grow_only: bool = False,
                      color_prior_band: Optional[float] = None) -> tf.data.Dataset:
    """Stage B: clips of `clip_length` consecutive frames of one object (visible in the clip's first frame).

    Element (float32, T = clip_length, H, W = augment.crop_size): frames [T,H,W,3]; flows_to_prev,
    flows_to_next [T,H,W,2] (zeros before the video's first / after its last frame); masks [T,H,W] 0/1;
    void [T,H,W]. One augmentation per clip. The loop seeds the recurrence with masks[0] and predicts frames
    1..T-1 (clip_length 8 = 7 unrolled steps).

    With seed_fraction > 0 the element also holds seed_masks [2,H,W]: the masks that seed the recurrence played
    forwards (index 0) and backwards (index 1). In that share of the clips (seeded draw) they are masks[0] and
    masks[-1] perturbed with `seed_perturb`, so that the unrolled steps learn to bring a wrong carried mask
    back to the object (at inference nothing resets it); otherwise they are those masks unchanged. With
    seed_grow_only a perturbed seed is the union of the truth and its perturbation: only extra pixels, as a
    carried mask that has grown into the background or left a trail. With color_prior_band also color_model
    [4096]: the object's colour table (`_color_model_fn`).
    """
    if clip_length < 1:
        raise ValueError(f"clip_length must be >= 1, got {clip_length}.")
    if not 0.0 <= seed_fraction <= 1.0:
        raise ValueError(f"seed_fraction must be in [0, 1], got {seed_fraction}.")
    items = _items(source, first=0, span=clip_length)
    size = tuple(augment.crop_size)
    offsets = tuple(range(clip_length))
    fit = _color_model_fn(source, color_prior_band) if color_prior_band else None

    def element(index, item):
        aug_seed, perturb_seed = _seeds(seed, index)
        frames, masks, to_prev, to_next = _loaded(source, offsets, item[0], item[1])
        affine = sample_transform(aug_seed, tf.shape(frames)[1:3], augment)
        frames, maps, inside, flows = apply_transform(
            frames, object_maps(masks, item[2]), {"p": to_prev, "n": to_next}, affine, size, augment.antialias)
        frames = _jittered(frames, aug_seed, augment)
        mask, void = maps["mask"], finish_void(maps["void"], inside)
        shape = (clip_length,) + size
        out = {
            "frames": tf.ensure_shape(frames, shape + (3,)),
            "flows_to_prev": tf.ensure_shape(flows["p"], shape + (2,)),
            "flows_to_next": tf.ensure_shape(flows["n"], shape + (2,)),
            "masks": tf.ensure_shape(mask, shape),
            "void": tf.ensure_shape(void, shape),
        }
        if seed_fraction > 0:
            out["seed_masks"] = tf.ensure_shape(_seed_masks(mask, perturb_seed), (2,) + size)
        if fit is not None:
            out["color_model"] = _color_model(fit, item)
        return out

    def _seed_masks(mask, perturb_seed):
        ends = tf.stack([mask[0], mask[-1]])
        draw = tf.random.stateless_uniform([], seed=perturb_seed)
        ends_seeds = tf.random.experimental.stateless_split(perturb_seed, num=2)

        def perturbed():
            moved = tf.stack([perturb_mask(ends[i], ends_seeds[i], seed_perturb) for i in range(2)])
            return tf.maximum(moved, ends) if seed_grow_only else moved

        return tf.cond(draw < seed_fraction, perturbed, lambda: ends)

    dataset = _mapped(_indexed(items, seed, shuffle, repeat), element)
    return finish_dataset(dataset, batch_size)


def make_finetune_dataset(first_frame: np.ndarray, first_mask: np.ndarray, object_ids: Seq[int],
                          flow_to_next: Optional[np.ndarray] = None, augment: Optional[AugmentConfig] = None,
                          perturb: PerturbConfig = PerturbConfig(), seed: int = 0,
                          batch_size: Optional[int] = None,
                          color_model: Optional[np.ndarray] = None) -> tf.data.Dataset:
    """Online finetuning: an infinite stream of augmented views of the first frame, objects in turn.

    Args:
      first_frame: uint8 RGB [H0, W0, 3].
      first_mask: uint8 ids [H0, W0] (255 void).
      object_ids: the ids to train on (element i uses object_ids[i % len]).
      flow_to_next: optional float32 [H0, W0, 2] flow from the first frame to the second (zeros if None).
      augment: augmentation (default: random, crop = the frame size).
      perturb: previous-mask perturbation.
      color_model: optional float32 [len(object_ids), 4096], row i the colour table of object_ids[i] (a network
        with a first-frame colour prior input); each element then carries its object's row.

    Element: as `make_static_dataset` (frame, flow_to_prev = flow_to_next = the flow to the second frame,
    prev_mask = perturbed first-frame mask of the object, mask, void; color_model [4096] with `color_model`).
    """
    first_frame = np.asarray(first_frame, np.uint8)
    first_mask = np.asarray(first_mask, np.uint8)
    if first_frame.shape[:2] != first_mask.shape:
        raise ValueError(f"first_frame {first_frame.shape} and first_mask {first_mask.shape} differ in size.")
    if not object_ids:
        raise ValueError("make_finetune_dataset needs at least one object id.")
    height, width = first_mask.shape
    augment = augment or AugmentConfig(crop_size=(height, width))
    size = tuple(augment.crop_size)
    flow = np.zeros((height, width, 2), np.float32) if flow_to_next is None else np.asarray(flow_to_next, np.float32)
    frame_t = tf.constant(first_frame[None])
    mask_t = tf.constant(first_mask[None])
    # The first frame has no previous frame: it gets the flow to the second frame as its flow to "previous" too
    # (the clip played backwards from frame 1). Zero flows there taught the flow stream that nothing moves, and
    # a finetuned model then lost every object at the first real flow (DAVIS-2016 val, blackswan: J 0.79 -> 0.00
    # with zeros, 0.82 with this); the prev mask's shift by the motion is one more perturbation to correct.
    flows_t = {"p": tf.constant(flow[None]), "n": tf.constant(flow[None])}
    ids_t = tf.constant(list(object_ids), tf.int32)
    tables_t = None
    if color_model is not None:
        tables = np.asarray(color_model, np.float32)
        if tables.ndim != 2 or tables.shape[0] != len(object_ids):
            raise ValueError(f"color_model {tables.shape}: need one table (row) per object id, {len(object_ids)}.")
        tables_t = tf.constant(tables)

    def element(index):
        aug_seed, perturb_seed = _seeds(seed, index)
        affine = sample_transform(aug_seed, tf.constant([height, width]), augment)
        which = tf.cast(index % tf.cast(tf.size(ids_t), tf.int64), tf.int32)
        frames, maps, inside, flows = apply_transform(frame_t, object_maps(mask_t, ids_t[which]), flows_t, affine,
                                                      size, augment.antialias)
        mask, void = maps["mask"], finish_void(maps["void"], inside)
        out = {
            "frame": tf.ensure_shape(frames[0], size + (3,)),
            "flow_to_prev": tf.ensure_shape(flows["p"][0], size + (2,)),
            "flow_to_next": tf.ensure_shape(flows["n"][0], size + (2,)),
            "prev_mask": tf.ensure_shape(perturb_mask(mask[0], perturb_seed, perturb), size),
            "mask": tf.ensure_shape(mask[0], size),
            "void": tf.ensure_shape(void[0], size),
        }
        if tables_t is not None:  # the object's table, fitted on the unaugmented frame as training fits them
            out["color_model"] = tables_t[which]
        return out

    dataset = _mapped(tf.data.Dataset.range(2 ** 62), element)
    return finish_dataset(dataset, batch_size)
