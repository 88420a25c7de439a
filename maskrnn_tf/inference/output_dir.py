"""An output folder that appears only when complete, never overlaps an input, and is replaced only when
segment wrote it.

The folder is written under a hidden temporary name (`.<name>.tmp-<owner>-XXXX`, see tmp_dirs) and renamed when
complete; the temporaries of killed runs are removed by the next run, and a folder a killed run had moved
away to replace it is put back. It carries `segment_run.json` (what was segmented, when, and the files
written with their sizes and mtimes): `--overwrite` replaces only a folder that holds it (or an empty one),
never an arbitrary folder, and not one that holds files added since (other than evaluate's recorded scores of these
results and the records the project's tools add) or files changed since (e.g. masks corrected by hand).
"""
from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import shutil
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

# The path checks live in maskrnn_tf.io (no TensorFlow); imported here too for segment's callers.
from maskrnn_tf.io.output_paths import (UnsafeOutputError, UnwritableOutputError, check_no_overlap,  # noqa: F401
                                        check_writable_location)
from maskrnn_tf.io.tmp_dirs import (clean_stale_tmp_beside, hidden_prefix, hidden_prefixes, make_owned_tmp_dir,
                                   path_matches, replace_dir, restore_interrupted_replace)
from maskrnn_tf.metrics.report import not_these_results_scores

MARKER_FILE = "segment_run.json"
# What the project's tools add to a results folder segment wrote, about those results, so that --overwrite may
# drop them with the results; each only when it is that tool's, not by its name alone (a user's copy of a table,
# or notes under one of these names, are theirs): evaluate's score tables (the DAVIS evaluation tool's names)
# when its record lists them as scoring this folder and unchanged since, that record when it is evaluate's and
# scores nothing else, and the finetune_selection and ablation drivers' records of the folder (results_record's
# JSON: its segment arguments and model).
_SCORE_TABLES = ("global_results-*.csv", "per-sequence_results-*.csv")
_EVALUATE_RECORD = "evaluate_run.json"
_DRIVER_RECORDS = ("selection_record.json", "ablation_record.json")
# What segment writes, for folders of earlier versions, whose segment_run.json lists no files: masks of a
# video or of DAVIS sequences and probability maps.
_LEGACY_SEGMENT_FILES = ("*.png", "*/*.png", "probs/*.npy", "probs/*.png", "probs/*/*.npy", "probs/*/*.png")
_LOG = logging.getLogger(__name__)


class OutputExistsError(FileExistsError):
    """The output folder exists and overwriting was not asked for (or it is not a folder segment wrote)."""


def check_output_dir(path: str, overwrite: bool,
                     inputs: Sequence[Tuple[str, Optional[str]]] = ()) -> None:
    """Checks that segment may write the folder `path`.

    Raises:
      UnsafeOutputError: `path` is, contains or lies inside one of the `(flag, path)` inputs.
      UnwritableOutputError: `path` cannot be created or replaced (`check_writable_location`).
      OutputExistsError: `path` exists and `overwrite` is False, or it is not a folder segment wrote (no
        `segment_run.json`, not empty), or it holds files segment did not write or that changed since
        (`foreign_files`): folders `--overwrite` never replaces.
    """
    check_no_overlap(path, inputs)
    check_writable_location(path)
    _repair(path)
    if not os.path.lexists(path):
        return
    if not overwrite:
        raise OutputExistsError(
            f"{path}: output folder already exists; choose another --output or pass --overwrite to replace it."
        )
    if os.path.islink(path) or not os.path.isdir(path):
        raise OutputExistsError(
            f"{path}: exists and is not a folder; --overwrite only replaces a results folder segment wrote. "
            "Choose another --output."
        )
    if not os.listdir(path):
        return
    if not os.path.isfile(os.path.join(path, MARKER_FILE)):
        raise OutputExistsError(
            f"{path}: not a folder segment wrote (it has no {MARKER_FILE}), so --overwrite will not replace it. "
            "Choose another --output, or check its contents and delete it yourself."
        )
    added, changed, newer = _files_not_segments(path)
    if added or changed or newer:
        found = ([f"files segment did not write ({_shown(added)})"] if added else []) + \
                ([f"files changed since segment wrote them ({_shown(changed)}), e.g. masks corrected by hand"]
                 if changed else []) + \
                ([f"files newer than its {MARKER_FILE} ({_shown(newer)}), which an earlier version wrote last and "
                  "without file times: added or edited since, e.g. masks corrected by hand (or the folder was copied "
                  f"without keeping file times: if they are segment's, `touch {os.path.join(path, MARKER_FILE)}`)"]
                 if newer else [])
        tables = [name for name in added if any(path_matches(name, p) for p in _SCORE_TABLES)]
        hint = (f" The score tables no evaluate_run.json records as these results' ({_shown(tables)}: an earlier "
                "evaluate's, or davis2017-evaluation's) go with the results once python -m maskrnn_tf.evaluate "
                f"has scored the folder again (--results={path} and its dataset's root)." if tables else "")
        raise OutputExistsError(
            f"{path}: holds {' and '.join(found)}, which --overwrite would delete. Move them out of it, or "
            f"rename the folder to keep it whole, or choose another --output.{hint}")


def _shown(names: Sequence[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _files_under(folder: str) -> List[str]:
    """Relative paths of the files (and links) under `folder`, sorted."""
    found = []
    for root, dirs, files in os.walk(folder):
        links = [d for d in dirs if os.path.islink(os.path.join(root, d))]  # not walked into: listed as files
        found += [os.path.relpath(os.path.join(root, name), folder) for name in files + links]
    return sorted(found)


def _file_stat(path: str) -> Dict[str, int]:
    """What segment_run.json keeps of a written file to tell later that it is unchanged (as for the overlay)."""
    stat = os.lstat(path)
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def foreign_files(path: str) -> List[str]:
    """The files under a results folder that are not segment's to replace: added since (not in its
    segment_run.json's list, nor `_tool_files`), changed since (size or mtime unlike the record's), or, in a folder
    of a version that recorded no file times, newer than that record (see _files_not_segments)."""
    added, changed, newer = _files_not_segments(path)
    return sorted(added + changed + newer)


def _files_not_segments(path: str) -> Tuple[List[str], List[str], List[str]]:
    """(added, changed, newer) files under the results folder `path` (and empty folders, named with a trailing
    /); see `foreign_files`.

    segment_run.json lists the files written and, since they are recorded, their sizes and mtimes. Earlier
    versions recorded no times (a file listed is segment's by its name) or listed no files (segment's are those
    named as segment names them); both wrote the record last, so such a file newer than the record was added or
    rewritten since (the user's figures/plot.png, a mask corrected by hand): `newer`.
    """
    marker = os.path.join(path, MARKER_FILE)
    try:
        with open(marker, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        record = None
    written = record.get("files") if isinstance(record, dict) else None
    stats = record.get("file_stats") if isinstance(record, dict) else None
    stats = stats if isinstance(stats, dict) else {}
    listed = set(written if isinstance(written, list) else [])
    tools = {MARKER_FILE} | _tool_files(path)
    patterns = () if isinstance(written, list) else _LEGACY_SEGMENT_FILES
    try:
        record_time = os.lstat(marker).st_mtime_ns
    except OSError:
        record_time = -1
    added, changed, newer = [], [], []
    # Segment leaves no folder empty: an empty one is the user's (made for files to come).
    added += [os.path.relpath(root, path) + "/" for root, dirs, files in os.walk(path)
              if root != path and not dirs and not files]
    for name in _files_under(path):
        if name in stats:
            if stats[name] != _file_stat(os.path.join(path, name)):
                changed.append(name)
        elif name in tools:
            continue
        elif name in listed or any(path_matches(name, p) for p in patterns):
            if _file_stat(os.path.join(path, name))["mtime_ns"] > record_time:
                newer.append(name)
        else:
            added.append(name)
    return added, changed, newer


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _tool_files(path: str) -> set:
    """The files the project's tools added to the results folder `path` about these results (see the comment
    above `_SCORE_TABLES`): evaluate's tables of them and its record, the drivers' records."""
    found = set()
    if not not_these_results_scores(path):  # no evaluate record, or one that scores only this folder's results
        record = _read_json(os.path.join(path, _EVALUATE_RECORD))
        files = record.get("files") if isinstance(record, dict) else None
        if isinstance(files, dict):  # evaluate's (not_these_results_scores names any other evaluate_run.json)
            found.add(_EVALUATE_RECORD)
            # Recorded as scoring "." and unchanged since: not_these_results_scores names any other.
            found.update(name for name in files if any(path_matches(name, p) for p in _SCORE_TABLES))
    for name in _DRIVER_RECORDS:
        record = _read_json(os.path.join(path, name))
        if isinstance(record, dict) and isinstance(record.get("segment_args"), list) and "model" in record:
            found.add(name)
    return found


def _repair(path: str) -> None:
    """Puts back a results folder that a killed run had moved away to replace it, and removes the temporary
    folders of killed runs (their processes are gone)."""
    parent, base = os.path.split(os.path.abspath(path))
    for old_prefix in hidden_prefixes(base, "old"):
        for note in restore_interrupted_replace(parent, old_prefix, os.path.join(parent, base)):
            _LOG.warning("%s", note)
    for removed in clean_stale_tmp_beside(parent, base):
        _LOG.warning("removed %s, the temporary folder of an interrupted run (its process is gone)", removed)


def _write_marker(folder: str, metadata: Mapping[str, Any]) -> None:
    content: Dict[str, Any] = {"written_by": "maskrnn_tf.segment",
                               "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    content.update(metadata)
    content["files"] = _files_under(folder)  # what --overwrite may replace later ...
    # ... as long as they are unchanged: a mask the user corrected in place is theirs.
    content["file_stats"] = {name: _file_stat(os.path.join(folder, name)) for name in content["files"]}
    path = os.path.join(folder, MARKER_FILE)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(content, f, indent=2, sort_keys=True)
        f.write("\n")


@contextlib.contextmanager
def atomic_output_dir(path: str, overwrite: bool = False, inputs: Sequence[Tuple[str, Optional[str]]] = (),
                      metadata: Optional[Mapping[str, Any]] = None) -> Iterator[str]:
    """Yields a temporary folder beside `path`; on success it replaces `path`, on an exception it is deleted.

    `path` is checked with `check_output_dir` (before and again just before the swap; it first repairs what
    killed runs left, with a warning). On success the folder receives `segment_run.json` with `metadata` (a
    mutable mapping may be filled in while writing). When overwriting, the old folder is removed only after
    the new one is in place (`replace_dir`).
    """
    path = os.path.abspath(path)
    check_output_dir(path, overwrite, inputs)
    parent, base = os.path.dirname(path), os.path.basename(path)
    made = _missing_folders(parent)
    os.makedirs(parent, exist_ok=True)
    tmp = make_owned_tmp_dir(parent, hidden_prefix(base, "tmp"))
    try:
        yield tmp
        _write_marker(tmp, metadata or {})
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(made)
        raise
    try:
        check_output_dir(path, overwrite)  # it may have appeared or changed while we were writing
        replace_dir(tmp, path, hidden_prefix(base, "old"))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(made)
        raise


def _missing_folders(folder: str) -> List[str]:
    """The folders of `folder`'s path that do not exist yet, deepest first (what makedirs would make)."""
    missing = []
    while not os.path.lexists(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    return missing


def _remove_empty(folders: Sequence[str]) -> None:
    """Removes `folders` (deepest first) that are still empty: those a failed run made for its output; one another
    process filled meanwhile stays."""
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:
            return
