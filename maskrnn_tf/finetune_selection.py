r"""Chooses online-finetuning settings on held-out train sequences, then reports each choice on val.

    python -m maskrnn_tf.finetune_selection --model=runs/davis16_cpu/best \
        --davis_root=../shared/data/DAVIS-2016 --segment_flag=--max_size=432 --output=results/selection \
        --candidate=none=--finetune=none --candidate="static50=--finetune=static --finetune_steps=50" \
        --candidate=recurrent=--finetune=recurrent

Every candidate (segment flags, optionally its own --model=, e.g. the final model beside best/) segments and
scores the selection split (default: the train sequences the model's run held out of training, its
`val_sequences`); for each finetuning mode the best candidate there (J-Mean, then F-Mean) segments and scores the
reported split (default: val), once. Every model a candidate segments with (--model, its own --model=, each
--ensemble_models member) must come from a run that held the selection sequences out of training (its
config.json, checked against the train split of the run's own dataset), and so must every run it started from
(init_checkpoint); one without a run config.json is taken with a warning that it could not be checked. Writes
`<output>/selection.md` (both tables and the per-object ones) and `selection.json`; folders:
`<output>/select/<label>`, `<output>/report/<label>`.
A folder already made with the same model, flags and maskrnn_tf sources is reused, so an interrupted call resumes;
one made otherwise is refused. A later call may add candidates: when one of them is chosen for a mode whose choice was
reported already, it is reported too, with a warning, and every report the output holds stays in selection.json
(`reports`) and selection.md ("reported earlier"). Bad input, found before anything runs (flags segment's parser
refuses in a candidate or --segment_flag, or its main refuses in pairs: --flo_dir without --flow=flo, --probs_format
without --save_probs; absl's help flags; no selection sequences, selection sequences that the reported split also
holds or that a candidate's model trained on), exits with status 2.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

from absl import app, flags

from maskrnn_tf import _console
from maskrnn_tf.experiments.commands import on_sigterm, read_json, record_if_finished, run_command, write_text

if TYPE_CHECKING:
    from maskrnn_tf.experiments.finetune_comparison import FinetuneRun

FLAGS = flags.FLAGS
RECORD = "selection_record.json"
FLOOR = "floor"  # results folder of the no-learning floor (a candidate may not take this label)


def define_flags() -> None:
    """The CLI flags (binaries only)."""
    from maskrnn_tf.experiments.finetune_selection import DEFAULT_CANDIDATES

    flags.DEFINE_string("model", None, "Trained model: a run's best/ folder, a run folder, model.keras or a "
                        "checkpoint prefix (as segment --model).")
    flags.DEFINE_string("davis_root", None, "DAVIS folder holding both splits.")
    flags.DEFINE_string("select_split", "train", "Split of the selection sequences.")
    flags.DEFINE_list("select_sequences", None, "Sequences to choose on (default: the val_sequences the model's "
                      "run held out of training, from its config.json).")
    flags.DEFINE_string("report_split", "val", "Split reported with each mode's chosen setting.")
    flags.DEFINE_list("report_sequences", None, "Only these sequences of the reported split (default: all).")
    flags.DEFINE_multi_string("candidate", list(DEFAULT_CANDIDATES),
                              "LABEL=SEGMENT_FLAGS, one per candidate setting, e.g. "
                              "static50='--finetune=static --finetune_steps=50'.")
    flags.DEFINE_multi_string("segment_flag", [], "A segment flag for every candidate (e.g. --max_size=432).")
    flags.DEFINE_bool("floor", True, "Also run the no-learning floor (--method=flow_propagation, the first mask "
                      "warped by the flow) on both splits and show it beside the candidates (never chosen).")
    flags.DEFINE_string("output", None, "Folder of the results folders and selection.md.")
    flags.mark_flags_as_required(["model", "davis_root", "output"])


def _select_sequences(model: str) -> Optional[List[str]]:
    if FLAGS.select_sequences:
        return list(FLAGS.select_sequences)
    from maskrnn_tf.training.run_config_file import training_config

    held_out = ((training_config(model) or {}).get("data") or {}).get("val_sequences") or []
    return list(held_out) or None


def _model(candidate, default: str) -> str:
    return os.path.abspath(os.path.expanduser(candidate.model(default)))


def _segment_flags(args: List[str], split: str, sequences: Optional[List[str]], model: str, folder: str) -> List[str]:
    """The flags of the segment command that makes `folder` (a candidate's `args` on one split)."""
    chosen = [f"--sequences={','.join(sequences)}"] if sequences else []
    return [f"--davis_root={FLAGS.davis_root}", f"--split={split}", *chosen, f"--model={model}", f"--output={folder}",
            *FLAGS.segment_flag, *args, "--noprogress"]


def _split_problem(split: str, sequences: Optional[List[str]], flags_named: str) -> str:
    """Why segment would refuse `sequences` (None: all) of `split` of --davis_root ('' when it would not): the split's
    list cannot be read, or names none of them. Checked before the first candidate: segment reads the list only
    when it runs, and the reported split's runs come after every candidate's."""
    from maskrnn_tf.data.sequences import DatasetLayoutError
    from maskrnn_tf.experiments.finetune_selection import split_names

    try:
        names = split_names(FLAGS.davis_root, split, FLAGS.segment_flag)
    except (DatasetLayoutError, OSError, ValueError) as err:
        return f"{flags_named}: the {split!r} split of --davis_root={FLAGS.davis_root} cannot be read: {err}"
    unknown = [name for name in sequences or () if name not in names]
    if unknown:
        return (f"{flags_named}: {', '.join(unknown)} not in the {split!r} split of --davis_root={FLAGS.davis_root}; "
                f"choose from {', '.join(sorted(names))}")
    return ""


def _segment_and_score(label: str, args: List[str], split: str, sequences: Optional[List[str]], model: str,
                       folder: str):
    """Segments and scores one candidate on one split (reusing a folder made the same way); its FinetuneRun."""
    from maskrnn_tf.experiments.finetune_comparison import read_run
    from maskrnn_tf.experiments.results_records import SCORES_KEY, record_mismatch, results_record, scores_digest

    py = sys.executable
    chosen = [f"--sequences={','.join(sequences)}"] if sequences else []
    segment = [py, "-m", "maskrnn_tf.segment", *_segment_flags(args, split, sequences, model, folder)]
    record_path = os.path.join(folder, RECORD)
    csv_path = os.path.join(folder, f"per-sequence_results-{split}.csv")
    wanted = results_record(segment[3:], model)
    if os.path.isdir(folder):
        stored = read_json(record_path)
        mismatch = record_mismatch(stored, wanted)
        if mismatch:
            raise app.UsageError(f"{folder} was made with other settings ({'; '.join(mismatch)}); delete it to "
                                 "segment again, or use another --output.", exitcode=2)
    else:
        try:
            run_command(segment, driver="finetune_selection")
        except (KeyboardInterrupt, SystemExit):
            record_if_finished(folder, record_path, wanted)
            raise
        stored = wanted
        write_text(record_path, json.dumps(wanted, indent=1) + "\n")
    # Scores are reused only when they are the ones this driver's evaluate wrote: a CSV scored since on other
    # sequences or frames (evaluate --sequences, --all_frames), or edited, would enter the tables in silence.
    if not os.path.isfile(csv_path) or stored.get(SCORES_KEY) != scores_digest(csv_path):
        run_command([py, "-m", "maskrnn_tf.evaluate", f"--davis_root={FLAGS.davis_root}", f"--results={folder}",
                     f"--split={split}", *chosen], driver="finetune_selection")
        write_text(record_path, json.dumps({**wanted, SCORES_KEY: scores_digest(csv_path)}, indent=1) + "\n")
    return read_run(label, folder, split)


def _other_selection(path: str, settings: dict) -> str:
    """Why this call may not write over `path` (an earlier call's selection.json), as the end of a sentence
    'path ...'; '' when it records the same settings or does not exist. Candidates may differ: a later call adds
    some and reuses the folders of the others. A file without the driver's keys is someone else's."""
    try:
        with open(path, encoding="utf-8") as f:
            recorded = json.load(f)
    except FileNotFoundError:
        return ""
    except (OSError, ValueError) as err:
        return f"cannot be read as this driver's record ({err.__class__.__name__}): not an earlier call's"
    missing = [key for key in settings if not isinstance(recorded, dict) or key not in recorded]
    if missing:
        return f"is not this driver's record (no {', '.join(map(repr, missing))}): not an earlier call's"
    as_recorded = json.loads(json.dumps(settings))  # tuples as the JSON lists they were written as
    differ = [key for key, value in as_recorded.items() if recorded[key] != value]
    return "records the selection of another " + ", ".join(
        f"{key} ({recorded[key]!r}, not {settings[key]!r})" for key in differ) if differ else ""


def _split_sequences(split: str) -> Optional[List[str]]:
    """The sequences of a split of --davis_root (its ImageSets list); None when it cannot be read (segment will say
    why)."""
    from maskrnn_tf.data.sequences import DatasetLayoutError
    from maskrnn_tf.experiments.finetune_selection import split_names

    try:
        return split_names(FLAGS.davis_root, split, FLAGS.segment_flag)
    except (DatasetLayoutError, OSError, ValueError):
        return None


def _not_held_out(select: List[str]) -> str:
    """Why the selection sequences are not held out of the reported ones ('' when they are)."""
    if FLAGS.select_split != FLAGS.report_split:
        # Other splits may still share sequences (DAVIS-2016's trainval holds train and val): compare the lists.
        reported = FLAGS.report_sequences or _split_sequences(FLAGS.report_split) or []
        both = sorted(set(select) & set(reported))
        if both:
            return (f"the selection sequences ({FLAGS.select_split}: --select_sequences, default: the run's "
                    f"val_sequences) and the reported sequences ({FLAGS.report_split}) include {', '.join(both)} "
                    "(--report_split, --report_sequences)")
        return ""
    split = FLAGS.select_split
    if not FLAGS.report_sequences:
        return (f"--select_split and --report_split are both {split!r} and no --report_sequences: all of it is "
                f"reported, the selection sequences ({', '.join(select)}) included")
    both = sorted(set(select) & set(FLAGS.report_sequences))
    if both:
        return (f"--select_split and --report_split are both {split!r}, and --select_sequences (default: the "
                f"run's val_sequences) and --report_sequences share {', '.join(both)}")
    return ""


def _year_train_sequences(year: int) -> Optional[List[str]]:
    """The train split of DAVIS-`year` as --davis_root holds it: its tree of that year, or for 2016 the names a
    DAVIS-2017 tree lists in ImageSets/2016/train.txt (the official 2017 archives ship DAVIS-2016's splits there);
    None when it holds neither."""
    from maskrnn_tf.data.sequences import DatasetLayoutError, find_davis_root, read_davis_sequence_list
    from maskrnn_tf.io.list_files import read_list_lines

    given = os.path.expanduser(FLAGS.davis_root)
    try:
        root = find_davis_root(given, year=year, strict=True)
        return [s.name for s in read_davis_sequence_list(root, year, "train", validate=False)]
    except (DatasetLayoutError, OSError, ValueError):
        if year != 2016:
            return None
    try:
        # The project's list reader: a BOM dropped, text that is not UTF-8 (UTF-16) refused as ValueError.
        path = os.path.join(find_davis_root(given, year=2017, strict=True), "ImageSets", "2016", "train.txt")
        lines = [line.split() for line in read_list_lines(path)]
    except (DatasetLayoutError, OSError, ValueError):
        return None
    names: List[str] = []
    for parts in lines:
        # A name per line, or DAVIS-2016's "/JPEGImages/480p/<seq>/<n>.jpg /Annotations/..." frame lines.
        name = parts[0] if len(parts) == 1 and "/" not in parts[0] else (
            os.path.basename(os.path.dirname(parts[0])) if len(parts) == 2 else None)
        if not name:
            return None  # not a split list: nothing is assumed from it
        if name not in names:
            names.append(name)
    return names


def _train_split_of(config: dict, lists: dict) -> Tuple[Optional[List[str]], str]:
    """(names of the train split the run of `config` trained on, '') from --davis_root, read once per year into
    `lists`; when --davis_root holds no train list of the run's year, (its own train split, a note saying so)."""
    from maskrnn_tf.experiments.finetune_selection import run_davis_year

    year = run_davis_year(config)
    if year is not None:
        if year not in lists:
            lists[year] = _year_train_sequences(year)
        if lists[year] is not None:
            return lists[year], ""
    if "own" not in lists:
        lists["own"] = _split_sequences("train")
    if year is None:  # no DAVIS year named (synthetic data trained on no DAVIS sequence): as before, no note
        return lists["own"], ""
    missing = f"--davis_root={FLAGS.davis_root} holds no train list of DAVIS-{year}, the run's data.dataset"
    if lists["own"] is None:
        return None, f"; {missing}, nor one of its own: every sequence the run did not hold out counts"
    return lists["own"], f"; compared with the train split of --davis_root instead: {missing}"


def _starting_run(checkpoint: str) -> Optional[Tuple[str, dict]]:
    """(run folder, its config.json) of the run a config's init_checkpoint lies in: read as for a model path
    (training_config) from the checkpoint path, else from the folders up to two above it (a prefix in checkpoints/
    or stage_a/, which training may have rotated away since); None when none holds a run config.json. A relative
    path is read from the working directory (training took it from its own)."""
    from maskrnn_tf.training.run_config_file import CONFIG_FILE, training_config

    path = os.path.abspath(os.path.expanduser(checkpoint))
    for start in _and_above(path):
        config = training_config(start)
        if config is not None:
            # The folder training_config read: `start` or one above it (a prefix, a checkpoints folder).
            return next((d for d in _and_above(start) if os.path.isfile(os.path.join(d, CONFIG_FILE))), start), config
    return None


def _and_above(path: str) -> Tuple[str, str, str]:
    """`path` and the two folders above it: where a model or checkpoint path's run config.json may lie."""
    return path, os.path.dirname(path), os.path.dirname(os.path.dirname(path))


def _lineage(path: str, config: dict) -> Tuple[List[Tuple[str, dict, str]], Optional[Tuple[str, str]]]:
    """The runs whose training made the weights at `path` (`config`: its run's config.json), as (run folder, or
    `path` for its own, config, the init_checkpoint that led there, '' for its own): its own, then each run it
    started from (init_checkpoint), chains followed; and (the run that names it, init_checkpoint) of a start whose
    run config cannot be read (None when every one was)."""
    from maskrnn_tf.training.run_config_file import CONFIG_FILE

    own = next((d for d in _and_above(path) if os.path.isfile(os.path.join(d, CONFIG_FILE))), path)
    runs, seen = [(path, config, "")], {os.path.realpath(own)}
    while True:
        folder, current, _ = runs[-1]
        init = current.get("init_checkpoint")
        if not init or not isinstance(init, str):
            return runs, None
        found = _starting_run(init)
        if found is None:
            return runs, (folder, init)
        if os.path.realpath(found[0]) in seen:
            return runs, None  # a loop in the records: each run is counted once
        seen.add(os.path.realpath(found[0]))
        runs.append((found[0], found[1], init))


def _trained_on_selection(model: str, candidates: Sequence, select: List[str]) -> Tuple[List[str], List[str]]:
    """(errors, warnings) for the models the candidates segment with (--model, a candidate's own --model=, each
    --ensemble_models member): each must come from a run that held every selection sequence out of training, and
    so must every run it started from (init_checkpoint: its weights saw that run's data), or a candidate is chosen
    on its own training data. Each run is checked against the train split of its own dataset's year. A model (or
    a start) whose run config.json cannot be read is taken with a warning, as --model with --select_sequences
    always was: a model.keras outside its run has no record to check, and no flag could vouch for it."""
    from maskrnn_tf.experiments.finetune_selection import trained_on
    from maskrnn_tf.experiments.results_records import ensemble_members
    from maskrnn_tf.training.run_config_file import training_config

    users: Dict[str, List[str]] = {model: ["--model"]}
    for candidate in candidates:
        own = _model(candidate, model)
        if own != model:
            users.setdefault(own, []).append(f"--candidate {candidate.label} (its --model=)")
        for member in ensemble_members([*FLAGS.segment_flag, *candidate.segment_args]):
            users.setdefault(member, []).append(f"--candidate {candidate.label} (--ensemble_models)")
    errors, warnings, lists = [], [], {}  # lists: train split names by DAVIS year, read once
    names = ", ".join(select)
    for path, who in users.items():
        config = training_config(path)
        if config is None:
            warnings.append(f"{', '.join(who)}: {path} has no run config.json beside it (a model outside its run "
                            "folder?): could not check that it never trained on the selection sequences "
                            f"({names}); make sure it did not.")
            continue
        runs, unread = _lineage(path, config)
        if unread is not None:
            warnings.append(f"{', '.join(who)}: {path} comes from a run started from other weights "
                            f"(init_checkpoint {unread[1]}, in the run config.json of {unread[0]}), and no run "
                            "config.json was found for them (a relative path is read from the working directory, "
                            f"{os.getcwd()}): could not check that they never trained on the selection sequences "
                            f"({names}); make sure they did not.")
        for depth, (folder, run_config, init) in enumerate(runs):
            train_split, note = _train_split_of(run_config, lists)
            seen = trained_on(run_config, select, train_split)
            if not seen:
                continue
            data = run_config.get("data") if isinstance(run_config.get("data"), dict) else {}
            held = data.get("val_sequences") or []
            held = ", ".join(held) if isinstance(held, list) else str(held)
            trained = f"trained on selection sequences: {', '.join(sorted(seen))} (its config.json holds out " \
                      f"{held or 'none'}{note})"
            if depth == 0:
                errors.append(f"{', '.join(who)}: {path} comes from a run that {trained}; a candidate would be "
                              "chosen on its own training data. Use a model of a run that held them out of "
                              "training (train --val_sequences), other --select_sequences, or drop the candidate.")
                continue
            through = [r[0] for r in runs[1:depth]]
            errors.append(f"{', '.join(who)}: {path} comes from a run started from the weights of {folder} "
                          f"(init_checkpoint {init}{', through ' + ', '.join(through) if through else ''}), a "
                          f"run that {trained}; a candidate would be chosen on what its weights trained on. Use a "
                          "model whose run and every run it started from held them out of training (train "
                          "--val_sequences), other --select_sequences, or drop the candidate.")
    return errors, warnings


def _stored_run(label: str, data: object) -> Optional[FinetuneRun]:
    """A FinetuneRun from selection.json's form of it (dataclasses.asdict); None when it is not one."""
    from maskrnn_tf.experiments.finetune_comparison import FinetuneRun

    try:
        fields = dict(data, label=label)
        fields["objects"] = {name: tuple(value) for name, value in fields["objects"].items()}
        if fields.get("means") is not None:
            fields["means"] = tuple(fields["means"])
        run = FinetuneRun(**fields)
        run.mean()
        return run
    except (TypeError, ValueError, KeyError, AttributeError, ZeroDivisionError, IndexError):
        return None


def _reports_made(root: str, recorded: Optional[dict]) -> Dict[str, FinetuneRun]:
    """Every report of the reported split this output holds (candidate label -> FinetuneRun), in the order made:
    those the earlier selection.json lists, then scored report folders it does not name (an output written
    before the list was kept, whose earlier reports were dropped from the tables). A folder's own scores win."""
    from maskrnn_tf.experiments.finetune_comparison import read_run
    from maskrnn_tf.experiments.results_records import SCORES_KEY, scores_digest

    made: Dict[str, FinetuneRun] = {}
    recorded = recorded if isinstance(recorded, dict) else {}
    entries = recorded.get("reports") if isinstance(recorded.get("reports"), list) else []
    pairs = [(e.get("candidate"), e.get("run")) for e in entries if isinstance(e, dict)]
    if isinstance(recorded.get("report"), dict):  # the form before `reports`: this call's choices only
        pairs += list(recorded["report"].items())
    for label, data in pairs:
        run = _stored_run(label, data) if isinstance(label, str) and label not in made else None
        if run is not None:
            made[label] = run
    folders = os.path.join(root, "report")
    for label in sorted(os.listdir(folders)) if os.path.isdir(folders) else []:
        folder = os.path.join(folders, label)
        try:
            stored = read_json(os.path.join(folder, RECORD)) if os.path.isdir(folder) else None
        except (OSError, ValueError):
            continue  # not a folder this driver recorded: it reports nothing
        csv_path = os.path.join(folder, f"per-sequence_results-{FLAGS.report_split}.csv")
        if (not isinstance(stored, dict) or "--method=flow_propagation" in (stored.get("segment_args") or [])
                or not os.path.isfile(csv_path) or stored.get(SCORES_KEY) != scores_digest(csv_path)):
            continue  # the floor, or not scored by this driver (a call stopped before its evaluate finished)
        made = _with_report(made, label, read_run(label, folder, FLAGS.report_split))
    return made


def _with_report(made: Dict[str, FinetuneRun], label: str, run: FinetuneRun) -> Dict[str, FinetuneRun]:
    """`made` with `run` as `label`'s report (in the place of an equal one, else last). An earlier report of that
    label with other scores (the candidate made again after its folders were deleted, as a changed candidate is
    told to) was seen too: it stays where it was, as '<label> #N'."""
    old = made.get(label)
    if old is None or _scores(old) == _scores(run):
        return {**made, label: run}
    n = 1
    while f"{label} #{n}" in made:
        n += 1
    renamed = f"{label} #{n}"
    out = {(renamed if key == label else key): (dataclasses.replace(value, label=renamed) if key == label else value)
           for key, value in made.items()}
    out[label] = run
    return out


def _scores(run: FinetuneRun) -> str:
    """A report's per-object scores, as selection.json holds them: what tells one report from another (records of
    earlier versions lack fields added since, such as the means, and timings say nothing of what was seen)."""
    return json.dumps({name: list(value) for name, value in run.objects.items()}, sort_keys=True)


def main(argv: List[str]) -> int:
    del argv
    # The segment and evaluate commands do the work, each in its own process.
    from maskrnn_tf.experiments.finetune_comparison import ComparisonInputError, to_dict
    from maskrnn_tf.experiments.finetune_selection import (CandidateError, check_segment_flags, choose_per_mode,
                                                           paired_flag_problems, parse_candidates,
                                                           segment_flag_problems, selection_markdown)
    from maskrnn_tf.experiments.results_records import ensemble_members

    signal.signal(signal.SIGTERM, on_sigterm)  # stop the running command too
    try:
        # Flag files read here: every check below, the records and the commands see the flags segment runs with.
        FLAGS.segment_flag = check_segment_flags(FLAGS.segment_flag)
        candidates = parse_candidates(FLAGS.candidate)
    except CandidateError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if FLAGS.floor and FLOOR in [c.label for c in candidates]:
        print(f"error: --candidate label {FLOOR!r} is the no-learning floor's folder; choose another label.",
              file=sys.stderr)
        return 2
    # Segment's own parser, now: a misspelt flag would otherwise stop the driver when its candidate runs, hours in.
    # A --segment_flag it refuses fails every candidate: named alone.
    problems = segment_flag_problems({"--segment_flag": FLAGS.segment_flag} if FLAGS.segment_flag else {})
    problems = problems or segment_flag_problems({
        f"--candidate {c.label} ({' '.join(c.segment_args)})": [*FLAGS.segment_flag, *c.segment_args]
        for c in candidates})
    for who, problem in problems.items():
        print(f"error: {who}: python -m maskrnn_tf.segment refuses it: {problem} Fix or drop the flag; nothing was "
              "run.", file=sys.stderr)
    if problems:
        return 2
    # Pairs segment refuses in its main, after its parser (so the pre-check passes them): found there, they stopped
    # the driver when their candidate ran, after the candidates before it. The floor runs --segment_flag alone.
    paired = {f"--candidate {c.label}": paired_flag_problems([*FLAGS.segment_flag, *c.segment_args])
              for c in candidates}
    if FLAGS.floor:
        paired["--segment_flag (the no-learning floor segments with it alone; --nofloor drops the floor)"] = \
            paired_flag_problems([*FLAGS.segment_flag, "--method=flow_propagation"])
    for who, found in paired.items():
        for problem in found:
            print(f"error: {who}: {problem}; nothing was run.", file=sys.stderr)
    if any(paired.values()):
        return 2
    model = os.path.abspath(os.path.expanduser(FLAGS.model))
    members = [(f"--candidate {c.label}: --ensemble_models member {m}", m) for c in candidates
               for m in ensemble_members([*FLAGS.segment_flag, *c.segment_args])]
    for who, path in [(f"model {p}", p) for p in [model] + [_model(c, model) for c in candidates]] + members:
        if not os.path.exists(path) and not os.path.isfile(path + ".index"):
            print(f"error: {who}: not found; give a run's best/ folder, a run folder, model.keras or a "
                  "checkpoint prefix.", file=sys.stderr)
            return 2
    select = _select_sequences(model)
    if not select:
        print(f"error: --model={FLAGS.model}: its run held no val_sequences out of training (config.json); give "
              "--select_sequences=<train sequences the model never trained on>.", file=sys.stderr)
        return 2
    overlap = _not_held_out(select)
    if overlap:
        print(f"error: {overlap}; the candidates would be chosen on sequences that are reported. Give another "
              "--select_split (default train), or --select_sequences and --report_sequences with no sequence in "
              "common.", file=sys.stderr)
        return 2
    errors, warnings = _trained_on_selection(model, candidates, select)
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr, flush=True)
    for line in errors:
        print(f"error: {line}", file=sys.stderr)
    if errors:
        return 2
    root = os.path.abspath(FLAGS.output)
    # Each command as it will run, through segment's own checks of its flags together (--check_flags: pairs and
    # combinations its main refuses, before any input is read), and the splits' lists: found when a command ran,
    # they stopped the driver hours in (the floor and the reported split come after every candidate).
    problems = [p for p in (_split_problem(FLAGS.select_split, select, "--select_split, --select_sequences"),
                            _split_problem(FLAGS.report_split, FLAGS.report_sequences,
                                           "--report_split, --report_sequences")) if p]
    commands = {f"--candidate {c.label}": _segment_flags(c.flags_without_model(), FLAGS.select_split, select,
                                                         _model(c, model), os.path.join(root, "select", c.label))
                for c in candidates}
    if FLAGS.floor:
        commands["--segment_flag (the no-learning floor segments with it alone; --nofloor drops the floor)"] = \
            _segment_flags(["--method=flow_propagation"], FLAGS.select_split, select, model,
                           os.path.join(root, "select", FLOOR))
    problems += [f"{who}: python -m maskrnn_tf.segment refuses it: {problem} Fix or drop the flag"
                 for who, problem in segment_flag_problems(commands, check_flags=True).items()]
    for problem in problems:
        print(f"error: {problem}; nothing was run.", file=sys.stderr)
    if problems:
        return 2
    earlier = _other_selection(os.path.join(root, "selection.json"), {
        "model": model, "select_split": FLAGS.select_split, "select_sequences": select,
        "report_split": FLAGS.report_split, "report_sequences": FLAGS.report_sequences})
    if earlier:
        print(f"error: {os.path.join(root, 'selection.json')} {earlier}; this call would replace it and the tables "
              "beside it. Give another --output (the same settings resume it).", file=sys.stderr)
        return 2
    # selection.json is written before selection.md, so a selection.md without it is not this driver's.
    if os.path.isfile(os.path.join(root, "selection.md")) and not os.path.isfile(os.path.join(root, "selection.json")):
        print(f"error: {os.path.join(root, 'selection.md')} is there with no selection.json beside it: not the "
              "tables of an earlier call, and this call would replace it. Give another --output.", file=sys.stderr)
        return 2
    select_name = f"{FLAGS.select_split}: {', '.join(select)}"
    report_name = FLAGS.report_split + (f": {', '.join(FLAGS.report_sequences)}" if FLAGS.report_sequences else "")

    def write_record(runs, chosen, report, floor, made, table: str) -> None:
        """selection.json and the tables of selection.md, replaced together (each renamed in once both are
        written): a kill between two writes left a record whose choices disagreed with the tables beside it."""
        from maskrnn_tf.io.atomic_file import atomic_write_group

        chosen_labels = {run.label for run in chosen.values()}
        record = json.dumps({
            "model": model, "select_split": FLAGS.select_split, "select_sequences": select,
            "report_split": FLAGS.report_split, "report_sequences": FLAGS.report_sequences,
            "segment_flags": FLAGS.segment_flag,
            "candidates": {c.label: {"model": _model(c, model), "segment_flags": c.flags_without_model()}
                           for c in candidates},
            "chosen": {mode: run.label for mode, run in chosen.items()},
            "select": to_dict(runs), "report": to_dict(list(report.values())),
            "floor": {part: dataclasses.asdict(run) for part, run in zip(("select", "report"), floor)},
            # Every report of the reported split, in the order made: an earlier choice stays listed.
            "reports": [{"candidate": label, "mode": run.mode, "chosen": label in chosen_labels,
                         "J-Mean": run.mean()[0], "F-Mean": run.mean()[1], "run": dataclasses.asdict(run)}
                        for label, run in made.items()],
        }, indent=1) + "\n"

        def write(tmps: List[str]) -> None:
            for tmp, text in zip(tmps, (record, table)):
                with open(tmp, "w", encoding="utf-8") as f:
                    f.write(text)

        # selection.json first: a selection.md without one is not taken for this driver's (see above).
        atomic_write_group([os.path.join(root, "selection.json"), os.path.join(root, "selection.md")], write,
                           [".json", ".md"])

    try:
        made = _reports_made(root, read_json(os.path.join(root, "selection.json")))
        # -- every candidate on the selection split ------------------------------------------------------------
        runs = [_segment_and_score(c.label, c.flags_without_model(), FLAGS.select_split, select, _model(c, model),
                                   os.path.join(root, "select", c.label)) for c in candidates]
        chosen = choose_per_mode(runs)
        floor = []
        if FLAGS.floor:  # the reference both splits are read against; not a candidate
            for split, sequences, part in ((FLAGS.select_split, select, "select"),
                                           (FLAGS.report_split, FLAGS.report_sequences, "report")):
                run = _segment_and_score(FLOOR, ["--method=flow_propagation"], split, sequences, model,
                                         os.path.join(root, part, FLOOR))
                floor.append(dataclasses.replace(run, mode="floor"))
        # -- each mode's choice once on the reported split ---------------------------------------------------------
        by_label = {c.label: c for c in candidates}
        chosen_labels = {run.label for run in chosen.values()}
        report = {}

        def earlier() -> list:
            return [run for label, run in made.items() if label not in chosen_labels]

        def warn_reported_again(mode: str, label: str, before: List[str]) -> None:
            print(f"warning: {FLAGS.report_split} reported again for mode {mode}: {label}, chosen now that "
                  f"candidates were added or made again, after {', '.join(before)}. A choice made after seeing "
                  f"{FLAGS.report_split}'s numbers is no longer held out from it; report both (selection.md and "
                  "selection.json list every report).", file=sys.stderr, flush=True)

        for mode, picked in chosen.items():
            folder = os.path.join(root, "report", picked.label)
            before = [label for label, run in made.items() if run.mode == mode and label != picked.label]
            earlier_report = made.get(picked.label)
            if before and earlier_report is None:  # told before the run; a label made again only after it
                warn_reported_again(mode, picked.label, before)
            candidate = by_label[picked.label]
            report[mode] = _segment_and_score(picked.label, candidate.flags_without_model(), FLAGS.report_split,
                                              FLAGS.report_sequences, _model(candidate, model), folder)
            if earlier_report is not None and _scores(earlier_report) != _scores(report[mode]):
                warn_reported_again(mode, picked.label, before + [f"{picked.label}'s earlier report"])
            made = _with_report(made, picked.label, report[mode])
            # After every reported run: an interrupted call leaves the tables measured so far, and the record
            # of this call beside them (not an earlier call's, with other choices).
            write_record(runs, chosen, report, floor, made,
                         selection_markdown(runs, chosen, report, select_name, report_name, floor, earlier()))
        table = selection_markdown(runs, chosen, report, select_name, report_name, floor, earlier())
    except ComparisonInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_record(runs, chosen, report, floor, made, table)
    print(f"\n{table}\nwritten to {os.path.join(root, 'selection.md')}", flush=True)
    return 0


if __name__ == "__main__":
    _console.quiet_startup()
    define_flags()
    from maskrnn_tf.experiments.commands import exit_quietly_when_interrupted
    from maskrnn_tf.flag_validation import one_line_usage_errors, parse_flags_or_exit

    app.run(one_line_usage_errors(exit_quietly_when_interrupted(main, "finetune_selection")),
            flags_parser=parse_flags_or_exit)
