"""How long deleting a used tf.data iterator takes, with tf.data's autotuner on and off.

    python -m bench iterator_teardown [--seconds=45] [--trials=3]

Each trial iterates the online-finetuning pipeline (`make_finetune_dataset`, the one every finetuned video
builds) for --seconds while the consumer computes as a finetuning step would, then times `del iterator`.
With the autotuner on, its model thread sleeps between optimisation rounds (the sleep grows the longer the
iterator lives) and the deletion waits for the sleep to end. The two settings alternate trial by trial, so
both see the same machine load; batches_per_s shows what turning the autotuner off costs in throughput.
"""
from __future__ import annotations

import argparse
import time
from typing import Dict, List

from bench._arg_types import frame_side, positive_float, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=positive_float, default=45.0, help="iteration time per trial")
    parser.add_argument("--trials", type=positive_int, default=3, help="trials per setting")
    parser.add_argument("--size", type=frame_side, default=240, help="frame height (width = 16/9 of it)")


def run(args: argparse.Namespace) -> List[Dict]:
    import numpy as np
    import tensorflow as tf
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)  # with_options warns when it turns the autotuner back on

    from maskrnn_tf.data.pipelines import make_finetune_dataset

    height, width = args.size, args.size * 16 // 9
    frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    ids = np.zeros((height, width), np.uint8)
    ids[height // 4:height // 2, width // 4:width // 2] = 1
    work = tf.random.normal([512, 512])
    results: Dict[bool, Dict[str, list]] = {True: {"delete": [], "rate": []}, False: {"delete": [], "rate": []}}
    for _ in range(args.trials):
        for autotune in (True, False):
            options = tf.data.Options()
            options.autotune.enabled = autotune
            dataset = make_finetune_dataset(frame, ids, [1], batch_size=2).with_options(options)
            iterator = iter(dataset)
            start, batches = time.perf_counter(), 0
            while time.perf_counter() - start < args.seconds:
                next(iterator)
                for _ in range(10):  # a consumer that keeps the CPU busy, like a finetuning step
                    work = tf.linalg.matmul(work, work) / 512.0
                float(work[0, 0])
                batches += 1
            results[autotune]["rate"].append(batches / (time.perf_counter() - start))
            t0 = time.perf_counter()
            del iterator
            results[autotune]["delete"].append(time.perf_counter() - t0)
    return [{
        "autotune": "on" if autotune else "off (maskrnn_tf)",
        "trials": args.trials,
        "seconds_used": args.seconds,
        "delete_s_mean": float(np.mean(r["delete"])),
        "delete_s_max": float(np.max(r["delete"])),
        "batches_per_s": float(np.mean(r["rate"])),
    } for autotune, r in results.items()]
