"""The one line an export that failed writing prints (export_main): the export base, the OS's reason, what to do."""
from __future__ import annotations

import errno

# TensorFlow's file errors carry the OS's text, not its errno: the texts of the errors a user can act on.
ERRNO_TEXTS = (("no space left", errno.ENOSPC), ("quota exceeded", errno.EDQUOT),
               ("read-only file system", errno.EROFS), ("permission denied", errno.EACCES),
               ("operation not permitted", errno.EPERM))


def write_failure_line(err: BaseException, export_base: str) -> str:
    """One line for an export that failed writing (a full disk, no permission): TensorFlow's SaveV2 raises its own
    errors, the renames and records OSErrors. Their paths name the version's temporary folder, already removed: the
    line names the export base, the OS's reason and what to do about it."""
    from maskrnn_tf._console import os_error_hint

    if isinstance(err, OSError):
        code, cause = err.errno, err.strerror or str(err)
    else:
        lines = (getattr(err, "message", "") or str(err)).strip().splitlines() or [""]
        text = lines[0]  # a graph-mode message goes on with the op's node on further lines
        cause = text.rsplit("; ", 1)[-1].split("[Op:")[0].strip() or type(err).__name__
        code = next((number for words, number in ERRNO_TEXTS if words in text.lower()), None)
        if code is None and type(err).__name__ == "PermissionDeniedError":  # tf.errors' class, loaded by then
            code = errno.EACCES
    return f"{export_base}: writing the version failed ({cause}); {os_error_hint(code)}."
