r"""Segments a video (a folder of frames or a video file) given its first-frame mask.

    python -m maskrnn_tf.segment --video=DIR|file.mp4 --first_mask=mask.png --model=run_dir \
        --output=results/ [--finetune=auto|recurrent|static|none] [--max_size=N] [--overlay=out.mp4] [--save_probs] \
        [--flow=dis|dis-fast|farneback|flo --flo_dir=DIR]
    python -m maskrnn_tf.segment --video=DIR|file.mp4 --first_box=x0,y0,x1,y1[;...] --model=run_dir --output=results/
    python -m maskrnn_tf.segment --method=flow_propagation --davis_root=DAVIS --split=val --output=results/
    python -m maskrnn_tf.segment --segtrack_root=SegTrackv2 --model=run_dir --output=results/

Writes `<output>/<frame>.png` (palette PNGs of the object ids, the input mask's palette), or
`<output>/<sequence>/<frame>.png` for a DAVIS split or a SegTrack v2 folder (the layout `python -m
maskrnn_tf.evaluate` reads; SegTrack v2 objects are numbered 1..N by their ground-truth layers).
The output folder appears only when complete, with `segment_run.json` (what was segmented). It must not be,
contain or lie inside an input; an existing one is refused unless --overwrite, which replaces only a folder
segment wrote (one holding segment_run.json). Bad inputs print one line and exit with status 2.
Without a mask tool, `--first_box` (one box per object) makes the first mask with GrabCut; it is written as
`<output>/first_mask_from_box.png` (also frame 0's result), to inspect, correct and pass back as --first_mask.

Flow is computed from the frames (DIS by default), or, with `--flow=flo --flo_dir=DIR`, read from precomputed
`DIR/<sequence>/<stem_a>_<stem_b>.flo` files (FlowNet2, RAFT, exact synthetic flows), where <sequence> is the
DAVIS sequence name with --davis_root and the frames folder's basename with --video=DIR (a video file's name
without extension, its frames named 00000, 00001, ...); flows are resized (vectors scaled) under --max_size.
"""
from __future__ import annotations

import dataclasses
import os
import sys

from absl import app, flags

from maskrnn_tf import _console, host_memory
from maskrnn_tf.flag_validation import (FINETUNE_CHECK_FRAMES, FINETUNE_LAYERS, FLOW_BACKENDS, defined_once,
                                        expand_user_paths, resolve_finetune_layers)

FLAGS = flags.FLAGS


@defined_once
def define_flags() -> None:
    """segment's flags and their checks (see defined_once)."""
    flags.DEFINE_string("video", None, "Folder of frames (jpg/png/bmp, naturally sorted: frame2 before frame10) or "
                        "a video file (mp4, ...).")
    flags.DEFINE_string("first_mask", None, "First-frame mask: palette PNG of object ids, or a binary mask.")
    flags.DEFINE_string("first_box", None, "Instead of --first_mask: one box per object, "
                        "x0,y0,x1,y1[;x0,y0,x1,y1...] in pixels of the first frame (columns x0..x1-1, rows "
                        "y0..y1-1); the first mask is made with OpenCV's GrabCut inside each box and written as "
                        "<output>/first_mask_from_box.png.")
    flags.DEFINE_string("davis_root", None, "Segment every sequence of a DAVIS split instead of --video.")
    flags.DEFINE_string("segtrack_root", None, "Segment every sequence of a SegTrack v2 folder (ImageSets/all.txt) "
                        "instead of --video, from the first frame's ground-truth layers (object k = layer k).")
    flags.DEFINE_string("split", "val", "DAVIS split (with --davis_root).")
    flags.DEFINE_integer("davis_year", None, "2016 or 2017; default: detected from ImageSets/.")
    flags.DEFINE_list("sequences", None, "With --davis_root or --segtrack_root: only these sequences.")
    flags.DEFINE_string("output", None, "Results folder (must not exist unless --overwrite).")
    flags.DEFINE_enum("method", "maskrnn", ["maskrnn", "flow_propagation"], "maskrnn (needs --model) or the "
                      "no-learning flow-propagation baseline.")
    flags.DEFINE_string("model", None, "model.keras file, or a run folder holding model.keras.")
    flags.DEFINE_enum("finetune", "auto", ["auto", "recurrent", "static", "none"], "Online finetuning on the first "
                      "frame: recurrent = BPTT through the recurrent step on clips dreamt from the first frame "
                      "(exact flows and masks); static = the paper's, augmented first frames with a perturbed true "
                      "mask as the previous mask; auto = recurrent for a model trained with stage B (its run's "
                      "config.json says), else static.")
    flags.DEFINE_integer("finetune_steps", None, "Finetuning updates per video (default 200 static, 50 recurrent; 0 "
                         "skips finetuning).")
    flags.DEFINE_float("finetune_budget", 60.0, "Recurrent finetuning: wall seconds per video (dreaming and "
                       "updates; tracing, once per frame size and objects per update, comes on top) after which no "
                       "update starts; 0 = no limit.")
    flags.DEFINE_integer("finetune_clip_length", 5, "Recurrent finetuning: frames per dreamt clip.")
    flags.DEFINE_integer("finetune_num_clips", 8, "Recurrent finetuning: distinct dreamt clips per video, made on "
                         "first use and cycled (one clip per pass over the objects: one update, or several with "
                         "objects in turns; dreaming one takes a small part of an update's time).")
    flags.DEFINE_integer("finetune_crop", 0, "Recurrent finetuning: dream from a crop of at most this many pixels "
                         "square around the objects (fewer pixels, more updates in the budget); objects too large "
                         "for it use the whole frame; 0 = always the whole frame.")
    flags.DEFINE_integer("finetune_objects_per_update", 4, "Recurrent finetuning: at most this many objects in one "
                         "update, in turns when a video has more (each object is carried through the unrolled clip "
                         "in both streams: memory grows with it); 0 = every object at once.")
    flags.DEFINE_enum("finetune_dream_flow", "exact", ["exact", "dis", "dis-fast", "dis-ultrafast", "farneback"],
                      "Recurrent finetuning: the dreamt clips' flows, exact or estimated from their frames by this "
                      "flow backend (dis: as --flow=dis segments the video).")
    flags.DEFINE_string("finetune_dream_speed", "1", "Recurrent finetuning: the dreamt camera and object "
                        "translation speeds times this number (1 = the dreaming defaults; DAVIS moves about 3x "
                        "faster), or 'video': per video, the speeds of its first frame pair's flow (0.5-8x the "
                        "defaults).")
    flags.DEFINE_integer("finetune_check_frames", FINETUNE_CHECK_FRAMES, "Keep a video's online finetuning only if "
                         "the finetuned weights carry its first mask forward over this many frames and back to the "
                         "first frame at least as well as the original weights (cycle IoU, no labels beyond the "
                         "first mask); 0 = always keep it.")
    flags.DEFINE_float("finetune_check_margin", 0.0, "With --finetune_check_frames: the cycle IoU the finetuned "
                       "weights must gain to be kept (0 = ties keep the finetuning).")
    flags.DEFINE_float("finetune_mix", 1.0, "Online finetuning: keep this fraction of what it changed in the weights "
                       "(1 = all; 0.5 = the weights halfway between the trained and the finetuned ones), before the "
                       "cycle check judges them.")
    flags.DEFINE_enum("finetune_layers", "auto", ["auto", *FINETUNE_LAYERS], "Online finetuning: the weights it "
                      "updates: all; heads = the layers above both VGG trunks (side outputs, fusions, localization "
                      "head), the trunks kept as trained; block5 = those and the trunks' last block; auto = heads for "
                      "recurrent finetuning, all for static (the paper's).")
    flags.DEFINE_float("finetune_lr", 1e-05, "Initial online-finetuning learning rate (decays to 1/10 over "
                       "--finetune_steps; a --finetune_budget that ends it sooner ends it at a higher rate).")
    flags.DEFINE_float("finetune_loc_weight", None, "Online finetuning: weight of the localization loss (default: "
                       "as the model was trained, from its run's config.json; 1.0 without one).")
    flags.DEFINE_bool("finetune_class_balance", None, "Online finetuning: class-balanced BCE (the paper's) or, with "
                      "--nofinetune_class_balance, plain BCE (default: as the model was trained; class-balanced "
                      "without config.json).")
    flags.DEFINE_float("finetune_iou_weight", None, "Online finetuning: weight of a soft Jaccard term beside the "
                       "BCE (default: as the model was trained, loss.iou_weight of its config.json; 0 = none).")
    flags.DEFINE_integer("max_size", 0, "Process frames with the long side capped at this size (0 = full size); "
                         "masks are upsampled back to the input size.")
    flags.DEFINE_string("overlay", None, "Also write this mp4 with the masks blended in (single video only).")
    flags.DEFINE_bool("save_probs", False, "Also write probability maps under <output>/probs/.")
    flags.DEFINE_enum("probs_format", "npy", ["npy", "png"], "npy: float16 [N,H,W] per frame; png: 8-bit per object.")
    flags.DEFINE_string("flow_cache_dir", None, "With --davis_root or --segtrack_root: take the flows from this "
                        "cache of python -m maskrnn_tf.flow (the one training reads): computed on the "
                        "full-resolution frames and resized to --max_size, as the training crops got them; missing "
                        "flows are computed and stored.")
    flags.DEFINE_string("flow", "dis", "Flow backend: dis (DIS medium), dis-fast, dis-ultrafast, farneback, or flo "
                        "(precomputed .flo files under --flo_dir).")
    flags.DEFINE_string("flo_dir", None, "With --flow=flo: folder of <sequence>/<stem_a>_<stem_b>.flo (flow from "
                        "frame stem_a to stem_b, both directions of each consecutive pair); <sequence> is the "
                        "dataset's sequence with --davis_root or --segtrack_root, the frames folder's basename (or "
                        "video file name sans extension) with --video.")
    flags.DEFINE_integer("read_ahead", 3, "Frames (with flows) prepared ahead of the model on a background thread.")
    flags.DEFINE_bool("jit_compile", False, "XLA-compile the model step.")
    flags.DEFINE_enum("precision", "auto", ["auto", "float32", "bfloat16", "float16"], "Compute precision of the "
                      "model (and of online finetuning, with loss scaling in float16): auto = float16 on a GPU, "
                      "bfloat16 on a CPU whose /proc/cpuinfo flags list amx_bf16 or avx512_bf16 and where it "
                      "measures faster than float32, else float32.")
    flags.DEFINE_bool("apply_localization", None, "Restrict each mask to its enlarged predicted box (the paper's "
                      "'Apply'); default: as the model was trained. --noapply_localization deploys the segmentation "
                      "net alone (the paper's 'Train' row).")
    flags.DEFINE_bool("flip_average", False, "Test-time mirroring: run every step on the frame and on its "
                      "left-right mirror and carry the mean of the two predictions (about twice the model time per "
                      "frame).")
    flags.DEFINE_float("max_growth", 0.0, "Cap each object's mask at this many times the area of its previous mask "
                       "warped into the frame (small objects: at least sqrt(area) pixels more), keeping the pixels "
                       "nearest it; 0 = no cap. Holds back what the network adds to the warped mask (1.1 lets a "
                       "mask double in about 7 frames: too slow for an object coming closer or a rough first mask). "
                       "Finetuning and its check use the uncapped step.")
    flags.DEFINE_float("color_gate", 0.0, "Keep each object's mask only where a colour model of the first frame "
                       "gives the pixel's colour to the object: the share of the object's CIELAB histogram against "
                       "the background's within --color_gate_band of it must exceed this (0 = off; on the CPU "
                       "recipe's held-out sequences 0.1 gained, on its val sequences it did not: docs/RESULTS.md). "
                       "Gates what is segmented and carried; finetuning and its check use the ungated step.")
    flags.DEFINE_float("color_gate_band", 0.03, "Width of the background band around each object that "
                       "--color_gate's model compares the object with, as a fraction of the frame's longer side.")
    flags.DEFINE_list("ensemble_models", [], "More trained networks (model.keras files or run folders), "
                      "comma-separated: at every step each gets the same previous masks and the mean of all their "
                      "probabilities and boxes with --model's is segmented and carried on (one model step per "
                      "network per frame). Each network is finetuned on its own as --finetune says "
                      "(--finetune_budget per network); a colour prior network gets first-frame tables at its own "
                      "band. Networks trained with --model's mask_threshold.")
    flags.DEFINE_enum("carry", "probs", ["probs", "labels"], "What each step is given of the previous frame, "
                      "warped: probs = the network's probabilities (as stage B trained it); labels = one 0/1 mask "
                      "per object of the fused, thresholded result (the paper's). Online finetuning and its cycle "
                      "check carry probabilities.")
    flags.DEFINE_bool("allow_partial_video", False, "Segment the decodable frames of a truncated or corrupt video "
                      "file (with a warning) instead of refusing it.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing output folder that segment wrote (it holds "
                      "segment_run.json), after the new one is complete; never a folder that is or holds an input.")
    flags.DEFINE_bool("progress", True, "Show a progress bar.")
    flags.DEFINE_bool("check_flags", False, "Check the flags as this command would run with them (each flag, and "
                      "the pairs and combinations segment refuses) and exit 0, before reading an input, loading "
                      "TensorFlow or writing anything: the experiment drivers check every command so before the "
                      "first.")
    _register_checks()


def _positive_number(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


def _dream_speed_record():
    """--finetune_dream_speed as segment_run.json records it: the number, or 'video'."""
    return "video" if FLAGS.finetune_dream_speed == "video" else float(FLAGS.finetune_dream_speed)


def _register_checks() -> None:
    """Numeric flags are checked when parsed: a bad value is a usage error (exit 2) before any work."""
    from maskrnn_tf.flag_validation import MIN_FRAME_SIDE, register_numeric_validator

    flags.register_validator("flow", lambda value: value in FLOW_BACKENDS,
                             message=f"must be one of {', '.join(FLOW_BACKENDS)}")
    register_numeric_validator("finetune_steps", minimum=0, hint="0 skips online finetuning")
    register_numeric_validator("finetune_budget", minimum=0, hint="seconds per video; 0 = no limit")
    register_numeric_validator("finetune_clip_length", minimum=2, hint="a dreamt clip needs two frames")
    register_numeric_validator("finetune_num_clips", minimum=1, hint="clips per video")
    register_numeric_validator("finetune_crop", minimum=0, hint="pixels; 0 = the whole frame")
    register_numeric_validator("finetune_objects_per_update", minimum=0, hint="0 = every object at once")
    flags.register_validator("finetune_dream_speed", lambda value: value == "video" or _positive_number(value),
                             message="must be a number > 0 (1 = the dreaming defaults) or 'video'")
    register_numeric_validator("finetune_check_frames", minimum=0, hint="frames; 0 = no check")
    register_numeric_validator("finetune_mix", above=0, maximum=1, hint="1 keeps all of finetuning's change")
    register_numeric_validator("finetune_lr", above=0, hint="e.g. 1e-5")
    register_numeric_validator("finetune_loc_weight", minimum=0)
    register_numeric_validator("finetune_iou_weight", minimum=0)
    register_numeric_validator("max_size", zero_or_at_least=MIN_FRAME_SIDE,
                               hint=f"0 keeps the full size; the network needs frames of at least "
                                    f"{MIN_FRAME_SIDE} pixels")
    register_numeric_validator("read_ahead", minimum=0)
    register_numeric_validator("max_growth", zero_or_at_least=1,
                               hint="0 = no cap; at least 1, a mask may keep its area; e.g. 1.05")
    register_numeric_validator("color_gate", minimum=0, below=1,
                               hint="0 = off; the object's share of a colour to keep it, e.g. 0.1")
    register_numeric_validator("color_gate_band", above=0, maximum=1,
                               hint="a fraction of the frame's longer side, e.g. 0.03")
    flags.register_validator("davis_year", lambda year: year in (None, 2016, 2017),
                             message="--davis_year must be 2016 or 2017.")


# The cycle check carries probabilities whatever --carry says: carrying the fused labels, it undid a finetuning
# that gained 10 J on a held-out sequence (docs/RESULTS.md, "Carrying the fused masks").
CHECK_CARRY = "probs"
BOX_MASK_FILE = "first_mask_from_box.png"  # inside the output folder: never a frame name (frames are numbered)


def _check_flag_combinations(dataset_root: str) -> None:
    """Raises app.UsageError (exit 2) for flags that segment cannot run together; reads no input (`--check_flags`
    stops after it, so the experiment drivers find these before their first command, not when a later one runs)."""
    if dataset_root and FLAGS.overlay:
        raise app.UsageError("--overlay applies to a single --video.", exitcode=2)
    if FLAGS.flip_average and FLAGS.method != "maskrnn":
        raise app.UsageError("--flip_average averages the network's steps: it needs --method=maskrnn.", exitcode=2)
    if FLAGS["color_gate_band"].present and not FLAGS.color_gate:
        raise app.UsageError("--color_gate_band sets the band of --color_gate's colour model, which is off: add "
                             "--color_gate (e.g. 0.1) or drop --color_gate_band.", exitcode=2)
    if FLAGS.max_growth and FLAGS.method != "maskrnn":
        raise app.UsageError("--max_growth caps the network's masks: it needs --method=maskrnn (flow propagation "
                             "only moves the first mask).", exitcode=2)
    if any(not path for path in FLAGS.ensemble_models):
        raise app.UsageError(f"--ensemble_models={','.join(FLAGS.ensemble_models)}: an empty path; give model files "
                             "or run folders separated by single commas.", exitcode=2)
    if FLAGS.ensemble_models and FLAGS.method != "maskrnn":
        raise app.UsageError("--ensemble_models averages networks: it needs --method=maskrnn and --model.", exitcode=2)
    if FLAGS.method == "maskrnn" and not FLAGS.model:
        raise app.UsageError("--method=maskrnn needs --model (or use --method=flow_propagation).", exitcode=2)
    if FLAGS.flow == "flo" and not FLAGS.flo_dir:
        raise app.UsageError("--flow=flo needs --flo_dir (the folder of <sequence>/<stem_a>_<stem_b>.flo files).",
                             exitcode=2)
    if FLAGS.flow_cache_dir and not dataset_root:
        raise app.UsageError("--flow_cache_dir needs --davis_root or --segtrack_root (the cache is kept per "
                             "dataset sequence).", exitcode=2)
    if FLAGS.flow_cache_dir and FLAGS.flow == "flo":
        raise app.UsageError("--flow_cache_dir holds computed flows: use it with --flow=dis (as python -m "
                             "maskrnn_tf.flow filled it), not --flow=flo.", exitcode=2)


def main(argv) -> int:
    del argv
    expand_user_paths(("video", "first_mask", "davis_root", "segtrack_root", "output", "model", "ensemble_models",
                       "overlay", "flow_cache_dir", "flo_dir"))
    if not FLAGS.output:
        raise app.UsageError("--output is required.", exitcode=2)
    if sum(bool(x) for x in (FLAGS.video, FLAGS.davis_root, FLAGS.segtrack_root)) != 1:
        raise app.UsageError("give exactly one of --video (with --first_mask or --first_box), --davis_root or "
                             "--segtrack_root.", exitcode=2)
    dataset_root = FLAGS.davis_root or FLAGS.segtrack_root
    # Flags that choose among a dataset's sequences would otherwise be dropped without a word.
    chooser = {"sequences": "--davis_root or --segtrack_root", "split": "--davis_root", "davis_year": "--davis_root"}
    for name, applies_to in chooser.items():
        if FLAGS[name].present and not (FLAGS.davis_root or (FLAGS.segtrack_root and name == "sequences")):
            given = ("--video segments that one video" if FLAGS.video else
                     "--segtrack_root segments the sequences of its ImageSets/all.txt (or --sequences)")
            raise app.UsageError(f"--{name} applies to {applies_to} (it chooses a dataset's sequences); {given}, "
                                 f"whatever --{name} says: drop it.", exitcode=2)
    if FLAGS.first_mask and FLAGS.first_box:
        raise app.UsageError("--first_mask and --first_box exclude each other: give the first frame's mask, or one "
                             "box per object to make it from.", exitcode=2)
    if dataset_root and (FLAGS.first_box or FLAGS.first_mask):
        raise app.UsageError("--first_box and --first_mask apply to a single --video (a dataset's sequences start "
                             "from their ground truth).", exitcode=2)
    if FLAGS.video and not (FLAGS.first_mask or FLAGS.first_box):
        raise app.UsageError("--video needs --first_mask (the first frame's mask) or --first_box (one box per "
                             "object, x0,y0,x1,y1;...).", exitcode=2)
    if FLAGS["probs_format"].present and not FLAGS.save_probs:
        raise app.UsageError(f"--probs_format sets how --save_probs writes the probability maps, which is off: add "
                             f"--save_probs or drop --probs_format={FLAGS.probs_format}.", exitcode=2)
    if FLAGS.flo_dir and FLAGS.flow != "flo":  # else the masks come from flows the user did not ask for
        raise app.UsageError(f"--flo_dir is read only with --flow=flo (this run would compute --flow={FLAGS.flow} "
                             "flows from the frames): add --flow=flo or drop --flo_dir.", exitcode=2)
    _check_flag_combinations(dataset_root)
    if FLAGS.check_flags:
        return 0
    host_memory.pool_cpu_tensor_memory()  # before TensorFlow starts: CPU tensors from one reused pool
    _console.import_tensorflow_quietly()
    from maskrnn_tf import inference  # heavy imports (TensorFlow) after flag checks: --help and usage errors stay fast

    boxes = inference.parse_boxes(FLAGS.first_box) if FLAGS.first_box else None

    # Checked before any work: the outputs must never touch an input (see check_output_dir).
    inputs = [("--video", FLAGS.video), ("--first_mask", FLAGS.first_mask), ("--davis_root", FLAGS.davis_root),
              ("--segtrack_root", FLAGS.segtrack_root),
              ("--flo_dir", FLAGS.flo_dir), ("--model", FLAGS.model),
              *(("--ensemble_models", path) for path in FLAGS.ensemble_models),
              ("--flow_cache_dir", FLAGS.flow_cache_dir and os.path.expanduser(FLAGS.flow_cache_dir))]
    inference.check_output_dir(FLAGS.output, FLAGS.overwrite, inputs)
    if FLAGS.overlay:
        inference.check_overlay_path(FLAGS.overlay, FLAGS.output, FLAGS.overwrite, inputs)
    baseline = FLAGS.method == "flow_propagation"
    # The baseline uses no network: naming --model (which the experiment drivers pass it too) would claim one.
    metadata = {"method": FLAGS.method, "model": None if baseline else os.path.abspath(FLAGS.model),
                "flow": FLAGS.flow, "max_size": FLAGS.max_size, "carry": FLAGS.carry,
                **({"first_box": FLAGS.first_box} if FLAGS.first_box else {})}
    if baseline:
        _note_network_flags_unused()
    if FLAGS.flow == "flo":  # other .flo files there give other masks
        metadata["flo_dir"] = os.path.abspath(FLAGS.flo_dir)
    if FLAGS.flow_cache_dir:
        if FLAGS.segtrack_root:
            flow_fn = inference.cached_segtrack_flow_fn(FLAGS.flow, FLAGS.flow_cache_dir, FLAGS.segtrack_root)
        else:
            flow_fn = inference.cached_davis_flow_fn(FLAGS.flow, FLAGS.flow_cache_dir, FLAGS.davis_root, FLAGS.split,
                                                     FLAGS.davis_year, FLAGS.sequences)
        metadata["flow_cache_dir"] = os.path.abspath(os.path.expanduser(FLAGS.flow_cache_dir))
    else:
        flow_fn = inference.make_flow_fn(FLAGS.flow, FLAGS.flo_dir)
    from maskrnn_tf.flag_validation import MIN_FRAME_SIDE

    options = inference.SegmentOptions(
        max_size=FLAGS.max_size or None, need_next_flow=not baseline,
        save_probs=FLAGS.probs_format if FLAGS.save_probs else None, read_ahead=FLAGS.read_ahead,
        progress=FLAGS.progress, min_size=0 if baseline else MIN_FRAME_SIDE, carry=FLAGS.carry,
    )
    first = FLAGS.first_mask
    if boxes is not None:  # before the model loads: a box that does not fit the frame fails fast
        first = inference.first_mask_from_boxes(FLAGS.video, boxes, allow_partial=FLAGS.allow_partial_video)
    step_fn, prepare = inference.flow_propagation_step, None
    if not baseline:
        from maskrnn_tf.training.precision import describe_precision, resolve_precision

        precision = resolve_precision(FLAGS.precision)
        print(describe_precision(FLAGS.precision, precision), flush=True)
        metadata["precision"] = precision  # resolved: what `auto` chose on this machine
        overrides = {} if FLAGS.apply_localization is None else {"apply_localization": FLAGS.apply_localization}
        model = inference.load_model(FLAGS.model, precision=precision, overrides=overrides)
        # As applied: the flag, or without it the model's own setting; XLA may reorder sums and flip pixels.
        metadata.update(apply_localization=bool(model.config.apply_localization), jit_compile=FLAGS.jit_compile)
        # Objects are fused at the threshold the model was trained and validated with (its exported `labels` too).
        options = dataclasses.replace(options, threshold=float(model.config.mask_threshold))
        step_fn = inference.model_step_fn(model, FLAGS.jit_compile)
        prepare = _finetuning(inference, model, FLAGS.model, step_fn, flow_fn, options.max_size, metadata)
        # The networks' own steps (not the wrapped ones): a colour prior network's tables are bound to it per video.
        priors = [(step_fn, model.config.color_prior_band)] if model.config.color_prior_input else []
        if FLAGS.ensemble_models:
            step_fn, prepare, member_priors = _ensemble(inference, model, step_fn, prepare, flow_fn, options.max_size,
                                                        precision, overrides, metadata)
            priors += member_priors
        if FLAGS.flip_average:  # after finetuning: it trains and checks the plain step, segmenting averages
            from maskrnn_tf.inference.flip_average import FlipAveragedPrepare, flip_averaged_step

            step_fn, prepare = flip_averaged_step(step_fn), prepare and FlipAveragedPrepare(prepare)
            metadata["flip_average"] = True
        if FLAGS.max_growth:  # on what is segmented and carried, after finetuning and mirroring
            from maskrnn_tf.inference.growth_limit import growth_limited_step
            from maskrnn_tf.inference.propagation import StepWrappedPrepare

            def cap(step: inference.StepFn) -> inference.StepFn:
                return growth_limited_step(step, FLAGS.max_growth, options.threshold, model.config.warp_mask)

            step_fn, prepare = cap(step_fn), prepare and StepWrappedPrepare(prepare, cap)
            metadata["max_growth"] = FLAGS.max_growth
        if priors:  # outermost: the tables are bound before finetuning steps the networks
            from maskrnn_tf.inference.color_gate import ColorPriorPrepare

            prepare = ColorPriorPrepare(priors, step_fn, prepare)
    if FLAGS.color_gate:  # last: on what is segmented and carried, whatever made the step
        from maskrnn_tf.inference.color_gate import ColorGatedPrepare

        prepare = ColorGatedPrepare(step_fn, prepare, FLAGS.color_gate, FLAGS.color_gate_band)
        metadata["color_gate"] = {"threshold": FLAGS.color_gate, "band": FLAGS.color_gate_band}
    if FLAGS.davis_root:
        names = inference.segment_davis(
            FLAGS.davis_root, FLAGS.split, flow_fn, FLAGS.output, step_fn=step_fn, options=options,
            overwrite=FLAGS.overwrite, year=FLAGS.davis_year, prepare=prepare, sequences=FLAGS.sequences,
            inputs=inputs, metadata=metadata,
        )
        print(f"wrote {len(names)} sequence{'s' if len(names) != 1 else ''} to {FLAGS.output}")
    elif FLAGS.segtrack_root:
        names = inference.segment_segtrack(
            FLAGS.segtrack_root, flow_fn, FLAGS.output, step_fn=step_fn, options=options, overwrite=FLAGS.overwrite,
            prepare=prepare, sequences=FLAGS.sequences, inputs=inputs, metadata=metadata,
        )
        print(f"wrote {len(names)} sequence{'s' if len(names) != 1 else ''} to {FLAGS.output}")
    else:
        count = inference.segment_video(
            step_fn, FLAGS.video, first, flow_fn, FLAGS.output, options, overlay_path=FLAGS.overlay,
            overwrite=FLAGS.overwrite, prepare=prepare, inputs=inputs, metadata=metadata,
            allow_partial_video=FLAGS.allow_partial_video, first_mask_copy=BOX_MASK_FILE if boxes else None,
        )
        print(f"wrote {count} frames to {FLAGS.output}" + (f" and {FLAGS.overlay}" if FLAGS.overlay else ""))
        if boxes is not None:
            print(f"first mask made from the box(es) with GrabCut: {FLAGS.output}/{BOX_MASK_FILE} (correct it and "
                  "pass it as --first_mask to rerun)")
    if prepare is not None:
        from maskrnn_tf.inference.recurrent_finetune import budget_note

        note = budget_note(getattr(prepare, "log", None), FLAGS.finetune_budget)
        if note:
            print(note)
    return 0


def _ensemble(inference, model, step_fn, prepare, flow_fn, max_size, precision, overrides, metadata):
    """--model's step (and finetuning callback) averaged with those of the --ensemble_models networks, each loaded
    and finetuned as --model is: (step_fn, prepare, [(own step, band) of each colour prior member])."""
    from maskrnn_tf.inference.ensemble import EnsemblePrepare, ensemble_step

    steps, prepares, members, priors = [step_fn], [prepare], [], []
    for path in FLAGS.ensemble_models:
        member = inference.load_model(path, precision=precision, overrides=overrides)
        if member.config.mask_threshold != model.config.mask_threshold:
            raise app.UsageError(f"--ensemble_models: {path} fuses at mask_threshold {member.config.mask_threshold}, "
                                 f"--model at {model.config.mask_threshold}; average only networks trained with one "
                                 "threshold.", exitcode=2)
        if FLAGS.max_growth and member.config.warp_mask != model.config.warp_mask:
            raise app.UsageError(f"--max_growth with --ensemble_models: {path} has warp_mask="
                                 f"{member.config.warp_mask}, --model {model.config.warp_mask}; the cap counts "
                                 "against one previous mask: drop --max_growth or that network.", exitcode=2)
        steps.append(inference.model_step_fn(member, FLAGS.jit_compile))
        print(f"{path}:", end=" ", flush=True)  # its finetuning choice follows
        chosen: dict = {}
        prepares.append(_finetuning(inference, member, path, steps[-1], flow_fn, max_size, chosen))
        if member.config.color_prior_input:
            priors.append((steps[-1], member.config.color_prior_band))
        members.append({"model": os.path.abspath(path), "apply_localization": bool(member.config.apply_localization),
                        **{key: chosen[key] for key in ("finetune", "finetune_steps", "finetune_layers")
                           if key in chosen}})
    # Each network's own finetuning choice (--finetune=auto chooses by how it was trained).
    metadata["ensemble_models"] = [os.path.abspath(path) for path in FLAGS.ensemble_models]
    metadata["ensemble_finetune"] = members
    print(f"ensemble of {len(steps)} networks: --model and {', '.join(FLAGS.ensemble_models)}", flush=True)
    ensemble_prepare = None if all(p is None for p in prepares) else EnsemblePrepare(prepares, steps)
    return ensemble_step(steps), ensemble_prepare, priors


def _finetuning(inference, model, model_path, step_fn, flow_fn, max_size, metadata):
    """The `prepare` callback of the online finetuning --finetune asks for (None for none) of the network loaded
    from `model_path`, checked by its cycle consistency with --finetune_check_frames; notes it in metadata."""
    prepare = _finetuning_prepare(inference, model, model_path, step_fn, flow_fn, max_size, metadata)
    if prepare is not None and FLAGS.finetune_mix < 1:
        from maskrnn_tf.inference.weight_mix import WeightMixPrepare

        metadata.update(finetune_mix=FLAGS.finetune_mix)
        print(f"online finetuning keeps {FLAGS.finetune_mix:g} of its change to the weights (--finetune_mix)",
              flush=True)
        prepare = WeightMixPrepare(prepare, model, FLAGS.finetune_mix)
    if prepare is None or not FLAGS.finetune_check_frames:
        return prepare
    from maskrnn_tf.inference.cycle_check import cycle_checked_prepare

    metadata.update(finetune_check_frames=FLAGS.finetune_check_frames,
                    finetune_check_margin=FLAGS.finetune_check_margin, finetune_check_carry=CHECK_CARRY)
    print(f"online finetuning kept per video only if it goes round the first {FLAGS.finetune_check_frames} frames "
          "and back at least as well (--finetune_check_frames)", flush=True)
    return cycle_checked_prepare(prepare, model, step_fn, flow_fn, max_size, FLAGS.finetune_check_frames,
                                 FLAGS.finetune_check_margin, carry=CHECK_CARRY)


def _finetuning_prepare(inference, model, model_path, step_fn, flow_fn, max_size, metadata):
    """The online finetuning --finetune asks for (None for none)."""
    from maskrnn_tf.inference.finetune_choice import choose_finetuning, describe_choice

    choice = choose_finetuning(FLAGS.finetune, inference.training_config(model_path), FLAGS.finetune_steps,
                               FLAGS.finetune_loc_weight, FLAGS.finetune_class_balance, FLAGS.finetune_iou_weight,
                               trained_step=inference.trained_step(model_path))
    print(describe_choice(choice, FLAGS.finetune_budget), flush=True)
    metadata.update(finetune=choice.mode, finetune_steps=choice.steps)
    if choice.mode == "none":
        return None
    layers = resolve_finetune_layers(FLAGS.finetune_layers, choice.mode)
    if FLAGS.finetune_layers == "auto":
        print(f"online finetuning updates: {layers} (--finetune_layers=auto for {choice.mode} finetuning; "
              "--finetune_layers=all|block5|heads to choose)", flush=True)
    metadata.update(finetune_loss=choice.losses(), finetune_lr=FLAGS.finetune_lr, finetune_layers=layers)
    if choice.mode == "static":
        config = inference.FinetuneConfig(steps=choice.steps, learning_rate=FLAGS.finetune_lr,
                                          layers=layers, **choice.losses())
        return inference.finetuning_prepare(model, step_fn, flow_fn, max_size, config)
    # The remaining mode: recurrent (choose_finetuning gives none, static or recurrent).
    from maskrnn_tf.data.dreaming import DreamConfig

    by_video = FLAGS.finetune_dream_speed == "video"
    dream = DreamConfig(num_frames=FLAGS.finetune_clip_length)
    dream = dream if by_video else dream.with_speed(float(FLAGS.finetune_dream_speed))
    metadata.update(finetune_budget_s=FLAGS.finetune_budget, finetune_clip_length=FLAGS.finetune_clip_length,
                    finetune_crop=FLAGS.finetune_crop, finetune_dream_speed=_dream_speed_record(),
                    finetune_dream_flow=FLAGS.finetune_dream_flow, finetune_num_clips=FLAGS.finetune_num_clips,
                    finetune_objects_per_update=FLAGS.finetune_objects_per_update)
    config = inference.RecurrentFinetuneConfig(
        steps=choice.steps, time_budget_s=FLAGS.finetune_budget, learning_rate=FLAGS.finetune_lr,
        dream=dream, match_video_motion=by_video, crop=FLAGS.finetune_crop, dream_flow=FLAGS.finetune_dream_flow,
        num_clips=FLAGS.finetune_num_clips, objects_per_update=FLAGS.finetune_objects_per_update,
        layers=layers, **choice.losses())
    return inference.recurrent_finetuning_prepare(model, step_fn, max_size, config,
                                                  flow_fn=flow_fn if by_video else None)


# What only --method=maskrnn uses: the network, how it runs and its online finetuning.
_NETWORK_FLAGS = ("model", "precision", "jit_compile", "apply_localization", "finetune", "finetune_steps",
                  "finetune_budget", "finetune_clip_length", "finetune_num_clips", "finetune_crop",
                  "finetune_dream_flow", "finetune_dream_speed", "finetune_objects_per_update", "finetune_check_frames",
                  "finetune_check_margin", "finetune_mix", "finetune_layers", "finetune_lr", "finetune_loc_weight",
                  "finetune_class_balance", "finetune_iou_weight")


def _note_network_flags_unused() -> None:
    """Prints one line naming the network's flags the user gave to the flow-propagation baseline, which has no
    network: not refused (the experiment drivers pass --model to every method), but not silently dropped."""
    given = [f"--{name}" for name in _NETWORK_FLAGS if FLAGS[name].present]
    if given:
        print(f"note: --method=flow_propagation only moves the first mask along the flow: {', '.join(given)} "
              f"{'is' if len(given) == 1 else 'are'} not used (segment_run.json records no model).", flush=True)


def guarded(argv) -> int:
    """`main` with bad inputs reported as one line and exit 2 (a flag's value or a file it names), and so are
    the OS's refusals (permissions, a full disk) of a path."""
    try:
        return main(argv)
    except KeyboardInterrupt:
        # The output folder is made under a temporary name and renamed in only when whole: Ctrl-C leaves none.
        print(f"Interrupted: {FLAGS.output} is as it was before this run.", file=sys.stderr)
        return 130  # the shell's status for SIGINT
    except (ValueError, OSError) as err:
        # Imported here, not before main: the flag checks in main run before TensorFlow loads. MaskError,
        # UnsafeOutputError, UnwritableOutputError, VideoReadError, ImageReadError are ValueErrors,
        # ModelLoadError a FileNotFoundError, OutputExistsError a FileExistsError.
        from maskrnn_tf.inference import BoxError

        prefix = "--first_box: " if isinstance(err, BoxError) else ""
        message = _console.os_error_line(err) if isinstance(err, OSError) else str(err)
        print(f"Error: {prefix}{message}", file=sys.stderr)
        return 2


def run() -> None:
    """Entry point: absl flags, clear one-line errors for bad inputs."""
    from maskrnn_tf.flag_validation import one_line_usage_errors, parse_flags_or_exit

    _console.quiet_startup()
    define_flags()
    app.run(one_line_usage_errors(guarded, "Error: "), flags_parser=parse_flags_or_exit)


if __name__ == "__main__":
    run()
