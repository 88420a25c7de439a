"""An output folder that appears only when complete: written under a temporary name, then renamed."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator


class OutputExistsError(FileExistsError):
    """The output folder exists and overwriting was not asked for."""


def check_output_dir(path: str, overwrite: bool) -> None:
    """Raises OutputExistsError when `path` exists and `overwrite` is False."""
    if os.path.exists(path) and not overwrite:
        raise OutputExistsError(
            f"{path}: output folder already exists; choose another --output or pass --overwrite to replace it."
        )


@contextlib.contextmanager
def atomic_output_dir(path: str, overwrite: bool = False) -> Iterator[str]:
    """Yields a temporary folder beside `path`; on success it replaces `path`, on an exception it is deleted.

    An existing `path` is refused unless `overwrite`; when overwriting, the old folder is removed only after
    the new one is complete.
    """
    path = os.path.abspath(path)
    check_output_dir(path, overwrite)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(path)}.tmp-")
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if os.path.exists(path):
        check_output_dir(path, overwrite)  # it may have appeared while we were writing
        old = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(path)}.old-")
        os.replace(path, os.path.join(old, "previous"))
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
