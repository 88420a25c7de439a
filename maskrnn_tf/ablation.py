r"""Runs the paper's Table 2 ablation with the project's own CLIs and writes the table.

    python -m maskrnn_tf.ablation --train_flags=davis16_cpu.flags --run_root=runs/ablation \
        --davis_root=../shared/data/DAVIS-2016 --max_size=432 --finetune_steps=50

For every variant (maskrnn_tf.experiments.ABLATION_VARIANTS, or --variants=a,b): train with the flag file plus
the variant's switches, segment the split without and with online finetuning, score both, and write
`<run_root>/ablation.md`. '+ Loc. net: apply' deploys the '+ Loc. net: train' network with the box on (their
trainings are the same), and --full_run=<the recipe's run folder> reuses that training for the full-model row.
Each piece is skipped when its output is already complete (model.keras, a results folder, its CSV), so an
interrupted ablation resumes where it stopped; a finished training or a results folder made with other settings
(another flag file, finetuning setting, retrained model) is refused, not reused. The table always lists every
row measured so far under --run_root, so --variants=a,b adds rows instead of replacing the table; a --full_run
given once is recorded there (full_run.json) and used by later calls that do not give it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import List, Optional

from absl import app, flags

from maskrnn_tf import _console
from maskrnn_tf.experiments.commands import on_sigterm, read_json, record_if_finished, run_command, write_text

FLAGS = flags.FLAGS
# In --run_root: the --full_run a call gave, for the later calls that do not repeat it.
FULL_RUN_RECORD = "full_run.json"


def define_flags() -> None:
    """The CLI flags (binaries only)."""
    flags.DEFINE_string("train_flags", None, "Training flag file every variant starts from (e.g. davis16_cpu.flags).")
    flags.DEFINE_string("run_root", "runs/ablation", "One run folder per variant goes here, and ablation.md.")
    flags.DEFINE_string("davis_root", None, "DAVIS folder whose --split is segmented and scored.")
    flags.DEFINE_string("split", "val", "DAVIS split to segment and score.")
    flags.DEFINE_string("full_run", None, "Run folder already trained with --train_flags alone (the recipe's run, "
                        "e.g. runs/davis16_cpu): the full-model row deploys its model.keras instead of training again.")
    flags.DEFINE_list("variants", None, "Only these variants (default: all six rows).")
    flags.DEFINE_multi_string("train_set", [], "Extra training override key=value for every variant.")
    flags.DEFINE_integer("max_size", 0, "Segment with the long side capped at this size (0 = full size).")
    flags.DEFINE_integer("finetune_steps", 50, "Online finetuning steps of the 'with finetuning' columns "
                         "(0: none; the table in docs/RESULTS.md used 50; the recipe segments without finetuning).")
    flags.DEFINE_float("finetune_lr", 1e-5, "Online finetuning learning rate.")
    flags.DEFINE_float("finetune_loc_weight", 0.1, "Online finetuning localization loss weight.")
    flags.DEFINE_bool("finetune_class_balance", False, "Online finetuning with the class-balanced BCE (else plain).")
    flags.DEFINE_string("flow", "dis", "Flow backend of segmentation (as python -m maskrnn_tf.segment --flow).")
    flags.DEFINE_string("flo_dir", None, "With --flow=flo: the folder of precomputed .flo files.")
    flags.mark_flags_as_required(["train_flags", "davis_root"])


def _run(args: List[str], clock: Optional[str] = None) -> float:
    return run_command(args, clock, driver="ablation")


def _segment_flags(variant, steps: int, model: str, results: str) -> List[str]:
    """The flags of the segment command of one row's column (`steps` finetuning steps) into `results`."""
    from maskrnn_tf.experiments.ablation_variants import finetune_loc_weight

    args = [f"--davis_root={FLAGS.davis_root}", f"--split={FLAGS.split}", f"--model={model}", f"--output={results}",
            f"--max_size={FLAGS.max_size}", f"--flow={FLAGS.flow}",
            *([f"--flo_dir={FLAGS.flo_dir}"] if FLAGS.flo_dir else []),
            "--apply_localization" if variant.loc_apply else "--noapply_localization", f"--finetune_steps={steps}",
            "--noprogress"]
    # The paper's finetuning in every row: static (segment's default for a stage B network is recurrent), every
    # video's updates kept (segment's default cycle check may undo them; the measured table had none).
    args += ["--finetune=static", "--finetune_check_frames=0"] if steps else []
    if steps:
        args += [f"--finetune_lr={FLAGS.finetune_lr}",
                 f"--finetune_loc_weight={finetune_loc_weight(variant, FLAGS.finetune_loc_weight)}",
                 "--finetune_class_balance" if FLAGS.finetune_class_balance else "--nofinetune_class_balance"]
    return args


def _split_problem() -> str:
    """Why --split of --davis_root cannot be segmented ('' when it can): its list cannot be read or is empty."""
    from maskrnn_tf.data.sequences import DatasetLayoutError
    from maskrnn_tf.experiments.finetune_selection import split_names

    try:  # the list only, as segment reads it (a listed sequence's broken files stop that sequence, not the split)
        names = split_names(FLAGS.davis_root, FLAGS.split)
    except (DatasetLayoutError, OSError, ValueError) as err:
        return f"--split={FLAGS.split}: the split of --davis_root={FLAGS.davis_root} cannot be read: {err}"
    return "" if names else f"--split={FLAGS.split}: the split of --davis_root={FLAGS.davis_root} lists no sequence."


def _expected_config(sets: List[str]) -> dict:
    """The config.json `python -m maskrnn_tf.train --flagfile=<train_flags> <sets>` would write."""
    args = [sys.executable, "-m", "maskrnn_tf.train", f"--flagfile={FLAGS.train_flags}", "--print_config", *sets]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"ablation: {' '.join(args[2:])} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def _trained_mismatch(run_dir: str, sets: List[str]) -> List[str]:
    """How a finished run's config.json differs from what the flag file and switches give (empty: the same)."""
    from maskrnn_tf.training.config import drop_retired
    from maskrnn_tf.training.run_dir import completed_config, config_diff

    stored = read_json(os.path.join(run_dir, "config.json"))
    # Keys added since the run was trained are at their defaults there (as a resumed training reads them).
    stored = None if stored is None else completed_config(drop_retired(stored))
    return ["no config.json"] if stored is None else config_diff(stored, _expected_config(sets))


def _check_trained(run_dir: str, sets: List[str], hint: str) -> None:
    """Refuses to deploy a finished run whose config.json is not what the flag file and switches give."""
    diff = _trained_mismatch(run_dir, sets)
    if diff:
        raise app.UsageError(f"{run_dir} was trained with another config than --train_flags={FLAGS.train_flags} "
                             f"and this row's switches ({'; '.join(diff[:6])}); {hint}", exitcode=2)


def main(argv: List[str]) -> int:
    del argv
    # No TensorFlow here: the driver only runs the train, segment and evaluate commands.
    from maskrnn_tf.experiments.ablation_variants import (ABLATION_VARIANTS, ablation_markdown,
                                                          read_scores, record_mismatch,
                                                          results_record, select_variants, training_variant,
                                                          variant_overrides)
    from maskrnn_tf.experiments.results_records import SCORES_KEY, scores_digest
    signal.signal(signal.SIGTERM, on_sigterm)  # stop the running command too (see _run)
    py = sys.executable
    # Checked before anything runs: a typo would otherwise show as a traceback, or as a failed segment hours
    # into the first training.
    try:
        selected = {v.name for v in select_variants(FLAGS.variants)}
    except ValueError as err:
        print(f"error: --variants: {err}", file=sys.stderr)
        return 2
    if not os.path.isfile(FLAGS.train_flags):
        print(f"error: --train_flags={FLAGS.train_flags}: no such file; give the training flag file every variant "
              "starts from (e.g. davis16_cpu.flags).", file=sys.stderr)
        return 2
    if not os.path.isdir(os.path.expanduser(FLAGS.davis_root)):
        print(f"error: --davis_root={FLAGS.davis_root}: no such folder; give the DAVIS folder whose --split is "
              "segmented and scored.", file=sys.stderr)
        return 2
    if FLAGS.flo_dir and FLAGS.flow != "flo":
        print(f"error: --flo_dir is read only with --flow=flo (segmentation would use --flow={FLAGS.flow}): add "
              "--flow=flo or drop --flo_dir.", file=sys.stderr)
        return 2
    full_run = os.path.abspath(os.path.expanduser(FLAGS.full_run)) if FLAGS.full_run else None
    if full_run and not os.path.isfile(os.path.join(full_run, "model.keras")):
        raise app.UsageError(f"--full_run={FLAGS.full_run}: no model.keras there; train it first "
                             f"(python -m maskrnn_tf.train --flagfile={FLAGS.train_flags} --run_dir=...).",
                             exitcode=2)
    root = os.path.abspath(FLAGS.run_root)
    columns = [0] + ([FLAGS.finetune_steps] if FLAGS.finetune_steps else [])
    # Every column's segment command as it will run (segment --check_flags) and the split's list: found when the
    # first segment ran, they stopped the driver after a whole training.
    from maskrnn_tf.experiments.finetune_selection import segment_flag_problems

    asked = [v for v in ABLATION_VARIANTS if v.name in selected]
    commands = {f"--variants={v.name}, {steps} finetuning steps": _segment_flags(v, steps, "model.keras",
                                                                                os.path.join(root, "check"))
                for v in asked for steps in columns}
    problems = [f"{who}: python -m maskrnn_tf.segment refuses it: {problem}"
                for who, problem in segment_flag_problems(commands, check_flags=True).items()]
    problems += [p for p in (_split_problem(),) if p]
    for problem in problems:
        print(f"error: {problem} Nothing was run.", file=sys.stderr)
    if problems:
        return 2
    os.makedirs(root, exist_ok=True)

    def train_sets(variant) -> List[str]:
        """The train command's --set flags of `variant`'s row."""
        sets = [f"--set={k}={json.dumps(v)}" for k, v in variant_overrides(training_variant(variant)).items()]
        return sets + [f"--set={item}" for item in FLAGS.train_set]

    def is_full(variant) -> bool:
        return all((variant.flow_stream, variant.warp_mask, variant.loc_train, variant.loc_apply, variant.rnn))

    # The full-model row's run lies outside --run_root when --full_run named it: recorded, so that a later call
    # without the flag (--variants=a,b adds rows) still finds that row instead of dropping it from the table.
    full_record = os.path.join(root, FULL_RUN_RECORD)
    try:
        recorded = read_json(full_record)
        foreign = recorded is not None and not (isinstance(recorded, dict)
                                                and isinstance(recorded.get("full_run"), str))
    except (OSError, ValueError):
        foreign = True
    if foreign:
        print(f"error: {full_record} is not this driver's record of --full_run (a JSON object naming the run): "
              "move it out of --run_root.", file=sys.stderr)
        return 2
    checked = set()
    if full_run:
        full_hint = "pass --full_run=<a run of the flag file>."
        # Checked before it is recorded: a refused run would otherwise be every later call's full-model row.
        _check_trained(full_run, train_sets(next(v for v in ABLATION_VARIANTS if is_full(v))), full_hint)
        checked.add(full_run)
        write_text(full_record, json.dumps({"full_run": full_run}, indent=1) + "\n")
    else:
        full_run = recorded["full_run"] if recorded else None
        full_hint = (f"pass --full_run=<a run of the flag file>, or delete {full_record} (an earlier call's "
                     "--full_run) to train the row under --run_root.")
        if full_run and not os.path.isfile(os.path.join(full_run, "model.keras")):
            print(f"error: {full_record} names {full_run} as the full-model row's run (an earlier call's --full_run), "
                  "and it holds no model.keras now: give --full_run again, or delete that file to train the row "
                  "under --run_root.", file=sys.stderr)
            return 2
        if full_run:
            print(f"note: the full-model row deploys {full_run}, the --full_run of an earlier call ({full_record}; "
                  "delete that file to train the row under --run_root instead).", flush=True)
    rows = []
    # Every row is in the table; rows not in --variants show what earlier calls measured with these settings.
    for variant in ABLATION_VARIANTS:
        work = variant.name in selected
        full = full_run is not None and is_full(variant)
        run_dir = full_run if full else os.path.join(root, training_variant(variant).name)
        model = os.path.join(run_dir, "model.keras")
        timing = os.path.join(run_dir, "train_seconds.txt")
        sets = train_sets(variant)
        # -- train (skipped when the run already finished or is shared) ------------------------------------
        if work and not os.path.isfile(model):
            os.makedirs(run_dir, exist_ok=True)
            try:
                _run([py, "-m", "maskrnn_tf.train", f"--flagfile={FLAGS.train_flags}", f"--run_dir={run_dir}",
                      *sets], clock=timing + ".partial")
            finally:
                # Also when the driver is stopped as the training exits after writing model.keras: the rerun takes
                # the run as trained and would show no training time.
                if os.path.isfile(model) and os.path.isfile(timing + ".partial"):
                    os.replace(timing + ".partial", timing)
        elif work and run_dir not in checked:
            # A finished run is deployed only if it is this row's training (the flag file may have changed).
            _check_trained(run_dir, sets, full_hint if full else
                           "delete that folder to train it again, or use another --run_root.")
        if work:
            checked.add(run_dir)
        elif os.path.isfile(model):
            # A row not asked for shows earlier calls' numbers only if its run is this flag file's training.
            diff = _trained_mismatch(run_dir, sets)
            if diff:
                print(f"note: row {variant.label} left out: {run_dir} was trained with another config than "
                      f"--train_flags={FLAGS.train_flags} and its switches ({'; '.join(diff[:3])}); "
                      f"--variants={variant.name} says what to do.", flush=True)
                continue
        seconds = float(open(timing, encoding="utf-8").read()) if os.path.isfile(timing) else float("nan")
        # -- segment and score, without and with online finetuning ----------------------------------------
        scores = []
        for steps in columns:
            results = os.path.join(root, variant.name, f"results_ft{steps}")
            args = [py, "-m", "maskrnn_tf.segment", *_segment_flags(variant, steps, model, results)]
            record_path = os.path.join(results, "ablation_record.json")
            stored = read_json(record_path)
            # Taken before the work: sources edited while a segment runs must not be recorded as what made it.
            wanted = results_record(args[3:], model) if os.path.isfile(model) else None
            if os.path.isdir(results) and wanted is not None:
                mismatch = record_mismatch(stored, wanted)
                if mismatch and work:
                    raise app.UsageError(f"{results} was made with other settings ({'; '.join(mismatch)}); "
                                         "delete it to segment again, or use another --run_root.", exitcode=2)
                if mismatch:
                    print(f"note: row {variant.label} ({steps} finetuning steps) left out: {results} was made with "
                          f"other settings ({'; '.join(mismatch[:2])}); --variants={variant.name} says what to do.",
                          flush=True)
                    scores.append(None)
                    continue
            elif not work or not os.path.isfile(model):
                scores.append(None)
                continue
            else:
                try:
                    _run(args)
                except (KeyboardInterrupt, SystemExit):
                    record_if_finished(results, record_path, wanted)
                    raise
                stored = wanted
                write_text(record_path, json.dumps(stored, indent=1) + "\n")
            # Scores are reused only when they are the ones this driver's evaluate wrote: a CSV scored since on
            # other sequences or frames (evaluate --sequences, --all_frames), or edited, would enter the table in
            # silence. A row not asked for keeps scores recorded before the digest was (no SCORES_KEY).
            csv_path = os.path.join(results, f"global_results-{FLAGS.split}.csv")
            recorded = (stored or {}).get(SCORES_KEY)
            current = os.path.isfile(csv_path) and (
                recorded == scores_digest(csv_path) or (not work and recorded is None))
            if not current:
                if not work:
                    scores.append(None)
                    continue
                _run([py, "-m", "maskrnn_tf.evaluate", f"--davis_root={FLAGS.davis_root}", f"--results={results}",
                      f"--split={FLAGS.split}"])
                write_text(record_path, json.dumps({**stored, SCORES_KEY: scores_digest(csv_path)}, indent=1) + "\n")
            scores.append(read_scores(results, FLAGS.split))
        if work or any(scores):
            rows.append((variant, scores[0], scores[1] if len(scores) > 1 else None, seconds))
            # After every row: an interrupted run shows the rows it finished.
            write_text(os.path.join(root, "ablation.md"), ablation_markdown(rows))
    print(f"\n{ablation_markdown(rows)}\nwritten to {os.path.join(root, 'ablation.md')}", flush=True)
    return 0


if __name__ == "__main__":
    _console.quiet_startup()
    define_flags()
    from maskrnn_tf.experiments.commands import exit_quietly_when_interrupted
    from maskrnn_tf.flag_validation import one_line_usage_errors, parse_flags_or_exit

    app.run(one_line_usage_errors(exit_quietly_when_interrupted(main, "ablation")), flags_parser=parse_flags_or_exit)
