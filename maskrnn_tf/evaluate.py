"""DAVIS and SegTrack v2 evaluation CLI: J, F (and T on DAVIS-2016) of a results folder, written as
davis2017-evaluation CSVs.

    python -m maskrnn_tf.evaluate --davis_root=/path/DAVIS --results=/path/results [--split=val]
        [--year=2016|2017] [--processes=N] [--sequences=a,b] [--all_frames] [--exclude_void] [--t=auto|on|off]
    python -m maskrnn_tf.evaluate --segtrack_root=/path/SegTrackv2 --results=/path/results [--sequences=a,b]

Results are `<results>/<sequence>/<frame>.png` (palette PNGs of object ids); the CSVs go into --results
(or --output_dir), replacing CSVs there only when they are evaluate's scores of the same results (or with
--overwrite; maskrnn_tf.metrics.report). For SegTrack v2, J-Mean is the mean IoU (every frame but the
first, averaged over the objects of all sequences; maskrnn_tf.metrics.segtrack_evaluation). A thin wrapper
over maskrnn_tf.metrics.evaluate_dataset and evaluate_segtrack.
"""
from __future__ import annotations

import os
import sys
from typing import List

from absl import app, flags

from maskrnn_tf import _console
from maskrnn_tf.flag_validation import defined_once

FLAGS = flags.FLAGS


@defined_once
def define_flags() -> None:
    """evaluate's flags and their checks (see defined_once)."""
    flags.DEFINE_string("davis_root", None, "DAVIS folder (with ImageSets/, Annotations/), or a folder holding it "
                        "as DAVIS/, DAVIS-2016/ or DAVIS-2017/ (found as segment finds it; --year picks between "
                        "them).")
    flags.DEFINE_string("segtrack_root", None, "Instead of --davis_root: a SegTrack v2 folder (ImageSets/all.txt, "
                        "GroundTruth/); every listed sequence is scored, J-Mean is the IoU.")
    flags.DEFINE_string("results", None, "Results folder: <results>/<sequence>/<frame>.png.")
    flags.DEFINE_string("split", "val", "Split name (ImageSets/<480p|2017>/<split>.txt).")
    flags.DEFINE_enum("year", None, ["2016", "2017"], "DAVIS layout; default: detected from ImageSets/.")
    flags.DEFINE_integer("processes", 0, "Worker processes over sequences; 0 = number of CPUs.")
    flags.DEFINE_list("sequences", None, "Evaluate only these sequences of the split.")
    flags.DEFINE_bool("all_frames", False, "Score every frame (the DAVIS protocol drops the first and last; "
                      "SegTrack v2 drops the first).")
    flags.DEFINE_bool("exclude_void", False, "Leave void pixels (255) out of J and F. Default: scored as "
                      "background, as davis2017-evaluation does (comparable with published numbers).")
    flags.DEFINE_enum("t", "auto", ["auto", "on", "off"], "Temporal stability T: auto = DAVIS-2016 only.")
    flags.DEFINE_string("output_dir", None, "Where the CSVs go; default: the results folder.")
    flags.DEFINE_bool("overwrite", False, "Replace CSVs already in the output folder that are not evaluate's scores "
                      "of these results (another folder's, changed since, other sequences'). Without it they are "
                      "refused.")
    _register_checks()


def _register_checks() -> None:
    from maskrnn_tf.flag_validation import register_numeric_validator

    register_numeric_validator("processes", minimum=0, hint="0 = one per CPU")


def main(argv: List[str]) -> int:
    del argv
    from maskrnn_tf.io import ImageReadError
    from maskrnn_tf.metrics import EvaluationConfig, EvaluationInputError, evaluate_dataset, format_results
    from maskrnn_tf.flag_validation import expand_user_paths
    from maskrnn_tf.metrics import write_reports
    from maskrnn_tf.metrics.davis_dataset import check_outside_dataset, resolve_davis_root
    from maskrnn_tf.metrics.report import check_report_location
    from maskrnn_tf.metrics.segtrack_evaluation import SPLIT_NAME, evaluate_segtrack

    expand_user_paths(("davis_root", "segtrack_root", "results", "output_dir"))

    if bool(FLAGS.davis_root) == bool(FLAGS.segtrack_root) or not FLAGS.results:
        print("error: --results and exactly one of --davis_root or --segtrack_root are required.", file=sys.stderr)
        return 2
    if FLAGS["sequences"].present and not FLAGS.sequences:  # an empty shell variable, say: as segment refuses it
        print("error: --sequences is empty: name the sequences to score, or leave it out for the whole split.",
              file=sys.stderr)
        return 2
    if FLAGS.segtrack_root:
        davis_only = [f"--{name}" for name in ("split", "year", "t") if FLAGS[name].present]
        if davis_only:
            print(f"error: {', '.join(davis_only)} apply to DAVIS only; SegTrack v2 has no split and no T "
                  "(drop them with --segtrack_root).", file=sys.stderr)
            return 2
    config = EvaluationConfig(
        split=FLAGS.split,
        year=int(FLAGS.year) if FLAGS.year else None,
        sequences=tuple(FLAGS.sequences) if FLAGS["sequences"].present else None,
        processes=FLAGS.processes if FLAGS.processes > 0 else (os.cpu_count() or 1),
        skip_first_last=not FLAGS.all_frames,
        exclude_void=FLAGS.exclude_void,
        compute_t={"auto": None, "on": True, "off": False}[FLAGS.t],
    )
    report_dir = FLAGS.output_dir or FLAGS.results
    report_flag = "--output_dir" if FLAGS.output_dir else "--results"
    try:
        # Before the scoring, which may take minutes: a report location that cannot be written would lose them.
        check_report_location(FLAGS.output_dir, FLAGS.results, SPLIT_NAME if FLAGS.segtrack_root else config.split)
        if FLAGS.segtrack_root:
            results = evaluate_segtrack(FLAGS.segtrack_root, FLAGS.results, config.sequences, FLAGS.all_frames,
                                        config.processes)
        else:
            # Before the scoring too: reports may not go in among the dataset's files
            # (evaluate_dataset refuses such a --results itself).
            if FLAGS.output_dir:
                check_outside_dataset(resolve_davis_root(FLAGS.davis_root, config.year, config.resolution),
                                      FLAGS.output_dir, "--output_dir", "the reports would be written in among "
                                      "the dataset's files; give another --output_dir")
            results = evaluate_dataset(FLAGS.davis_root, FLAGS.results, config)
    except (EvaluationInputError, ImageReadError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2  # the DAVIS root or the results are not what the flags say: a usage error
    try:
        paths = write_reports(results, report_dir, FLAGS.results, FLAGS.overwrite)
    except EvaluationInputError as err:  # CSVs it may not replace in the way: the scores are still shown
        print(format_results(results))
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # checked writable before the scoring, yet failing (a full disk, a folder in the way)
        print(format_results(results))
        reason = err.strerror or str(err)
        if err.strerror and err.filename2:  # a rename's target, not the hidden temporary file it came from
            reason += f": {err.filename2}"
        print(f"error: {report_flag} {report_dir}: the score CSVs could not be written there ({reason}); "
              f"{_console.os_error_hint(err.errno)}, or give a writable --output_dir (the scores above are not "
              "saved).", file=sys.stderr)
        return 2
    print(format_results(results))
    print("\nwrote " + ", ".join(paths))
    return 0


if __name__ == "__main__":
    _console.quiet_startup()
    from maskrnn_tf.flag_validation import parse_flags_or_exit

    define_flags()
    app.run(main, flags_parser=parse_flags_or_exit)
