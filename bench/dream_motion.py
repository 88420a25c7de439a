"""How fast dreamt clips move against real video: per-frame flow on the objects, on the background, and between
the two (the object's motion relative to the camera), as fractions of the frame's shorter side.

`python -m bench dream_motion --davis_root=../shared/data/DAVIS-2016 --flow_cache_dir=~/.cache/maskrnn_tf/flow`
Real rows read the training flow cache (`python -m maskrnn_tf.flow` first) of the DAVIS-2016 train sequences
trained on (the ones `--exclude` holds out are left out), every `--every`-th frame pair; dreamt rows dream one
clip from frame 10 of every second such sequence at the recipe's 243x432 per `--speeds` value
(`DreamConfig.with_speed`). Each row: the quartiles and the 90th percentile over frames of the per-frame median.
"""
from __future__ import annotations

import argparse
import os
from typing import Dict, List, Optional

import cv2
import numpy as np

from bench._arg_types import existing_dir, int_at_least, output_dir, positive_float_list, positive_int

DEFAULT_EXCLUDE = "dog-agility,car-turn,mallard-water,motocross-bumps"  # davis16_cpu.flags' --val_sequences


def add_arguments(parser) -> None:
    parser.add_argument("--davis_root", type=existing_dir, default="../shared/data/DAVIS-2016")
    parser.add_argument("--flow_cache_dir", type=output_dir, default="~/.cache/maskrnn_tf/flow",
                        help="the training flow cache (missing flows are computed into it)")
    parser.add_argument("--exclude", default=DEFAULT_EXCLUDE,
                        help="comma list of train sequences left out (empty: none)")
    parser.add_argument("--every", type=positive_int, default=5, help="every N-th frame pair of the real videos")
    parser.add_argument("--speeds", type=positive_float_list, default="1,3",
                        help="comma list of DreamConfig.with_speed values (> 0)")
    parser.add_argument("--clip_length", type=int_at_least(2, "a dreamt clip needs two frames"), default=5)


def check_arguments(args: argparse.Namespace) -> Optional[str]:
    """What is wrong with --exclude in --davis_root (None: nothing): a misspelt name would leave its sequence in."""
    from maskrnn_tf.data.sequences import read_davis_sequence_list

    try:  # the names only: run() checks the files
        train = {s.name for s in read_davis_sequence_list(args.davis_root, 2016, "train", validate=False)}
    except (OSError, ValueError) as error:
        return f"--davis_root: {error}"
    unknown = [name for name in args.exclude.split(",") if name and name not in train]
    if unknown:
        return f"--exclude: {unknown} not among the train sequences of {args.davis_root}"
    if not train - set(args.exclude.split(",")):
        return f"--exclude: leaves none of the train sequences of {args.davis_root}"
    return None


def _medians(flow: np.ndarray, on: np.ndarray, side: float) -> Dict[str, float]:
    """Per-frame medians, in fractions of `side`: |flow| on the object, on the background, and the norm of
    the difference of their median flows."""
    magnitude = np.linalg.norm(flow, axis=-1)
    relative = np.median(flow[on], axis=0) - np.median(flow[~on], axis=0)
    return {"object": float(np.median(magnitude[on])) / side, "background": float(np.median(magnitude[~on])) / side,
            "relative": float(np.linalg.norm(relative)) / side}


def _row(source: str, samples: List[Dict[str, float]]) -> Dict:
    row: Dict = {"source": source, "frames": len(samples)}
    for key in ("object", "background", "relative"):
        values = [s[key] for s in samples]
        p25, p50, p75, p90 = np.percentile(values, [25, 50, 75, 90])
        row[f"{key} p50"] = float(p50)
        row[f"{key} p25-p75"] = f"{p25:.4f}-{p75:.4f}"
        row[f"{key} p90"] = float(p90)
    return row


def run(args) -> List[Dict]:
    from maskrnn_tf.data.dreaming import DreamConfig, dream_clip
    from maskrnn_tf.data.flow_backends import make_backend
    from maskrnn_tf.data.flow_cache import FlowCache
    from maskrnn_tf.data.sequences import read_davis_sequence_list, read_ids
    from maskrnn_tf.io import read_frame

    exclude = {name for name in args.exclude.split(",") if name}
    sequences = [s for s in read_davis_sequence_list(args.davis_root, 2016, "train") if s.name not in exclude]
    cache = FlowCache(make_backend("dis"), os.path.expanduser(args.flow_cache_dir))
    real = []
    for sequence in sequences:
        for a in range(0, sequence.num_frames - 1, args.every):
            on = read_ids(sequence, a) == 1
            if on.sum() < 50:
                continue
            real.append(_medians(cache.flow(sequence, a, a + 1), on, float(min(on.shape))))
    rows = [_row(f"DAVIS-2016 train ({len(sequences)} sequences), DIS", real)]
    for speed in (float(s) for s in args.speeds.split(",")):
        config = DreamConfig(num_frames=args.clip_length).with_speed(speed)
        dreamt = []
        for seed, sequence in enumerate(sequences[::2]):
            frame = cv2.resize(read_frame(sequence.frame_paths[10]), (432, 243), interpolation=cv2.INTER_AREA)
            ids = cv2.resize((read_ids(sequence, 10) == 1).astype(np.uint8), (432, 243),
                             interpolation=cv2.INTER_NEAREST)
            clip = dream_clip(frame, ids, seed=seed, config=config)
            for t, flow in enumerate(clip.flow_fwd):
                on = clip.masks[t] == 1
                if on.sum() >= 20:
                    dreamt.append(_medians(flow, on, 243.0))
        rows.append(_row(f"dreamt, speed {speed:g}", dreamt))
    return rows
