"""A run folder's config.json, read without TensorFlow (the experiment drivers read it for every model they are
given, and would otherwise hold TensorFlow's 600 MB for hours beside the commands they run)."""
from __future__ import annotations

import json
import os
from typing import Optional

CONFIG_FILE = "config.json"
_CHECKPOINTS = "checkpoints"


def training_config(path: str) -> Optional[dict]:
    """The training config (config.json, as `python -m maskrnn_tf.train` wrote it) of the run a model path
    comes from: a run folder, its checkpoints folder, a checkpoint prefix, or a .keras file in a run folder.
    None when there is none (a .keras file copied elsewhere) or it does not parse."""
    path = os.path.abspath(os.fspath(path))
    if path.endswith(".keras"):
        run_dir = os.path.dirname(path)
    elif os.path.isfile(path + ".index"):  # .../run/checkpoints/ckpt-N
        run_dir = os.path.dirname(os.path.dirname(path))
    elif os.path.basename(path) == _CHECKPOINTS:
        run_dir = os.path.dirname(path)
    else:
        run_dir = path
    try:
        with open(os.path.join(run_dir, CONFIG_FILE), encoding="utf-8") as f:
            values = json.load(f)
    except (OSError, ValueError):
        return None
    return values if isinstance(values, dict) else None
