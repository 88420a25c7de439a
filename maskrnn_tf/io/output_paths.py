"""Output paths checked before any work: never overlapping an input (a link counts as what it points to), and
creatable by this user where they are. Without TensorFlow, for every CLI (segment's results folder, the flow
CLI's cache folder)."""
from __future__ import annotations

import os
from typing import Optional, Sequence, Tuple


class UnsafeOutputError(ValueError):
    """An output path is, contains or lies inside an input: writing it could destroy the input."""


class UnwritableOutputError(ValueError):
    """An output path cannot be created: a file stands where a folder is needed, or its folder is not writable."""


def check_writable_location(path: str, flag: str = "--output") -> None:
    """Raises UnwritableOutputError unless `path` can be created (or replaced) in its folder: the nearest
    existing folder above it must be a folder this process may write into. Checked before any work, so that a
    bad location is not found only after the model loaded and finetuned."""
    ancestor = os.path.dirname(os.path.abspath(os.fspath(path)))
    while not os.path.lexists(ancestor):  # the folders still missing are made inside the nearest existing one
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        dangling = os.path.islink(ancestor) and not os.path.exists(ancestor)
        what, thing = ("a link to nothing", "link") if dangling else (
            ("a link to a file", "link") if os.path.islink(ancestor) else ("a file", "file"))
        raise UnwritableOutputError(
            f"{flag} {path}: {ancestor} is {what}, not a folder, so nothing can be written under it. Choose another "
            f"{flag} in a folder (or move that {thing} away).")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        if hasattr(os, "statvfs") and os.statvfs(ancestor).f_flag & os.ST_RDONLY:  # no permission change helps
            raise UnwritableOutputError(f"{flag} {path}: the folder {ancestor} is on a read-only file system. Choose "
                                        f"another {flag} on a writable disk.")
        raise UnwritableOutputError(
            f"{flag} {path}: the folder {ancestor} cannot be written by this user. Choose another {flag} in a folder "
            "you may write into (or change that folder's permissions).")


def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(os.fspath(path)))


def check_no_overlap(output: str, inputs: Sequence[Tuple[str, Optional[str]]], output_flag: str = "--output") -> None:
    """Raises UnsafeOutputError when `output` is, contains or lies inside one of the `(flag, path)` inputs.

    Symbolic links are resolved, so a link to the frames folder counts as the frames folder.
    """
    target = _real(output)
    for flag, path in inputs:
        if not path:
            continue
        source = _real(path)
        if target == source:
            relation = "is"
        elif source.startswith(target.rstrip(os.sep) + os.sep):
            relation = "contains"
        elif target.startswith(source.rstrip(os.sep) + os.sep):
            relation = "lies inside"
        else:
            continue
        raise UnsafeOutputError(
            f"{output_flag} {output} {relation} the input {flag} {path}: writing (or replacing) it could destroy "
            f"the input. Choose an {output_flag} outside every input, e.g. a new folder beside them."
        )
