"""Online finetuning cost per video: static (the paper's) beside recurrent (BPTT on dreamt clips).

Both run on the first frame of a DAVIS sequence at `--max_size` with the CPU recipe's network
(davis16_cpu.flags: width 0.5, fc 256, five side outputs), untrained weights (the cost does not depend on them).
Columns:
  first_call_s: a video's first update, everything before it included (static: the call's dataset, optimizer and
    tracing, which it pays on every video; recurrent: tracing, once per frame size, inpainting and a dreamt clip).
  update_s: one update, timed inside one run (static: a call's own setup would swamp the few updates timed;
    recurrent: its clip already dreamt).
  dream_s: dreaming one clip; each of a video's first `num_clips` recurrent updates dreams its own.
  inpaint_s: inpainting the first frame's background, once per video before its first clip.
  fit_first_video / fit_later_videos: recurrent updates `segment --finetune_budget` seconds hold by the finetuner's
    rule (another starts while the time so far plus the last update's fits), not capped at `--finetune_steps`.
    On the first video of a frame size the first update (its tracing and inpainting) is charged as long as the
    second and the second always runs; later videos pay the inpainting and the first update's whole time.
Static finetuning has no budget (`--finetune_budget` is recurrent only): it runs all its `--finetune_steps`,
retracing per video, so its row gives "-" there and a note of how long its default updates take per video.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from bench._arg_types import (FRAME_FLOWS, PRECISIONS, choice_list, davis_sequence_problem, existing_dir,
                              int_at_least, int_list, positive_float, positive_int, zero_or_frame_side)
from maskrnn_tf.data.dreaming import DreamConfig, inpaint_background
from maskrnn_tf.flag_validation import AUTO_FINETUNE_LAYERS, FINETUNE_LAYERS
from maskrnn_tf.inference.finetune import FinetuneConfig, finetune
from maskrnn_tf.inference.recurrent_finetune import DreamtClips, RecurrentFinetuneConfig, RecurrentFinetuner
from maskrnn_tf.inference.video_reader import working_size
from maskrnn_tf.io import read_mask
from maskrnn_tf.model import MaskRNN, MaskRNNConfig
from maskrnn_tf.model.rebuild import rebuild_with_precision
from maskrnn_tf.training.precision import resolve_precision

DEFAULT_DAVIS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "DAVIS-2016")
RECIPE_SIDES = ["conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--davis_root", type=existing_dir, default=DEFAULT_DAVIS,
                        help="DAVIS-2016 folder (480p frames)")
    parser.add_argument("--sequence", default="blackswan", help="a sequence of --davis_root")
    parser.add_argument("--max_size", type=zero_or_frame_side, default=432,
                        help="long side the video is processed at (0 = full size, as segment --max_size)")
    parser.add_argument("--model_width", type=positive_float, default=0.5)
    parser.add_argument("--fc_units", type=positive_int, default=256)
    parser.add_argument("--precision", choices=PRECISIONS, default="auto", help="auto, float32, bfloat16 or float16")
    parser.add_argument("--clip_length", type=int_at_least(2, "a dreamt clip needs two frames"), default=5,
                        help="frames per dreamt clip")
    parser.add_argument("--updates", type=positive_int, default=4, help="timed updates after the first per mode")
    parser.add_argument("--budget", type=positive_float, default=60.0, help="recurrent finetuning's seconds per video "
                        "(segment --finetune_budget; static finetuning has no budget)")
    parser.add_argument("--crops", type=int_list(0, "pixels; 0 = the whole frame"), default="0",
                        help="comma-separated segment --finetune_crop values to time recurrent finetuning at "
                        "(0 = the whole frame)")
    parser.add_argument("--dream_flows", type=choice_list(("exact",) + FRAME_FLOWS), default="exact",
                        help="comma-separated segment --finetune_dream_flow values to time recurrent finetuning "
                        f"with ({', '.join(('exact',) + FRAME_FLOWS)})")
    parser.add_argument("--layers", type=choice_list(FINETUNE_LAYERS), default=AUTO_FINETUNE_LAYERS["recurrent"],
                        help="comma-separated segment --finetune_layers values to time recurrent finetuning with "
                        f"({', '.join(FINETUNE_LAYERS)}: the weights its updates train; default: segment's for "
                        "recurrent finetuning)")


def check_arguments(args: argparse.Namespace) -> Optional[str]:
    """What is wrong with --sequence in --davis_root (None: nothing), before the model is built."""
    return davis_sequence_problem(args.davis_root, args.sequence)


def _first_frame(args: argparse.Namespace):
    frame_path = os.path.join(args.davis_root, "JPEGImages", "480p", args.sequence, "00000.jpg")
    mask_path = os.path.join(args.davis_root, "Annotations", "480p", args.sequence, "00000.png")
    frame = cv2.cvtColor(cv2.imread(frame_path), cv2.COLOR_BGR2RGB)
    ids = (read_mask(mask_path) > 0).astype(np.uint8)
    h, w = working_size(frame.shape[:2], args.max_size)
    return (cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA),
            cv2.resize(ids, (w, h), interpolation=cv2.INTER_NEAREST))


def _fits(budget: float, fixed: float, first: float, update: float, dream: float, num_clips: int,
          always: int) -> int:
    """Recurrent updates that `budget` seconds hold by RecurrentFinetuner.run's rule: another update starts while the
    time charged so far plus the last update's still fits. `fixed` is charged before the first update, `first` for
    it; each later one costs `update`, plus `dream` while it is among the first `num_clips` (each dreams its clip).
    The first `always` updates run whatever the budget."""
    if first <= 0 or update <= 0:
        raise ValueError(f"_fits: update times must be positive, got first={first}, update={update}.")
    charged, last, count = fixed, 0.0, 0
    while count < always or charged + last <= budget:
        last = first if count == 0 else update + (dream if count < num_clips else 0.0)
        charged += last
        count += 1
    return count


def _dream_costs(frame: np.ndarray, ids: np.ndarray, window: Optional[Tuple[int, int, int, int]],
                 config: RecurrentFinetuneConfig, clips: int) -> Tuple[float, float]:
    """(inpainting the background, median time to dream one clip) in seconds, on what the finetuner dreams from:
    the crop `window` of the first frame (None: all of it), moving as the whole frame does."""
    motion_size = float(min(ids.shape[:2]))
    if window is not None:
        top, left, height, width = window
        frame, ids = frame[top:top + height, left:left + width], ids[top:top + height, left:left + width]
    start = time.monotonic()
    inpaint_background(frame, ids, config.dream.inpaint_dilation, config.dream.inpaint_radius)
    inpaint = time.monotonic() - start
    dreams = DreamtClips(frame, ids, dataclasses.replace(config, num_clips=clips + 1), motion_size)
    dreams[0]  # inpaints the background first (timed above)
    seconds = []
    for index in range(1, clips + 1):
        start = time.monotonic()
        dreams[index]
        seconds.append(time.monotonic() - start)
    return inpaint, statistics.median(seconds)


def run(args: argparse.Namespace) -> List[Dict]:
    precision = resolve_precision(args.precision)
    frame, ids = _first_frame(args)
    config = MaskRNNConfig(width=args.model_width, fc_units=args.fc_units, side_stages=tuple(RECIPE_SIDES))
    model = rebuild_with_precision(MaskRNN(config), precision)
    size = f"{frame.shape[1]}x{frame.shape[0]}"
    rows = []

    # -- static: each call traces its own update, then runs `steps` of them -------------------------------
    finetune(model, frame, ids, [1], config=FinetuneConfig(steps=1))  # the process's one-time costs, untimed
    step_seconds: List[float] = []
    start = time.monotonic()
    finetune(model, frame, ids, [1], config=FinetuneConfig(steps=1 + args.updates), step_seconds=step_seconds)
    one = time.monotonic() - start - sum(step_seconds[1:])  # what a one-update call costs
    update = statistics.median(step_seconds[1:])
    # No budget column: segment's --finetune_budget stops recurrent finetuning only, static runs every update.
    steps = FinetuneConfig().steps
    rows.append({"mode": "static", "precision": precision, "size": size, "clip": 1, "first_call_s": one,
                 "update_s": update, "dream_s": 0.0, "inpaint_s": 0.0, "budget_s": "-", "fit_first_video": "-",
                 "fit_later_videos": "-",
                 "note": f"no budget: all {steps} default updates run, ~{one + (steps - 1) * update:.0f} s per video"})

    # -- recurrent: the traced step is kept across videos; clips are dreamt per video --------------------------
    settings = [(int(c), flow, layers) for c in args.crops.split(",") for flow in args.dream_flows.split(",")
                for layers in args.layers.split(",")]
    for crop, flow, layers in settings:
        recurrent = RecurrentFinetuneConfig(steps=1 + args.updates, time_budget_s=0.0, crop=crop, dream_flow=flow,
                                            dream=DreamConfig(num_frames=args.clip_length), layers=layers)
        # Timed on one clip, so every update after a run's first is an update alone (its clip made); the dreaming
        # is timed apart below. The cost of an update does not depend on which clip it unrolls.
        finetuner = RecurrentFinetuner(model, 1, dataclasses.replace(recurrent, num_clips=1))
        first = finetuner.run(frame, ids, [1])
        again = finetuner.run(frame, ids, [1])  # a second video of the same size: no tracing
        update = statistics.median(first.step_seconds[1:] + again.step_seconds[1:])
        fixed = again.seconds - sum(again.step_seconds)  # per video before the first update (tables, fresh Adam)
        inpaint, dream = _dream_costs(frame, ids, again.window, recurrent, args.updates)
        clips = recurrent.num_clips
        dreamt = f"{again.window[3]}x{again.window[2]}" if again.window else size
        mode = ("recurrent" + (f", crop {crop}" if crop else "") + (f", {flow} flow" if flow != "exact" else "")
                + f", {layers} trained")
        rows.append({"mode": mode, "precision": precision,
                     "size": dreamt, "clip": args.clip_length, "first_call_s": first.step_seconds[0],
                     "update_s": update, "dream_s": dream, "inpaint_s": inpaint, "budget_s": args.budget,
                     # the first update charged as the second, which dreams a clip unless there is one clip
                     "fit_first_video": _fits(args.budget, fixed, update + (dream if clips > 1 else 0.0), update,
                                              dream, clips, always=2),
                     "fit_later_videos": _fits(args.budget, fixed, update + inpaint + dream, update, dream, clips,
                                               always=1),
                     "note": ""})
    return rows
