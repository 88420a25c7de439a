"""The online finetuning table: the same network segmented with several `--finetune` settings, side by side.

Each results folder is one `python -m maskrnn_tf.segment --davis_root=...` run scored by `python -m
maskrnn_tf.evaluate`: its `per-sequence_results-<split>.csv` gives J and F per object, its `segment_run.json`
the finetuning it ran (`finetune`, `finetune_steps`) and the wall time of each sequence (`finetune_log`:
updates and seconds of finetuning; `segment_seconds`: segmenting).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple


class ComparisonInputError(ValueError):
    """A results folder lacks what the table needs (named in the message)."""


@dataclasses.dataclass(frozen=True)
class FinetuneRun:
    """One scored segmentation run.

    Attributes:
      label: the column's name.
      mode: the finetuning it ran ('recurrent', 'static', 'none', or '?' for a folder of an older segment).
      objects: `<sequence>_<object id>` -> (J-Mean, F-Mean), fractions.
      updates, finetune_seconds, segment_seconds: per sequence (missing sequences: not recorded).
    """

    label: str
    mode: str
    objects: Mapping[str, Tuple[float, float]]
    updates: Mapping[str, int]
    finetune_seconds: Mapping[str, float]
    segment_seconds: Mapping[str, float]

    def mean(self) -> Tuple[float, float]:
        """J-Mean and F-Mean over objects (the DAVIS global means)."""
        values = list(self.objects.values())
        return (sum(v[0] for v in values) / len(values), sum(v[1] for v in values) / len(values))


def _sequence_of(object_name: str) -> str:
    stem, _, number = object_name.rpartition("_")
    return stem if stem and number.isdigit() else object_name


def read_run(label: str, results_dir: str, split: str = "val") -> FinetuneRun:
    """Reads one scored results folder (see the module docstring)."""
    csv_path = os.path.join(results_dir, f"per-sequence_results-{split}.csv")
    marker = os.path.join(results_dir, "segment_run.json")
    if not os.path.isfile(csv_path):
        raise ComparisonInputError(f"{csv_path}: missing; score the folder first (python -m maskrnn_tf.evaluate "
                                   f"--results={results_dir} --split={split} ...).")
    if not os.path.isfile(marker):
        raise ComparisonInputError(f"{marker}: missing; the folder was not written by python -m maskrnn_tf.segment.")
    scored = _scored_folder(results_dir, os.path.basename(csv_path))
    if scored not in (None, ".", os.path.realpath(results_dir)):
        raise ComparisonInputError(f"{csv_path}: the scores of {scored} (evaluate --output_dir={results_dir}), not "
                                   f"of this folder; score it: python -m maskrnn_tf.evaluate --results={results_dir} "
                                   f"--split={split} --overwrite ...")
    objects = _read_scores(csv_path)
    try:
        with open(marker, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError) as err:
        raise ComparisonInputError(f"{marker}: not readable JSON ({err}); rerun segment for this folder.") from None
    if not isinstance(record, dict):
        raise ComparisonInputError(f"{marker}: not a segment record (a JSON object); rerun segment for this folder.")
    log = record.get("finetune_log") or {}
    for name, entry in log.items():
        if not isinstance(entry, dict):
            raise ComparisonInputError(f"{marker}: finetune_log[{name!r}] is not an object of updates and seconds "
                                       f"({entry!r}); rerun segment for this folder.")
    seconds = record.get("segment_seconds")
    return FinetuneRun(
        label=label, mode=str(record.get("finetune", "?")), objects=objects,
        updates={k: int(v.get("updates", 0)) for k, v in log.items()},
        finetune_seconds={k: float(v.get("seconds", 0.0)) for k, v in log.items()},
        segment_seconds=dict(seconds) if isinstance(seconds, dict) else {},
    )


def _scored_folder(results_dir: str, csv_name: str) -> Optional[str]:
    """The results folder evaluate recorded a CSV in `results_dir` as scoring (its `evaluate_run.json`: '.' for
    `results_dir` itself, else a path); None when not recorded. evaluate --output_dir can put the scores of one
    folder into another, under the same file names."""
    path = os.path.join(results_dir, "evaluate_run.json")  # maskrnn_tf.metrics.report.RECORD_FILE
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        entry = record["files"][csv_name]
        return str(entry["results"]) if record.get("written_by") == "maskrnn_tf.evaluate" else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _read_scores(csv_path: str) -> Dict[str, Tuple[float, float]]:
    """`<sequence>_<object id>` -> (J-Mean, F-Mean) of evaluate's per-sequence CSV."""
    objects = {}
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("Sequence", "J-Mean", "F-Mean") if c not in (reader.fieldnames or [])]
        if missing:
            raise ComparisonInputError(f"{csv_path}: no {missing[0]!r} column; not a per-sequence CSV of python -m "
                                       "maskrnn_tf.evaluate (score the folder again).")
        for line, row in enumerate(reader, start=2):
            try:
                objects[row["Sequence"]] = (float(row["J-Mean"]), float(row["F-Mean"]))
            except (TypeError, ValueError):
                raise ComparisonInputError(f"{csv_path}: line {line} has no numeric J-Mean/F-Mean; score the "
                                           "folder again.") from None
    if not objects:
        raise ComparisonInputError(f"{csv_path}: no scored object.")
    return objects


def _same_objects(runs: Sequence[FinetuneRun]) -> None:
    """Refuses runs scored over different objects: their means would sit side by side comparing nothing."""
    every = set().union(*(r.objects for r in runs))
    gaps = [f"{', '.join(sorted(every - set(r.objects)))} only in "
            f"{', '.join(o.label for o in runs if every - set(r.objects) <= set(o.objects))}"
            for r in runs if every - set(r.objects)]
    if gaps:
        raise ComparisonInputError(f"the runs were scored over different objects: {'; '.join(gaps)}. Segment and "
                                   "score the same sequences (--sequences) in every folder.")


def _cell(value: Optional[float], scale: float = 100.0, digits: int = 1) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def comparison_markdown(runs: Sequence[FinetuneRun]) -> str:
    """A markdown table: per object J and F of every run, and per sequence each run's finetuning updates and
    seconds (segmenting seconds in brackets); the last row holds the means (J, F) and the total times."""
    if not runs:
        raise ComparisonInputError("no results folder to compare.")
    _same_objects(runs)
    names = sorted(set().union(*(r.objects for r in runs)))
    header = ["object"] + [f"{r.label} {m}" for r in runs for m in ("J", "F")]
    header += [f"{r.label} updates, s" for r in runs]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "--:|" * (len(header) - 1)]
    for name in names:
        sequence = _sequence_of(name)
        cells = [name]
        for run in runs:
            j, f = run.objects.get(name, (None, None))
            cells += [_cell(j), _cell(f)]
        for run in runs:
            if sequence in run.finetune_seconds:
                cells.append(f"{run.updates.get(sequence, 0)}, {run.finetune_seconds[sequence]:.0f}"
                             + (f" ({run.segment_seconds[sequence]:.0f})" if sequence in run.segment_seconds else ""))
            elif sequence in run.segment_seconds:
                cells.append(f"0, 0 ({run.segment_seconds[sequence]:.0f})")
            else:
                cells.append("-")
        lines.append("| " + " | ".join(cells) + " |")
    cells = ["**mean**"]
    for run in runs:
        j, f = run.mean()
        cells += [f"**{_cell(j)}**", f"**{_cell(f)}**"]
    for run in runs:
        total_ft = sum(run.finetune_seconds.values())
        total_seg = sum(run.segment_seconds.values())
        cells.append(f"{total_ft:.0f} ({total_seg:.0f})" if run.segment_seconds else f"{total_ft:.0f}")
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def compare(labelled_dirs: Sequence[Tuple[str, str]], split: str = "val") -> Tuple[List[FinetuneRun], str]:
    """Reads every (label, results folder) pair and returns the runs and their table."""
    runs = [read_run(label, folder, split) for label, folder in labelled_dirs]
    return runs, comparison_markdown(runs)


def parse_labelled(items: Sequence[str]) -> List[Tuple[str, str]]:
    """['none=results/a', 'results/b'] -> [('none', 'results/a'), ('b', 'results/b')] (label = folder name)."""
    out: List[Tuple[str, str]] = []
    for item in items:
        label, sep, folder = item.partition("=")
        if not sep:
            label, folder = os.path.basename(os.path.normpath(item)), item
        if not label or not folder:
            raise ComparisonInputError(f"{item!r}: expected LABEL=FOLDER or FOLDER.")
        out.append((label, folder))
    return out


def to_dict(runs: Sequence[FinetuneRun]) -> Dict[str, dict]:
    """JSON-friendly form of the runs (for a record beside the table)."""
    return {r.label: dataclasses.asdict(r) for r in runs}
