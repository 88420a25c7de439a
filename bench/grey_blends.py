"""How well `grey_edge_blends` tells grey id maps resized with interpolation from maps saved as ids.

`python -m bench grey_blends --davis17_root=../shared/data/DAVIS-2017-sample`
Per source and resize: how many maps are refused, and the quartiles of each map's largest blend share (band pixels
over band and touching pixels, over the pairs of ids with at least BLEND_MIN_PIXELS band pixels; 0 if none).
Sources: `--maps` synthetic maps of 2-6 overlapping ellipses (320x240, ids in drawing order), each resized by a
random factor in 0.3-2.5; and DAVIS-2017's tennis annotations as grey ids, with void and with void set to
background, each resized by 0.3, 0.4, ..., 3.0. A nearest-neighbour resize keeps ids (a refusal is a false one);
bilinear, area and cubic ones blend them (area to an integer multiple of the size is nearest-neighbour).
"""
from __future__ import annotations

import argparse
import glob
import os
from typing import Dict, List, Optional

import cv2
import numpy as np
from PIL import Image

from bench._arg_types import non_negative_int, positive_int
from maskrnn_tf.io.id_images import BLEND_MIN_PIXELS, blend_shares, grey_edge_blends

RESIZES = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA,
           "cubic": cv2.INTER_CUBIC}


def add_arguments(parser) -> None:
    parser.add_argument("--davis17_root", default="../shared/data/DAVIS-2017-sample",
                        help="DAVIS-2017 folder with Annotations/480p/tennis")
    parser.add_argument("--maps", type=positive_int, default=60, help="synthetic ellipse maps")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="of the synthetic maps (numpy: >= 0)")


def _tennis_files(davis17_root: str) -> List[str]:
    """DAVIS-2017's tennis annotations under `davis17_root`, in frame order."""
    return sorted(glob.glob(os.path.join(os.path.expanduser(davis17_root), "Annotations", "480p", "tennis", "*.png")))


def check_arguments(args: argparse.Namespace) -> Optional[str]:
    """What is wrong with --davis17_root (None: nothing), before the synthetic maps are drawn and measured."""
    if not _tennis_files(args.davis17_root):
        return f"--davis17_root: {args.davis17_root} has no Annotations/480p/tennis/*.png"
    return None


def _ellipses(rng: np.random.Generator, height: int = 240, width: int = 320) -> np.ndarray:
    ids = np.zeros((height, width), np.uint8)
    for k in range(1, int(rng.integers(2, 7)) + 1):
        centre = (int(rng.integers(60, width - 60)), int(rng.integers(50, height - 50)))
        axes = (int(rng.integers(8, 60)), int(rng.integers(8, 60)))
        cv2.ellipse(ids, centre, axes, float(rng.uniform(0, 180)), 0, 360, k, -1)
    return ids


def _largest_share(ids: np.ndarray) -> float:
    bands, touching = blend_shares(ids)
    share = np.where(bands >= BLEND_MIN_PIXELS, bands / np.maximum(bands + touching, 1), 0.0)
    return float(share.max())


def _row(source: str, resize: str, maps: List[np.ndarray]) -> Dict:
    shares = np.array([_largest_share(m) for m in maps])
    low, mid, high = np.percentile(shares, [25, 50, 75])
    return {"source": source, "resize": resize, "maps": len(maps),
            "refused": sum(grey_edge_blends(m) is not None for m in maps),
            "share_min": float(shares.min()), "share_q1": float(low), "share_median": float(mid),
            "share_q3": float(high), "share_max": float(shares.max())}


def run(args) -> List[Dict]:
    rng = np.random.default_rng(args.seed)
    drawn, factors = [], []
    for _ in range(args.maps):
        drawn.append(_ellipses(rng))
        factors.append(float(rng.uniform(0.3, 2.5)))
    rows = [_row("ellipses", "none", drawn)]
    for name, flag in RESIZES.items():
        resized = [cv2.resize(m, (max(8, round(320 * f)), max(8, round(240 * f))), interpolation=flag)
                   for m, f in zip(drawn, factors)]
        rows.append(_row("ellipses", name, resized))
    files = _tennis_files(args.davis17_root)
    if not files:  # run() called without check_arguments (python -m bench checks first)
        raise SystemExit(check_arguments(args))
    for void in ("void", "void as background"):
        ids = [np.asarray(Image.open(f), np.uint8) for f in files]
        if void != "void":
            ids = [np.where(i == 255, 0, i).astype(np.uint8) for i in ids]
        rows.append(_row(f"tennis, {void}", "none", ids))
        scales = np.round(np.arange(0.3, 3.0001, 0.1), 1)
        for name, flag in RESIZES.items():
            resized = [cv2.resize(i, (round(i.shape[1] * s), round(i.shape[0] * s)), interpolation=flag)
                       for i in ids for s in scales]
            rows.append(_row(f"tennis, {void}", name, resized))
    return rows
