"""The user's cache folder for maskrnn_tf: measurements and extractions shared by every process of a machine."""
from __future__ import annotations

import os


def user_cache_dir() -> str:
    """$XDG_CACHE_HOME/maskrnn_tf, or ~/.cache/maskrnn_tf when it is unset, empty or relative.

    A leading ~ is expanded (a quoted value or a service's environment file passes it on unexpanded, and the
    folder would appear as "~" in the working directory); a relative value is ignored, as the XDG Base Directory
    specification asks.
    """
    base = os.path.expanduser(os.environ.get("XDG_CACHE_HOME") or "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "maskrnn_tf")
