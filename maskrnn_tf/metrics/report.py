"""CSV files and the printed table of an evaluation, in davis2017-evaluation's format.

`global_results-<split>.csv`: J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay (official columns, in
order), then `T-Mean` as an extra last column only when T was computed. `per-sequence_results-<split>.csv`:
Sequence,J-Mean,F-Mean, then an extra last column `T` (empty for objects without T) only when T was computed.
So the official columns keep their names and positions. Values are fractions with 3 decimals (official).
Files are written atomically (temporary file in the same folder, then rename).
"""
from __future__ import annotations

import csv
import io
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

from maskrnn_tf.io.atomic_file import atomic_write
from maskrnn_tf.metrics.errors import EvaluationInputError
from maskrnn_tf.metrics.evaluation import EvaluationResults


class ReportConflictError(EvaluationInputError):
    """The output folder holds evaluate's CSVs of other sequences, which the new ones would replace."""


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def _atomic_write(path: str, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)

    atomic_write(path, write, suffix=".csv")


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


def write_reports(results: EvaluationResults, output_dir: str) -> Tuple[str, str]:
    """Writes the global and per-sequence CSVs into `output_dir` (created if missing); returns their paths.

    The official file names do not say which sequences were scored, so CSVs already there that hold other
    objects (the whole split, then one sequence) are not replaced: ReportConflictError, nothing written.
    """
    rows = results.per_sequence_rows()
    per_sequence_path = os.path.join(output_dir, f"per-sequence_results-{results.split}.csv")
    stored = _scored_objects(per_sequence_path)
    scored = [str(r["Sequence"]) for r in rows]
    if stored is not None and sorted(stored) != sorted(scored):
        shown = ", ".join(stored[:6]) + (", ..." if len(stored) > 6 else "")
        raise ReportConflictError(
            f"{per_sequence_path} holds the scores of {shown} ({len(stored)} objects); this evaluation scored "
            f"{len(scored)} other or fewer: its CSVs would replace them under the same names. Pass "
            "--output_dir=<another folder> for these scores, or move the old CSVs away.")
    os.makedirs(output_dir, exist_ok=True)
    global_metrics = results.global_metrics()
    global_path = os.path.join(output_dir, f"global_results-{results.split}.csv")
    _atomic_write(global_path, _csv_text(list(global_metrics), [list(global_metrics.values())]))
    header = list(rows[0]) if rows else ["Sequence", "J-Mean", "F-Mean"]
    _atomic_write(per_sequence_path, _csv_text(header, [list(r.values()) for r in rows]))
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
