"""A quiet console for the command-line programs: TensorFlow's C++ start-up messages are hidden by default.

Importing TensorFlow prints, from C++ and before any Python logging is set up, lines that say nothing to a
user: absl's "All log messages before absl::InitializeLog() is called are written to STDERR", "Could not find
cuda drivers on your machine, GPU will not be used" (CPU machines), "failed call to cuInit" (a CUDA build
without a GPU), oneDNN's "custom operations are on" notice, the CPU-instructions note. TF_CPP_MIN_LOG_LEVEL
hides only some of them (absl's own messages ignore it), so `import_tensorflow_quietly` also captures file
descriptor 2 while TensorFlow loads and finds its devices, and writes back every captured line that is not
one of these.

Every CLI calls `quiet_startup(argv)` first (before anything imports TensorFlow) and, when it needs
TensorFlow, `import_tensorflow_quietly()` before its first TensorFlow import. Nothing is hidden when the
command line sets absl's `--verbosity` (or `-v`), or when MASKRNN_TF_VERBOSE=1; a TF_CPP_MIN_LOG_LEVEL the
user set is kept.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import sys
import tempfile
from typing import Iterator, Optional, Sequence

VERBOSE_ENV = "MASKRNN_TF_VERBOSE"
# Start-up lines that are noise for users (matched anywhere in a line of stderr).
NOISE = re.compile(
    "|".join(
        [
            r"All log messages before absl::InitializeLog\(\) is called are written to STDERR",
            r"Could not find cuda drivers on your machine",
            r"failed call to cuInit",
            r"oneDNN custom operations are on",
            r"cpu_feature_guard\.cc",
            r"^To enable the following instructions: .* rebuild TensorFlow",
            r"Unable to register cu(DNN|FFT|BLAS) factory",
            r"computation placer already registered",
            r"TF-TRT Warning: Could not find TensorRT",
        ]
    )
)
_state = {"quiet": False}


def verbose_requested(argv: Sequence[str]) -> bool:
    """True when the command line asks for absl's --verbosity (-v) or MASKRNN_TF_VERBOSE is set to a true value."""
    if os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    for arg in argv[1:]:
        if arg == "--":
            break
        name = arg.lstrip("-").split("=", 1)[0]
        if arg.startswith("-") and name in ("verbosity", "v"):
            return True
    return False


class _PlainFormatter(logging.Formatter):
    """'warning: message' (the level in lower case, as the CLIs print their own notes)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {super().format(record)}"


def quiet_startup(argv: Optional[Sequence[str]] = None) -> bool:
    """Sets the console defaults for this process and the programs it starts; returns True when quiet.

    Call first in a CLI's entry point, before TensorFlow is imported. Quiet: TF_CPP_MIN_LOG_LEVEL=2
    (TensorFlow's INFO and WARNING lines off) unless the user set it. Verbose: MASKRNN_TF_VERBOSE=1, so that
    the CLIs this one runs (the demo's, the ablation's) are verbose too.
    """
    quiet = not verbose_requested(sys.argv if argv is None else argv)
    _state["quiet"] = quiet
    if quiet:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # The library's warnings (a removed temporary folder, skipped files) as the CLIs' own lines read, without
        # absl's "W1207 04:00:00.123456 12345 file.py:230]" prefix; --verbosity keeps absl's format.
        from absl import logging as absl_logging

        absl_logging.get_absl_handler().setFormatter(_PlainFormatter("%(message)s"))
    else:
        os.environ[VERBOSE_ENV] = "1"
    return quiet


def is_noise(line: str) -> bool:
    """True for a TensorFlow start-up line that quiet mode drops."""
    return bool(NOISE.search(line))


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Captures file descriptor 2 (C++ and Python writes alike) and, on exit, writes the captured lines that are
    not start-up noise back to it, in order."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            kept = "".join(line for line in text.splitlines(keepends=True) if not is_noise(line))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow and lets it find its devices (where cuInit runs) with the start-up noise dropped, and
    keeps absl's (so TensorFlow's Python) INFO lines off the console.

    Does nothing in verbose mode (`quiet_startup` not called or verbosity asked for); imports nothing when
    TensorFlow was imported already.
    """
    if not _state["quiet"]:
        return
    # TensorFlow's Python side logs INFO lines through absl (the SavedModel writer's "Assets written to", the
    # saver's "Sharding callback duration", ...): quiet keeps WARNING and above, --verbosity keeps them all.
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.WARNING)
    if "tensorflow" in sys.modules:
        return
    with filtered_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices()


# What to do about a raw OS error, by its errno (the up-front checks catch the common cases with their own words).
_OS_ERROR_HINTS = {
    errno.EACCES: "this user may not write or read there: choose a location you may use, or change its permissions",
    errno.EPERM: "this user may not write or read there: choose a location you may use, or change its permissions",
    errno.EROFS: "that file system is read-only: choose a location on a writable disk",
    errno.ENOSPC: "the disk is full: free some space or choose a location on another disk",
    errno.EDQUOT: "the disk quota is used up: free some space or choose a location on another disk",
    errno.EEXIST: "a file stands where a folder is needed: choose another path or move that file away",
    errno.ENOTDIR: "a file stands where a folder is needed: choose another path or move that file away",
    errno.ENOENT: "check that the path exists",
}


def os_error_hint(code: Optional[int]) -> str:
    """What to do about an OS error of errno `code` (None or one without advice: check the path and its disk)."""
    return _OS_ERROR_HINTS.get(code, "check that path and the disk it is on, then rerun")


def os_error_line(err: OSError) -> str:
    """A raw OS error as one line, path first, with what to do (not Python's "[Errno 13] ..."); the project's
    own OSErrors (no file name attached) already say all of it."""
    if err.filename is None or not err.strerror:
        return str(err)
    path = err.filename if err.filename2 is None else f"{err.filename} -> {err.filename2}"
    hint = os_error_hint(err.errno)
    return f"{path}: {err.strerror}; {hint}."


def tensorboard_command(logdir: str) -> str:
    """The command that shows `logdir` in TensorBoard, runnable as printed: the `tensorboard` script beside this
    Python when it has one (a venv, `make demo`'s `.venv`, that no one activated), else `tensorboard`."""
    import shlex

    beside = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    program = beside if os.path.isfile(beside) and os.access(beside, os.X_OK) else "tensorboard"
    return f"{shlex.quote(program)} --logdir {shlex.quote(logdir)}"
