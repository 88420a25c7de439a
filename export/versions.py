"""How TF-Serving's file-system source finds the versions of a model base path, for the export's checks and the
stand-in server; without TensorFlow, so that export_main's flag validators can use it at parse time.

tensorflow_serving/sources/storage_path/file_system_storage_path_source.cc lists every child of the base path
(Env::GetChildren: files as well as folders) and takes each name that `strings::safe_strto64` parses for a version:
ASCII digits with an optional '-', spaces around them skipped, nothing past int64. A file named `5` is "version 5"
to it, which it then fails to load.
"""
from __future__ import annotations

import os
import re
from typing import Dict, Optional

MAX_VERSION = 2**63 - 1  # the largest int64: safe_strto64 refuses a larger number, so that name is no version

# safe_strto64: C isspace() characters around an optional '-' and ASCII digits ('²' is no digit to it).
_VERSION_NAME = re.compile(r"[ \t\n\v\f\r]*(-?[0-9]+)[ \t\n\v\f\r]*")


def version_of(name: str) -> Optional[int]:
    """The version the model server reads from `name`, a child of its base path (file or folder alike), or None
    for a name it skips."""
    match = _VERSION_NAME.fullmatch(name)
    if match is None:
        return None
    number = int(match.group(1))
    return number if -MAX_VERSION <= number <= MAX_VERSION else None


def served_children(model_base_path: str) -> Dict[str, int]:
    """{child name: version} of every child of `model_base_path` the model server takes for a version (raises
    OSError when the folder cannot be listed)."""
    found = {name: version_of(name) for name in os.listdir(model_base_path)}
    return {name: number for name, number in found.items() if number is not None}
