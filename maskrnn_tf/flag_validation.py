"""Bounds checks for numeric command-line flags, shared by the CLIs.

`numeric_problem` says what is wrong with one value (None when it is fine); `register_numeric_validator`
attaches that check to an absl flag so a bad value stops the program while the flags are parsed, before any
work starts; `parse_flags_or_exit` is an `app.run(..., flags_parser=...)` that exits with status 2 (usage
error) instead of absl's 1, naming the flag, and refuses plain arguments (no binary takes one). NaN and
infinities are refused everywhere: no flag of this project means anything with them, and comparisons with NaN
are always false, so plain bounds let NaN through.
"""
from __future__ import annotations

import math
import os
import sys
import textwrap
from typing import Callable, List, Optional, Sequence, Tuple

from absl import flags

USAGE_EXIT_CODE = 2

# The smallest frame side the network takes: VGG-16's conv5 stage sees 1/16 of it, and below 32 pixels the
# pooling stages and the localization head's crops fail inside TensorFlow with a traceback.
MIN_FRAME_SIDE = 32
# segment --finetune_check_frames's default (here, where the binaries and the experiment drivers read it without
# TensorFlow): 10 frames forward and back cost about 6 s per video and check (twice) at 243x432 on 2 cores.
FINETUNE_CHECK_FRAMES = 10
# segment --flow's backends (`maskrnn_tf.data.flow_backends.FRAME_FLOWS` and "flo", the .flo files of --flo_dir).
FLOW_BACKENDS = ("dis", "dis-medium", "dis-fast", "dis-ultrafast", "farneback", "flo")
# segment --finetune_layers's values (`maskrnn_tf.inference.finetune_layers`), from most to fewest weights updated.
FINETUNE_LAYERS = ("all", "block5", "heads")
# segment --finetune_layers=auto (its default), per finetuning mode: recurrent finetuning updates the layers above
# the trunks, which lost less than all weights held out on two trainings of the colour-prior recipe (docs/RESULTS.md,
# "Finetuning the layers above the trunks" and "The layers above the trunks on a second network"); static
# finetuning, the paper's procedure, all of them.
AUTO_FINETUNE_LAYERS = {"recurrent": "heads", "static": "all"}


def resolve_finetune_layers(layers: str, mode: str) -> str:
    """The FINETUNE_LAYERS value `layers` ('auto' or one of them) means for finetuning `mode` (static or
    recurrent)."""
    return AUTO_FINETUNE_LAYERS[mode] if layers == "auto" else layers


# A model name as TF-Serving's REST URLs (/v1/models/<name>) and a shell (the printed docker and model-server
# commands) take it as it is.
MODEL_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]*"


def register_model_name_validator(name: str = "model_name", flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Refuses (a usage error naming the flag) a model name outside MODEL_NAME_PATTERN."""
    import re

    flags.register_validator(
        name, lambda value: value is not None and re.fullmatch(MODEL_NAME_PATTERN, value) is not None,
        message="must be letters, digits, '.', '_' or '-' (starting with a letter or digit): the name goes into "
                "the model server's URLs and the printed shell commands as it is", flag_values=flag_values)


def numeric_problem(value: Optional[float], *, minimum: Optional[float] = None, maximum: Optional[float] = None,
                    above: Optional[float] = None, below: Optional[float] = None,
                    zero_or_at_least: Optional[float] = None, allow_none: bool = True) -> Optional[str]:
    """What is wrong with `value` for the bounds (None when it is fine).

    minimum/maximum are inclusive bounds, above/below exclusive ones, `zero_or_at_least` allows 0 or values
    from it up (0 meaning "off"); every value must be finite.
    """
    if value is None:
        return None if allow_none else "a value is required"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be a number, got {type(value).__name__}"
    if not math.isfinite(value):
        return "must be a finite number"
    if zero_or_at_least is not None and value != 0 and value < zero_or_at_least:
        return f"must be 0 or >= {zero_or_at_least:g}"
    parts = []
    if minimum is not None:
        parts.append(f">= {minimum:g}")
    if above is not None:
        parts.append(f"> {above:g}")
    if maximum is not None:
        parts.append(f"<= {maximum:g}")
    if below is not None:
        parts.append(f"< {below:g}")
    ok = ((minimum is None or value >= minimum) and (above is None or value > above)
          and (maximum is None or value <= maximum) and (below is None or value < below))
    return None if ok else "must be " + " and ".join(parts)


def check_numeric(name: str, value: Optional[float], hint: str = "", **bounds) -> None:
    """Raises ValueError naming `--name=value` when the value breaks the bounds of `numeric_problem`."""
    problem = numeric_problem(value, **bounds)
    if problem is not None:
        raise ValueError(f"--{name}={value}: {problem}" + (f" ({hint})" if hint else "") + ".")


def register_numeric_validator(name: str, *, hint: str = "", flag_values: flags.FlagValues = flags.FLAGS,
                               **bounds) -> None:
    """Checks flag `name` against the bounds of `numeric_problem` at parse time (None, its unset default,
    passes unless allow_none=False)."""

    def checker(value) -> bool:
        problem = numeric_problem(value, **bounds)
        if problem is not None:
            raise flags.ValidationError(f"{problem}" + (f" ({hint})" if hint else ""))
        return True

    flags.register_validator(name, checker, flag_values=flag_values)


def expand_user_paths(names: Sequence[str], flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Expands a leading `~` in the named path flags: the shell expands it only at the start of a word, so
    `--output=~/results` would otherwise make a folder named `~` in the working directory."""
    import os

    for name in names:
        value = flag_values[name].value
        if isinstance(value, list):  # a list flag (comma-separated paths)
            flag_values[name].value = [os.path.expanduser(item) for item in value]
        elif value:
            flag_values[name].value = os.path.expanduser(value)


def parse_flags_or_exit(argv: Sequence[str], flag_values: flags.FlagValues = flags.FLAGS,
                        stderr: Callable[[str], object] = sys.stderr.write) -> List[str]:
    """Parses the flags; on a bad one prints absl's message (it names the flag and value) and exits with 2.

    No binary takes plain arguments: a leftover one is most often a flag file line written without its dashes
    (`max_size=64`), which absl passes through as an argument; it is refused by name, with the flag spelling to
    use, instead of the run going on with that flag at its default. A flag file that is not UTF-8 text (absl lets
    the UnicodeDecodeError through) is named, also one another flag file includes, with exit 2. Returns [argv[0]].
    """
    try:
        rest = flag_values(list(argv))
    except UnicodeDecodeError as error:  # absl reads flag files as text and lets a decoding error through
        stderr(f"error: {undecodable_flag_file_message(argv, error)}\n")
        sys.exit(USAGE_EXIT_CODE)
    except flags.Error as error:
        message = str(error)
        if _relative_flag_file_not_found(error):
            # absl reads a --flagfile line inside a flag file relative to the working directory, not to that file.
            message += (f"\nA relative --flagfile path, also one inside a flag file, is read from the working "
                        f"directory ({os.getcwd()}): run from the folder it is relative to (the repository root for "
                        "the shipped flag files), or give an absolute path.")
        if "\n" in message:
            message = "\n" + textwrap.indent(message, "  ")
        stderr(f"error: {message}\nPass --helpshort or --helpfull to see help on flags.\n")
        sys.exit(USAGE_EXIT_CODE)
    extras = rest[1:]
    if extras:
        names = ", ".join(repr(arg) for arg in extras)
        meant = ", ".join(arg if arg.startswith("-") else f"--{arg}" for arg in extras)
        stderr(f"error: unexpected argument{'s' if len(extras) > 1 else ''} {names}: this program takes flags "
               f"only. If you meant {meant}, write it so (in a flag file too, every line starts with --).\n")
        sys.exit(USAGE_EXIT_CODE)
    return rest


def _relative_flag_file_not_found(error: flags.Error) -> bool:
    """Whether absl could not open a flag file because a relative path of it names nothing: the one failure that
    reading relative paths from the working directory can cause (not a missing absolute path, nor a folder)."""
    cause = error.__context__  # absl raises CantOpenFlagFileError while handling open()'s OSError
    return (isinstance(error, flags.CantOpenFlagFileError) and isinstance(cause, FileNotFoundError)
            and isinstance(cause.filename, str) and not os.path.isabs(cause.filename))


def command_line_flagfiles(argv: Sequence[str]) -> List[str]:
    """The --flagfile values given on the command line `argv` (argv[0] is the program; nested ones not included):
    `--flagfile=F`, `--flagfile F`, one dash too, up to a `--`, as absl takes them."""
    found: List[str] = []
    args = iter(argv[1:])
    for arg in args:
        if arg == "--":
            break
        name, eq, value = arg.lstrip("-").partition("=")
        if arg.startswith("-") and name == "flagfile":
            found.append(value if eq else next(args, ""))
    return found


def _find_undecodable(names: Sequence[str], encoding: str, seen: Optional[List[str]] = None,
                      includer: Optional[str] = None) -> Optional[Tuple[str, Optional[str], UnicodeDecodeError]]:
    """(path, the flag file including it or None, error) of the first flag file among `names`, or the flag files
    they include, that is not `encoding` text; None when all of them decode (or cannot be read, which absl reports
    itself). Follows absl's reading: a line starting with --flagfile= includes that file, relative paths from the
    working directory."""
    seen = [] if seen is None else seen
    for name in names:
        if not name or name in seen:  # absl skips empty names and circular includes
            continue
        seen.append(name)
        try:
            with open(name, "rb") as f:
                data = f.read()
        except OSError:
            continue
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as error:
            return name, includer, error
        nested = [os.path.expanduser(line.split("=", 1)[1].strip()) for line in text.splitlines()
                  if line.startswith(("--flagfile=", "-flagfile="))]
        found = _find_undecodable(nested, encoding, seen, name)
        if found:
            return found
    return None


def defined_once(define: Callable[[], None]) -> Callable[[], None]:
    """A binary's `define_flags`, run once whatever the calls: its entry point calls it, not the import (binaries
    share flag names, and a library user may import several of them)."""
    done: List[bool] = []

    def once() -> None:
        if not done:
            define()
            done.append(True)  # after: a definition that raised is not taken for done

    once.__doc__, once.__name__ = define.__doc__, define.__name__
    return once


def undecodable_flag_file_message(argv: Sequence[str], error: UnicodeDecodeError) -> str:
    """What is wrong for a flag file absl could not decode: the file (found by reading the given flag files and
    those they include, as absl does), the byte and its line, and what to do."""
    encoding = error.encoding or "utf-8"
    names = [os.path.expanduser(name.strip()) for name in command_line_flagfiles(argv)]
    found = _find_undecodable(names, encoding)
    is_utf8 = encoding.lower().replace("-", "").replace("_", "") == "utf8"
    what = "UTF-8" if is_utf8 else f"{encoding} (the locale's encoding, which absl reads flag files in)"
    if found:
        path, includer, bad = found
        line = bad.object.count(b"\n", 0, bad.start) + 1
        byte = bad.object[bad.start:bad.start + 1].hex()
        where = path if includer is None else f"{path} (included by {includer})"
        detail = f"byte 0x{byte} on line {line}: {bad.reason}"
    else:  # the file changed since absl read it, or the error came from elsewhere: name what was given
        where = ", ".join(names) + " or a flag file it includes" if names else "a flag file"
        detail = str(error)
    fix = "save it as UTF-8" if is_utf8 else f"save it as {encoding}, or run with a UTF-8 locale (LC_ALL=C.UTF-8)"
    return f"{where}: not {what} text ({detail}); {fix}."


def one_line_usage_errors(main: Callable[[List[str]], int], prefix: str = "error: ") -> Callable[[List[str]], int]:
    """`main` for `app.run`: an `app.UsageError` it raises (a flag combination it cannot run, an input it will not
    take) printed as one line, `prefix` + message, exiting with the error's code. absl prints such an error below
    the usage text, the binary's docstring and every flag of its module (about 200 lines for segment), which hides
    the one line that matters. In-process callers call `main` itself and see the exception."""
    from absl import app

    def run(argv: List[str]) -> int:
        try:
            return main(argv)
        except app.UsageError as error:
            print(f"{prefix}{error}", file=sys.stderr)
            return error.exitcode
    return run
