"""CSV files and the printed table of an evaluation, in davis2017-evaluation's format.

`global_results-<split>.csv`: J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay (official columns, in
order), then `T-Mean` as an extra last column only when T was computed. `per-sequence_results-<split>.csv`:
Sequence,J-Mean,F-Mean, then an extra last column `T` (empty for objects without T) only when T was computed.
So the official columns keep their names and positions. Values are fractions with 3 decimals (official).
Files are written atomically: the two CSVs and the record below go to temporary files in the same folder, and
only when all three are written are they renamed into place (a full disk leaves the old ones, all three).

The official names do not say which results were scored, so `evaluate_run.json` beside the CSVs records, per
CSV, the results folder it scored (`.` for the folder the CSV lies in, which moves with it) and the CSV's size
and mtime. An existing CSV is replaced only when it is evaluate's scores of the same results: recorded for them
and unchanged since, or, unrecorded, a table of scores lying beside the results (an earlier version's, or
davis2017-evaluation's, which writes the same tables there). Anything else needs `overwrite`.

The record also keeps each CSV's `values` at full precision, since the CSVs' 3 decimals make a mean of their
cells differ from evaluate's own means in the last digit at times; tables built on evaluate's scores
(maskrnn_tf.finetune_table) read them. Global CSV: {column: value}; per-sequence CSV: {object: {column:
value}}; a value is a JSON number, null for an empty cell, or "nan" as the CSV writes it.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

from maskrnn_tf.io.atomic_file import atomic_write_group
from maskrnn_tf.io.output_paths import UnwritableOutputError, check_writable_location
from maskrnn_tf.metrics.errors import EvaluationInputError
from maskrnn_tf.metrics.evaluation import EvaluationResults


RECORD_FILE = "evaluate_run.json"
# The first header cell of each table (davis2017-evaluation's), by file name prefix.
_FIRST_COLUMN = {"global_results-": "J&F-Mean", "per-sequence_results-": "Sequence"}


class ReportConflictError(EvaluationInputError):
    """The output folder holds CSVs the new ones would replace: of other sequences or other results, changed
    since evaluate wrote them, or not evaluate's."""


class ReportLocationError(EvaluationInputError):
    """The CSVs cannot be written where they go (a file in the way, a folder this user may not write into)."""


def check_report_location(output_dir: Optional[str], results_dir: str, split: str) -> None:
    """Raises ReportLocationError when the CSVs of `split` cannot be written into `output_dir` (--output_dir), or,
    when None, into `results_dir` (--results): checked before the scoring, which may take minutes, so that a bad
    location does not cost the scores (`check_writable_location`, as segment checks its outputs). A --results
    that is no folder is left to the scoring, which names it as missing results."""
    if not output_dir and not os.path.isdir(results_dir):
        return
    csv_path = os.path.join(output_dir or results_dir, f"global_results-{split}.csv")
    if output_dir:
        try:
            check_writable_location(csv_path, "--output_dir")
        except UnwritableOutputError as err:  # names the flag, the path in the way and another --output_dir
            raise ReportLocationError(str(err)) from err
        return
    try:
        check_writable_location(csv_path, "--results")
    except UnwritableOutputError as err:  # a folder: only its permissions (or a read-only mount) say no
        raise ReportLocationError(
            f"--results {results_dir}: the score CSVs go into the results folder when no --output_dir is given, "
            "but this user cannot write into it (its permissions, or a read-only file system); give a writable "
            "--output_dir for them (the results are only read).") from err


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return buffer.getvalue()


def _scored_objects(path: str) -> Optional[List[str]]:
    """The object names (first column) of an existing per-sequence CSV, None when there is none or it is not
    one of ours (no `Sequence` header)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError):
        return None
    if not rows or not rows[0] or rows[0][0] != "Sequence":
        return None
    return [row[0] for row in rows[1:] if row]


def _read_record(output_dir: str) -> Optional[Dict[str, dict]]:
    """The CSVs `evaluate_run.json` lists ({file name: {"results", "size", "mtime_ns"}}); {} when there is no
    such file, None when a file of that name is not evaluate's record (someone else's, to keep)."""
    path = os.path.join(output_dir, RECORD_FILE)
    if not os.path.lexists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("written_by") != "maskrnn_tf.evaluate" or not isinstance(
            record.get("files"), dict):
        return None
    files = record["files"]
    return {k: v for k, v in files.items() if isinstance(v, dict)}


def not_these_results_scores(folder: str) -> List[str]:
    """The files of evaluate's in `folder` that are not scores of the results lying there, so that a tool
    replacing those results must keep them: CSVs `evaluate_run.json` records as scoring another folder
    (`evaluate --output_dir`) or as changed since, with the record itself; or an `evaluate_run.json` that is not
    evaluate's. Sorted names; [] when every score there is of these results."""
    record = _read_record(folder)
    if record is None:
        return [RECORD_FILE]
    kept = []
    for name, entry in record.items():
        path = os.path.join(folder, name)
        if os.path.isfile(path) and (entry.get("results") != "." or
                                     {k: entry.get(k) for k in ("size", "mtime_ns")} != _stat(path)):
            kept.append(name)
    return sorted(kept + [RECORD_FILE]) if kept else []


def _stat(path: str) -> Dict[str, int]:
    stat = os.stat(path)
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _first_row(path: str) -> Optional[List[str]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def _not_ours(path: str, entry: Optional[dict], scored: str, beside_results: bool) -> Optional[str]:
    """Why the existing CSV `path` is not evaluate's scores of the results `scored` (a record key), or None."""
    if entry is not None:
        if entry.get("results") != scored:
            held = os.path.dirname(path) if entry.get("results") == "." else entry.get("results")
            return f"holds the scores of {held}"
        if {k: entry.get(k) for k in ("size", "mtime_ns")} != _stat(path):
            return "changed since evaluate wrote it"
        return None
    if not beside_results:  # nothing tells which results another folder's CSVs scored
        return f"evaluate has no record of writing it (in {RECORD_FILE} there) for these results"
    first = _first_row(path)
    wanted = next(v for k, v in _FIRST_COLUMN.items() if os.path.basename(path).startswith(k))
    if not first or first[0] != wanted:
        return f"not a table of scores (its first line does not start with {wanted!r})"
    return None


def _json_value(value: object) -> object:
    """A CSV cell's value for the record: the float itself (a JSON number keeps every digit), None for an empty
    cell, and a non-finite float as the CSV writes it ("nan"), which strict JSON cannot hold as a number."""
    if isinstance(value, float) and not math.isfinite(value):
        return _cell(value)
    return value


def _record_text(output_dir: str, scored: str, values: Dict[str, Tuple[str, object]]) -> str:
    """The record with the CSVs `values` names ({path: (the file written for it, its values at full precision)})
    as scoring `scored`, each with the size and mtime of the file written for it (a rename keeps them)."""
    files = _read_record(output_dir) or {}  # None only under overwrite: the user asked to replace it
    files.update({os.path.basename(p): {"results": scored, **_stat(written), "values": v}
                  for p, (written, v) in values.items()})
    return json.dumps({"written_by": "maskrnn_tf.evaluate", "files": files}, indent=2, sort_keys=True) + "\n"


def write_reports(results: EvaluationResults, output_dir: str, results_dir: Optional[str] = None,
                  overwrite: bool = False) -> Tuple[str, str]:
    """Writes the global and per-sequence CSVs into `output_dir` (created if missing) and records them in its
    `evaluate_run.json`; returns the CSVs' paths.

    Args:
      results: the scores.
      output_dir: where the CSVs go.
      results_dir: the results folder that was scored; None: `output_dir` is it.
      overwrite: replace CSVs already there whatever they hold.

    Raises:
      ReportConflictError (nothing written), unless `overwrite`, when a CSV already there is not evaluate's
        scores of these results (see the module doc), or holds other objects (the whole split, then one
        sequence): the official file names do not say which sequences were scored.
    """
    beside_results = results_dir is None or os.path.realpath(results_dir) == os.path.realpath(output_dir)
    scored = "." if beside_results else os.path.realpath(results_dir)
    rows = results.per_sequence_rows()
    global_path = os.path.join(output_dir, f"global_results-{results.split}.csv")
    per_sequence_path = os.path.join(output_dir, f"per-sequence_results-{results.split}.csv")
    if not overwrite:
        record = _read_record(output_dir)
        if record is None:
            raise ReportConflictError(
                f"{os.path.join(output_dir, RECORD_FILE)}: not the record evaluate keeps of its CSVs, which it would "
                "replace. Pass --output_dir=<another folder> for these scores, or move it away (or --overwrite).")
        for path in (global_path, per_sequence_path):
            reason = _not_ours(path, record.get(os.path.basename(path)), scored, beside_results) if (
                os.path.isfile(path)) else None
            if reason:
                raise ReportConflictError(
                    f"{path}: {reason}; this evaluation's CSV would replace it. Pass --overwrite to replace it, "
                    "or --output_dir=<another folder> for these scores, or move it away.")
        stored = _scored_objects(per_sequence_path)
        scored_objects = [str(r["Sequence"]) for r in rows]
        if stored is not None and sorted(stored) != sorted(scored_objects):
            shown = ", ".join(stored[:6]) + (", ..." if len(stored) > 6 else "")
            raise ReportConflictError(
                f"{per_sequence_path} holds the scores of {shown} ({len(stored)} objects); this evaluation scored "
                f"{len(scored_objects)} other or fewer: its CSVs would replace them under the same names. Pass "
                "--output_dir=<another folder> for these scores, or move the old CSVs away (or --overwrite).")
    os.makedirs(output_dir, exist_ok=True)
    global_metrics = results.global_metrics()
    header = list(rows[0]) if rows else ["Sequence", "J-Mean", "F-Mean"]

    def write(tmps: List[str]) -> None:
        tmp_global, tmp_per_sequence, tmp_record = tmps
        _write_text(tmp_global, _csv_text(list(global_metrics), [list(global_metrics.values())]))
        _write_text(tmp_per_sequence, _csv_text(header, [list(r.values()) for r in rows]))
        _write_text(tmp_record, _record_text(output_dir, scored, {
            global_path: (tmp_global, {k: _json_value(v) for k, v in global_metrics.items()}),
            per_sequence_path: (tmp_per_sequence, {
                str(r["Sequence"]): {k: _json_value(v) for k, v in r.items() if k != "Sequence"} for r in rows}),
        }))

    # All three written before any is replaced: a failure (a full disk) leaves the old CSVs with their record, which
    # the checks above read to tell evaluate's scores from others'; the record goes last.
    atomic_write_group([global_path, per_sequence_path, os.path.join(output_dir, RECORD_FILE)], write,
                       (".csv", ".csv", ".json"))
    return global_path, per_sequence_path


def _table(header: List[str], rows: List[List[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def format_results(results: EvaluationResults) -> str:
    """Human-readable global and per-sequence tables."""
    global_metrics: Dict[str, float] = results.global_metrics()
    rows = results.per_sequence_rows()
    header = list(rows[0]) if rows else ["Sequence", "J-Mean", "F-Mean"]
    parts = [
        f"--------------------------- Global results for {results.split} ---------------------------",
        _table(list(global_metrics), [[_cell(v) for v in global_metrics.values()]]),
        f"\n---------- Per sequence results for {results.split} ----------",
        _table(header, [[_cell(v) for v in r.values()] for r in rows]),
    ]
    parts += [f"note: {n}" for n in results.notes]
    return "\n".join(parts)
