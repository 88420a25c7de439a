"""DAVIS evaluation speed: milliseconds per scored frame for reading, J+F, and T, on the DAVIS-2016 val
sequences with the ground truth written as results; plus the whole `evaluate_dataset` at 1 and 2 processes.

    python -m bench evaluate [--davis_root ../shared/data/DAVIS-2016] [--split val]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Dict, List, Optional

from bench._arg_types import existing_dir
from maskrnn_tf.io import read_mask, write_palette_png
from maskrnn_tf.metrics import EvaluationConfig, db_eval_boundary, db_eval_iou, evaluate_dataset, list_sequences
from maskrnn_tf.metrics import temporal_stability
from maskrnn_tf.metrics.davis_dataset import image_set_path, load_ground_truth, load_results
from maskrnn_tf.metrics.evaluation import evaluated_frame_indices

_DEFAULT_ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "DAVIS-2016")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Benchmark options."""
    parser.add_argument("--davis_root", type=existing_dir, default=os.path.abspath(_DEFAULT_ROOT),
                        help="DAVIS-2016 folder")
    parser.add_argument("--split", default="val", help="a split of --davis_root (ImageSets/480p/<split>.txt)")


def check_arguments(args: argparse.Namespace) -> Optional[str]:
    """What is wrong with --split in --davis_root (None: nothing), before the ground truth is copied."""
    path = image_set_path(args.davis_root, args.split, 2016)
    return None if os.path.isfile(path) else f"--split: no {path}"


def run(args: argparse.Namespace) -> List[Dict]:
    """One row per sequence (stage timings) and one per process count (whole evaluation)."""
    specs = list_sequences(args.davis_root, args.split, 2016)
    rows: List[Dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-evaluate-") as results_dir:
        for spec in specs:  # ground truth as results: the metric work is the same as for real predictions
            os.makedirs(os.path.join(results_dir, spec.name))
            for frame, path in zip(spec.frames, spec.annotation_paths):
                write_palette_png(os.path.join(results_dir, spec.name, frame + ".png"), read_mask(path))
        total_frames = 0
        for spec in specs:
            indices = evaluated_frame_indices(len(spec.frames))
            start = time.perf_counter()
            gt, void, ids = load_ground_truth(spec, indices)
            pred = load_results(results_dir, spec, indices, ids, gt.shape[1:])
            read_s = time.perf_counter() - start
            start = time.perf_counter()
            for obj in ids:
                db_eval_iou(gt == obj, pred == obj, void)
                db_eval_boundary(gt == obj, pred == obj, void)
            jf_s = time.perf_counter() - start
            start = time.perf_counter()
            for obj in ids:
                temporal_stability(pred == obj)
            t_s = time.perf_counter() - start
            n = len(indices)
            total_frames += n
            rows.append(_row(spec.name, 1, n, read_s, jf_s, t_s, read_s + jf_s + t_s))
        for processes in (1, 2):
            start = time.perf_counter()
            evaluate_dataset(args.davis_root, results_dir, EvaluationConfig(split=args.split, year=2016,
                                                                            processes=processes))
            rows.append(_row("evaluate_dataset (all)", processes, total_frames, None, None, None,
                             time.perf_counter() - start))
    return rows


def _row(name: str, processes: int, frames: int, read_s, jf_s, t_s, total_s: float) -> Dict:
    def ms(seconds):
        return "-" if seconds is None else float(1000.0 * seconds / max(frames, 1))

    return {
        "sequence": name,
        "processes": processes,
        "frames": frames,
        "read_ms/frame": ms(read_s),
        "J+F_ms/frame": ms(jf_s),
        "T_ms/frame": ms(t_s),
        "total_ms/frame": ms(total_s),
    }


if __name__ == "__main__":  # `python -m bench.evaluate [options]`: the entry point's checks and table
    import sys

    from bench.__main__ import main

    sys.exit(main(["evaluate", *sys.argv[1:]]))
