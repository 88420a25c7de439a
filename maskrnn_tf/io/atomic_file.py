"""Files written whole or not at all: a temporary file beside the target, renamed over it when complete."""
from __future__ import annotations

import os
import tempfile
from typing import Callable

from maskrnn_tf.io.file_modes import apply_umask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], suffix: str = "") -> None:
    """Calls write(tmp_path) on a hidden temporary file beside `path`, then renames it over `path`.

    A reader sees the old file or the new one, never half of one; when `write` fails the temporary file is removed
    and the old file stays. `suffix` ends the temporary name, for writers that add an extension otherwise
    (`np.save`) or choose the format by it (`model.save`). The file gets the permissions a plain open() would give
    (0666 minus the umask): mkstemp makes it 0600, which would leave results unreadable to the user's group.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp" + suffix, dir=folder)
    os.close(fd)
    try:
        write(tmp)
        apply_umask(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
