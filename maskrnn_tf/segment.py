"""Segments a video (a folder of frames or a video file) given its first-frame mask.

    python -m maskrnn_tf.segment --video=DIR|file.mp4 --first_mask=mask.png --model=run_dir \
        --output=results/ [--finetune_steps=200] [--max_size=N] [--overlay=out.mp4] [--save_probs] \
        [--flow=dis|dis-fast|farneback|flo --flo_dir=DIR]
    python -m maskrnn_tf.segment --method=flow_propagation --davis_root=DAVIS --split=val --output=results/

Writes `<output>/<frame>.png` (palette PNGs of the object ids, the input mask's palette), or
`<output>/<sequence>/<frame>.png` for a DAVIS split (the layout `python -m maskrnn_tf.evaluate` reads).
The output folder appears only when complete; an existing one is refused unless --overwrite.

Flow is computed from the frames (DIS by default), or, with `--flow=flo --flo_dir=DIR`, read from precomputed
`DIR/<sequence>/<stem_a>_<stem_b>.flo` files (FlowNet2, RAFT, exact synthetic flows), where <sequence> is the
DAVIS sequence name with --davis_root and the frames folder's basename with --video=DIR (a video file's name
without extension, its frames named 00000, 00001, ...); flows are resized (vectors scaled) under --max_size.
"""
from __future__ import annotations

import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("video", None, "Folder of frames (jpg/png, sorted by name) or a video file (mp4, ...).")
flags.DEFINE_string("first_mask", None, "First-frame mask: palette PNG of object ids, or a binary mask.")
flags.DEFINE_string("davis_root", None, "Segment every sequence of a DAVIS split instead of --video.")
flags.DEFINE_string("split", "val", "DAVIS split (with --davis_root).")
flags.DEFINE_integer("davis_year", None, "2016 or 2017; default: detected from ImageSets/.")
flags.DEFINE_list("sequences", None, "With --davis_root: only these sequences.")
flags.DEFINE_string("output", None, "Results folder (must not exist unless --overwrite).")
flags.DEFINE_enum("method", "maskrnn", ["maskrnn", "flow_propagation"],
                  "maskrnn (needs --model) or the no-learning flow-propagation baseline.")
flags.DEFINE_string("model", None, "model.keras file, or a run folder holding model.keras.")
flags.DEFINE_integer("finetune_steps", 200, "Online finetuning iterations on the first frame (0 skips).")
flags.DEFINE_float("finetune_lr", 1e-5, "Initial online-finetuning learning rate (decays to 1/10).")
flags.DEFINE_float("finetune_loc_weight", 1.0, "Online finetuning: weight of the localization loss.")
flags.DEFINE_bool("finetune_class_balance", True, "Online finetuning: class-balanced BCE (the paper's); "
                  "--nofinetune_class_balance for plain BCE (as the model was trained, e.g. davis16_cpu.flags).")
flags.DEFINE_integer("max_size", 0, "Process frames with the long side capped at this size (0 = full size); "
                     "masks are upsampled back to the input size.")
flags.DEFINE_string("overlay", None, "Also write this mp4 with the masks blended in (single video only).")
flags.DEFINE_bool("save_probs", False, "Also write probability maps under <output>/probs/.")
flags.DEFINE_enum("probs_format", "npy", ["npy", "png"], "npy: float16 [N,H,W] per frame; png: 8-bit per object.")
flags.DEFINE_string("flow", "dis", "Flow backend: dis (DIS medium), dis-fast, dis-ultrafast, farneback, or flo "
                    "(precomputed .flo files under --flo_dir).")
flags.DEFINE_string("flo_dir", None, "With --flow=flo: folder of <sequence>/<stem_a>_<stem_b>.flo (flow from frame "
                    "stem_a to stem_b, both directions of each consecutive pair); <sequence> is the DAVIS sequence "
                    "with --davis_root, the frames folder's basename (or video file name sans extension) with --video.")
flags.DEFINE_integer("read_ahead", 3, "Frames (with flows) prepared ahead of the model on a background thread.")
flags.DEFINE_bool("jit_compile", False, "XLA-compile the model step.")
flags.DEFINE_enum("precision", "auto", ["auto", "float32", "bfloat16", "float16"],
                  "Compute precision of the model (and of online finetuning, with loss scaling in float16): auto = "
                  "float16 on a GPU, bfloat16 on a CPU with AMX, else float32.")
flags.DEFINE_bool("apply_localization", None, "Restrict each mask to its enlarged predicted box (the paper's "
                  "'Apply'); default: as the model was trained. --noapply_localization deploys the segmentation net "
                  "alone (the paper's 'Train' row).")
flags.DEFINE_bool("overwrite", False, "Replace an existing output folder (after the new one is complete).")
flags.DEFINE_bool("progress", True, "Show a progress bar.")


def main(argv) -> int:
    del argv
    from maskrnn_tf import inference  # heavy imports (TensorFlow) after flag parsing: --help stays fast

    if not FLAGS.output:
        raise app.UsageError("--output is required.")
    if bool(FLAGS.video) == bool(FLAGS.davis_root):
        raise app.UsageError("give exactly one of --video (with --first_mask) or --davis_root.")
    if FLAGS.video and not FLAGS.first_mask:
        raise app.UsageError("--video needs --first_mask (the first frame's mask).")
    if FLAGS.davis_root and FLAGS.overlay:
        raise app.UsageError("--overlay applies to a single --video.")
    if FLAGS.method == "maskrnn" and not FLAGS.model:
        raise app.UsageError("--method=maskrnn needs --model (or use --method=flow_propagation).")

    inference.check_output_dir(FLAGS.output, FLAGS.overwrite)
    if FLAGS.flow == "flo" and not FLAGS.flo_dir:
        raise app.UsageError("--flow=flo needs --flo_dir (the folder of <sequence>/<stem_a>_<stem_b>.flo files).")
    flow_fn = inference.make_flow_fn(FLAGS.flow, FLAGS.flo_dir)
    baseline = FLAGS.method == "flow_propagation"
    options = inference.SegmentOptions(
        max_size=FLAGS.max_size or None, need_next_flow=not baseline,
        save_probs=FLAGS.probs_format if FLAGS.save_probs else None, read_ahead=FLAGS.read_ahead,
        progress=FLAGS.progress,
    )
    step_fn, prepare = inference.flow_propagation_step, None
    if not baseline:
        from maskrnn_tf.training.precision import resolve_precision

        precision = resolve_precision(FLAGS.precision)
        overrides = {} if FLAGS.apply_localization is None else {"apply_localization": FLAGS.apply_localization}
        model = inference.load_model(FLAGS.model, precision=precision, overrides=overrides)
        step_fn = inference.model_step_fn(model, FLAGS.jit_compile)
        if FLAGS.finetune_steps:
            config = inference.FinetuneConfig(steps=FLAGS.finetune_steps, learning_rate=FLAGS.finetune_lr,
                                              loc_weight=FLAGS.finetune_loc_weight,
                                              class_balance=FLAGS.finetune_class_balance)
            prepare = inference.finetuning_prepare(model, step_fn, flow_fn, options.max_size, config)
    if FLAGS.davis_root:
        names = inference.segment_davis(
            FLAGS.davis_root, FLAGS.split, flow_fn, FLAGS.output, step_fn=step_fn, options=options,
            overwrite=FLAGS.overwrite, year=FLAGS.davis_year, prepare=prepare, sequences=FLAGS.sequences,
        )
        print(f"wrote {len(names)} sequences to {FLAGS.output}")
    else:
        count = inference.segment_video(
            step_fn, FLAGS.video, FLAGS.first_mask, flow_fn, FLAGS.output, options, overlay_path=FLAGS.overlay,
            overwrite=FLAGS.overwrite, prepare=prepare,
        )
        print(f"wrote {count} frames to {FLAGS.output}" + (f" and {FLAGS.overlay}" if FLAGS.overlay else ""))
    return 0


def run() -> None:
    """Entry point: absl flags, clear one-line errors for bad inputs."""

    def guarded(argv):
        from maskrnn_tf.inference import (MaskError, ModelLoadError, OutputExistsError, VideoReadError)
        from maskrnn_tf.io import ImageReadError

        try:
            return main(argv)
        except (MaskError, ModelLoadError, OutputExistsError, VideoReadError, ImageReadError, ValueError,
                FileNotFoundError) as err:
            print(f"Error: {err}", file=sys.stderr)
            return 1

    app.run(guarded)


if __name__ == "__main__":
    run()
