"""The training program: stage A (static frames) then stage B (unrolled clips), with checkpoints, summaries,
validation, profiling, signal handling and the final `model.keras`.

`train(config, run_dir)` is what `python -m maskrnn_tf.train` calls; it resumes from the newest checkpoint of
`run_dir` when there is one.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import time
from typing import Callable, Iterator, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from maskrnn_tf.data.sequences import DatasetLayoutError
from maskrnn_tf.io import ImageReadError
from maskrnn_tf.io.atomic_file import atomic_write
from maskrnn_tf.model import MaskRNN
from maskrnn_tf.training import inputs
from maskrnn_tf.training.best_model import BestModel
from maskrnn_tf.training.checkpoint_files import checkpoint_paths
from maskrnn_tf.training.checkpointing import (ResumePrecision, RunCheckpoint, read_run_precision,
                                               recorded_run_precision, resume_precision, write_run_precision)
from maskrnn_tf.training.config import TrainConfig, drop_retired
from maskrnn_tf.training.distribution import (check_strategy_settings, is_chief, make_strategy, stop_agreement,
                                               task_info)
from maskrnn_tf.training import precision as precision_module
from maskrnn_tf.training.precision import describe_precision, resolve_precision, set_precision
from maskrnn_tf.training.progress import Progress
from maskrnn_tf.training.run_dir import (CONFIG_NAME, STEP_KEYS, check_init_checkpoint, check_run_dir_free,
                                         check_run_dir_is_ours, completed_config, kept_stage_a_step, prepare_run_dir,
                                         read_config_json, run_dir_lock, write_run_config)
from maskrnn_tf.training.steps import TrainSteps, current_learning_rate, make_optimizer
from maskrnn_tf.training.summaries import ProfileWindow, Summaries, overlay
from maskrnn_tf.training.validation import evaluate, make_step_fn

MODEL_NAME = "model.keras"
STAGE_A_DIR = "stage_a"  # <run_dir>/stage_a: the checkpoint at the end of stage A
VALIDATED_NAME = "last_validation.json"  # the last validated step and its J (a rerun validates a step only once)


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or Inf; the run stopped without saving the bad state."""


class TrainDataError(ValueError):
    """The data settings cannot make training batches (raised before the run directory's config.json is
    written, so the corrected rerun is not refused as another config)."""


class TrainSettingsError(ValueError):
    """Settings that cannot train together on this host (raised before the run directory is written)."""


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM arrived; a checkpoint was saved first. `signum` says which; `elsewhere`: it was sent to
    another worker of a multi-worker run (all stop together)."""

    def __init__(self, signum: int, checkpoint: Optional[str], elsewhere: bool = False):
        where = " (sent to another worker)" if elsewhere else ""
        super().__init__(f"stopped by signal {signal.Signals(signum).name}{where}; checkpoint {checkpoint}")
        self.signum = signum
        self.checkpoint = checkpoint


@dataclasses.dataclass
class TrainResult:
    """What a finished run produced."""

    run_dir: str
    steps: int
    final_loss: float
    validation_j: Optional[float]
    model_path: Optional[str]
    checkpoint: Optional[str]
    seconds: float
    best_step: Optional[int] = None
    best_j: Optional[float] = None
    best_path: Optional[str] = None


class _SignalFlag:
    """Records SIGINT/SIGTERM so the loop can stop at a step boundary (a checkpoint needs consistent state)."""

    def __init__(self):
        self.signum: Optional[int] = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no handlers, the loop still runs
                pass
        return self

    def _handle(self, signum, frame) -> None:
        # The first signal is the stop's cause: a Ctrl-C reaches a driver's whole process group, and the driver's
        # SIGTERM that follows (experiments.commands.run_command) must not rename it.
        if self.signum is None:
            self.signum = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _move_earlier_model_aside(run_dir: str, step: int, printer: Callable[[str], None]) -> None:
    """A finished run trained further: its model.keras is the earlier finish. The loaders (segment, export,
    finetune_selection) take a run's model.keras before its checkpoints, so it would pass for the run's model until
    this run writes its own; it is kept as model_step<N>.keras instead, N the finish's step (its last checkpoint's,
    which `inference.trained_step` reads back from the name), or as model_earlier.keras when no checkpoint says."""
    from maskrnn_tf.training.run_dir import earlier_finish_stem, newest_checkpoint_step

    path = os.path.join(run_dir, MODEL_NAME)
    if not os.path.isfile(path):
        return
    # The state file's newest checkpoint is the finish's last save, even when a damaged one made the run resume
    # from an older step.
    finished = max(step, newest_checkpoint_step(run_dir))
    stem, number = os.path.join(run_dir, earlier_finish_stem(finished)), 1
    kept = f"{stem}.keras"
    while os.path.lexists(kept):  # never over another file
        number += 1
        kept = f"{stem}_{number}.keras"
    os.replace(path, kept)
    printer(f"the earlier finish's {MODEL_NAME} moved to {os.path.basename(kept)}: until this run writes its own, "
            "the run folder gives its newest checkpoint")


_ITERATORS = ("static_data", "clip_data")  # the data iterators a one-device run checkpoints


def _consumed(done: int, stage_a_steps: int, start: int = 0) -> Tuple[int, int]:
    """(stage A batches, stage B batches) a run `done` steps in has trained on, its data read from the beginning
    at step `start` (0; a run started from --init_checkpoint: that checkpoint's step)."""
    return (min(done, stage_a_steps) - min(start, stage_a_steps),
            max(0, done - stage_a_steps) - max(0, start - stage_a_steps))


def _advance(iterator: Iterator, count: int) -> None:
    """Consumes `count` elements of `iterator`. Unlike an iterator over `Dataset.skip(count)`, its checkpointed
    state is that of a plain iterator of the dataset, which the next resume restores."""
    for _ in range(count):
        next(iterator)


def reads_vgg_weights(config: TrainConfig, own_checkpoints: Sequence[str]) -> bool:
    """Whether a run initialises its trunks from config.model.vgg_weights: not when it resumes from its own
    checkpoints or starts from --init_checkpoint, which restore every weight (the file may have moved, imagenet
    be offline)."""
    return not own_checkpoints and not config.init_checkpoint


def jit_compile_replicas_message(strategy: str, replicas: int) -> str:
    """Why --jit_compile is refused on a CPU run of `replicas` (> 1) replicas under --strategy=`strategy`: names
    where the replicas come from (the workers of a multi-worker run, or the logical CPUs of a mirrored one) and
    what to do."""
    if strategy == "multi_worker":
        return (f"--jit_compile trains with one replica only on a CPU, and this multi-worker run "
                f"(--strategy=multi_worker) has {replicas}, one per worker of TF_CONFIG's cluster. Drop --jit_compile "
                "on every worker, or train in one process (--strategy=default) to keep XLA.")
    return (f"--jit_compile trains on one device only on a CPU: XLA cannot reach the variables of the other "
            f"{replicas - 1} replica(s) of --strategy={strategy}, which trains on {replicas} logical CPU devices "
            f"(--logical_cpus={replicas}). Drop --jit_compile, or train on one device (no --logical_cpus).")


def _profile_range(steps: Optional[Tuple[int, int]]) -> Optional[Tuple[int, int]]:
    if steps is None:
        return None
    first, last = steps
    if first < 1 or last < first:
        raise ValueError(f"profile steps must be 1 <= A <= B, got {first},{last}.")
    return first, last


def _model_save(model: keras.Model, path: str) -> None:
    # Keras wants the .keras suffix on the temporary name too.
    atomic_write(path, lambda tmp: model.save(tmp), suffix=".keras", durable=True)


def _record_validation(run_dir: str, step: int, j: float) -> None:
    """Writes `<run_dir>/VALIDATED_NAME`: the last validated step and its J."""
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"step": step, "J": j if math.isfinite(j) else None}, f)

    atomic_write(os.path.join(run_dir, VALIDATED_NAME), write, suffix=".json", durable=True)


def _validated_step(run_dir: str) -> Optional[int]:
    """The step of the run's last recorded validation (None without a readable record)."""
    try:
        with open(os.path.join(run_dir, VALIDATED_NAME), encoding="utf-8") as f:
            step = json.load(f).get("step")
    except (OSError, ValueError, AttributeError):
        return None
    return step if isinstance(step, int) else None


def _check_source_stage_a(prefix: str, step: int, config: TrainConfig) -> None:
    """Raises TrainSettingsError when the run's --init_checkpoint `prefix`, at `step`, comes from a run whose stage A
    ended elsewhere than this run's and `step` is past either end: its steps would change stage (the source's stage A
    steps counted as this run's stage B, which would then train fewer steps than stage_b_steps, or the other way).
    The source's stage A is its config.json's, else its kept stage_a/ checkpoint's; neither found (a checkpoint
    outside a run folder), nothing is checked."""
    source_run = os.path.dirname(os.path.dirname(os.path.abspath(prefix)))  # <run>/checkpoints/ckpt-N, <run>/stage_a/
    stored = read_config_json(os.path.join(source_run, CONFIG_NAME))
    theirs = stored.get("stage_a_steps") if isinstance(stored, dict) else None
    if not isinstance(theirs, int) or isinstance(theirs, bool):
        theirs = kept_stage_a_step(source_run)
    ours = config.stage_a_steps
    if theirs is None or theirs == ours or step <= min(theirs, ours):
        return
    fewer = (f" (this run would train {config.total_steps - step} of its {config.stage_b_steps} stage B steps)"
             if theirs > ours else "")
    raise TrainSettingsError(
        f"--init_checkpoint {prefix} is at step {step}, and its run ended stage A at step {theirs}, this run's "
        f"stage_a_steps is {ours}: steps {min(theirs, ours) + 1} to {min(step, max(theirs, ours))} would change "
        f"stage{fewer}. Give --stage_a_steps={theirs} (the run it comes from), or start from a checkpoint at or "
        f"before step {min(theirs, ours)}.")


def _stored_config(run_dir: str) -> Optional[dict]:
    """The run's config.json as the current version reads it (retired keys dropped, keys added since at their
    defaults); None without a readable one."""
    stored = read_config_json(os.path.join(run_dir, CONFIG_NAME))
    return None if stored is None else completed_config(drop_retired(stored))


def _stored_precision(run_dir: str) -> Optional[str]:
    """The precision setting of the run's config.json (None without a readable one: prepare_run_dir reports)."""
    return _stored_setting(run_dir, "precision")


def _stored_setting(run_dir: str, key: str) -> Optional[str]:
    """The string setting `key` of the run's config.json (None without a readable one or that key)."""
    try:
        with open(os.path.join(run_dir, CONFIG_NAME), encoding="utf-8") as f:
            value = json.load(f).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _resume_choice(config: TrainConfig, run_dir: str, overwrite_config: bool) -> ResumePrecision:
    """The precision the run trains in and config.json's spelling of it (`resume_precision` for this run dir).
    Raises checkpointing.PrecisionMismatchError."""
    return resume_precision(config.precision, read_run_precision(run_dir), _stored_precision(run_dir),
                            lambda: resolve_precision("auto"), overwrite_config,
                            auto_allowed=config.strategy != "multi_worker")  # check_strategy_settings refuses it


def check_run_dir_before_cluster(config: TrainConfig, run_dir: str, overwrite_config: bool) -> None:
    """Raises, reading `run_dir` only, what the chief of a multi-worker run would refuse it for once the cluster
    is up: another live training holding its lock (run_dir.RunDirBusyError), checkpoints of another precision
    (checkpointing.PrecisionMismatchError), another config or an init_checkpoint a resumed run would ignore
    (run_dir.ConfigMismatchError).

    Every worker calls it before the strategy is built: a refusal by the chief alone afterwards left the other
    workers in the cluster, to fail or hang in their first collective. The run dir is shared (README) and only
    the chief writes it, after the cluster is up (which waits for every worker): all workers read the same files.
    """
    if not os.path.isdir(run_dir):
        return  # a new run: nothing to refuse, and the chief makes the folder
    check_run_dir_free(run_dir)
    choice = _resume_choice(config, run_dir, overwrite_config)
    config = dataclasses.replace(config, precision=choice.config_precision)  # as _train compares it
    # Quiet: the chief reports the notes (step counts changed, settings that predate config.json) when it
    # checks again in _train.
    prepare_run_dir(run_dir, config, overwrite_config, report=lambda line: None, write=False)
    check_init_checkpoint(run_dir, config.init_checkpoint, _stored_setting(run_dir, "init_checkpoint"),
                          checkpoint_paths(os.path.join(run_dir, "checkpoints")))


def train(config: TrainConfig, run_dir: str, overwrite_config: bool = False,
          profile_steps: Optional[Tuple[int, int]] = None, printer: Callable[[str], None] = print) -> TrainResult:
    """Trains (or resumes) a run. Raises NonFiniteLossError, TrainingInterrupted, inputs.DataNotFoundError,
    run_dir.ConfigMismatchError, run_dir.RunDirBusyError, checkpoint_files.CheckpointCorruptError,
    checkpointing.PrecisionMismatchError (the checkpoints were made in another precision than the one asked)."""
    started = time.perf_counter()
    try:
        # Before the strategy is built: every worker refuses alike, none is left waiting for the cluster.
        check_strategy_settings(config.strategy, config.precision, recorded_run_precision(run_dir))
    except ValueError as err:  # multi_worker without TF_CONFIG, or with auto: settings
        raise TrainSettingsError(str(err)) from err
    # A folder of someone else's is refused before anything reads its files as the run's or takes the lock (which
    # would leave a .lock there); prepare_run_dir checks again under the lock. On every worker alike.
    check_run_dir_is_ours(run_dir)
    if config.strategy == "multi_worker":
        # The run dir too, on every worker alike (one process takes the lock and checks config.json below).
        check_run_dir_before_cluster(config, run_dir, overwrite_config)
    try:
        strategy = make_strategy(config.strategy)
    except ValueError as err:  # a malformed TF_CONFIG: settings
        raise TrainSettingsError(str(err)) from err
    chief = is_chief(strategy)
    # The chief holds the run directory for the whole run (the other workers write only temporary copies). What
    # remains of a multi-worker run's refusals after the cluster is up: another training that takes the lock
    # after the chief's probe (check_run_dir_before_cluster) and before this take, while the cluster forms (as
    # long as the workers take to start), or that changes config.json meanwhile, is refused by the chief alone
    # here or in _train, and the other workers then fail in their first collective as before.
    # Multi-worker: SIGINT/SIGTERM are recorded from here on, not only in the loop. TensorFlow's coordination
    # service takes SIGTERM while the cluster forms (a preemption notice), so one that came while the workers
    # built their data and network was lost and the run went on; recorded, it stops every worker after the first
    # step (StopAgreement), saving it. One process keeps Python's own handling until its loop (Ctrl-C stops a
    # start-up at once).
    early = _SignalFlag() if config.strategy == "multi_worker" else contextlib.nullcontext()
    with early as flag, run_dir_lock(run_dir) if chief else contextlib.nullcontext():
        return _train(config, run_dir, overwrite_config, profile_steps, printer, started, strategy, chief, flag)


def _train(config: TrainConfig, run_dir: str, overwrite_config: bool, profile_steps: Optional[Tuple[int, int]],
           printer: Callable[[str], None], started: float, strategy: tf.distribute.Strategy,
           chief: bool, signal_flag: Optional["_SignalFlag"] = None) -> TrainResult:
    _, task_id = task_info()
    log_dir = os.path.join(run_dir, "logs")
    profile = _profile_range(profile_steps)
    # Before anything else: a resume in another precision than its checkpoints' stops here, the run dir as it was.
    requested = config.precision
    choice = _resume_choice(config, run_dir, overwrite_config)
    precision = choice.precision
    if config.jit_compile and precision != "float32" and not precision_module._has_gpu():
        # XLA on the CPU refuses this model's mixed-precision backward pass (a float32 ReluGrad fed by a bfloat16
        # or float16 Conv2DBackpropInput): say so now rather than with a traceback at the first step.
        raise TrainSettingsError(
            f"--jit_compile trains only in float32 on a CPU: XLA fails on the network's {precision} backward pass. "
            f"Drop --jit_compile to train in {precision}, or pass --precision=float32 to keep XLA.")
    if config.jit_compile and strategy.num_replicas_in_sync > 1 and not precision_module._has_gpu():
        # XLA cannot reach a variable held by another logical CPU device ("Trying to access resource
        # .../replica_1"): a traceback at step 1, after config.json had stored the setting.
        raise TrainSettingsError(jit_compile_replicas_message(config.strategy, strategy.num_replicas_in_sync))
    if choice.config_precision != requested:  # the same setting as config.json's, spelt as it is there
        config = dataclasses.replace(config, precision=choice.config_precision)
    policy = set_precision(precision)
    if chief:
        printer(choice.note or describe_precision(requested, precision))
    keras.utils.set_random_seed(config.seed)

    # Data first: a missing data set or settings that make no batch fail before any model is built, and
    # before config.json is written (it would refuse the corrected rerun as another config).
    try:
        source = inputs.train_source(config.data, config.seed)
        band = config.model.color_prior_band if config.model.color_prior_input else None
        static_ds, clip_ds = inputs.make_train_datasets(config.data, source, config.seed, color_prior_band=band)
        val_videos = inputs.validation_videos(config.data) if chief else []  # eval_every=0: at the end only
    except ImageReadError as err:  # a frame or mask of the data, named by the error: not the settings
        raise TrainDataError(f"a training file cannot be read: {err}") from err
    except DatasetLayoutError as err:  # the data's folders or annotations, named by the error: not the settings
        raise TrainDataError(f"the training data is not as the data set's layout asks: {err}") from err
    except ValueError as err:  # DataNotFoundError is a FileNotFoundError: it passes through
        raise TrainDataError(f"the data settings make no training batches: {err}") from err
    own = checkpoint_paths(os.path.join(run_dir, "checkpoints"))  # newest first; empty for a new run
    if chief:  # refuses another config now; config.json is written once the checkpoint fits these settings
        # (A multi-worker run's workers checked the same before the cluster: check_run_dir_before_cluster.)
        prepare_run_dir(run_dir, config, overwrite_config, report=printer, write=False)
        check_init_checkpoint(run_dir, config.init_checkpoint, _stored_setting(run_dir, "init_checkpoint"), own)

    with strategy.scope():
        model = MaskRNN(config.model, read_vgg_weights=reads_vgg_weights(config, own))
        global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        optimizer = make_optimizer(config, policy, step=global_step)
        optimizer.build(model.trainable_variables)
        rng = tf.random.Generator.from_seed(config.seed)
    distributed = strategy.num_replicas_in_sync > 1 or isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    # Updates skipped for a non-finite gradient, over the whole run (resumes included). A plain variable,
    # outside the strategy: every worker sees the same all-reduced gradient norm and counts alike.
    skipped_updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped_updates")
    # The step this run's data started from (from --init_checkpoint: that checkpoint's; its batches are read from
    # the beginning): several replicas restore their data position by skipping the batches trained on since.
    data_start = tf.Variable(0, dtype=tf.int64, trainable=False, name="data_start")
    trackables = dict(model=model, optimizer=optimizer, step=global_step, rng=rng, skipped_updates=skipped_updates,
                      data_start=data_start)
    if not distributed:
        # One device: the tf.data iterators themselves are checkpointed (exact data position, cheap resume).
        static_it, clip_it = iter(static_ds), iter(clip_ds)
        trackables.update(static_data=static_it, clip_data=clip_it)
    # Older checkpoints lack skipped_updates; those of a run on several replicas lack the data iterators.
    ckpt = RunCheckpoint(os.path.join(run_dir, "checkpoints"), config.keep_checkpoints, chief, task_id,
                         optional=("skipped_updates", "data_start") + _ITERATORS, **trackables)
    restored = ckpt.restore_latest(printer)
    if restored and not distributed and not ckpt.holds(restored, _ITERATORS[0]):
        # Made on several replicas (mirrored, multi_worker), which do not checkpoint their iterators: the data
        # position is restored by consuming the batches already trained on, as such a run resumes itself.
        # Once stage A is over its batches are never read again: only stage B's are consumed then.
        done_a, done_b = _consumed(int(global_step.numpy()), config.stage_a_steps, int(data_start.numpy()))
        done_a = 0 if min(int(global_step.numpy()), config.stage_a_steps) == config.stage_a_steps else done_a
        if done_a + done_b:
            printer(f"note: {restored} was made on several replicas and holds no data position: reading the "
                    f"{done_a + done_b} batches its steps trained on again to resume after them")
        _advance(static_it, done_a)
        _advance(clip_it, done_b)
    if restored is None and config.init_checkpoint:
        source = ckpt.init_from(config.init_checkpoint, skip=_ITERATORS + ("data_start",), last_step=config.total_steps,
                                precision=precision)
        data_start.assign(global_step)
        _check_source_stage_a(source, int(global_step.numpy()), config)
        printer(f"started from {source} at step {int(global_step.numpy())} (weights, optimizer, step and RNG; "
                "the data starts from its beginning)")
    first_step = int(global_step.numpy()) + 1
    if profile and restored is not None and profile[1] < first_step <= config.total_steps:
        # The same command rerun after a stop: its range was (or was to be) traced before this resume; refusing it
        # would keep "rerun the same command to resume" from resuming.
        printer(f"note: --profile_steps={profile[0]},{profile[1]}: this run resumes at step {first_step}, after "
                "those steps; nothing is traced (give later steps to trace some)")
        profile = None
    if profile and first_step <= config.total_steps and (profile[1] < first_step or profile[0] > config.total_steps):
        # Nothing would be traced, in silence (a resumed run counts on from its checkpoint's step).
        raise TrainSettingsError(
            f"--profile_steps={profile[0]},{profile[1]}: this run trains steps {first_step} to {config.total_steps}; "
            "give steps in that range (numbered from 1 over the whole run, as the console shows them).")
    if profile and first_step <= config.total_steps and (profile[0] < first_step or profile[1] > config.total_steps):
        traced = (max(profile[0], first_step), min(profile[1], config.total_steps))
        printer(f"note: --profile_steps={profile[0]},{profile[1]}: this run trains steps {first_step} to "
                f"{config.total_steps}, so steps {traced[0]} to {traced[1]} are traced")
    elif profile and first_step > config.total_steps:
        printer(f"note: --profile_steps={profile[0]},{profile[1]}: the run is finished (step {config.total_steps}), "
                "nothing is traced; give more steps (--stage_a_steps, --stage_b_steps) or a new --run_dir to trace some")
    finished = int(global_step.numpy()) >= config.total_steps and os.path.isfile(os.path.join(run_dir, CONFIG_NAME))
    if chief and not finished:
        write_run_config(run_dir, config)
        write_run_precision(run_dir, precision)  # before the first checkpoint of a new run
    elif chief and _stored_config(run_dir) != json.loads(config.to_json()):
        stored, new = _stored_config(run_dir), json.loads(config.to_json())
        if stored is None or all(stored[k] == new[k] for k in new if k not in STEP_KEYS):
            # An unreadable config.json replaced (--overwrite_config), or step counts cut to the step the run
            # reached: they say what the finished run trained.
            write_run_config(run_dir, config)
        else:
            # Nothing is trained: settings no step trained with would mislead what reads them (segment's finetuning).
            printer(f"nothing to train, so {CONFIG_NAME} keeps the settings the run was trained with (the changed "
                    "settings apply only to steps a run trains)")
    best = BestModel(run_dir, config) if chief and val_videos else None
    if best is not None and (not best.enabled or best.step is not None):
        printer(best.describe())  # what selection this run does, or the best model so far when resuming
    if best is not None and best.note:
        printer(best.note)
    if restored:
        printer(f"resumed from {restored} at step {int(global_step.numpy())}")
    if chief and int(global_step.numpy()) < config.total_steps:
        _move_earlier_model_aside(run_dir, int(global_step.numpy()), printer)
    if distributed:
        # Distributed iterators are not checkpointable: the pipelines are deterministic functions of the
        # element index, so the data position is restored by skipping the batches already consumed.
        done_a, done_b = _consumed(int(global_step.numpy()), config.stage_a_steps, int(data_start.numpy()))
        static_it = iter(strategy.experimental_distribute_dataset(static_ds.skip(done_a)))
        clip_it = iter(strategy.experimental_distribute_dataset(clip_ds.skip(done_b)))
    steps = TrainSteps(model, optimizer, config, strategy, global_step)
    summaries = Summaries(log_dir, enabled=chief)
    if int(global_step.numpy()) < config.total_steps:
        # Every process that trains marks its start: a resumed one re-trains (and logs again) the steps a stopped
        # one may have logged past its last checkpoint, and TensorBoard drops those at a restart's mark.
        summaries.session_start(int(global_step.numpy()) + 1, ("train", "val") if val_videos else ("train",))
    profiler = ProfileWindow(log_dir, profile, enabled=chief)
    step_fn = make_step_fn(model) if val_videos else None

    def validate(step: int, final: bool = False) -> float:
        j, predictions = evaluate(model, val_videos, step_fn)
        summaries.scalars(step, {"J": j}, writer="val")
        if config.image_every and predictions and (final or step % config.image_every == 0):
            video, labels = val_videos[0], predictions[0]
            t = len(labels) - 1
            row = np.concatenate([video["frames"][t], overlay(video["frames"][t], video["masks"][t]),
                                  overlay(video["frames"][t], labels[t])], axis=1)
            summaries.images(step, "frame_truth_prediction", row[None], writer="val")
        if best is not None and best.offer(step, j, lambda path: model.save(path)):
            printer(best.describe())
        if chief:  # after best/: a stop while best/ is written leaves this step to validate again on a rerun
            _record_validation(run_dir, step, j)
        if best is not None and best.j is not None:
            # The running best beside J: TensorBoard shows which step best/ holds.
            summaries.scalars(step, {"best_J": best.j, "best_step": float(best.step)}, writer="val")
        return j

    last_saved = restored
    final_loss = float("nan")
    skipped = int(skipped_updates.numpy())
    loss_scaling = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    j = None
    total = config.total_steps
    agreement = stop_agreement(strategy)  # None on one machine: its own flag decides
    with contextlib.nullcontext(signal_flag) if signal_flag is not None else _SignalFlag() as flag:
        try:
            step = started_at = int(global_step.numpy())
            for stage, first, last in (("A", 0, config.stage_a_steps), ("B", config.stage_a_steps, total)):
                if step >= last:
                    continue
                if stage == "B" and first > 0 and step == first:
                    # Stage A's end outlives the rotation: several stage B variants can start from it
                    # (--init_checkpoint). Decided by the step alone, the same on every worker (saves are collective).
                    kept = ckpt.save_kept(os.path.join(run_dir, STAGE_A_DIR), step)
                    if kept:
                        printer(f"end of stage A kept in {kept} (a start for other stage B runs: --init_checkpoint)")
                progress = Progress(stage, step, last, printer)
                while step < last:
                    # Steps are numbered from 1, as the console and TensorBoard show them (--profile_steps too).
                    profiler.before_step(step + 1)
                    # The rate this step's update uses (the schedule follows the step counter the step advances).
                    logged = (step + 1) % config.log_every == 0 or step + 1 == last
                    lr = float(current_learning_rate(optimizer)) if logged else None
                    t0 = time.perf_counter()
                    # The step marker gives the Profile tab its step times and input-pipeline analysis.
                    with tf.profiler.experimental.Trace("maskrnn_train_step", step_num=step + 1, _r=1):
                        if stage == "A":
                            metrics = steps.static_step(next(static_it))
                        else:
                            reverse = rng.uniform([]) < config.reverse_clip_prob
                            metrics = steps.clip_step(next(clip_it), reverse)
                    values = {k: float(v) for k, v in metrics.items()}
                    seconds = time.perf_counter() - t0
                    profiler.after_step(step + 1)
                    step += 1
                    if not all(math.isfinite(values[k]) for k in ("loss", "seg", "loc")):
                        raise NonFiniteLossError(
                            f"stage {stage}, step {step}: the loss is {values['loss']} (seg {values['seg']}, loc "
                            f"{values['loc']}). Stopped without saving; the last good checkpoint "
                            f"{ckpt.latest or '(none)'} is kept. Lower optim.learning_rate or optim.clip_norm "
                            "(--learning_rate / --clip_norm with --overwrite_config resumes from that checkpoint "
                            "with them), or check the data.")
                    if not math.isfinite(values["grad_norm"]):
                        skipped += 1  # the step's gradient was dropped (see gradient_update.apply_clipped)
                        skipped_updates.assign(skipped)
                        scale = float(optimizer.dynamic_scale.numpy()) if loss_scaling else None
                        # float16's LossScaleOptimizer skips the update; otherwise Adam steps on a zero gradient.
                        what = (f"update skipped ({skipped} so far), float16 loss scale lowered to {scale:g}"
                                if scale is not None else
                                f"gradient dropped: the update ran on a zero gradient, Adam's momentum only "
                                f"({skipped} so far)")
                        printer(f"warning: stage {stage}, step {step}: non-finite gradient (loss "
                                f"{values['loss']:.4f}); {what}")
                        summaries.scalars(step, {"skipped_updates": float(skipped)})
                        if scale is not None and scale < 1.0:
                            # Keras' LossScaleOptimizer has no floor: below 1 the gradient overflows unscaled,
                            # and on to 0, where every later update is skipped. Stop before a checkpoint holds it.
                            raise NonFiniteLossError(
                                f"stage {stage}, step {step}: the float16 loss scale fell to {scale:g} (the gradient "
                                "is not finite even unscaled, step after step). Stopped without saving; the last good "
                                f"checkpoint {ckpt.latest or '(none)'} is kept. Look for the NaN/Inf in the data or "
                                "the model, or train in --precision=float32 or bfloat16.")
                    final_loss = values["loss"]
                    if logged:
                        summaries.scalars(step, {"loss/total": values["loss"], "loss/seg": values["seg"],
                                                 "loss/loc": values["loc"], "grad_norm": values["grad_norm"],
                                                 "learning_rate": lr, "step_time_s": seconds})
                        if loss_scaling:
                            summaries.scalars(step, {"loss_scale": float(optimizer.dynamic_scale.numpy())})
                        progress.report(step, {"loss": values["loss"], "seg": values["seg"], "loc": values["loc"]})
                    if val_videos and config.eval_every and step % config.eval_every == 0:
                        j = validate(step, final=step == total)  # the run's last validation: images too
                        printer(f"validation J {j:.4f} at step {step}")
                    # The last step is saved here too, under the loop's signal handling: a signal while it is
                    # written stops after it as any other (after the loop, Ctrl-C was a traceback, SIGTERM a kill).
                    # Decided by the step alone, the same on every worker (saves are collective).
                    saved = step % config.checkpoint_every == 0 or step == total
                    if saved:
                        last_saved = ckpt.save(step) or last_saved
                    # Multi-worker: a signal seen by any worker stops every one after this same step (saves and
                    # steps are collective: a worker stopping alone would leave the others waiting in the next).
                    signum = flag.signum if agreement is None else agreement.agree(flag.signum)
                    if signum is not None:
                        if not saved:  # else saved just above: not rewritten in place
                            last_saved = ckpt.save(step) or last_saved
                        raise TrainingInterrupted(signum, last_saved, elsewhere=flag.signum != signum)
        finally:
            profiler.stop()
            summaries.flush()
    model_path = None
    try:  # past the loop's signal handling: Ctrl-C here is a stop like the loop's, not a traceback
        # A rerun of a finished run validates its last step only if no validation of it was recorded (one
        # stopped mid-way, after the last checkpoint, would otherwise be lost to best/).
        validated = step > started_at and j is not None and step % max(config.eval_every, 1) == 0
        if val_videos and not validated and (step > started_at or _validated_step(run_dir) != step):
            j = validate(step, final=True)
            printer(f"validation J {j:.4f} at step {step}")
        if step == started_at:
            # More steps alone resume the run (run_dir.step_change_problem); --overwrite_config takes any change.
            printer(f"already trained to step {step} of {total}: nothing to train (more steps, e.g. a larger "
                    "--stage_b_steps in the same command, train further; a new --run_dir starts another run)")
        if chief:
            model_path = os.path.join(run_dir, MODEL_NAME)
            if step > started_at or not os.path.isfile(model_path):  # a finished run's model stays as it was
                _model_save(model, model_path)
    except KeyboardInterrupt:
        raise TrainingInterrupted(signal.SIGINT, last_saved) from None
    summaries.close()
    kept = best is not None and best.step is not None
    return TrainResult(run_dir=run_dir, steps=step, final_loss=final_loss, validation_j=j, model_path=model_path,
                       checkpoint=last_saved, seconds=time.perf_counter() - started,
                       best_step=best.step if kept else None, best_j=best.j if kept else None,
                       best_path=best.path if kept else None)
