"""Training step time (T unrolled frames), recurrence overhead and peak memory, per size/precision/recompute.

`python -m bench train_step --width 0.25 --sizes 240x432,480x854 --precisions float32,bfloat16`
Each configuration runs in its own subprocess so that its peak RSS (resource.getrusage maxrss, CPU) is its own.
overhead = (unrolled T-frame step) / (T x single-frame static step), measured side by side in the same process: after
both steps are warmed up (tracing untimed) they alternate (clip, single-frame, clip, ...) --repeats times, and the
row reports each step's median.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Dict, List, Mapping

from bench._arg_types import PRECISIONS, choice_list, positive_float, positive_int, size_list

_CHILD = r"""
import json, resource, sys, time
args = json.loads(sys.argv[1])
import os
# Before TensorFlow starts; set both ways, since the parent's own setting is inherited.
os.environ["TF_CPU_ALLOCATOR_USE_BFC"] = "true" if args["cpu_allocator"] == "bfc" else "false"
import numpy as np, tensorflow as tf
from maskrnn_tf.training.precision import set_precision
policy = set_precision(args["precision"])
from maskrnn_tf.model import MaskRNN
from maskrnn_tf.training.config import TrainConfig
from maskrnn_tf.training.steps import TrainSteps, make_optimizer
h, w, t = args["height"], args["width"], args["frames"]
cfg = TrainConfig().override({"model.width": args["model_width"], "model.fc_units": args["fc_units"],
    "data.batch_size": 1, "data.clip_batch_size": 1, "data.clip_length": t + 1, "recompute": args["recompute"],
    "reverse_clip_prob": 0.0, "precision": args["precision"],
    "jit_compile": args["jit"]})
model = MaskRNN(cfg.model)
steps = TrainSteps(model, make_optimizer(cfg, policy), cfg, tf.distribute.get_strategy(), tf.Variable(0, dtype=tf.int64))
rng = np.random.default_rng(0)
masks = np.zeros((1, t + 1, h, w), np.float32); masks[:, :, h // 4: h // 2, w // 4: w // 2] = 1
clip = {"frames": tf.constant(rng.uniform(0, 255, (1, t + 1, h, w, 3)).astype(np.float32)),
        "flows_to_prev": tf.ones((1, t + 1, h, w, 2)), "flows_to_next": -tf.ones((1, t + 1, h, w, 2)),
        "masks": tf.constant(masks), "void": tf.zeros((1, t + 1, h, w))}
static = {"frame": clip["frames"][:, 1], "flow_to_prev": clip["flows_to_prev"][:, 1],
          "flow_to_next": clip["flows_to_next"][:, 1], "prev_mask": clip["masks"][:, 0], "mask": clip["masks"][:, 1],
          "void": clip["void"][:, 1]}
def median_times(fns: dict, repeats: int) -> dict:
    # Median seconds per step, the steps alternated (A, B, A, B, ...) so that load changes reach both alike.
    for fn in fns.values():  # trace, then run once more traced: neither goes into the times
        float(fn()["loss"])
        float(fn()["loss"])
    times = {key: [] for key in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            start = time.perf_counter()
            float(fn()["loss"])  # a step is done when its loss can be read
            times[key].append(time.perf_counter() - start)
    return {key: float(np.median(values)) for key, values in times.items()}
no = tf.constant(False)
seconds = median_times({"clip": lambda: steps.clip_step(clip, no), "frame": lambda: steps.static_step(static)},
                       args["repeats"])
print(json.dumps({"clip_s": seconds["clip"], "frame_s": seconds["frame"], "policy": policy,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))
"""


def add_arguments(parser) -> None:
    parser.add_argument("--width", type=positive_float, default=0.25, help="VGG channel multiplier (1.0 = paper)")
    parser.add_argument("--fc_units", type=positive_int, default=256)
    parser.add_argument("--frames", type=positive_int, default=7, help="unrolled frames T (clip length T + 1)")
    parser.add_argument("--sizes", type=size_list, default="240x432,480x854")
    parser.add_argument("--precisions", type=choice_list(PRECISIONS), default="float32,bfloat16",
                        help="comma list of float32, bfloat16, float16, auto (resolved as training resolves it)")
    parser.add_argument("--recompute", type=choice_list(("false", "true")), default="false,true",
                        help="comma list of false/true")
    # Validated: anything but "true" would run without XLA, silently.
    parser.add_argument("--jit", type=choice_list(("false", "true")), default="false",
                        help="comma list of false/true: XLA-compile the step (train --jit_compile)")
    # Validated: the child takes anything but "bfc" as malloc, and the row would keep the label typed.
    parser.add_argument("--cpu_allocator", type=choice_list(("bfc", "malloc")), default="bfc",
                        help="comma list of bfc/malloc: CPU tensors from TensorFlow's pool, as the binaries set it "
                        "(maskrnn_tf.host_memory), or malloc'd one by one")
    parser.add_argument("--repeats", type=positive_int, default=3,
                        help="timed (clip step, single-frame step) pairs; the row reports each step's median")


def child_env(environ: Mapping[str, str]) -> Dict[str, str]:
    """The environment of a measuring child: the caller's, quieter by default, and always without a GPU."""
    # CUDA_VISIBLE_DEVICES after the caller's: the rows are CPU measurements (peak RSS included), whatever it sets.
    return {"TF_CPP_MIN_LOG_LEVEL": "3", **environ, "CUDA_VISIBLE_DEVICES": ""}


def run(args) -> List[Dict]:
    rows = []
    for size in args.sizes.split(","):
        height, width = (int(x) for x in size.lower().split("x"))
        for precision in args.precisions.split(","):
            for recompute, jit, allocator in ((r.strip().lower() == "true", j.strip().lower() == "true", a.strip())
                                              for r in args.recompute.split(",") for j in args.jit.split(",")
                                              for a in args.cpu_allocator.split(",")):
                spec = {"height": height, "width": width, "frames": args.frames, "precision": precision,
                        "recompute": recompute, "jit": jit, "cpu_allocator": allocator, "model_width": args.width,
                        "fc_units": args.fc_units, "repeats": args.repeats}
                proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(spec)], capture_output=True,
                                      text=True, env=child_env(os.environ))
                lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
                if proc.returncode != 0 or not lines:
                    raise RuntimeError(f"bench child failed for {spec}:\n{proc.stderr[-2000:]}")
                r = json.loads(lines[-1])
                used = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}[r["policy"]]
                label = f"auto={used}" if precision == "auto" else precision
                rows.append({"size": size, "precision": label, "recompute": recompute, "jit": jit, "cpu_allocator": allocator,
                             "width": args.width,
                             "T": args.frames, "step_s": r["clip_s"], "frame_step_s": r["frame_s"],
                             "overhead": r["clip_s"] / (args.frames * r["frame_s"]),
                             "peak_rss_mb": r["peak_rss_mb"]})
    return rows
