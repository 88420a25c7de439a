"""Choosing the checkpoint to restore: the newest one whose files read back intact.

A checkpoint named by the `checkpoint` state file can still be damaged (a disk that filled up, a copy cut
short, a crash before the data reached the disk): TensorFlow then fails deep in the restore with
`IndexError: Read less bytes than requested` or a checksum error. `verify_checkpoint` reads every tensor
once (TensorFlow checks each tensor's size and CRC32C as it reads), so a damaged checkpoint is found before
anything is restored from it. `newest_intact_checkpoint` walks the state file's checkpoints (without a state
file: the numbered checkpoint files there) newest first and returns the first intact one; with
`quarantine=True` (the training run that owns the folder) the damaged ones are moved to `<checkpoints>/corrupt/`
(never deleted) and dropped from the state file, so the next save cannot overwrite them and nothing tries them
again.
"""
from __future__ import annotations

import dataclasses
import glob
import os
import re
import shutil
from typing import List, Optional, Tuple

import tensorflow as tf
from google.protobuf import text_format

from maskrnn_tf.io.atomic_file import atomic_write

CORRUPT_DIR = "corrupt"


class CheckpointCorruptError(RuntimeError):
    """Every checkpoint the state file names is damaged."""


@dataclasses.dataclass
class CheckpointChoice:
    """The checkpoint chosen (None: no intact one), the damaged ones skipped (path, reason) and where the
    damaged ones were moved (empty unless quarantined)."""

    path: Optional[str]
    skipped: List[Tuple[str, str]] = dataclasses.field(default_factory=list)
    moved_to: Optional[str] = None

    def describe(self) -> str:
        """One line per skipped checkpoint, for warnings and errors."""
        where = f"; moved to {self.moved_to}" if self.moved_to else ""
        return "\n".join(f"  {path}: {reason}{where}" for path, reason in self.skipped)


def verify_checkpoint(prefix: str) -> Optional[str]:
    """None when every tensor of the checkpoint `prefix` reads back; else what is wrong with it."""
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name, dtype in sorted(reader.get_variable_to_dtype_map().items()):
            if dtype == tf.variant:
                # Iterator states: the Python reader cannot convert variants, RestoreV2 reads them.
                tf.raw_ops.RestoreV2(prefix=prefix, tensor_names=[name], shape_and_slices=[""], dtypes=[dtype])
            else:
                reader.get_tensor(name)
    except (tf.errors.OpError, IndexError, ValueError) as err:
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return f"corrupt or truncated ({type(err).__name__}: {first_line})"
    return None


def _readable_state(directory: str):
    """The CheckpointState of `directory`'s state file when it is readable and names a checkpoint, else None."""
    try:
        state = tf.train.get_checkpoint_state(directory)
    except (ValueError, text_format.ParseError):  # empty, zeroed or cut-short state file
        return None
    return state if state is not None and (state.model_checkpoint_path or state.all_model_checkpoint_paths) else None


def has_state_file(directory: str) -> bool:
    """Whether `directory` has a readable checkpoint state file naming at least one checkpoint."""
    return _readable_state(directory) is not None


def _write_state(directory: str, state) -> None:
    """Writes a CheckpointState as CheckpointManager does (text format, renamed into place)."""
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text_format.MessageToString(state))

    atomic_write(os.path.join(directory, "checkpoint"), write, durable=True)


def rewrite_state_file(directory: str) -> Optional[str]:
    """When `directory` holds numbered checkpoints but no readable state file, writes one naming them (oldest
    first, as CheckpointManager does) so that a manager made afterwards keeps and rotates them; an unreadable
    state file is kept aside as `checkpoint.unreadable`. Returns the newest checkpoint named, or None."""
    if has_state_file(directory):
        return None
    found = _checkpoints_by_name(directory)
    if not found:
        return None
    state_file = os.path.join(directory, "checkpoint")
    if os.path.exists(state_file):
        os.replace(state_file, state_file + ".unreadable")
    oldest_first = list(reversed(found))
    # With their times (the index files' mtimes) the manager tracks them; without, it would treat them as
    # preserved for ever and name only its own new ones.
    _write_state(directory, tf.compat.v1.train.generate_checkpoint_state_proto(
        directory, os.path.basename(found[0]),
        all_model_checkpoint_paths=[os.path.basename(p) for p in oldest_first],
        all_model_checkpoint_timestamps=[os.path.getmtime(p + ".index") for p in oldest_first]))
    return found[0]


def checkpoint_paths(directory: str) -> List[str]:
    """The checkpoints the state file of `directory` names, newest first, as absolute prefixes.

    Without a state file (checkpoints copied without it, or it was lost), the `<name>-<N>.index` files there,
    highest N first: a folder of checkpoints is never taken for an empty one.
    """
    # Absolute first: TensorFlow joins the state file's relative names with the folder it was given, so a
    # relative folder would come back already joined.
    directory = os.path.abspath(directory)
    state = _readable_state(directory)
    if state is None:
        return _checkpoints_by_name(directory)
    return list(reversed(_state_paths(state, directory)))


def _state_paths(state, directory: str) -> List[str]:
    """The checkpoints a state file names (its list, or its one checkpoint without one), oldest first, as
    absolute prefixes under the absolute `directory`."""
    paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
    return [p if os.path.isabs(p) else os.path.join(directory, p) for p in paths]


def _checkpoints_by_name(directory: str) -> List[str]:
    numbered = []
    for index in glob.glob(os.path.join(glob.escape(directory), "*.index")):
        match = re.fullmatch(r"(.+)-(\d+)\.index", os.path.basename(index))
        if match:
            numbered.append((int(match.group(2)), os.path.join(directory, match.group(1) + "-" + match.group(2))))
    return [path for _, path in sorted(numbered, reverse=True)]


def _files_of(prefix: str) -> List[str]:
    return sorted(glob.glob(glob.escape(prefix) + ".index") + glob.glob(glob.escape(prefix) + ".data-*"))


def _quarantine(directory: str, bad: List[str]) -> str:
    """Moves the files of the `bad` checkpoints (absolute prefixes) to <directory>/corrupt/ and drops them from the
    state file."""
    # Absolute, as checkpoint_paths: TensorFlow returns the state file's names joined with the folder it is given,
    # so a relative folder would compare (and write back) paths joined twice.
    directory = os.path.abspath(directory)
    target = os.path.join(directory, CORRUPT_DIR)
    os.makedirs(target, exist_ok=True)
    for prefix in bad:
        for path in _files_of(prefix):
            destination = os.path.join(target, os.path.basename(path))
            n = 1
            while os.path.exists(destination):  # an earlier damaged checkpoint of the same number stays too
                destination = os.path.join(target, f"{os.path.basename(path)}.{n}")
                n += 1
            shutil.move(path, destination)
    state = _readable_state(directory)
    if state is None:
        return target  # checkpoints found by name: no state file to edit
    paths = _state_paths(state, directory)
    stamps = list(state.all_model_checkpoint_timestamps)
    stamps = stamps if len(stamps) == len(paths) else []  # older state files have none
    keep = [i for i, p in enumerate(paths) if p not in bad]
    # Written back relative to the folder, as CheckpointManager writes them: the run dir can still be moved.
    paths = [os.path.basename(p) if os.path.dirname(p) == directory else p for p in paths]
    if keep:
        # The state proto edited in place and written as CheckpointManager writes it;
        # tf.compat.v1.train.update_checkpoint_state would do the same with a deprecation warning.
        state.model_checkpoint_path = paths[keep[-1]]
        del state.all_model_checkpoint_paths[:]
        state.all_model_checkpoint_paths.extend(paths[i] for i in keep)
        del state.all_model_checkpoint_timestamps[:]
        state.all_model_checkpoint_timestamps.extend(stamps[i] for i in keep if stamps)
        _write_state(directory, state)
    else:  # nothing left to name: the state file goes aside too, so the next run starts afresh
        shutil.move(os.path.join(directory, "checkpoint"), os.path.join(target, "checkpoint"))
    return target


def newest_intact_checkpoint(directory: str, quarantine: bool = False) -> CheckpointChoice:
    """The newest checkpoint of `directory` (per its state file) that verifies, and the damaged newer ones.

    With `quarantine`, every damaged checkpoint found (the newer ones skipped, or all of them when none is
    intact) is moved to <directory>/corrupt/ and removed from the state file.
    """
    choice = CheckpointChoice(path=None)
    for prefix in checkpoint_paths(directory):
        problem = verify_checkpoint(prefix)
        if problem is None:
            choice.path = prefix
            break
        choice.skipped.append((prefix, problem))
    if quarantine and choice.skipped:
        choice.moved_to = _quarantine(directory, [p for p, _ in choice.skipped])
    return choice
