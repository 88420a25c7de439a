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
from typing import Dict, List

_SHARED = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "DAVIS-2016"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--davis_root", default=_SHARED, help="DAVIS-2016 folder")
    parser.add_argument("--sequences", default="blackswan,car-shadow", help="comma-separated val sequences")
    parser.add_argument("--cache_dir", default="/tmp/maskrnn_tf_flow_cache", help="flow cache (reused)")
    parser.add_argument("--backend", default="dis", help="flow backend that fills the cache")
    parser.add_argument("--clips", type=int, default=24, help="clips timed per row")
    parser.add_argument("--clip_length", type=int, default=8)


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
