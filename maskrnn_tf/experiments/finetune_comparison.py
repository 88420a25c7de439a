"""The online finetuning table: the same network segmented with several `--finetune` settings, side by side.

Each results folder is one `python -m maskrnn_tf.segment --davis_root=...` run scored by `python -m
maskrnn_tf.evaluate`: its `per-sequence_results-<split>.csv` gives J and F per object, its
`global_results-<split>.csv` the means, its `segment_run.json` the finetuning it ran (`finetune`,
`finetune_steps`) and the wall time of each sequence (`finetune_log`: updates and seconds of finetuning;
`segment_seconds`: segmenting).

The numbers are evaluate's, to the digit. The CSVs hold 3 decimals, so a mean of the per-object cells can
differ in the last digit from the J-Mean / F-Mean evaluate reports. evaluate records every CSV value at full
precision in its `evaluate_run.json` (`values`); they are used while they are still the CSV's values (each
rounds to its cell). A folder scored before evaluate recorded them (or whose CSVs another tool wrote since) is
read from its CSVs: the objects' cells, and for the means its global CSV, evaluate's means at 3 decimals, not
the mean of the cells (without a global CSV, which evaluate always writes, the mean of the cells). Either way
the table shows what evaluate printed for the folder; scoring an old folder again (`python -m
maskrnn_tf.evaluate --results=<folder> ...` replaces its own CSVs) gives its means full precision, which only
matters for comparing means closer than 0.001 (finetune_selection's choice).
"""
from __future__ import annotations

import csv
import dataclasses
import decimal
import json
import math
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
      means: evaluate's (J-Mean, F-Mean) of the folder (its global scores); None: the mean over `objects`.
    """

    label: str
    mode: str
    objects: Mapping[str, Tuple[float, float]]
    updates: Mapping[str, int]
    finetune_seconds: Mapping[str, float]
    segment_seconds: Mapping[str, float]
    means: Optional[Tuple[float, float]] = None

    def mean(self) -> Tuple[float, float]:
        """J-Mean and F-Mean over objects (the DAVIS global means), as evaluate reported them when known."""
        if self.means is not None:
            return self.means
        return _object_mean(self.objects)


def _object_mean(objects: Mapping[str, Tuple[float, float]]) -> Tuple[float, float]:
    values = list(objects.values())
    return (sum(v[0] for v in values) / len(values), sum(v[1] for v in values) / len(values))


def percent(value: Optional[float]) -> str:
    """A fraction as the tables' percentage with one decimal: the digits of evaluate's 3-decimal cell (0.0125
    is written 0.013, shown 1.3); formatting 100 * value instead rounds a second time, differently at ties."""
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)
    return f"{decimal.Decimal(f'{value:.3f}') * 100:.1f}"  # an exact decimal shift of evaluate's cell


def _sequence_of(object_name: str) -> str:
    stem, _, number = object_name.rpartition("_")
    return stem if stem and number.isdigit() else object_name


def read_run(label: str, results_dir: str, split: str = "val") -> FinetuneRun:
    """Reads one scored results folder (see the module docstring)."""
    csv_path = os.path.join(results_dir, f"per-sequence_results-{split}.csv")
    global_path = os.path.join(results_dir, f"global_results-{split}.csv")
    marker = os.path.join(results_dir, "segment_run.json")
    if not os.path.isfile(csv_path):
        raise ComparisonInputError(f"{csv_path}: missing; score the folder first (python -m maskrnn_tf.evaluate "
                                   f"--results={results_dir} --split={split} ...).")
    if not os.path.isfile(marker):
        raise ComparisonInputError(f"{marker}: missing; the folder was not written by python -m maskrnn_tf.segment.")
    scores = _evaluate_record(results_dir)
    for path in (csv_path, global_path):
        scored = _scored_folder(scores, os.path.basename(path))
        if os.path.isfile(path) and scored not in (None, ".", os.path.realpath(results_dir)):
            raise ComparisonInputError(f"{path}: the scores of {scored} (evaluate --output_dir={results_dir}), not "
                                       f"of this folder; score it: python -m maskrnn_tf.evaluate "
                                       f"--results={results_dir} --split={split} --overwrite ...")
    objects = _read_scores(csv_path, scores.get(os.path.basename(csv_path)))
    means = None
    if os.path.isfile(global_path):
        means = _read_means(global_path, scores.get(os.path.basename(global_path)), objects, csv_path)
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
        means=means,
    )


def _evaluate_record(results_dir: str) -> Dict[str, dict]:
    """The CSV entries of evaluate's `evaluate_run.json` in `results_dir` ({file name: entry}); {} when there is
    none or the file is not evaluate's."""
    path = os.path.join(results_dir, "evaluate_run.json")  # maskrnn_tf.metrics.report.RECORD_FILE
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict) or record.get("written_by") != "maskrnn_tf.evaluate" or not isinstance(
            record.get("files"), dict):
        return {}
    return {k: v for k, v in record["files"].items() if isinstance(v, dict)}


def _scored_folder(scores: Mapping[str, dict], csv_name: str) -> Optional[str]:
    """The results folder evaluate recorded the CSV `csv_name` as scoring ('.' for the folder the CSV lies in,
    else a path); None when not recorded. evaluate --output_dir can put the scores of one folder into another,
    under the same file names."""
    results = scores.get(csv_name, {}).get("results")
    return None if results is None else str(results)


def _number(value: object) -> Optional[float]:
    """A recorded value as a float; None for anything else (null, "nan", a string, a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _is_cell_of(value: Optional[float], cell: str) -> bool:
    """Whether evaluate writes `value` as `cell` (3 decimals): then a recorded value is that CSV's."""
    return value is not None and f"{value:.3f}" == cell.strip()


def _csv_rows(csv_path: str, columns: Sequence[str], what: str) -> List[Dict[str, str]]:
    """The rows of one of evaluate's CSVs, each with a numeric J-Mean and F-Mean."""
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ComparisonInputError(f"{csv_path}: no {missing[0]!r} column; not a {what} CSV of python -m "
                                       "maskrnn_tf.evaluate (score the folder again).")
        rows = list(reader)
    for line, row in enumerate(rows, start=2):
        try:
            float(row["J-Mean"]), float(row["F-Mean"])
        except (TypeError, ValueError):
            raise ComparisonInputError(f"{csv_path}: line {line} has no numeric J-Mean/F-Mean; score the "
                                       "folder again.") from None
    return rows


def _read_scores(csv_path: str, entry: Optional[dict]) -> Dict[str, Tuple[float, float]]:
    """`<sequence>_<object id>` -> (J-Mean, F-Mean) of evaluate's per-sequence CSV: the full-precision values
    evaluate recorded for it (`entry`: its evaluate_run.json entry) while they are its cells, else the cells."""
    rows = _csv_rows(csv_path, ("Sequence", "J-Mean", "F-Mean"), "per-sequence")
    if not rows:
        raise ComparisonInputError(f"{csv_path}: no scored object.")
    cells = {row["Sequence"]: (row["J-Mean"], row["F-Mean"]) for row in rows}
    recorded = (entry or {}).get("values")
    if isinstance(recorded, dict) and set(recorded) == set(cells):
        precise = {}
        for name, (j_cell, f_cell) in cells.items():
            values = recorded[name] if isinstance(recorded[name], dict) else {}
            j, f = _number(values.get("J-Mean")), _number(values.get("F-Mean"))
            if not (_is_cell_of(j, j_cell) and _is_cell_of(f, f_cell)):
                break
            precise[name] = (j, f)
        else:
            return precise
    # Not recorded (scored before evaluate recorded values), or not this CSV's values (it was written since).
    return {name: (float(j), float(f)) for name, (j, f) in cells.items()}


def _read_means(global_path: str, entry: Optional[dict], objects: Mapping[str, Tuple[float, float]],
                csv_path: str) -> Tuple[float, float]:
    """Evaluate's (J-Mean, F-Mean) from its global CSV: the full-precision values it recorded (`entry`) while
    they are the CSV's cells, else the cells. Refused when they are not the mean of `objects` (read from
    `csv_path`) to the CSVs' precision: the two CSVs would not be the scores of one evaluation."""
    rows = _csv_rows(global_path, ("J-Mean", "F-Mean"), "global")
    if len(rows) != 1:
        raise ComparisonInputError(f"{global_path}: expected one row of global scores, found {len(rows)}; score "
                                   "the folder again.")
    cells = (rows[0]["J-Mean"], rows[0]["F-Mean"])
    recorded = (entry or {}).get("values")
    recorded = recorded if isinstance(recorded, dict) else {}
    precise = (_number(recorded.get("J-Mean")), _number(recorded.get("F-Mean")))
    if _is_cell_of(precise[0], cells[0]) and _is_cell_of(precise[1], cells[1]):
        means = (float(precise[0]), float(precise[1]))
    else:
        means = (float(cells[0]), float(cells[1]))
    # A 3-decimal value is within 0.0005 of the exact one: the mean of the cells and the rounded mean of one
    # evaluation differ by 0.001 at most.
    for name, mean, cell, of_objects in zip(("J-Mean", "F-Mean"), means, cells, _object_mean(objects)):
        if abs(mean - of_objects) > 0.001 + 1e-9:
            results_dir = os.path.dirname(global_path) or "."
            raise ComparisonInputError(
                f"{global_path}: {name} {cell.strip()} is not the mean of the objects of {csv_path} "
                f"({of_objects:.3f}): the two CSVs are not the scores of one evaluation; score the folder again "
                f"(python -m maskrnn_tf.evaluate --results={results_dir} --overwrite ...).")
    return means


def _same_objects(runs: Sequence[FinetuneRun]) -> None:
    """Refuses runs scored over different objects: their means would sit side by side comparing nothing."""
    every = set().union(*(r.objects for r in runs))
    gaps = [f"{', '.join(sorted(every - set(r.objects)))} only in "
            f"{', '.join(o.label for o in runs if every - set(r.objects) <= set(o.objects))}"
            for r in runs if every - set(r.objects)]
    if gaps:
        raise ComparisonInputError(f"the runs were scored over different objects: {'; '.join(gaps)}. Segment and "
                                   "score the same sequences (--sequences) in every folder.")


# The first cell of comparison_markdown's last row.
MEAN_ROW = "**mean; updates, s: total**"


def comparison_markdown(runs: Sequence[FinetuneRun]) -> str:
    """A markdown table: per object J and F of every run, and per sequence each run's finetuning updates and
    seconds (segmenting seconds in brackets); the last row holds the means (J, F) and the totals (updates, s)."""
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
            cells += [percent(j), percent(f)]
        for run in runs:
            if sequence in run.finetune_seconds:
                cells.append(f"{run.updates.get(sequence, 0)}, {run.finetune_seconds[sequence]:.0f}"
                             + (f" ({run.segment_seconds[sequence]:.0f})" if sequence in run.segment_seconds else ""))
            elif sequence in run.segment_seconds:
                cells.append(f"0, 0 ({run.segment_seconds[sequence]:.0f})")
            else:
                cells.append("-")
        lines.append("| " + " | ".join(cells) + " |")
    # The last row: J and F means, then each run's totals in the per-sequence form (updates, s (segmenting s))
    # over the sequences shown: a log may time sequences that were segmented but not scored.
    shown = {_sequence_of(name) for name in names}
    cells = [MEAN_ROW]
    for run in runs:
        j, f = run.mean()
        cells += [f"**{percent(j)}**", f"**{percent(f)}**"]
    for run in runs:
        def total(values: Mapping[str, float]) -> float:
            return sum(v for sequence, v in values.items() if sequence in shown)

        cells.append(f"{total(run.updates):.0f}, {total(run.finetune_seconds):.0f}"
                     + (f" ({total(run.segment_seconds):.0f})" if shown & set(run.segment_seconds) else ""))
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def compare(labelled_dirs: Sequence[Tuple[str, str]], split: str = "val") -> Tuple[List[FinetuneRun], str]:
    """Reads every (label, results folder) pair and returns the runs and their table."""
    runs = [read_run(label, folder, split) for label, folder in labelled_dirs]
    return runs, comparison_markdown(runs)


def parse_labelled(items: Sequence[str]) -> List[Tuple[str, str]]:
    """['none=results/a', 'results/b'] -> [('none', 'results/a'), ('b', 'results/b')] (label = folder name); a label
    given twice is refused."""
    out: List[Tuple[str, str]] = []
    for item in items:
        label, sep, folder = item.partition("=")
        if not sep:
            label, folder = os.path.basename(os.path.normpath(item)), item
        if not label or not folder:
            raise ComparisonInputError(f"{item!r}: expected LABEL=FOLDER or FOLDER.")
        earlier = next((given for name, given in out if name == label), None)
        if earlier is not None:  # two columns of one name could not be told apart
            raise ComparisonInputError(f"label {label!r} given to {earlier} and to {folder}; label each folder once "
                                       "(LABEL=FOLDER).")
        out.append((label, folder))
    return out


def to_dict(runs: Sequence[FinetuneRun]) -> Dict[str, dict]:
    """JSON-friendly form of the runs (for a record beside the table)."""
    return {r.label: dataclasses.asdict(r) for r in runs}
