r"""Online finetuning table: scored segment runs of one network side by side (J, F and time per sequence).

    python -m maskrnn_tf.finetune_table --results=none=results/ft_none,static=results/ft_static,\
recurrent=results/ft_recurrent [--split=val] [--output=table.md [--overwrite]]

Each folder is a `python -m maskrnn_tf.segment --davis_root=...` run scored by `python -m maskrnn_tf.evaluate`.
Bad input (a folder not scored, not written by segment; an --output file that exists, without --overwrite)
prints one line and exits with status 2.
"""
from __future__ import annotations

import os
import sys

from absl import app, flags

from maskrnn_tf.flag_validation import defined_once

FLAGS = flags.FLAGS


@defined_once
def define_flags() -> None:
    """finetune_table's flags and their checks (see defined_once)."""
    flags.DEFINE_list("results", None, "LABEL=FOLDER (or FOLDER, labelled by its name), comma-separated, in column "
                      "order.")
    flags.DEFINE_string("split", "val", "The split the folders were scored on (per-sequence_results-<split>.csv).")
    flags.DEFINE_string("output", None, "Also write the table to this markdown file (refused if it exists, unless "
                        "--overwrite).")
    flags.DEFINE_bool("overwrite", False, "Replace an existing --output file.")
    flags.mark_flag_as_required("results")


def main(argv) -> int:
    del argv
    from maskrnn_tf.experiments.finetune_comparison import ComparisonInputError, compare, parse_labelled

    if FLAGS.output and os.path.isdir(FLAGS.output):
        print(f"Error: --output={FLAGS.output} is a folder; name the markdown file to write.", file=sys.stderr)
        return 2
    if FLAGS.output and os.path.lexists(FLAGS.output) and not FLAGS.overwrite:
        print(f"Error: --output={FLAGS.output} exists; choose another file, or pass --overwrite to replace it.",
              file=sys.stderr)
        return 2
    try:
        _, table = compare(parse_labelled(FLAGS.results), FLAGS.split)
    except (ComparisonInputError, OSError, ValueError, KeyError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 2
    print(table, end="")
    if FLAGS.output:
        from maskrnn_tf.io.atomic_file import atomic_write

        def write(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(table)

        atomic_write(FLAGS.output, write)
    return 0


if __name__ == "__main__":
    from maskrnn_tf.flag_validation import parse_flags_or_exit

    define_flags()
    app.run(main, flags_parser=parse_flags_or_exit)
