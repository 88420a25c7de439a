"""Hidden temporary folders that name their owner, so the leftovers of killed runs can be found and removed.

A folder made by `make_owned_tmp_dir(parent, prefix)` is called `<prefix><pid>@<host>-<random>`. A run that
is killed (SIGKILL, power loss) cannot delete its own temporary folder; the next run calls
`clean_stale_tmp_dirs(parent, prefix)`, which removes those whose process no longer runs on this host and
leaves alone the folders of live processes, of other hosts (a shared file system) and of unknown owners.

`replace_dir` publishes a complete folder in place of an existing one by renames, moving the old one into
such an owned folder first; `restore_interrupted_replace` puts it back when its run died between the renames.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
from typing import Iterator, List

from maskrnn_tf.io.file_modes import apply_umask


def _host() -> str:
    # '/' cannot appear in a file name; '-' separates the random suffix, which never contains one.
    return socket.gethostname().replace(os.sep, "_") or "localhost"


def make_owned_tmp_dir(parent: str | os.PathLike, prefix: str) -> str:
    """Creates `<parent>/<prefix><pid>@<host>-<random>` (mode from the umask) and returns its path."""
    path = tempfile.mkdtemp(dir=os.fspath(parent), prefix=f"{prefix}{os.getpid()}@{_host()}-")
    apply_umask(path)
    return path


def make_owned_tmp_file(parent: str | os.PathLike, prefix: str, suffix: str = "") -> str:
    """Creates the empty file `<parent>/<prefix><pid>@<host>-<random><suffix>` and returns its path."""
    fd, path = tempfile.mkstemp(dir=os.fspath(parent), prefix=f"{prefix}{os.getpid()}@{_host()}-", suffix=suffix)
    os.close(fd)
    return path


def pid_alive(pid: int) -> bool:
    """True when a process with this id runs on this host (or may: we lack the right to signal it)."""
    if pid <= 0:
        return True  # not a pid we wrote: never treat as dead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_tmp_dirs(parent: str | os.PathLike, prefix: str) -> List[str]:
    """The `<prefix><pid>@<host>-*` entries of `parent` left by processes of this host that no longer run."""
    parent = os.fspath(parent)
    try:
        names = os.listdir(parent)
    except (FileNotFoundError, NotADirectoryError):
        return []
    pattern = re.compile(re.escape(prefix) + r"(\d+)@(.+)-[^-]+$")  # the random part (and suffix) has no '-'
    host, stale = _host(), []
    for name in sorted(names):
        match = pattern.match(name)
        if match and match.group(2) == host and int(match.group(1)) != os.getpid() \
                and not pid_alive(int(match.group(1))):
            stale.append(os.path.join(parent, name))
    return stale


def clean_stale_tmp_dirs(parent: str | os.PathLike, prefix: str) -> List[str]:
    """Removes the stale temporary folders (or files) of `stale_tmp_dirs`; returns the paths removed."""
    removed = []
    for path in stale_tmp_dirs(parent, prefix):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        if not os.path.lexists(path):
            removed.append(path)
    return removed


_PREVIOUS = "previous"  # the replaced folder, inside its owned holder, until the new one is in place
_REPLACED = "replaced"  # ... and once it is: never restored, only removed


def replace_dir(new: str, final: str, old_prefix: str) -> bool:
    """Renames the complete folder `new` to `final`; returns whether an existing `final` was replaced.

    An existing `final` is first renamed into `<old_prefix><pid>@<host>-*/previous` beside it and removed only
    once `new` is in place, so no failure loses both. A run killed between the two renames leaves `final`
    missing and the old folder in its holder: `restore_interrupted_replace` (called by the next run) puts it back.
    """
    if not os.path.lexists(final):
        os.rename(new, final)
        return False
    holder = make_owned_tmp_dir(os.path.dirname(os.path.abspath(final)), old_prefix)
    previous = os.path.join(holder, _PREVIOUS)
    os.rename(final, previous)
    try:
        os.rename(new, final)
    except BaseException:
        os.rename(previous, final)
        os.rmdir(holder)
        raise
    os.rename(previous, os.path.join(holder, _REPLACED))  # from here a partial deletion is never restored
    shutil.rmtree(holder, ignore_errors=True)
    return True


def restore_interrupted_replace(parent: str | os.PathLike, old_prefix: str, final: str) -> List[str]:
    """Repairs what `replace_dir` runs killed on this host left in `parent` under `old_prefix`: a replaced
    folder whose successor never arrived goes back to `final` (when nothing has taken that name since); every
    other leftover is removed. Returns one message per leftover ("restored ..." or "removed ...")."""
    notes = []
    for holder in stale_tmp_dirs(parent, old_prefix):
        previous = os.path.join(holder, _PREVIOUS)
        if os.path.isdir(previous) and not os.path.lexists(final):
            os.rename(previous, final)
            notes.append(f"restored {final} from {holder}, where a run killed while replacing it had moved it")
        else:
            notes.append(f"removed {holder}, left by a run killed while replacing {final}")
        if os.path.isdir(holder) and not os.path.islink(holder):
            shutil.rmtree(holder, ignore_errors=True)
        else:
            os.unlink(holder)
    return notes


@contextlib.contextmanager
def building_dir(final: str) -> Iterator[str]:
    """Yields a hidden owned temporary folder beside `final` (`.<name>.tmp-<pid>@<host>-XXXX`, after removing
    those of killed processes), renamed to `final` when the block ends; removed on any exception, Ctrl-C
    included, so `final` is either whole or absent. `final` must not exist (the caller decides what to do then)."""
    parent, prefix = os.path.dirname(os.path.abspath(final)), f".{os.path.basename(final)}.tmp-"
    os.makedirs(parent, exist_ok=True)
    clean_stale_tmp_dirs(parent, prefix)
    tmp = make_owned_tmp_dir(parent, prefix)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
