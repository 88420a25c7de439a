"""Forward step time per object at 480x854 beside two forwards of a plain VGG-16 trunk of the model's width.

Both are compiled with tf.function and timed interleaved (A, B, A, B, ...) in the same process so that the
ratio is measured side by side; the table reports medians.
"""
from __future__ import annotations

import argparse
import time
from typing import Dict, List

import keras
import numpy as np
import tensorflow as tf

from bench._arg_types import PRECISIONS, choice_list, frame_side, positive_float, positive_int
from maskrnn_tf.model import MaskRNN, MaskRNNConfig
from maskrnn_tf.model.vgg_trunk import build_vgg_trunk
from maskrnn_tf.training.precision import resolve_precision


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--height", type=frame_side, default=480)
    parser.add_argument("--width", type=frame_side, default=854)
    parser.add_argument("--model_width", type=positive_float, default=1.0, help="VGG channel multiplier")
    parser.add_argument("--objects", type=positive_int, default=1)
    parser.add_argument("--precisions", type=choice_list(PRECISIONS), default="float32,bfloat16",
                        help="comma list of float32, bfloat16, float16, auto (resolved as segment resolves it)")
    parser.add_argument("--repeats", type=positive_int, default=5)


def baseline_trunk(width: float) -> keras.Model:
    """The ratio's baseline: a plain VGG-16 conv trunk (conv1_1 ... conv5_3) at the model's channel width."""
    trunk = build_vgg_trunk(3, width)
    return keras.Model(trunk.input, trunk.output["conv5_3"])


def _median_times(fns: Dict[str, callable], repeats: int) -> Dict[str, float]:
    for fn in fns.values():  # trace + warm up
        fn()
        fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return {k: float(np.median(v)) for k, v in times.items()}


def run(args: argparse.Namespace) -> List[Dict]:
    rows = []
    h, w, n = args.height, args.width, args.objects
    rng = np.random.default_rng(0)
    frame = tf.constant(rng.uniform(0, 255, (h, w, 3)), tf.float32)
    flow = tf.constant(rng.normal(0, 2, (h, w, 2)), tf.float32)
    prev = np.zeros((n, h, w), np.float32)
    prev[:, h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 1.0
    prev = tf.constant(prev)
    for requested in args.precisions.split(","):
        precision = resolve_precision(requested)
        keras.mixed_precision.set_global_policy("float32" if precision == "float32" else f"mixed_{precision}")
        try:
            model = MaskRNN(MaskRNNConfig(width=args.model_width))
            vgg = baseline_trunk(args.model_width)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        step = tf.function(lambda: model.step(frame, flow, flow, prev)["probs"])
        images = tf.tile(frame[None], [n, 1, 1, 1])
        plain = tf.function(lambda: (vgg(images), vgg(images)))
        t = _median_times({"step": lambda: step().numpy(), "vgg": lambda: [x.numpy() for x in plain()]}, args.repeats)
        rows.append(
            {
                "precision": f"auto={precision}" if requested == "auto" else precision,
                "size": f"{h}x{w}",
                "width": args.model_width,
                "objects": n,
                "step_ms_per_object": 1000 * t["step"] / n,
                "2x_vgg16_ms_per_object": 1000 * t["vgg"] / n,
                "ratio": t["step"] / t["vgg"],
            }
        )
    return rows
