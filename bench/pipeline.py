"""Stage-B clip pipeline throughput on the shared DAVIS-2016 sequences, at 480p and at half size.

    python -m bench pipeline [--sequences=blackswan,car-shadow] [--clips=24] [--clip_length=8]

Flows are precomputed into --cache_dir first (not timed; reused across runs), then each row times
`make_clip_dataset` (decode JPEGs and PNGs, read cached float16 flows, augment, crop) after a warm-up.
Compare clips/s with the training benchmark's clips/s consumed by the train step: the pipeline should
deliver at least twice as many.
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Dict, List, Optional

from bench._arg_types import FRAME_FLOWS, existing_dir, int_at_least, output_dir, positive_int

_SHARED = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "DAVIS-2016"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--davis_root", type=existing_dir, default=_SHARED, help="DAVIS-2016 folder")
    parser.add_argument("--sequences", default="blackswan,car-shadow",
                        help="comma-separated trainval sequences (checked against --davis_root)")
    parser.add_argument("--cache_dir", type=output_dir, default="/tmp/maskrnn_tf_flow_cache",
                        help="flow cache (reused)")
    parser.add_argument("--backend", choices=FRAME_FLOWS, default="dis", help="flow backend that fills the cache")
    parser.add_argument("--clips", type=positive_int, default=24, help="clips timed per row")
    parser.add_argument("--clip_length", type=int_at_least(2, "a seed frame and one unrolled"), default=8)


def check_arguments(args: argparse.Namespace) -> Optional[str]:
    """What is wrong with --sequences in --davis_root (None: nothing), before flows are computed into the cache."""
    from maskrnn_tf.data.sequences import read_davis_sequence_list

    try:  # the list alone: the chosen sequences' files are checked when they are read
        listed = read_davis_sequence_list(args.davis_root, 2016, "trainval", validate=False)
    except (OSError, ValueError) as error:
        return f"--davis_root: {error}"
    present = {s.name for s in listed if os.path.isdir(os.path.dirname(s.frame_paths[0]))}
    missing = [name for name in args.sequences.split(",") if name not in present]
    if missing:
        return f"--sequences: {missing} not among the trainval sequences in {args.davis_root}"
    return None


def run(args: argparse.Namespace) -> List[Dict]:
    from maskrnn_tf.data.augment import AugmentConfig
    from maskrnn_tf.data.flow_backends import make_backend
    from maskrnn_tf.data.flow_cache import FlowCache
    from maskrnn_tf.data.pipelines import make_clip_dataset
    from maskrnn_tf.data.sequences import read_davis_sequence_list
    from maskrnn_tf.data.sources import SequenceSource

    wanted = args.sequences.split(",")
    sequences = [s for s in read_davis_sequence_list(args.davis_root, 2016, "trainval") if s.name in wanted]
    cache = FlowCache(make_backend(args.backend), args.cache_dir)
    for sequence in sequences:
        cache.precompute(sequence)
    source = SequenceSource(sequences, cache)
    rows = []
    for label, crop in (("480p", (480, 854)), ("half", (240, 427))):
        augment = AugmentConfig(crop_size=crop, min_scale=1.0, max_scale=1.2)
        dataset = make_clip_dataset(source, clip_length=args.clip_length, augment=augment, seed=0)
        iterator = iter(dataset)
        for _ in range(3):  # warm-up: graph tracing, thread pools
            next(iterator)
        start = time.perf_counter()
        for _ in range(args.clips):
            next(iterator)
        seconds = time.perf_counter() - start
        rows.append({
            "output": f"{label} {crop[0]}x{crop[1]}",
            "clip_length": args.clip_length,
            "clips": args.clips,
            "seconds": seconds,
            "clips_per_s": args.clips / seconds,
            "frames_per_s": args.clips * args.clip_length / seconds,
        })
    return rows
