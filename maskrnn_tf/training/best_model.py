"""The run's best model by held-out validation J: `<run_dir>/best/` (model.keras, config.json, best.json).

Training validates every `eval_every` steps; the network at the highest J so far is kept, so that the number of
training steps is chosen on the held-out split (the last step is not always the best one: a long stage B can
overfit the training videos). The folder is self-contained: `segment --model=<run_dir>/best` and `export` load it
like a run folder, and best.json says which step it is and what it scored on which videos.

It is kept only when validation runs on data held out of training *and* not reported (synthetic videos of
unseen seeds, or DAVIS `val_sequences` carved out of the train split): a model picked on the val split would
flatter the val split's score. A validation set that changed (other sequences, frames or size, e.g. after
`--overwrite_config`) starts a new record: J on different videos is not comparable.

The folder is replaced whole: a new one is written beside it and renamed into place, so a reader sees the old
best, the new best, or (during the two renames, or after a crash between them, which the next training
repairs) no best folder, never a mix of two steps.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
from typing import Callable, Dict, Optional

from maskrnn_tf.io.file_modes import apply_umask
from maskrnn_tf.io.tmp_dirs import make_owned_tmp_dir, replace_dir, restore_interrupted_replace
from maskrnn_tf.training.config import DataConfig, TrainConfig
from maskrnn_tf.training.run_dir import ConfigMismatchError

BEST_DIR = "best"
RECORD_NAME = "best.json"
MODEL_NAME = "model.keras"
CONFIG_NAME = "config.json"
_OLD_PREFIX = ".best.old-"
_NEW_PREFIX = ".best.new-"
SCORED = "stored size, seeded as segment"  # how DAVIS validation J is scored (validation.segment_video_sizes)


def selection_set(data: DataConfig) -> Optional[Dict[str, object]]:
    """What the validation J of `data` is measured on, or None when that is not a split to choose on (DAVIS
    without val_sequences validates on the first val sequences, which are the reported ones)."""
    if data.dataset == "synthetic_vos":
        if data.val_videos <= 0:
            return None
        videos: object = f"synthetic_vos, {data.val_videos} videos of unseen seeds"
        flow, extra = data.synthetic_flow, {}
    elif data.val_sequences:
        # DAVIS J is scored at the stored size, every first-frame object seeded as segment seeds it: a record
        # without "scored" was measured at the training size (thin objects dropped), on another scale.
        videos, flow, extra = list(data.val_sequences), data.flow, {"scored": SCORED}
    else:
        return None
    return {"dataset": data.dataset, "videos": videos, "frames": data.val_frames,
            "height": data.height, "width": data.width, "flow": flow, **extra}


def same_selection(stored: object, current: Dict[str, object]) -> bool:
    """Whether a best.json's `selection` is `current`; records from before the flows were part of it ("flow"
    missing) compare without them, so that a run resumed with this version keeps its best model."""
    if not isinstance(stored, dict):
        return False
    return stored == (current if "flow" in stored else {k: v for k, v in current.items() if k != "flow"})


def _only_scoring_differs(stored: object, current: Dict[str, object]) -> bool:
    """Whether a best.json's `selection` is `current` but for "scored": the same videos, scored another way."""
    return (isinstance(stored, dict) and "scored" in current and stored.get("scored") != current["scored"]
            and same_selection({**stored, "scored": current["scored"]}, current))


def read_record(best_dir: str) -> Optional[dict]:
    """best.json of a best folder (None when there is none or it does not parse)."""
    try:
        with open(os.path.join(best_dir, RECORD_NAME), encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("step"), int) else None


def _repair(run_dir: str) -> None:
    """What a training killed while saving left: a best folder moved away to be replaced goes back, a save
    cut short is removed (the run folder's lock admits one training, so every leftover is a dead run's).
    Earlier versions moved the old folder to `.best.old-<step>` itself: the same repair."""
    best = os.path.join(run_dir, BEST_DIR)
    restore_interrupted_replace(run_dir, _OLD_PREFIX, best)
    names = sorted(os.listdir(run_dir)) if os.path.isdir(run_dir) else []
    for name in (n for n in names if n.startswith(_NEW_PREFIX)):  # a save cut short: never renamed into place
        shutil.rmtree(os.path.join(run_dir, name), ignore_errors=True)
    for name in (n for n in names if re.fullmatch(re.escape(_OLD_PREFIX) + r"\d+", n)):
        path = os.path.join(run_dir, name)
        if not os.path.exists(best) and read_record(path) is not None:
            os.rename(path, best)
        else:
            shutil.rmtree(path, ignore_errors=True)


class BestModel:
    """Keeps `<run_dir>/best/` at the validation step with the highest J (see the module docstring)."""

    def __init__(self, run_dir: str, config: TrainConfig):
        self.run_dir = run_dir
        self.path = os.path.join(run_dir, BEST_DIR)
        self.config = config
        self.selection = selection_set(config.data)
        self.step: Optional[int] = None
        self.j: Optional[float] = None
        self.note: Optional[str] = None
        if self.selection is None:
            return
        _repair(run_dir)
        record = read_record(self.path)
        if record is None and os.path.lexists(self.path):
            raise ConfigMismatchError(
                f"{self.path} holds no {RECORD_NAME}: it is not a best model kept by this run, and training "
                f"would replace it. Move it out of {run_dir} (or use another --run_dir).")
        if record is not None and same_selection(record.get("selection"), self.selection) and _finite(record.get("J")):
            self.step, self.j = int(record["step"]), float(record["J"])
        elif record is not None:
            # The same videos scored another way must not read as a changed validation set.
            stored = record.get("selection")
            if same_selection(stored, self.selection):
                why = f"records no finite J ({record.get('J')!r})"
            elif not _only_scoring_differs(stored, self.selection):
                why = f"was chosen on other validation videos ({stored})"
            elif stored.get("scored") is None:  # records before the field: validation at the training size
                why = "was scored at the training size (an older scoring)"
            else:
                why = f"was scored another way ({stored['scored']!r})"
            self.note = (f"note: {self.path} (step {record['step']}) {why}; this run's first validation replaces "
                         "it (copy it elsewhere first to keep it)")

    @property
    def enabled(self) -> bool:
        return self.selection is not None

    def offer(self, step: int, j: float, save_model: Callable[[str], None]) -> bool:
        """Keeps the model (written by `save_model(path)`) when `j` beats the best so far; True when it did."""
        if self.selection is None or not _finite(j) or (self.j is not None and j <= self.j):
            return False
        tmp = make_owned_tmp_dir(self.run_dir, _NEW_PREFIX)
        try:
            save_model(os.path.join(tmp, MODEL_NAME))
            with open(os.path.join(tmp, CONFIG_NAME), "w", encoding="utf-8") as f:
                f.write(self.config.to_json() + "\n")
            with open(os.path.join(tmp, RECORD_NAME), "w", encoding="utf-8") as f:
                json.dump({"step": int(step), "J": float(j), "selection": self.selection}, f, indent=2)
                f.write("\n")
            for name in os.listdir(tmp):
                apply_umask(os.path.join(tmp, name))
            replace_dir(tmp, self.path, _OLD_PREFIX)
        finally:
            if os.path.exists(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
        self.step, self.j = int(step), float(j)
        return True

    def describe(self) -> str:
        """One line for the log: where the best model is and what it scored."""
        if self.selection is None:
            return ("no best model kept: validation runs on the val split (the reported sequences); set "
                    "--val_sequences to train sequences held out of training to choose the step on them")
        if self.step is None:
            return "no best model yet (no finite validation J)"
        return f"best model: J {self.j:.4f} at step {self.step}, in {self.path}"


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
