"""Online finetuning cost per video: static (the paper's) beside recurrent (BPTT on dreamt clips).

Both run on the first frame of a DAVIS sequence at `--max_size` with the CPU recipe's network
(davis16_cpu.flags: width 0.5, fc 256, five side outputs), untrained weights (the cost does not depend on them).
Per mode: the first call (tracing the update included) and the steady update time. Recurrent rows also give how
many updates fit in `segment --finetune_budget` seconds for the first video of a run and for later videos of the
same frame size (it traces once per frame size, outside the budget, and dreams its clips per video). Static
finetuning has no budget (`--finetune_budget` is recurrent only): it runs all its `--finetune_steps`, retracing per
video, so its row gives "-" there and a note of how long its default updates take per video.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Dict, List

import cv2
import numpy as np

from maskrnn_tf.data.dreaming import DreamConfig
from maskrnn_tf.inference.finetune import FinetuneConfig, finetune
from maskrnn_tf.inference.recurrent_finetune import RecurrentFinetuneConfig, RecurrentFinetuner
from maskrnn_tf.inference.video_reader import working_size
from maskrnn_tf.io import read_mask
from maskrnn_tf.model import MaskRNN, MaskRNNConfig
from maskrnn_tf.model.rebuild import rebuild_with_precision
from maskrnn_tf.training.precision import resolve_precision

DEFAULT_DAVIS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "DAVIS-2016")
RECIPE_SIDES = ["conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--davis_root", default=DEFAULT_DAVIS, help="DAVIS-2016 folder (480p frames)")
    parser.add_argument("--sequence", default="blackswan")
    parser.add_argument("--max_size", type=int, default=432, help="long side the video is processed at")
    parser.add_argument("--model_width", type=float, default=0.5)
    parser.add_argument("--fc_units", type=int, default=256)
    parser.add_argument("--precision", default="auto", help="auto, float32, bfloat16 or float16")
    parser.add_argument("--clip_length", type=int, default=5, help="frames per dreamt clip")
    parser.add_argument("--updates", type=int, default=4, help="timed updates after the first per mode")
    parser.add_argument("--budget", type=float, default=60.0, help="recurrent finetuning's seconds per video "
                        "(segment --finetune_budget; static finetuning has no budget)")
    parser.add_argument("--crops", default="0", help="comma-separated segment --finetune_crop values to time "
                        "recurrent finetuning at (0 = the whole frame)")
    parser.add_argument("--dream_flows", default="exact", help="comma-separated segment --finetune_dream_flow "
                        "values to time recurrent finetuning with (exact, dis, ...)")


def _first_frame(args: argparse.Namespace):
    frame_path = os.path.join(args.davis_root, "JPEGImages", "480p", args.sequence, "00000.jpg")
    mask_path = os.path.join(args.davis_root, "Annotations", "480p", args.sequence, "00000.png")
    frame = cv2.cvtColor(cv2.imread(frame_path), cv2.COLOR_BGR2RGB)
    ids = (read_mask(mask_path) > 0).astype(np.uint8)
    h, w = working_size(frame.shape[:2], args.max_size)
    return (cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA),
            cv2.resize(ids, (w, h), interpolation=cv2.INTER_NEAREST))


def _fits(budget: float, fixed: float, per_update: float) -> int:
    """Updates in `budget` seconds after `fixed` ones (the first update always runs, as in the finetuner)."""
    return max(1, int((budget - fixed) // per_update))


def run(args: argparse.Namespace) -> List[Dict]:
    precision = resolve_precision(args.precision)
    frame, ids = _first_frame(args)
    config = MaskRNNConfig(width=args.model_width, fc_units=args.fc_units, side_stages=tuple(RECIPE_SIDES))
    model = rebuild_with_precision(MaskRNN(config), precision)
    size = f"{frame.shape[1]}x{frame.shape[0]}"
    rows = []

    # -- static: each call traces its own update, then runs `steps` of them -------------------------------
    finetune(model, frame, ids, [1], config=FinetuneConfig(steps=1))  # the process's one-time costs, untimed
    start = time.monotonic()
    finetune(model, frame, ids, [1], config=FinetuneConfig(steps=1))
    one = time.monotonic() - start
    start = time.monotonic()
    finetune(model, frame, ids, [1], config=FinetuneConfig(steps=1 + args.updates))
    update = (time.monotonic() - start - one) / args.updates
    # No budget column: segment's --finetune_budget stops recurrent finetuning only, static runs every update.
    steps = FinetuneConfig().steps
    rows.append({"mode": "static", "precision": precision, "size": size, "clip": 1, "first_call_s": one,
                 "update_s": update, "dream_s": 0.0, "budget_s": "-", "fit_first_video": "-", "fit_later_videos": "-",
                 "note": f"no budget: all {steps} default updates run, ~{one + (steps - 1) * update:.0f} s per video"})

    # -- recurrent: the traced step is kept across videos; clips are dreamt per video --------------------------
    settings = [(int(c), flow) for c in args.crops.split(",") for flow in args.dream_flows.split(",")]
    for crop, flow in settings:
        recurrent = RecurrentFinetuneConfig(steps=1 + args.updates, time_budget_s=0.0, crop=crop, dream_flow=flow,
                                            dream=DreamConfig(num_frames=args.clip_length))
        finetuner = RecurrentFinetuner(model, 1, recurrent)
        first = finetuner.run(frame, ids, [1])
        again = finetuner.run(frame, ids, [1])  # a second video of the same size: no tracing
        update = statistics.median(first.step_seconds[1:] + again.step_seconds)
        dream_per_clip = again.dream_seconds / max(1, min(recurrent.num_clips, again.steps))
        dreamt = f"{again.window[3]}x{again.window[2]}" if again.window else size
        mode = "recurrent" + (f", crop {crop}" if crop else "") + (f", {flow} flow" if flow != "exact" else "")
        rows.append({"mode": mode, "precision": precision,
                     "size": dreamt, "clip": args.clip_length, "first_call_s": first.step_seconds[0],
                     "update_s": update, "dream_s": dream_per_clip, "budget_s": args.budget,
                     "fit_first_video": _fits(args.budget, 0.0, update + dream_per_clip),  # tracing is not charged
                     "fit_later_videos": _fits(args.budget, 0.0, update + dream_per_clip), "note": ""})
    return rows
