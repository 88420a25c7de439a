"""Choosing online-finetuning settings on a selection split and reporting each choice once on another.

The honest protocol for DAVIS: the candidate settings (finetuning flags, and optionally the checkpoint) are
compared on train sequences held out of training (the run's `val_sequences`); for each finetuning mode (none,
static, recurrent) the candidate with the best J-Mean there (then F-Mean; the first listed wins a tie) is
chosen, and only the chosen ones are run on the reported split. A later call that adds candidates may choose
another one for a mode whose choice was reported already: both reports are kept and shown (numbers seen on the
reported split cannot be unseen). `python -m maskrnn_tf.finetune_selection` drives the segment and evaluate CLIs;
this module holds the parts that need no TensorFlow.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import shlex
import subprocess
import sys
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from maskrnn_tf.experiments.finetune_comparison import FinetuneRun, comparison_markdown, percent
from maskrnn_tf.experiments.results_records import last_flag_value

MODES = ("none", "static", "recurrent")
DEFAULT_CANDIDATES = ("none=--finetune=none", "static=--finetune=static", "recurrent=--finetune=recurrent")
# Set by the driver for every candidate: a candidate giving one would segment something else.
DRIVER_FLAGS = ("--davis_root", "--split", "--sequences", "--output", "--overwrite", "--method")
# absl's own flags, no segment setting: segment would print its help (exit 1, nothing on stderr) or only parse its
# flags, and exit with nothing segmented.
ABSL_FLAGS = ("--help", "--helpshort", "--helpfull", "--helpxml", "--only_check_args")
# The DAVIS year of a run's data.dataset (config.json): its train split is the one it trained on.
DAVIS_YEARS = {"davis16": 2016, "davis17": 2017}
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class CandidateError(ValueError):
    """A --candidate that cannot be run (the message says which and why)."""


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One setting: a label (its results folder's name) and its segment flags. A `--model=` among them replaces
    the driver's model for this candidate (to choose between checkpoints, e.g. best/ and the final model)."""

    label: str
    segment_args: Tuple[str, ...]

    def model(self, default: str) -> str:
        """The model this candidate segments with: its own --model, else `default`."""
        given = [a.split("=", 1)[1] for a in self.segment_args if a.startswith("--model=")]
        return given[-1] if given else default

    def flags_without_model(self) -> List[str]:
        """Its segment flags less --model (the driver passes the model)."""
        return [a for a in self.segment_args if not a.startswith("--model=")]


def expand_flag_files(args: Sequence[str], who: str) -> List[str]:
    """`args` with each --flagfile replaced by the flags in its file, as segment reads them (so that the driver's
    checks see what segment will run); CandidateError naming `who` for a file that cannot be read."""
    from absl import flags as absl_flags

    from maskrnn_tf.experiments.results_records import expanded_flagfiles
    from maskrnn_tf.flag_validation import undecodable_flag_file_message

    if "--" in args:  # absl stops at it: segment would take the flags after it for arguments, and run without them
        raise CandidateError(f"{who}: '--' is no segment flag (segment would ignore every flag after it); drop it.")
    try:
        expanded = expanded_flagfiles(args)
    except absl_flags.Error as err:
        raise CandidateError(f"{who}: {str(err).removeprefix('ERROR:: ')}") from None
    except UnicodeDecodeError as err:  # the file named, nested ones too, as every CLI names it
        raise CandidateError(f"{who}: {undecodable_flag_file_message(['segment', *args], err)}") from None
    left = [arg for arg in expanded if arg.split("=", 1)[0] in ("--flagfile", "-flagfile")]
    if left:  # an indented directive inside a file: absl passes it on as a flag instead of reading its file
        raise CandidateError(f"{who}: {left[0]} inside a flag file was not read (absl reads a --flagfile line "
                             "only at the start of its line); remove its indentation.")
    return expanded


def check_segment_flags(flags: Sequence[str]) -> List[str]:
    """Raises CandidateError for a --segment_flag (passed to every candidate's segment command) that is not a
    --flag or that the driver sets: --model too, which candidates choose with their own --model=PATH. Returns
    the flags with their flag files read (`expand_flag_files`), what the driver passes on."""
    flags = expand_flag_files(flags, "--segment_flag")
    for flag in flags:
        name = flag.split("=", 1)[0]
        if not flag.startswith("--"):
            raise CandidateError(f"--segment_flag={flag!r} is not a --flag of python -m maskrnn_tf.segment.")
        if name in DRIVER_FLAGS + ("--model",) or name.replace("--no", "--", 1) in DRIVER_FLAGS:
            raise CandidateError(f"--segment_flag={flag!r}: {name} is set by the driver (a candidate chooses "
                                 "its model with --candidate=LABEL='--model=PATH ...').")
        _refuse_absl_flag(name, f"--segment_flag={flag!r}")
    return flags


def _refuse_absl_flag(name: str, who: str) -> None:
    """Raises CandidateError for one of absl's own flags (ABSL_FLAGS, or its --no form), and for segment's
    --check_flags, which the driver gives each command's check itself."""
    if name in ("--check_flags", "--nocheck_flags"):
        raise CandidateError(f"{who}: {name} is the driver's own check of each command before the first (with it a "
                             "command would segment nothing, without it the check would segment); drop it.")
    if name in ABSL_FLAGS or name.replace("--no", "--", 1) in ABSL_FLAGS:
        raise CandidateError(f"{who}: {name} is absl's own flag, not a segment setting (segment would print its "
                             "help or only check its flags, and segment nothing); drop it (python -m "
                             "maskrnn_tf.segment --helpfull lists segment's flags).")


def _last_bool(args: Sequence[str], name: str) -> bool:
    """The value segment takes for bool flag --name from `args` (--name, --noname, --name=true|false; the last
    one given); False without one (the segment flags checked here default to False)."""
    value = False
    for arg in args:
        if arg in (f"--{name}", f"--no{name}"):
            value = arg == f"--{name}"
        elif arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1].lower() in ("true", "t", "1")  # absl's spellings of true
    return value


def paired_flag_problems(args: Sequence[str]) -> List[str]:
    """What segment's main (not its parser, so not the --only_check_args pre-check) refuses in `args`, one
    segment command's flags in order: a flag that needs another one set. Each says what to add or drop."""
    problems = []
    flow = last_flag_value(args, "flow") or "dis"  # segment's default
    if last_flag_value(args, "flo_dir") and flow != "flo":
        problems.append(f"--flo_dir is read only with --flow=flo (its segment commands would use --flow={flow}, the "
                        "last value across --segment_flag and its own flags): add --flow=flo or drop --flo_dir")
    formats = [a for a in args if a.startswith("--probs_format=")]
    if formats and not _last_bool(args, "save_probs"):  # segment: given at all, while --save_probs is off
        problems.append(f"--probs_format sets how --save_probs writes the probability maps, which is off: add "
                        f"--save_probs or drop {formats[-1]}")
    return problems


def split_names(davis_root: str, split: str, segment_flags: Sequence[str] = ()) -> List[str]:
    """The sequences `split` of `davis_root` lists, read as segment reads them: the split's list only (not its
    sequences: another one's broken files do not stop work on the chosen ones), of the tree of the last
    --davis_year in `segment_flags` (else of the tree's own year). Raises DatasetLayoutError, OSError or
    ValueError when the list cannot be read."""
    from maskrnn_tf.data.sequences import davis_split_names, davis_year

    root = os.path.expanduser(davis_root)
    year = last_flag_value(segment_flags, "davis_year")
    return davis_split_names(root, int(year) if year else davis_year(root), split)


def segment_error_text(stderr: str, status: int) -> str:
    """segment's refusal as one sentence: its error line(s) (absl's usage text and help hint left out), else its
    last line (absl prints a usage error after the usage text), else its exit status."""
    lines = [line.strip() for line in stderr.splitlines()]
    start = next((i for i, line in enumerate(lines) if line.lower().startswith("error:")), None)
    if start is not None:
        kept = [lines[start][len("error:"):].strip()]
        for line in lines[start + 1:]:  # parse_flags_or_exit indents a message of several lines below "error:"
            if not line or line.startswith("Pass --helpshort"):
                break
            kept.append(line)
        text = " ".join(part for part in kept if part)
    else:
        text = next((line for line in reversed(lines) if line), "")
    text = text or f"it exited with status {status} without a message"
    return text if text.endswith((".", "?", "!")) else text + "."


def segment_flag_problems(arg_lists: Mapping[str, Sequence[str]], check_flags: bool = False) -> Dict[str, str]:
    """What `python -m maskrnn_tf.segment` says against each named list of its flags when it parses them (an
    unknown flag, a value its parser or validators refuse); lists it takes are left out. With `check_flags`, each
    list is a whole command's flags and segment also checks them together (its --check_flags: the pairs and
    combinations its main refuses, before it reads an input).

    Segment parses each list itself (--only_check_args: absl stops after parsing, before segment's main and
    TensorFlow), in processes of their own, started at once: segment's flags share names with the driver's
    (--model, --output, ...), so they cannot be defined in the driver's process."""
    # The check flag first: last, a trailing flag given without its value would take it as that value.
    check = "--check_flags" if check_flags else "--only_check_args"
    processes = {name: subprocess.Popen([sys.executable, "-m", "maskrnn_tf.segment", check, *args],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
                 for name, args in arg_lists.items()}
    problems = {}
    for name, process in processes.items():
        _, err = process.communicate()
        if process.returncode != 0:
            problems[name] = segment_error_text(err, process.returncode)
    return problems


def trained_on(config: Mapping[str, object], sequences: Sequence[str],
               train_split: Optional[Sequence[str]]) -> List[str]:
    """Those of `sequences` that the run of `config` (its config.json) may have trained on (not counting the run
    its weights started from, init_checkpoint: check that one's config too).

    A DAVIS run trains on its train split less its `val_sequences` (`train_split`: the names of the train split
    of its dataset's year, `run_davis_year`; None when they cannot be read, and then every sequence it did not
    hold out counts); a synthetic_vos run on procedural videos only. A config that names no dataset counts as
    DAVIS: only what it held out is held out."""
    data = config.get("data")
    data = data if isinstance(data, dict) else {}
    if data.get("dataset") == "synthetic_vos":
        return []
    held = data.get("val_sequences") or []
    held = set(held.split(",") if isinstance(held, str) else held)
    return [s for s in sequences if s not in held and (train_split is None or s in train_split)]


def run_davis_year(config: Mapping[str, object]) -> Optional[int]:
    """The DAVIS year whose train split the run of `config` trained on (data.dataset); None when it names none."""
    data = config.get("data")
    dataset = data.get("dataset") if isinstance(data, dict) else None
    return DAVIS_YEARS.get(dataset) if isinstance(dataset, str) else None


def parse_candidate(text: str) -> Candidate:
    """'label=--flag=value --other' -> Candidate (the flags are split as a shell would)."""
    label, sep, args = text.partition("=")
    label = label.strip()
    if not sep or not _LABEL.match(label):
        raise CandidateError(f"--candidate={text!r}: write LABEL=SEGMENT_FLAGS (a label of letters, digits, "
                             "'_', '.', '+', '-'; e.g. static50='--finetune=static --finetune_steps=50').")
    try:
        flags = tuple(shlex.split(args))
    except ValueError as err:
        raise CandidateError(f"--candidate={text!r}: {err}.") from err
    flags = tuple(expand_flag_files(flags, f"--candidate {label}"))
    if not flags:
        raise CandidateError(f"--candidate={text!r}: no segment flags (use --finetune=none for no finetuning).")
    for flag in flags:
        name = flag.split("=", 1)[0]
        if not flag.startswith("--"):
            raise CandidateError(f"--candidate {label}: {flag!r} is not a --flag of python -m maskrnn_tf.segment.")
        if name == "--model" and not flag.startswith("--model="):
            raise CandidateError(f"--candidate {label}: write --model=PATH (one argument).")
        if name in DRIVER_FLAGS or name.replace("--no", "--", 1) in DRIVER_FLAGS:
            raise CandidateError(f"--candidate {label}: {name} is set by the driver for every candidate.")
        _refuse_absl_flag(name, f"--candidate {label}")
    return Candidate(label, flags)


def parse_candidates(texts: Sequence[str]) -> List[Candidate]:
    """Parses every --candidate; labels must be distinct."""
    candidates = [parse_candidate(t) for t in texts]
    labels = [c.label for c in candidates]
    if not candidates or len(set(labels)) != len(labels):
        raise CandidateError(f"--candidate: need at least one, with distinct labels; got {labels}.")
    return candidates


def choose_per_mode(runs: Sequence[FinetuneRun]) -> Dict[str, FinetuneRun]:
    """For each finetuning mode present, the run with the highest (J-Mean, F-Mean); the first wins a tie, and a
    run whose mean is not a number (evaluate's NaN of an object with no frame scored) ranks below every other.

    Keys follow MODES' order (then any other mode, e.g. '?' of an older segment's folder)."""

    def rank(run: FinetuneRun) -> Tuple[bool, float, float]:
        # NaN compares false both ways: a first NaN candidate was never replaced.
        j, f = run.mean()
        finite = math.isfinite(j) and math.isfinite(f)
        return (finite, j if finite else 0.0, f if finite else 0.0)

    best: Dict[str, FinetuneRun] = {}
    for run in runs:
        held = best.get(run.mode)
        if held is None or rank(run) > rank(held):
            best[run.mode] = run
    order = [m for m in MODES if m in best] + [m for m in best if m not in MODES]
    return {m: best[m] for m in order}


def _pct(value: float) -> str:
    return percent(value)  # evaluate's digits (formatting 100 * value rounds again at ties)


def _seconds_per_sequence(run: FinetuneRun) -> str:
    values = list(run.finetune_seconds.values())
    return f"{sum(values) / len(values):.0f}" if values else "-"


def selection_markdown(select: Sequence[FinetuneRun], chosen: Mapping[str, FinetuneRun],
                       report: Mapping[str, FinetuneRun], select_name: str, report_name: str,
                       floor: Sequence[FinetuneRun] = (), earlier: Sequence[FinetuneRun] = ()) -> str:
    """The two tables: every candidate on the selection split, and each chosen one on the reported split with
    its selection numbers beside it; then the per-object tables of both splits. `floor`: the no-learning
    floor's runs on the selection and the reported split (mode 'floor'), shown as the first row of each table
    and never chosen. `earlier`: reports of candidates chosen by an earlier call and no longer chosen, listed
    after the chosen ones as "reported earlier"."""
    chosen_labels = {run.label for run in chosen.values()}
    lines = [f"## Selection split ({select_name})", "",
             "| candidate | finetuning | J-Mean | F-Mean | finetuning s per sequence | chosen |",
             "|---|---|--:|--:|--:|:-:|"]
    for run in list(floor[:1]) + list(select):
        j, f = run.mean()
        lines.append(f"| {run.label} | {run.mode} | {_pct(j)} | {_pct(f)} | {_seconds_per_sequence(run)} | "
                     f"{'x' if run.label in chosen_labels and run.mode != 'floor' else ''} |")
    heading = "each mode's chosen setting" + (", and every earlier report" if earlier else ", run once")
    lines += ["", f"## Reported split ({report_name}): {heading}", "",
              "| finetuning | candidate | J-Mean | F-Mean | selection J-Mean | selection F-Mean | "
              "finetuning s per sequence |", "|---|---|--:|--:|--:|--:|--:|"]
    pairs = ([("floor", floor[0])] if len(floor) == 2 else []) + list(chosen.items())
    for mode, picked in pairs:
        run = floor[1] if mode == "floor" else report.get(mode)
        sj, sf = picked.mean()
        if run is None:
            lines.append(f"| {mode} | {picked.label} | - | - | {_pct(sj)} | {_pct(sf)} | - |")
            continue
        j, f = run.mean()
        lines.append(f"| {mode} | {picked.label} | {_pct(j)} | {_pct(f)} | {_pct(sj)} | {_pct(sf)} | "
                     f"{_seconds_per_sequence(run)} |")
    selected = {run.label: run for run in select}
    for run in earlier:
        j, f = run.mean()
        # A candidate dropped from the call since has no selection numbers here (its folder is not read).
        sj, sf = (_pct(v) for v in selected[run.label].mean()) if run.label in selected else ("-", "-")
        lines.append(f"| {run.mode} | {run.label} (reported earlier) | {_pct(j)} | {_pct(f)} | {sj} | {sf} | "
                     f"{_seconds_per_sequence(run)} |")
    if earlier:
        lines += ["", f"Rows \"reported earlier\": chosen by an earlier call into this output and reported on "
                  f"{report_name}, then another candidate of their mode was chosen (or the candidate made again, '#N'). "
                  "Both stay: a choice made after seeing the reported split's numbers is not held out from it."]
    lines += ["", f"### Per object, selection split ({select_name})", "",
              comparison_markdown(list(floor[:1]) + list(select)).rstrip()]
    if report or earlier:
        shown = [dataclasses.replace(run, label=f"{run.label} (reported earlier)") for run in earlier]
        lines += ["", f"### Per object, reported split ({report_name})", "",
                  comparison_markdown(list(floor[1:2]) + list(report.values()) + shown).rstrip()]
    return "\n".join(lines) + "\n"
