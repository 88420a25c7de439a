"""Files written whole or not at all: a temporary file beside the target, renamed over it when complete.

The temporary file is an owned one (`.<name>.tmp-<owner>-<random><suffix>`, see `tmp_dirs`; a name too long for
that is shortened, `hidden_prefix`): a write killed before its rename (SIGKILL, OOM killer) leaves it in the
user's folder. A process's first `atomic_write` into a folder removes such temporaries of every file there whose
owner no longer runs in this pid namespace on this host, or ran in an earlier boot of it (`tmp_dirs`). Only
regular files named exactly that way are removed; older versions' `.<name>.<random>.tmp<suffix>` do not say who
made them and are left alone.
"""
from __future__ import annotations

import os
import stat
from typing import Callable, List, Sequence, Set

from maskrnn_tf.io.file_modes import apply_umask
from maskrnn_tf.io.tmp_dirs import hidden_prefix, make_owned_tmp_file, stale_owned_files


# Folders this process has swept: a sweep lists the folder, and results are written a frame at a time into
# folders of thousands of frames, so listing on every write would cost time quadratic in the frames.
_swept_folders: Set[str] = set()
_ANY_TARGET = r"\..+\.tmp-"  # `.<name>.tmp-` of any target name
_ANY_SUFFIX = r"(?:\.[A-Za-z0-9_]+)?"  # the writers' suffixes: "", ".png", ".npy", ".keras", ...


def _remove_stale_temps(folder: str) -> None:
    """Removes, on this process's first write into `folder`, the temporaries of killed writes of any file there."""
    if folder in _swept_folders:
        return
    _swept_folders.add(folder)
    # Best effort: a leftover we may not remove (another user's, in a shared folder) must not stop this write.
    try:
        stale = stale_owned_files(folder, _ANY_TARGET, _ANY_SUFFIX)
    except OSError:
        return
    for tmp in stale:
        try:
            if stat.S_ISREG(os.lstat(tmp).st_mode):  # what mkstemp made; a folder or link of that name is not ours
                os.unlink(tmp)
        except OSError:
            pass


def _sync(path: str) -> None:
    """fsyncs a file's contents, or a folder's entry list."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], suffix: str = "",
                 durable: bool = False) -> None:
    """Calls write(tmp_path) on a hidden temporary file beside `path`, then renames it over `path`.

    A reader sees the old file or the new one, never half of one; when `write` fails the temporary file is removed
    and the old file stays. The first write into a folder removes the temporaries killed writes left there.
    `suffix` ends the temporary name, for writers that add an extension otherwise (`np.save`) or choose the
    format by it (`model.save`). The file gets the permissions a plain open() would give (0666 minus the umask):
    mkstemp makes it 0600, which would leave results unreadable to the user's group.
    `durable`: the file's contents reach the disk before the rename, and the folder's entry after it, so that after
    a power loss or an OS crash the path holds the old file or the whole new one (a rename alone may reach the disk
    before the data: an empty file). For the files a run resumes from; not for results written by the thousand.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    prefix = hidden_prefix(os.path.basename(path), "tmp")
    _remove_stale_temps(folder)
    tmp = make_owned_tmp_file(folder, prefix, suffix)
    try:
        write(tmp)
        apply_umask(tmp)
        if durable:
            _sync(tmp)
        os.replace(tmp, path)
        if durable:
            try:
                _sync(folder)
            except OSError:  # file systems that cannot fsync a folder (some FUSE, CIFS mounts): the file is whole
                pass
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_group(paths: Sequence[str | os.PathLike], write: Callable[[List[str]], None],
                       suffixes: Sequence[str]) -> None:
    """Calls write(tmp_paths) with a hidden temporary file beside each of `paths` (the same order; `suffixes` as for
    `atomic_write`), then renames each over its path, in that order: files that must agree (a table and the record
    of it) are replaced only once every one of them is written. When `write` fails every temporary file is removed
    and the old files stay, all of them; only a failing rename (rare: same folder) could leave the ones before it
    replaced."""
    targets = [os.fspath(p) for p in paths]
    if len(suffixes) != len(targets):
        raise ValueError(f"atomic_write_group: {len(targets)} paths but {len(suffixes)} suffixes; give one each.")
    tmps: List[str] = []
    try:
        for path, suffix in zip(targets, suffixes):
            folder = os.path.dirname(os.path.abspath(path))
            os.makedirs(folder, exist_ok=True)
            _remove_stale_temps(folder)
            tmps.append(make_owned_tmp_file(folder, hidden_prefix(os.path.basename(path), "tmp"), suffix))
        write(list(tmps))
        for tmp in tmps:
            apply_umask(tmp)
        for tmp, path in zip(tmps, targets):
            os.replace(tmp, path)
    finally:
        for tmp in tmps:
            if os.path.exists(tmp):
                os.remove(tmp)
