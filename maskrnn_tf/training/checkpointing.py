"""Checkpoints of a run: model, optimizer, step, RNG state and data position, via tf.train.CheckpointManager.

Atomicity: CheckpointManager writes the checkpoint's data and index files first and only then rewrites the
`checkpoint` state file (atomically, by rename). A save killed half-way leaves files the state file does not
name, so it is never restored. A named checkpoint whose files are damaged (truncated, bad checksum) is found
by reading it back before the restore: `restore_latest` then uses the newest intact one (checkpoint_files).
"""
from __future__ import annotations

import dataclasses
import glob
import json
import logging
import os
import shutil
from typing import Callable, Optional, Sequence

import keras
import tensorflow as tf

from maskrnn_tf.io.atomic_file import atomic_write
from maskrnn_tf.training.checkpoint_files import (CheckpointCorruptError, checkpoint_paths, newest_intact_checkpoint,
                                                  rewrite_state_file, verify_checkpoint)

# <run_dir>/precision.json: the precision the run trains in, so that a resume fits its checkpoints wherever
# --precision=auto would resolve (float16 on a GPU, with a LossScaleOptimizer whose variables only float16
# checkpoints hold; float32 or bfloat16 on a CPU).
PRECISION_FILE = "precision.json"
CHECKPOINT_PRECISIONS = ("float32", "bfloat16", "float16")


class CheckpointMismatchError(RuntimeError):
    """The newest checkpoint does not fit the run's model, optimizer or data pipeline."""


class PrecisionMismatchError(CheckpointMismatchError):
    """The run's checkpoints were made in another precision than the one asked for (or its record is
    unreadable)."""

class InitCheckpointError(RuntimeError):
    """The checkpoint a new run should start from (init_checkpoint) is missing or damaged."""


log = logging.getLogger(__name__)


def resolve_checkpoint(path: str) -> Optional[str]:
    """A checkpoint prefix for `path`: the prefix itself, or the newest intact checkpoint of a run folder or of
    its checkpoints folder (None when there is none)."""
    path = os.path.expanduser(path)
    if os.path.isfile(path + ".index"):
        return path
    if not os.path.isdir(path):
        return None
    folder = os.path.join(path, "checkpoints") if os.path.isdir(os.path.join(path, "checkpoints")) else path
    return newest_intact_checkpoint(folder, quarantine=False).path


class RunCheckpoint:
    """Saves and restores the trackable objects of a run under `<run_dir>/checkpoints`.

    In multi-worker training every worker must take part in a save (it is collective): the chief writes the
    real checkpoint, the others write to a scratch folder that is deleted right after.
    """

    def __init__(self, directory: str, keep: int, chief: bool = True, task_id: int = 0,
                 optional: Sequence[str] = (), **trackables):
        """`optional`: names of trackables added after checkpoints were first written; a checkpoint without
        them restores the rest and leaves them at their current value (any other missing one is a mismatch)."""
        self.directory = directory
        self.chief = chief
        self.task_id = task_id
        self.keep = keep
        self._trackables = dict(trackables)
        self._optional = tuple(optional)
        self.checkpoint = tf.train.Checkpoint(**trackables)
        # Checkpoints without a readable state file (copied without it, or it was lost) are named in a new one
        # first, so that the manager keeps and rotates them and every reader sees them.
        self.found_by_name = rewrite_state_file(directory) if chief and os.path.isdir(directory) else None
        target = directory if chief else os.path.join(directory, f".worker{task_id}_scratch")
        self.manager = tf.train.CheckpointManager(self.checkpoint, target, max_to_keep=keep)
        # Every worker restores from the chief's checkpoints.
        self._reader = directory

    @property
    def latest(self) -> Optional[str]:
        paths = checkpoint_paths(self._reader)
        return paths[0] if paths else None

    def restore_latest(self, report: Callable[[str], None] = log.warning) -> Optional[str]:
        """Restores the newest intact checkpoint; returns its path (None when there is none).

        Damaged newer checkpoints are skipped and reported through `report`; the chief moves them to
        `checkpoints/corrupt/` (see checkpoint_files). Raises CheckpointCorruptError when every checkpoint is
        damaged, RuntimeError when the intact one does not fit the run's objects.
        """
        choice = newest_intact_checkpoint(self._reader, quarantine=self.chief)
        if choice.skipped and self.chief:
            # The manager read the old state file when it was made; it must not list the moved checkpoints.
            self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory, max_to_keep=self.keep)
        if choice.path is None and choice.skipped:
            kept = (f"They were moved to {choice.moved_to}; rerun the same command to start this run again from "
                    "step 0, or put intact checkpoints back from a copy.") if choice.moved_to else ""
            raise CheckpointCorruptError(
                f"No intact checkpoint in {self._reader}:\n{choice.describe()}\n{kept}".rstrip())
        if choice.skipped:
            report(f"warning: skipped damaged checkpoint(s):\n{choice.describe()}\n"
                   f"resuming from the newest intact one, {choice.path}")
        if choice.path is None:
            return None
        if self.found_by_name:
            report(f"note: {self._reader} had no readable state file ('checkpoint'); one naming the checkpoints "
                   f"there was written, resuming from the newest intact one, {choice.path}")
        try:
            self._checkpoint_for(choice.path).restore(choice.path).assert_existing_objects_matched()
        except (tf.errors.OpError, AssertionError, ValueError) as err:
            raise CheckpointMismatchError(
                f"checkpoint {choice.path} cannot be restored into this run: the network, optimizer or data "
                f"settings given differ from those it was made with ({_first_line(err)}). Settings that change the "
                "network or the data need a new --run_dir; the run's config.json was left as it was.") from err
        return choice.path

    @staticmethod
    def holds(path: str, name: str) -> bool:
        """Whether checkpoint `path` stores the trackable `name` (e.g. the data iterators)."""
        return name in _stored_trackables(path)

    def _checkpoint_for(self, path: str, skip: Sequence[str] = ()) -> tf.train.Checkpoint:
        """The checkpoint object to restore `path` with: without `skip` and the optional trackables it lacks."""
        if not self._optional and not skip:
            return self.checkpoint
        stored = _stored_trackables(path)
        left_out = set(skip) | {name for name in self._optional if name not in stored}
        if not left_out:
            return self.checkpoint
        return tf.train.Checkpoint(**{k: v for k, v in self._trackables.items() if k not in left_out})

    def init_from(self, source: str, skip: Sequence[str] = (), last_step: Optional[int] = None,
                  precision: Optional[str] = None) -> str:
        """Restores another run's checkpoint (see `resolve_checkpoint`) into this run's objects except `skip`
        (e.g. the data iterators, which then start from their beginning); returns its prefix.

        Raises InitCheckpointError (nothing intact there, or its `step` object past `last_step`),
        PrecisionMismatchError (its optimizer is of the other kind: loss-scaled float16 against float32 or
        bfloat16; `precision` is this run's, for the message) or CheckpointMismatchError (it does not fit)."""
        prefix = resolve_checkpoint(source)
        if prefix is None:
            raise InitCheckpointError(f"init_checkpoint {source}: no checkpoint there (give a checkpoint prefix "
                                      "such as runs/NAME/checkpoints/ckpt-1500, or a run folder).")
        problem = verify_checkpoint(prefix)
        if problem is not None:
            raise InitCheckpointError(f"init_checkpoint {prefix}: {problem}; give another checkpoint of that run.")
        self._check_loss_scaling(prefix, precision)
        try:
            self._checkpoint_for(prefix, skip).restore(prefix).expect_partial().assert_existing_objects_matched()
        except (tf.errors.OpError, AssertionError, ValueError) as err:
            raise CheckpointMismatchError(
                f"init_checkpoint {prefix} cannot be restored into this run: its network or optimizer differs "
                f"from the one configured here ({_first_line(err)}). Use the model settings of the run it comes "
                "from.") from err
        step = int(self._trackables["step"].numpy()) if last_step is not None else None
        if step is not None and step > last_step:
            raise InitCheckpointError(f"init_checkpoint {prefix} is at step {step}, past this run's {last_step} "
                                      "steps; give more steps or an earlier checkpoint.")
        return prefix

    def _check_loss_scaling(self, prefix: str, precision: Optional[str]) -> None:
        """Raises PrecisionMismatchError when `prefix` and this run differ in loss scaling (float16 or not):
        their optimizers hold other variables. Checked before any restore, which would fail on a dtype deep in
        the optimizer and print a warning for every variable it left unmatched."""
        optimizer = self._trackables.get("optimizer")
        if optimizer is None:
            return
        ours = isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)
        theirs = any(name.startswith("optimizer/dynamic_scale/") for name, _ in tf.train.list_variables(prefix))
        if ours == theirs:
            return
        here = precision or ("float16" if ours else "float32 or bfloat16")
        if theirs:
            made, flag = "float16", "--precision=float16"
        else:
            made, flag = "float32 or bfloat16", "--precision=float32 (or bfloat16, as that run trained)"
        raise PrecisionMismatchError(
            f"init_checkpoint {prefix} was made in {made} but this run trains in {here}: only float16 trains with "
            "loss scaling, whose optimizer variables only float16 checkpoints hold. Start this run in the precision "
            f"of the run it comes from ({flag}; --precision=auto may pick another on this host), or start from a "
            f"checkpoint of a run trained in {here}.")

    def save(self, step: int) -> Optional[str]:
        """Writes a checkpoint numbered `step`; returns its path on the chief (None elsewhere)."""
        path = self.manager.save(checkpoint_number=step)
        if not self.chief:
            shutil.rmtree(self.manager.directory, ignore_errors=True)
            return None
        return path

    def save_kept(self, directory: str, step: int) -> Optional[str]:
        """Writes checkpoint `step` into `directory`, outside the rotation of the run's checkpoints (its own
        manager keeps one there); returns its path on the chief (None elsewhere). Collective, like `save`."""
        target = directory if self.chief else os.path.join(directory, f".worker{self.task_id}_scratch")
        path = tf.train.CheckpointManager(self.checkpoint, target, max_to_keep=1).save(checkpoint_number=step)
        if not self.chief:
            shutil.rmtree(target, ignore_errors=True)
            return None
        return path


def write_run_precision(run_dir: str, precision: str) -> None:
    """Records (atomically) that the run in `run_dir` trains, and writes its checkpoints, in `precision`."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"precision": precision}, f)
            f.write("\n")

    atomic_write(os.path.join(run_dir, PRECISION_FILE), write, durable=True)


def read_run_precision(run_dir: str) -> Optional[str]:
    """The precision the checkpoints of the run in `run_dir` were made in; None when the run has no checkpoint
    (a record of a run stopped before its first one binds nothing) or no record (begun before runs had one).
    Raises PrecisionMismatchError when the record is unreadable."""
    path = os.path.join(run_dir, PRECISION_FILE)
    # Escaped: a run dir named like `prior[s2]` is a pattern to glob, which then matches no checkpoint.
    if not os.path.isfile(path) or not glob.glob(os.path.join(glob.escape(run_dir), "checkpoints", "ckpt-*.index")):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            precision = json.load(f)["precision"]
        if precision not in CHECKPOINT_PRECISIONS:
            raise ValueError(f"precision {precision!r} is not one of {CHECKPOINT_PRECISIONS}")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise PrecisionMismatchError(
            f"{path}: unreadable ({err}). It records the precision this run's checkpoints were made in: write "
            '{"precision": "float16"} (or "float32", "bfloat16") into it, or delete it to resume in the precision '
            "--precision gives on this host.") from err
    return precision


def recorded_run_precision(run_dir: str) -> Optional[str]:
    """`read_run_precision` for a message: None also when the record is unreadable (the resume reports that)."""
    try:
        return read_run_precision(run_dir)
    except PrecisionMismatchError:
        return None


@dataclasses.dataclass(frozen=True)
class ResumePrecision:
    """How a run trains: `precision` (resolved), `config_precision` (TrainConfig.precision as the run's
    config.json spells it) and `note` (the console line when it is not the usual one, else None)."""

    precision: str
    config_precision: str
    note: Optional[str] = None


def _same_variables(a: str, b: str) -> bool:
    # Only float16 trains with loss scaling: its optimizer (a LossScaleOptimizer) has other variables.
    return (a == "float16") == (b == "float16")


def resume_precision(requested: str, recorded: Optional[str], stored: Optional[str], here: Callable[[], str],
                     overwrite_config: bool = False, auto_allowed: bool = True) -> ResumePrecision:
    """The precision a run trains in, given the one asked for (`requested`, may be 'auto'), the one its
    checkpoints were made in (`recorded`, `read_run_precision`), its config.json's precision (`stored`) and
    what auto resolves to on this host (`here()`, asked only when needed).

    With checkpoints to resume, auto is the recorded precision (auto may resolve otherwise on this host, and
    the checkpoints would not fit) and so is its name: config.json keeps its spelling, auto or the name. Another
    precision raises PrecisionMismatchError, unless its checkpoints hold the same variables (float32 and
    bfloat16) and `overwrite_config` asks to continue the run with new settings. `auto_allowed`: False where
    auto is refused (a multi-worker run), so the error does not offer it.
    """
    if recorded is None:
        return ResumePrecision(here() if requested == "auto" else requested, requested)
    if requested == "auto":
        config_precision = recorded if stored == recorded else "auto"
        resolved = here()
        note = None if resolved == recorded else (
            f"precision {recorded}: this run's checkpoints were made in {recorded} (auto gives {resolved} on this "
            "host); --precision=auto resumes a run in the precision it began in")
        return ResumePrecision(recorded, config_precision, note)
    if requested == recorded:
        return ResumePrecision(recorded, "auto" if stored == "auto" else requested)
    same = _same_variables(requested, recorded)
    if same and overwrite_config:
        return ResumePrecision(requested, requested, f"precision {requested}: continuing the run's {recorded} "
                                                     f"checkpoints in {requested} (--overwrite_config)")
    why = "" if same else (" (float16 trains with loss scaling, whose optimizer variables only float16 checkpoints "
                           "hold)")
    switch = f", add --overwrite_config to continue it in {requested}" if same else ""
    auto = (" (or --precision=auto, which resumes a run in the precision it began in)" if auto_allowed else "")
    raise PrecisionMismatchError(
        f"this run's checkpoints were made in {recorded}, not the --precision={requested} given{why}. To go on, "
        f"resume with --precision={recorded}{auto}{switch}, or start a new --run_dir to train in {requested}.")


def _first_line(err: BaseException) -> str:
    """The first line of an error's message (at most 300 characters), or its type when it has none."""
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__


def _stored_trackables(path: str) -> set:
    """The names of the top-level trackables checkpoint `path` stores (step, model, static_data, ...)."""
    return {name.split("/", 1)[0] for name, _ in tf.train.list_variables(path)}
