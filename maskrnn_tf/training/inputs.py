"""Training and validation inputs from a `DataConfig`, via the data package's sources and pipelines.

synthetic_vos is generated in memory (exact flows); DAVIS-2016 / DAVIS-2017 are read from their folders
(`data.manual_dir`) with flows from a cache (`data.flow_cache_dir`, filled on first use by the `data.flow`
backend). A missing or malformed DAVIS folder raises `DataNotFoundError` with the expected layout.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
import tensorflow as tf

from maskrnn_tf.data.augment import AugmentConfig
from maskrnn_tf.data.perturb import PerturbConfig
from maskrnn_tf.data.pipelines import finish_dataset, make_clip_dataset, make_static_dataset
from maskrnn_tf.data.sources import ArraySource, VideoSource, synthetic_source
from maskrnn_tf.data.synthetic import SyntheticConfig, generate_video
from maskrnn_tf.training.config import DataConfig
from maskrnn_tf.training.config_bounds import VALIDATION_SEED_BASE

README_DATA_SECTION = "README.md, section 'Where the data goes'"


class DataNotFoundError(FileNotFoundError):
    """The data a config asks for is not where the config says."""


def _synthetic_config(data: DataConfig, frames: int) -> SyntheticConfig:
    return SyntheticConfig(height=data.height, width=data.width, num_frames=frames)


def check_data_available(data: DataConfig) -> None:
    """Raises DataNotFoundError when a DAVIS config's train split cannot be read (synthetic data always can).

    Cheap (it lists the split), so the train CLI calls it before anything slower or anything written."""
    if data.dataset in ("davis16", "davis17"):
        split_held_out(data, _davis_sequences(data, "train"))


def _davis_sequences(data: DataConfig, split: str) -> list:
    from maskrnn_tf.data.sequences import DatasetLayoutError, read_davis_sequence_list, resolve_davis_dir
    from maskrnn_tf.io import ImageReadError

    year = 2016 if data.dataset == "davis16" else 2017
    manual = os.path.expanduser(data.manual_dir or "")
    try:
        sequences = read_davis_sequence_list(resolve_davis_dir(manual, year), year, split)
    except ImageReadError as err:  # the layout is there; one of its files is not (it names the file and the fix)
        raise DataNotFoundError(f"{data.dataset}: the DAVIS-{year} '{split}' split: {err}") from err
    except (DatasetLayoutError, OSError) as err:
        raise DataNotFoundError(
            f"{data.dataset}: cannot read the DAVIS-{year} '{split}' split from --manual_dir={manual!r}.\n{err}\n"
            f"Put the official DAVIS archives or their extracted folders there (see {README_DATA_SECTION}) or "
            "pass --manual_dir=<folder>. For a run without data use --flagfile=synthetic.flags."
        ) from err
    if not sequences:
        raise DataNotFoundError(f"{data.dataset}: the '{split}' split under {manual} lists no sequence.")
    return sequences


def split_held_out(data: DataConfig, sequences: list) -> Tuple[list, list]:
    """(training sequences, held-out sequences) of the train split: `data.val_sequences` are held out, in the
    order given. A name the split does not list raises DataNotFoundError naming it and the split's names."""
    names = [s.name for s in sequences]
    unknown = [n for n in data.val_sequences if n not in names]
    if unknown:
        raise DataNotFoundError(
            f"{data.dataset}: --val_sequences names {unknown}, which the train split under {data.manual_dir} does "
            f"not list; its sequences are: {', '.join(sorted(names))}.")
    held = [sequences[names.index(n)] for n in data.val_sequences]
    train = [s for s in sequences if s.name not in data.val_sequences]
    if held and not train:
        raise DataNotFoundError(f"{data.dataset}: --val_sequences holds out every train sequence; leave some to "
                                "train on.")
    return train, held


def _davis_source(data: DataConfig, split: str) -> VideoSource:
    """split 'train': the train split minus data.val_sequences; 'held_out': those; 'val': the val split."""
    # Local imports: only DAVIS runs need the readers and the flow machinery.
    from maskrnn_tf.data.flow_backends import make_backend
    from maskrnn_tf.data.flow_cache import FlowCache
    from maskrnn_tf.data.sources import SequenceSource

    if split in ("train", "held_out"):
        train, held = split_held_out(data, _davis_sequences(data, "train"))
        sequences = train if split == "train" else held
    else:
        sequences = _davis_sequences(data, split)
    cache = os.path.expanduser(data.flow_cache_dir) if data.flow_cache_dir else None
    return SequenceSource(sequences, FlowCache(make_backend(data.flow), cache))


def _without_flows(video: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    return {k: v for k, v in video.items() if k not in ("flows_to_prev", "flows_to_next")}


def _synthetic_videos(data: DataConfig, seed_base: int, count: int, frames: int) -> List[Dict[str, np.ndarray]]:
    """Synthetic videos with the flows `data.synthetic_flow` asks for (exact, or computed from the frames)."""
    config = _synthetic_config(data, frames)
    videos = [generate_video(seed_base + i, config) for i in range(count)]
    if data.synthetic_flow == "exact":
        return videos
    from maskrnn_tf.data.flow_backends import make_backend

    source = ArraySource([_without_flows(v) for v in videos], flow_backend=make_backend(data.synthetic_flow))
    out = []
    for i, video in enumerate(videos):
        loaded = source.load(i, range(frames))
        out.append({**video, "flows_to_prev": loaded["flows_to_prev"], "flows_to_next": loaded["flows_to_next"]})
    return out


def train_source(data: DataConfig, seed: int) -> VideoSource:
    """The training videos of `data.dataset`."""
    if data.dataset == "synthetic_vos":
        if data.synthetic_flow == "exact":
            return synthetic_source(data.synthetic_train_videos, seed=seed,
                                    config=_synthetic_config(data, data.synthetic_video_frames))
        return ArraySource(_synthetic_videos(data, seed, data.synthetic_train_videos, data.synthetic_video_frames))
    return _davis_source(data, "train")


def perturb_config(data: DataConfig) -> PerturbConfig:
    """The stage A previous-mask perturbation: PerturbConfig's ranges times data.perturb_amount."""
    return _scaled_perturbation(data.perturb_amount, data.perturb_min_iou)


def clip_seed_perturb_config(data: DataConfig) -> PerturbConfig:
    """The stage B seed-mask perturbation: PerturbConfig's ranges times data.clip_seed_amount."""
    return _scaled_perturbation(data.clip_seed_amount, data.clip_seed_min_iou)


def _scaled_perturbation(k: float, min_iou: float) -> PerturbConfig:
    base = PerturbConfig()
    return PerturbConfig(max_scale=base.max_scale * k, max_rotation_deg=base.max_rotation_deg * k,
                         max_translation=base.max_translation * k,
                         max_dilation=int(round(base.max_dilation * k)), elastic_alpha=base.elastic_alpha * k,
                         elastic_grid=base.elastic_grid, min_iou=min_iou, max_iou=base.max_iou)


def make_train_datasets(data: DataConfig, source: VideoSource, seed: int, color_prior_band: Optional[float] = None
                        ) -> Tuple[tf.data.Dataset, tf.data.Dataset]:
    """(stage A dataset batched by data.batch_size, stage B dataset batched by data.clip_batch_size);
    infinite, deterministic given `seed`, with the data package's augmentation at data.height x data.width.
    color_prior_band (a model with color_prior_input): elements carry each object's colour table."""
    augment = AugmentConfig(crop_size=(data.height, data.width), color_jitter=data.color_jitter,
                            antialias=data.antialias)
    static = make_static_dataset(source, augment=augment, perturb=perturb_config(data), seed=seed,
                                 batch_size=data.batch_size, color_prior_band=color_prior_band)
    seeding = dict(seed_perturb=clip_seed_perturb_config(data), seed_fraction=data.clip_seed_fraction,
                   seed_grow_only=data.clip_seed_grow_only, color_prior_band=color_prior_band)
    length = data.clip_length + data.clip_burn_in  # the burn-in frames come first in each clip
    if data.dream_fraction <= 0:
        clips = make_clip_dataset(source, clip_length=length, augment=augment, seed=seed + 1,
                                  batch_size=data.clip_batch_size, **seeding)
        return static, clips
    # Real and dreamt clips, mixed clip by clip (seeded), then batched: both get the same augmentation.
    from maskrnn_tf.data.dreaming import DreamConfig
    from maskrnn_tf.data.dreamt_source import DreamtSource

    dreamt_source = DreamtSource(source, data.dream_videos,
                                 DreamConfig(num_frames=length).with_speed(data.dream_speed),
                                 seed=seed + 2, scale=data.dream_scale, flow=data.dream_flow)
    real = make_clip_dataset(source, clip_length=length, augment=augment, seed=seed + 1, **seeding)
    dreamt = make_clip_dataset(dreamt_source, clip_length=length, augment=augment, seed=seed + 3,
                               **seeding)
    mixed = tf.data.Dataset.sample_from_datasets(
        [real, dreamt], weights=[1.0 - data.dream_fraction, data.dream_fraction], seed=seed + 4)
    return static, finish_dataset(mixed, data.clip_batch_size)


def _resize_video(video: Dict[str, np.ndarray], height: int, width: int) -> Dict[str, np.ndarray]:
    """Resizes frames (area), masks (nearest) and flows (bilinear, vectors scaled) to height x width; keeps the
    first frame and mask as they were (`first_frame`, `first_mask`): the colour prior's tables are fitted on them
    at the size training and segment fit them (their smoothing counts depend on the pixel count). Keeps the masks
    as they were too (`full_masks`): validation seeds every object of the stored first frame, as segment does (a
    thin object vanishes from the nearest-resized masks), and scores at the stored size, as the evaluation does."""
    t, h, w = video["masks"].shape
    if (h, w) == (height, width):
        return video
    sy, sx = height / h, width / w
    out = dict(video)
    out["first_frame"], out["first_mask"] = video["frames"][0], video["masks"][0]
    out["full_masks"] = video["masks"]
    out["frames"] = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in video["frames"]])
    out["masks"] = np.stack([cv2.resize(m, (width, height), interpolation=cv2.INTER_NEAREST) for m in video["masks"]])
    for key in ("flows_to_prev", "flows_to_next"):
        flows = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR) for f in video[key]])
        out[key] = (flows * np.array([sx, sy], np.float32)).astype(np.float32)
    return out


def validation_videos(data: DataConfig) -> List[Dict[str, np.ndarray]]:
    """Held-out videos at the training size: dicts with frames, masks (ids), flows_to_prev/next, name; a video
    stored at another size keeps its first frame and its masks at that size too (`_resize_video`).

    synthetic_vos: `val_videos` procedural videos with seeds disjoint from training (flows as
    data.synthetic_flow says). DAVIS: the `val_sequences` held out of the train split (all of them), or
    without them the first `val_videos` sequences of the val split; first `val_frames` frames of each."""
    if data.dataset == "synthetic_vos":
        if data.val_videos <= 0:
            return []
        return _synthetic_videos(data, VALIDATION_SEED_BASE, data.val_videos, data.val_frames)
    if data.val_sequences:
        source = _davis_source(data, "held_out")
        count = len(source)
    else:
        if data.val_videos <= 0:
            return []
        source = _davis_source(data, "val")
        count = min(data.val_videos, len(source))
    videos = []
    for v in range(count):
        count = min(data.val_frames, source.num_frames(v))
        video = dict(source.load(v, list(range(count))))
        video["name"] = np.array(source.name(v))
        videos.append(_resize_video(video, data.height, data.width))
    return videos
