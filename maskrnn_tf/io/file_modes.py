"""Permissions of the files and folders the project writes: what the user's umask asks for.

`tempfile.mkstemp` / `mkdtemp` create 0600 / 0700 entries whatever the umask, and renaming them into place
keeps those modes, so results written that way would be unreadable to the user's group (e.g. a model server
or a colleague). These helpers give such entries the mode a plain `open()` / `os.mkdir()` would have.
"""
from __future__ import annotations

import os
import threading

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc), else set-and-restore."""
    try:
        with open("/proc/self/status", "r", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    # os.umask can only be read by setting it: hold a lock so two threads of ours do not interleave.
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def apply_umask(path: str | os.PathLike) -> None:
    """Sets `path` to 0666 (file) or 0777 (folder) minus the umask, the mode it would have had if created plainly."""
    base = 0o777 if os.path.isdir(path) else 0o666
    os.chmod(path, base & ~current_umask())
