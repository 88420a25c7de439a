"""Train MaskRNN: `python -m maskrnn_tf.train --flagfile=synthetic.flags [--run_dir=runs/synthetic]`.

Stage A (static frames) then stage B (recurrent clips); resumes from the newest checkpoint of --run_dir, which
defaults to runs/<flag file stem> (relative to the working directory) when one --flagfile is given.
Every config field can also be set with --set=key=value (dotted keys, e.g. --set=model.side_channels=8).
Exit status: 0 done, 2 bad config, missing data or run dir in use by another training, 3 NaN/Inf loss,
128+N stopped by signal N (checkpoint saved).
"""
from __future__ import annotations

import math
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

from absl import app, flags
from absl import logging as absl_logging

from maskrnn_tf import _console, host_memory
from maskrnn_tf.flag_validation import command_line_flagfiles

# flag name -> (TrainConfig dotted key, kind, help). Every flag defaults to None = "keep the config default".
_FIELDS: Dict[str, Tuple[str, str, str]] = {
    "dataset": ("data.dataset", "enum:synthetic_vos,davis16,davis17", "Training data."),
    "manual_dir": ("data.manual_dir", "string", "Folder with the DAVIS archives or extracted folders."),
    "flow": ("data.flow", "string", "Flow backend for real videos: dis (dis-medium), dis-fast, dis-ultrafast, farneback."),
    "flow_cache_dir": ("data.flow_cache_dir", "string", "Cache of computed flows (reused across runs)."),
    "crop_height": ("data.height", "integer", "Training frame height."),
    "crop_width": ("data.width", "integer", "Training frame width."),
    "batch_size": ("data.batch_size", "integer", "Global batch of stage A (objects)."),
    "clip_batch_size": ("data.clip_batch_size", "integer", "Global batch of stage B (clips)."),
    "clip_length": ("data.clip_length", "integer", "Frames per stage B clip (first one seeds the recurrence)."),
    "synthetic_train_videos": ("data.synthetic_train_videos", "integer", "synthetic_vos training videos."),
    "val_videos": ("data.val_videos", "integer", "Validation videos scored every --eval_every steps: the val "
                   "split's first N (synthetic_vos: N videos of their own); --val_sequences replaces them."),
    "val_frames": ("data.val_frames", "integer", "Frames per validation video."),
    "val_sequences": ("data.val_sequences", "list", "DAVIS: train sequences held out of training and scored for "
                      "validation instead of the val split (choose settings on them; report the val split)."),
    "dream_fraction": ("data.dream_fraction", "float", "Share of stage B clips dreamt from single training frames "
                       "(exact flows and masks) instead of read from the videos (0 = none)."),
    "dream_speed": ("data.dream_speed", "float", "Dreamt clips: camera and object translation speeds times this "
                    "(1 = the dreaming defaults; DAVIS moves about 3x faster)."),
    "dream_flow": ("data.dream_flow", "string", "Dreamt clips' flows: exact, or estimated from their frames by "
                   "a flow backend (dis, dis-fast, ...) as the real videos' are."),
    "model_width": ("model.width", "float", "VGG-16 channel multiplier (1.0 = paper)."),
    "fc_units": ("model.fc_units", "integer", "Localization head fully connected units."),
    "vgg_weights": ("model.vgg_weights", "string", "None, 'imagenet' or a local VGG16 .h5 path."),
    "learning_rate": ("optim.learning_rate", "float", "Initial Adam learning rate."),
    "decay_steps": ("optim.decay_steps", "integer", "Learning rate decays by --decay_rate every this many steps."),
    "decay_rate": ("optim.decay_rate", "float", "Exponential learning-rate decay factor."),
    "clip_norm": ("optim.clip_norm", "float", "Global-norm gradient clipping (0 = off)."),
    "seg_weight": ("loss.seg_weight", "float", "Weight of the mask loss: the BCE (class-balanced with "
                   "loss.class_balance) plus loss.iou_weight times a soft Jaccard term."),
    "loc_weight": ("loss.loc_weight", "float", "Weight of the smooth-L1 box loss (0 = no localization loss)."),
    "stage_a_steps": ("stage_a_steps", "integer", "Steps of stage A (static frames)."),
    "stage_b_steps": ("stage_b_steps", "integer", "Steps of stage B (unrolled clips)."),
    "precision": ("precision", "enum:auto,float32,bfloat16,float16", "Compute precision."),
    "jit_compile": ("jit_compile", "bool", "XLA-compile the per-replica train step."),
    "recompute": ("recompute", "bool", "Recompute per-frame activations in stage B backward (less memory)."),
    "strategy": ("strategy", "enum:default,mirrored,multi_worker",
                 "tf.distribute strategy (multi_worker: TF_CONFIG, and a --precision other than auto)."),
    "log_every": ("log_every", "integer", "Console/TensorBoard scalars every N steps."),
    "eval_every": ("eval_every", "integer", "Validation J every N steps (0 = only at the end); none without "
                   "validation videos (--val_videos=0 and no --val_sequences)."),
    "image_every": ("image_every", "integer", "Overlay images at the validations of every N-th step and at the end (0 = none)."),
    "checkpoint_every": ("checkpoint_every", "integer", "Checkpoint every N steps."),
    "keep_checkpoints": ("keep_checkpoints", "integer", "Checkpoints kept."),
    "seed": ("seed", "integer", "Seed of weights, data order and training RNG."),
    "inject_nan_at_step": ("inject_nan_at_step", "integer", "Testing: make the loss NaN at this step."),
    "init_checkpoint": ("init_checkpoint", "string", "Start a new run from another run's checkpoint (prefix, or "
                        "its run folder: the newest intact one): weights, optimizer, step, RNG; the data starts "
                        "from its beginning (e.g. one stage A shared by several stage B variants)."),
}

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines the CLI flags (once)."""
    if "run_dir" in FLAGS:
        return
    flags.DEFINE_string("run_dir", None, "Run directory (config.json, checkpoints/, logs/, model.keras).")
    flags.DEFINE_bool("print_config", False, "Print the resolved config (the config.json a run would write) and "
                      "exit without training; --run_dir is not needed.")
    flags.DEFINE_bool("overwrite_config", False, "Reuse --run_dir even though its config.json differs.")
    flags.DEFINE_string("profile_steps", None, "A,B: trace steps A..B (numbered from 1, as the console and "
                        "TensorBoard show them) with the TF profiler.")
    flags.DEFINE_multi_string("set", [], "Extra config override key=value (dotted key, JSON value).")
    flags.DEFINE_bool("deterministic", False, "tf.config.experimental.enable_op_determinism (slower).")
    flags.DEFINE_integer("logical_cpus", 0, "Split the CPU into N logical devices (MirroredStrategy on CPU).")
    for name, (key, kind, text) in _FIELDS.items():
        text = f"{text} [{key}]"
        if kind.startswith("enum:"):
            flags.DEFINE_enum(name, None, kind[5:].split(","), text)
        else:
            getattr(flags, f"DEFINE_{kind}")(name, None, text)
    flags.register_validator("profile_steps", lambda text: _parse_profile(text) or True)
    flags.register_validator("run_dir", lambda value: bool(value) or FLAGS.print_config,
                             message="--run_dir is required (unless --print_config, or with one --flagfile, whose "
                                     "stem names the default runs/<stem>).")
    _register_bounds()


def _register_bounds() -> None:
    """Numeric flags out of range stop the parse (exit 2, the flag named) before anything is written."""
    from maskrnn_tf.flag_validation import register_numeric_validator
    from maskrnn_tf.training.config_bounds import FIELD_BOUNDS

    for name, (key, _, _) in _FIELDS.items():
        if key in FIELD_BOUNDS:
            register_numeric_validator(name, **FIELD_BOUNDS[key])
    register_numeric_validator("logical_cpus", minimum=0)


def default_run_dir(flagfiles: List[str]) -> Optional[str]:
    """`runs/<stem>` for a single flag file (runs/davis17 for davis17.flags), relative to the working directory;
    None with no flag file or several (then --run_dir must name the run)."""
    if len(flagfiles) != 1 or not flagfiles[0]:
        return None
    stem = os.path.splitext(os.path.basename(flagfiles[0]))[0]
    return os.path.join("runs", stem) if stem else None


def overrides_from_flags(notes: Optional[List[str]] = None) -> Dict[str, Any]:
    """The dotted-key overrides the command line asked for; a --set that overrides a named flag adds a note to
    `notes` (the caller prints them once the config is valid: a refused value is then the one line said)."""
    from maskrnn_tf.training.config import parse_override

    values: Dict[str, Any] = {}
    named: Dict[str, str] = {}  # key -> the named flag that set it
    for name, (key, _, _) in _FIELDS.items():
        value = FLAGS[name].value
        if value is not None:
            values[key] = None if (name == "vgg_weights" and value.lower() == "none") else value
            named[key] = name
    for item in FLAGS.set:
        key, value = parse_override(item)
        if key in named and values[key] != value:
            # --set wins wherever each is given (a flag file's --set over the command line's named flag): say so.
            if notes is not None:
                notes.append(f"note: --set={item} overrides {FLAGS[named[key]].serialize()} (--set wins over the "
                             "named flag of the same setting, wherever each is given)")
        values[key] = value
    return values


def _parse_profile(text: Optional[str]) -> Optional[Tuple[int, int]]:
    """--profile_steps as (A, B), 1 <= A <= B; None when unset. Raises flags.ValidationError (its validator
    calls it, so a bad value stops the parse: exit 2 naming the flag, before anything is written)."""
    if not text:
        return None
    try:
        first, last = (int(x) for x in text.split(","))
    except ValueError:
        raise flags.ValidationError("expected A,B (two step numbers, e.g. 5,8).")  # absl names the flag and value
    if first < 1 or last < first:
        raise flags.ValidationError("expected 1 <= A <= B (steps are numbered from 1).")
    return first, last


def split_cpu(count: int) -> None:
    """Splits the CPU into `count` logical devices (--logical_cpus; nothing for 0 or 1). Must run before anything
    makes a tensor or variable: TensorFlow fixes its devices when its runtime starts."""
    if count <= 1:
        return
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)


def main(argv: List[str]) -> int:
    del argv  # parse_flags_or_exit refuses plain arguments
    # The config is plain dataclasses: a bad config and --print_config answer before TensorFlow starts.
    from maskrnn_tf.training.config import TrainConfig
    from maskrnn_tf.training.config_bounds import check_config_bounds, override_bounds_problems

    notes: List[str] = []
    try:
        overrides = overrides_from_flags(notes)
        refused = override_bounds_problems(overrides)  # named as given, before the dataclasses refuse them
        if refused:
            raise ValueError("; ".join(refused))
        config = TrainConfig().override(overrides)
        check_config_bounds(config)  # --set overrides bypass the flag validators
    except (ValueError, TypeError) as err:
        print(f"error: bad configuration: {err}", file=sys.stderr)
        return 2
    for note in notes:
        print(note, file=sys.stderr)
    if FLAGS.print_config:
        print(config.to_json(), flush=True)
        return 0
    host_memory.pool_cpu_tensor_memory()  # before TensorFlow starts: CPU tensors from one reused pool
    _console.import_tensorflow_quietly()
    # Before the checks below: check_vgg_weights builds VGG-16, which starts TensorFlow's runtime, and the CPU
    # cannot be split once it runs ("Virtual devices cannot be modified after being initialized").
    split_cpu(FLAGS.logical_cpus)
    # `--run_dir=~/...` reaches us unexpanded (the shell expands ~ only at the start of a word).
    run_dir = os.path.abspath(os.path.expanduser(FLAGS.run_dir))
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        print(f"error: --run_dir={run_dir} is a file, not a folder: give a folder for the run (it is created if "
              "missing).", file=sys.stderr)
        return 2
    named = "" if FLAGS["run_dir"].present else " (named after the flag file; --run_dir=DIR for another)"
    tensorboard = _console.tensorboard_command(os.path.join(run_dir, "logs"))
    print(f"run dir {run_dir}{named}\nTensorBoard: {tensorboard}", flush=True)
    from maskrnn_tf.model.vgg_trunk import VGGWeightsError, check_vgg_weights
    from maskrnn_tf.training.inputs import DataNotFoundError, check_data_available

    try:  # first: without the data nothing else matters, and the message says where it goes
        check_data_available(config.data)
    except DataNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    from maskrnn_tf.training.checkpointing import recorded_run_precision
    from maskrnn_tf.training.distribution import check_strategy_settings

    try:  # train() refuses these too; here before the run dir is created or VGG-16 weights are fetched
        check_strategy_settings(config.strategy, config.precision, recorded_run_precision(run_dir))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    from maskrnn_tf.training.checkpoint_files import checkpoint_paths
    from maskrnn_tf.training.loop import reads_vgg_weights

    try:  # before the run dir exists: a bad path stored in config.json would refuse the corrected rerun
        if reads_vgg_weights(config, checkpoint_paths(os.path.join(run_dir, "checkpoints"))):
            check_vgg_weights(config.model.vgg_weights, config.model.width)
    except VGGWeightsError as err:
        print(f"error: --vgg_weights: {err}", file=sys.stderr)
        return 2
    cache_dir = os.path.expanduser(config.data.flow_cache_dir or "")
    if cache_dir and os.path.exists(cache_dir) and not os.path.isdir(cache_dir):
        print(f"error: --flow_cache_dir={cache_dir} is a file, not a folder: give a folder (it is created if "
              "missing).", file=sys.stderr)
        return 2
    made_run_dir = not os.path.exists(run_dir)
    try:  # last of the checks: a refused run leaves no empty folder behind
        os.makedirs(run_dir, exist_ok=True)
    except OSError as err:
        print(f"error: --run_dir={run_dir} cannot be created ({err.strerror}: {err.filename}); give a folder you "
              "can write in (it is created if missing).", file=sys.stderr)
        return 2
    if not os.access(run_dir, os.W_OK | os.X_OK):
        print(f"error: --run_dir={run_dir} is not writable by you; give a folder you can write in.", file=sys.stderr)
        return 2
    import tensorflow as tf

    # TF's checkpoint saver logs one INFO line per save ("Sharding callback duration") through absl: noise on
    # the console, so INFO is off unless the user asks for it with --verbosity.
    if not FLAGS["verbosity"].present:
        absl_logging.set_verbosity(absl_logging.WARNING)
    if FLAGS.deterministic:
        tf.config.experimental.enable_op_determinism()

    from maskrnn_tf.training.loop import (NonFiniteLossError, TrainDataError, TrainingInterrupted, TrainSettingsError,
                                          train)
    from maskrnn_tf.training.checkpoint_files import CheckpointCorruptError
    from maskrnn_tf.training.checkpointing import CheckpointMismatchError, InitCheckpointError
    from maskrnn_tf.training.run_dir import ConfigMismatchError, RunDirBusyError

    try:
        result = train(config, run_dir, overwrite_config=FLAGS.overwrite_config,
                       profile_steps=_parse_profile(FLAGS.profile_steps), printer=lambda s: print(s, flush=True))
    except (DataNotFoundError, ConfigMismatchError, RunDirBusyError, CheckpointCorruptError, VGGWeightsError,
            TrainDataError, TrainSettingsError, CheckpointMismatchError, InitCheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        if made_run_dir and not isinstance(err, RunDirBusyError):  # the folder this command made, with its lock
            _remove_if_only_lock(run_dir)
        return 2
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    except TrainingInterrupted as err:
        print(f"{err}; rerun the same command to resume.", file=sys.stderr)
        return 128 + err.signum
    j = "n/a" if result.validation_j is None else f"{result.validation_j:.4f}"
    loss = "n/a" if math.isnan(result.final_loss) else f"{result.final_loss:.4f}"  # nan: no step ran here
    print(f"done: {result.steps} steps in {result.seconds:.0f} s, final loss {loss}, "
          f"validation J {j}\nmodel {result.model_path}\ncheckpoint {result.checkpoint}\n"
          + (f"best model (J {result.best_j:.4f} at step {result.best_step}) {result.best_path}\n"
             if result.best_path else "") +
          f"TensorBoard: {_console.tensorboard_command(os.path.join(run_dir, 'logs'))}", flush=True)
    return 0


def _remove_if_only_lock(run_dir: str) -> None:
    """Removes `run_dir` when it holds nothing but a run-dir lock file that no process holds (anything else stays:
    another run started in the same new folder keeps its lock and folder)."""
    from maskrnn_tf.training.run_dir import LOCK_NAME

    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock to tell a live run by
        return
    lock = os.path.join(run_dir, LOCK_NAME)
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:  # refused before any lock was taken (or a worker that never takes one): the folder as made
        try:
            os.rmdir(run_dir)  # only if empty
        except OSError:
            pass
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held until closed: no run takes it meanwhile
        if os.listdir(run_dir) == [LOCK_NAME]:
            os.remove(lock)
            os.rmdir(run_dir)  # only if still empty
    except OSError:  # busy (BlockingIOError) or gone: left as it is
        pass
    finally:
        os.close(fd)


def run(argv: Optional[List[str]] = None) -> None:
    """Entry point: defines the flags and runs `main` under absl (argv[0] is the program name)."""
    from maskrnn_tf.flag_validation import parse_flags_or_exit

    _console.quiet_startup(sys.argv if argv is None else argv)
    define_flags()
    default = default_run_dir(command_line_flagfiles(sys.argv if argv is None else argv))
    if default is not None:
        FLAGS.set_default("run_dir", default)  # an explicit --run_dir (command line or flag file) still wins
    app.run(main, argv=argv, flags_parser=parse_flags_or_exit)


if __name__ == "__main__":
    run()
