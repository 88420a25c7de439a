"""What a scored results folder was made from, and its scores: lets a driver reuse a folder only when it was
made the same way (same segment arguments, same model file)."""
from __future__ import annotations

import csv
import hashlib
import os
import re
from typing import Dict, List, Mapping, Optional, Sequence


def model_file(model_path: str) -> str:
    """The file that identifies a model path: a .keras file, a folder's model.keras (a run folder or its best/),
    or a checkpoint prefix's .index file; the path itself otherwise."""
    if os.path.isdir(model_path) and os.path.isfile(os.path.join(model_path, "model.keras")):
        return os.path.join(model_path, "model.keras")
    if os.path.isfile(model_path + ".index"):
        return model_path + ".index"
    if os.path.isdir(model_path):
        # A run folder without model.keras (or its checkpoints/): segment loads the newest checkpoint, which new
        # checkpoints change and the folder's own size and mtime do not show.
        folder = model_path if os.path.basename(os.path.normpath(model_path)) == "checkpoints" else \
            os.path.join(model_path, "checkpoints")
        named = _state_file_checkpoint(folder)
        if named is not None:
            return named
        numbered = [(int(m.group(1)), name) for name in (os.listdir(folder) if os.path.isdir(folder) else ())
                    for m in [re.fullmatch(r"ckpt-(\d+)\.index", name)] if m]
        if numbered:
            return os.path.join(folder, max(numbered)[1])
    return model_path


def _state_file_checkpoint(folder: str) -> Optional[str]:
    """The .index file of the checkpoint a checkpoints folder's state file names as the newest (what segment loads
    when it verifies), read as text: the drivers do not import TensorFlow. None without one."""
    try:
        with open(os.path.join(folder, "checkpoint"), encoding="utf-8") as f:
            match = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', f.read(), re.MULTILINE)
    except OSError:
        return None
    if not match:
        return None
    index = os.path.join(folder, match.group(1)) + ".index"  # relative to the folder, or absolute
    return index if os.path.isfile(index) else None


# Parts of the package that segment and evaluate never run: the serving and tfds code (folders of their own in the
# checkout, inside the package once installed: left out so that both give one fingerprint), the drivers and the
# training and demo CLIs (a message changed there is no other mask).
_NOT_SEGMENTING = {"export", "datasets", "experiments", "ablation.py", "finetune_selection.py", "finetune_table.py",
                   "train.py", "demo.py"}


def code_fingerprint(package_dir: Optional[str] = None) -> str:
    """SHA-256 of the Python sources of the maskrnn_tf package that segment and evaluate run on (`package_dir`:
    another folder of sources), names and contents: what the masks and their scores can depend on besides segment's
    arguments and the model."""
    if package_dir is None:
        package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    digest = hashlib.sha256()
    found = []
    for root, dirs, files in os.walk(package_dir):
        top = os.path.normpath(root) == os.path.normpath(package_dir)
        dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(".")
                   and not (top and d in _NOT_SEGMENTING)]
        # Hidden names are no modules (an editor's lock file ".#segment.py" is a link to nothing).
        found.extend(os.path.join(root, name) for name in files if name.endswith(".py") and not name.startswith(".")
                     and not (top and name in _NOT_SEGMENTING) and os.path.isfile(os.path.join(root, name)))
    for path in sorted(found):
        digest.update(os.path.relpath(path, package_dir).replace(os.sep, "/").encode() + b"\0")
        with open(path, "rb") as f:
            digest.update(hashlib.sha256(f.read()).digest())
    return digest.hexdigest()


def results_record(segment_args: Sequence[str], model_path: str) -> Dict[str, object]:
    """What a results folder was made from: the segment arguments (without --output and --[no]progress), the
    segment defaults that changed since folders were first recorded (a folder made under the old default is
    not the same run), the model file's size and modification time (a retrained model, or a new best/ model,
    is a different model), each --ensemble_models member's the same way, the .flo files under --flo_dir (their
    count, bytes and newest mtime), with a --flagfile the arguments it expands to (an edited flag file is another
    run) and the code (`code_fingerprint`: a change of segment's code makes other masks from the same
    arguments)."""
    from maskrnn_tf.flag_validation import AUTO_FINETUNE_LAYERS, FINETUNE_CHECK_FRAMES

    path = model_file(model_path)
    stat = os.stat(path)
    args = [a for a in segment_args if not a.startswith(("--output=", "--progress", "--noprogress"))]
    expanded = expanded_flagfiles(args)
    defaults = {"finetune_check_frames": FINETUNE_CHECK_FRAMES, "finetune_layers": dict(AUTO_FINETUNE_LAYERS)}
    record = {"segment_args": args, "segment_defaults": defaults,
              "model": os.path.abspath(model_path), "model_bytes": stat.st_size, "model_mtime": round(stat.st_mtime, 3),
              "code": code_fingerprint()}
    if path.endswith(".index") and os.path.isdir(model_path):  # the checkpoint of a run folder segment loads
        record["model_checkpoint"] = os.path.relpath(path, model_path)
    # Keys only when the flag is given: folders recorded before without it stay reusable.
    if expanded != args:
        record["flagfile_args"] = expanded
    members = ensemble_members(expanded)
    if members:  # the arguments name a member's path, not which weights it held: retrained, it is another run
        record["ensemble_models"] = [_model_identity(member) for member in members]
    flo_dir = last_flag_value(expanded, "flo_dir")
    if flo_dir:
        record["flo_dir"] = _flo_identity(os.path.abspath(os.path.expanduser(flo_dir)))
    return record


def expanded_flagfiles(args: Sequence[str]) -> List[str]:
    """`args` with every --flagfile replaced by the flags its file holds (nested files too, relative paths from
    the working folder), as absl expands them for segment."""
    from absl import flags

    return flags.FlagValues().read_flags_from_files(list(args), force_gnu=True)


def last_flag_value(args: Sequence[str], name: str) -> Optional[str]:
    """The value of `--name=VALUE` in `args` that segment takes (absl: the last one given); None without one."""
    given = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    return given[-1] if given else None


def ensemble_members(args: Sequence[str]) -> List[str]:
    """The --ensemble_models paths segment gets from `args` (absolute, `~` expanded, as segment reads them)."""
    from absl import flags

    value = last_flag_value(args, "ensemble_models")
    members = flags.ListParser().parse(value) if value else []  # absl's own split, as segment's list flag
    return [os.path.abspath(os.path.expanduser(member)) for member in members]


def _model_identity(model_path: str) -> Dict[str, object]:
    """A model path's file as results_record names --model's: path, size, mtime (and a run folder's checkpoint)."""
    path = model_file(model_path)
    stat = os.stat(path)
    identity = {"path": model_path, "bytes": stat.st_size, "mtime": round(stat.st_mtime, 3)}
    if path != model_path:
        identity["file"] = os.path.relpath(path, model_path)
    return identity


def _flo_identity(flo_dir: str) -> Dict[str, object]:
    """--flo_dir as a record: its path and its .flo files' count, bytes and newest mtime (stat only: the flows of a
    dataset are gigabytes, too many to hash on every resume)."""
    count, size, newest = 0, 0, 0.0
    for root, _, files in os.walk(flo_dir):
        for name in files:
            if name.endswith(".flo"):
                stat = os.stat(os.path.join(root, name))
                count, size, newest = count + 1, size + stat.st_size, max(newest, stat.st_mtime)
    return {"path": flo_dir, "flo_files": count, "flo_bytes": size, "newest_mtime": round(newest, 3)}


# Record key of the digest of the scores CSV the driver's own evaluate wrote (not part of how the folder was made).
SCORES_KEY = "scores_sha256"


def scores_digest(csv_path: str) -> str:
    """SHA-256 of a scores CSV: tells whether it is still the one the driver's evaluate wrote (its content, so a
    copied folder keeps it, but a CSV scored again otherwise or edited since does not)."""
    with open(csv_path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def record_mismatch(stored: Optional[Mapping[str, object]], wanted: Mapping[str, object]) -> List[str]:
    """Why a results folder's stored record differs from the wanted one (empty when they are the same)."""
    if stored is None:
        # Also what a call stopped between a finished segment and writing the record leaves.
        return ["no record of how it was made: a folder made otherwise, or a call stopped right after its segment"]
    out = []
    for key in sorted((set(stored) | set(wanted)) - {SCORES_KEY}):
        if key == "segment_args":
            # In order: of a flag given twice (a --segment_flag and a candidate's), segment takes the last.
            old_args, new_args = list(stored.get(key) or ()), list(wanted.get(key) or ())
            old, new = set(old_args), set(new_args)
            if old != new:
                out.append(f"segment arguments: stored {sorted(old - new)}, now {sorted(new - old)}")
            elif old_args != new_args:
                out.append(f"segment arguments in another order: stored {old_args}, now {new_args}")
        elif key == "code" and stored.get(key) != wanted.get(key):
            old_code, new_code = stored.get(key), str(wanted.get(key))
            out.append("code: made by maskrnn_tf sources it did not record" if old_code is None else
                       f"code: made by other maskrnn_tf sources (stored {str(old_code)[:12]}, now {new_code[:12]})")
        elif stored.get(key) != wanted.get(key):
            out.append(f"{key}: stored {stored.get(key)!r}, now {wanted.get(key)!r}")
    return out


def read_scores(results_dir: str, split: str = "val") -> Optional[Dict[str, float]]:
    """The global scores `python -m maskrnn_tf.evaluate` wrote into `results_dir` (None if not there yet)."""
    path = os.path.join(results_dir, f"global_results-{split}.csv")
    if not os.path.isfile(path):
        return None
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if len(rows) != 1:
        raise ValueError(f"{path}: expected one row of global scores, found {len(rows)}.")
    return {k: float(v) for k, v in rows[0].items()}
