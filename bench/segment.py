"""Segmenting a 480p video end to end (decode, DIS flow, model, PNG writing) beside the model-only step rate.

The model-only loop runs `model_step_fn` on frames and flows already in memory; the end-to-end loop is
`segment_frames` on the same frames read from disk, flow computed on the fly on the background thread
(read-ahead 3) and PNGs written on the writer thread. A third row turns the read-ahead off (flow computed
inline) to show what the overlap buys. Runs alternate (model-only, end-to-end, inline, repeat) and the table
reports medians, so the ratio is measured side by side. A small model width keeps it to a few minutes on a
CPU; a wider model only makes the step slower and the overlap easier.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from typing import Dict, List, Optional

import numpy as np

from bench._arg_types import (FRAME_FLOWS, davis_sequence_problem, existing_dir, int_at_least, positive_float,
                              positive_int)
from maskrnn_tf.inference import (
    SegmentOptions,
    VideoSource,
    make_flow_fn,
    model_step_fn,
    read_first_mask,
    segment_frames,
)
from maskrnn_tf.model import MaskRNN, MaskRNNConfig

DEFAULT_SEQUENCE = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "DAVIS-2016")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--davis_root", type=existing_dir, default=DEFAULT_SEQUENCE,
                        help="DAVIS-2016 folder (480p frames)")
    parser.add_argument("--sequence", default="blackswan", help="a sequence of --davis_root")
    parser.add_argument("--frames", type=int_at_least(2, "the given mask and one frame to segment"), default=10,
                        help="frames per run (the first is the given mask)")
    parser.add_argument("--model_width", type=positive_float, default=0.125, help="VGG channel multiplier")
    parser.add_argument("--fc_units", type=positive_int, default=64)
    parser.add_argument("--flow", choices=FRAME_FLOWS, default="dis", help="flow backend")
    parser.add_argument("--repeats", type=positive_int, default=2)


def check_arguments(args: argparse.Namespace) -> Optional[str]:
    """What is wrong with --sequence and --frames in --davis_root (None: nothing), before the model is built."""
    return davis_sequence_problem(args.davis_root, args.sequence, args.frames)


def run(args: argparse.Namespace) -> List[Dict]:
    frame_dir = os.path.join(args.davis_root, "JPEGImages", "480p", args.sequence)
    paths = sorted(os.path.join(frame_dir, f) for f in os.listdir(frame_dir))[: args.frames]
    mask_path = os.path.join(args.davis_root, "Annotations", "480p", args.sequence, "00000.png")
    source = VideoSource(frame_dir, frame_paths=paths)
    first = read_first_mask(mask_path, source.size)
    model = MaskRNN(MaskRNNConfig(width=args.model_width, fc_units=args.fc_units))
    step_fn = model_step_fn(model)
    flow_fn = make_flow_fn(args.flow)

    frames = list(source.frames())
    zeros = np.zeros(frames[0].shape[:2] + (2,), np.float32)
    to_prev = [zeros] + [flow_fn(frames[t], frames[t - 1]) for t in range(1, len(frames))]
    to_next = [flow_fn(frames[t], frames[t + 1]) for t in range(1, len(frames) - 1)]
    to_next = [zeros] + to_next + [zeros]
    first_probs = first.one_hot()

    def model_only() -> None:
        probs, boxes = first_probs, np.array([[0, 0, *first_probs.shape[1:]]], np.float32)
        for t in range(1, len(frames)):
            out = step_fn(frames[t], to_prev[t], to_next[t], probs, boxes)
            probs, boxes = out["probs"], out["boxes"]

    scratch = tempfile.mkdtemp(prefix="bench-segment-")

    def end_to_end(read_ahead: int) -> None:
        out = os.path.join(scratch, f"run{read_ahead}")
        shutil.rmtree(out, ignore_errors=True)
        segment_frames(step_fn, source, first, flow_fn, out, SegmentOptions(read_ahead=read_ahead, progress=False))

    runs = {"model step only": model_only, "end to end (overlapped)": lambda: end_to_end(3),
            "end to end (inline flow)": lambda: end_to_end(0)}
    try:
        model_only()  # trace and warm up
        times = {k: [] for k in runs}
        for _ in range(args.repeats):
            for key, fn in runs.items():
                start = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - start)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    steps = len(frames) - 1
    model_rate = steps / float(np.median(times["model step only"]))
    rows = []
    for key, values in times.items():
        seconds = float(np.median(values))
        rate = steps / seconds
        rows.append({"run": key, "size": f"{source.size[1]}x{source.size[0]}", "width": args.model_width,
                     "steps": steps, "seconds": seconds, "frames_per_s": rate, "ratio_to_model": rate / model_rate})
    return rows
