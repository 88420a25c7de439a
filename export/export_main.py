r"""Export a trained MaskRNN as a TF-Serving version.

  python -m maskrnn_tf.export.export_main --model=runs/demo --export_base=exports/maskrnn \
      --version=1 [--precision=float32|bfloat16|float16|auto] [--overwrite]

Writes <export_base>/<version>/ (saved_model.pb, variables/, assets.extra/) atomically, audits its ops and
prints the tensorflow_model_server command that serves it.
"""
from __future__ import annotations

import os
import sys

from absl import app, flags

from maskrnn_tf import _console
from maskrnn_tf.flag_validation import defined_once

FLAGS = flags.FLAGS


@defined_once
def define_flags() -> None:
    """export_main's flags and their checks (see defined_once)."""
    flags.DEFINE_string("model", None, "Trained model: model.keras, or the run folder holding it (or its "
                        "checkpoints).")
    flags.DEFINE_string("export_base", None, "Model base path polled by tensorflow_model_server.")
    flags.DEFINE_integer("version", None, "Version number (the folder name; 1 to 2**63 - 1, as TF-Serving reads it).")
    flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16", "float16", "auto"], "Compute precision of the "
                      "exported graph. auto: what this machine would use (float16 with a GPU, bfloat16 on a CPU "
                      "with amx_bf16 or avx512_bf16 where it measures faster, else float32); choose explicitly when "
                      "the server runs on other hardware.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing version (only one an earlier export wrote) instead "
                      "of refusing.")
    flags.DEFINE_bool("batching", False, "Export for a model server with --enable_batching: only the step_batched "
                      "signature (the server batches every signature of a model; the per-video ones cannot be "
                      "batched).")
    flags.DEFINE_integer("max_batch_size", None, "With --batching: the max_batch_size of the batching parameters "
                         "file your model server runs with (default: the shipped export/batching_parameters.txt's); "
                         "warmup shapes with more objects are refused, as the server would refuse the version.",
                         lower_bound=1)
    flags.DEFINE_string("model_name", "maskrnn", "Model name used in the warmup requests and printed commands.")
    flags.DEFINE_list("warmup_shapes", ["96x128x1", "96x128x2"], "Warmup requests, HEIGHTxWIDTHxOBJECTS each; empty "
                      "for none.")
    _register_validators()


def main(argv) -> int:
    del argv
    from maskrnn_tf.flag_validation import expand_user_paths

    expand_user_paths(("model", "export_base"))  # the shell leaves ~ after '=' alone
    if FLAGS.export_base and FLAGS.export_base.startswith("file://"):  # TensorFlow's spelling of a local folder
        FLAGS.export_base = FLAGS.export_base[len("file://"):]
    for name in ("model", "export_base", "version"):
        if getattr(FLAGS, name) is None:
            print(f"--{name} is required (see --helpfull).", file=sys.stderr)
            return 2
        if getattr(FLAGS, name) == "":  # e.g. --export_base=$BASE with BASE unset
            print(f"--{name} is empty: give a path (an unset shell variable?).", file=sys.stderr)
            return 2
    if FLAGS.max_batch_size is not None and not FLAGS.batching:
        print("--max_batch_size applies to a --batching export (the batching server's limit); add --batching or "
              "leave it out.", file=sys.stderr)
        return 2
    _console.import_tensorflow_quietly()
    import tensorflow as tf

    from maskrnn_tf.export.batching_check import check_batching_warmup_shapes
    from maskrnn_tf.export.saved_model_export import (ExportConfig, ExportError, ExportUsageError, export_saved_model,
                                                      unserved_notice)
    from maskrnn_tf.export.serving_commands import serving_commands
    from maskrnn_tf.export.warmup import WarmupConfig, shapes_from_strings
    from maskrnn_tf.training.precision import describe_precision, resolve_precision

    precision = resolve_precision(FLAGS.precision)
    if FLAGS.precision == "auto":
        print(describe_precision(FLAGS.precision, precision), flush=True)
    try:
        shapes = shapes_from_strings(FLAGS.warmup_shapes)
        warmup = WarmupConfig(shapes=shapes) if shapes else None
        if FLAGS.batching and warmup is not None:  # ExportConfig checks it too; here it is a usage error
            check_batching_warmup_shapes(warmup.shapes, FLAGS.max_batch_size)
    except ValueError as e:
        print(f"--warmup_shapes: {e}", file=sys.stderr)
        return 2
    try:
        config = ExportConfig(
            precision=precision,
            overwrite=FLAGS.overwrite,
            model_name=FLAGS.model_name,
            warmup=warmup,
            batching=FLAGS.batching,
            max_batch_size=FLAGS.max_batch_size,
        )
        path = export_saved_model(FLAGS.model, FLAGS.export_base, FLAGS.version, config)
    except ExportUsageError as e:  # refused before anything was written: a usage error, as a bad flag value
        print(e, file=sys.stderr)
        return 2
    except (ExportError, ValueError) as e:
        print(f"export failed: {e}", file=sys.stderr)
        return 1
    except (OSError, tf.errors.OpError) as e:  # no version was left: the export writes a temporary folder
        from maskrnn_tf.export.write_failure import write_failure_line

        print(f"export failed: {write_failure_line(e, FLAGS.export_base)}", file=sys.stderr)
        return 1
    print(f"Exported {FLAGS.model} ({precision}) to {path}")
    notice = unserved_notice(FLAGS.export_base, FLAGS.version)
    if notice:
        print(notice, file=sys.stderr)
    print(serving_commands(os.path.abspath(FLAGS.export_base), FLAGS.model_name, batching=FLAGS.batching,
                           max_batch_size=FLAGS.max_batch_size))
    return 0


def _register_validators() -> None:
    from maskrnn_tf.export.versions import MAX_VERSION
    from maskrnn_tf.flag_validation import register_model_name_validator

    register_model_name_validator()
    # Checked while the flags are parsed, as every other bad flag value (exit 2); export_saved_model checks it too,
    # but only after TensorFlow has loaded, as an export failure (exit 1). Not register_numeric_validator: its
    # message prints the bound as 9.22337e+18, which reads as if 2**63 - 1 itself were refused.
    flags.register_validator(
        "version", lambda value: value is None or 1 <= value <= MAX_VERSION,
        message=f"must be 1 to {MAX_VERSION}: it names the version folder, which TF-Serving reads as an int64")


if __name__ == "__main__":
    _console.quiet_startup()
    from maskrnn_tf.flag_validation import parse_flags_or_exit

    define_flags()
    app.run(main, flags_parser=parse_flags_or_exit)
