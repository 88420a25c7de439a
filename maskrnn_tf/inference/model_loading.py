"""Loading a trained MaskRNN for segmentation: a `.keras` file, a run folder, or a checkpoint.

Accepted, in this order:
  - `file.keras`;
  - a run folder with `model.keras` (written when `python -m maskrnn_tf.train` finishes), or the run's
    `best/` folder (the model at the best held-out validation J, with its own config.json and best.json);
  - a run folder without it (training still going) or its `checkpoints/` folder, or a checkpoint prefix
    (`.../checkpoints/ckpt-120`): the network is built from the run's `config.json` ("model" section) and the
    newest intact (or the given) checkpoint's model weights are restored; damaged newer checkpoints are
    skipped with a warning naming them.
A damaged model.keras or checkpoint is reported as such (ModelLoadError naming the file), not as missing.
"""
from __future__ import annotations

import json
import logging
import os
import zipfile
from typing import Any, Mapping, Optional

import keras
import tensorflow as tf

from maskrnn_tf.model import MaskRNN, MaskRNNConfig
from maskrnn_tf.model.rebuild import rebuild_with_precision
from maskrnn_tf.training.best_model import read_record as read_best_record
from maskrnn_tf.training.checkpoint_files import newest_intact_checkpoint, verify_checkpoint
from maskrnn_tf.training.run_config_file import CONFIG_FILE, training_config  # noqa: F401  (re-exported)
from maskrnn_tf.training.run_dir import EARLIER_FINISH

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
CHECKPOINTS = "checkpoints"


class ModelLoadError(FileNotFoundError):
    """The model file or folder is missing or holds no usable model."""


def _zip_problem(path: str) -> Optional[str]:
    """What is wrong with the zip archive a .keras file is (None when every member reads back)."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()  # reads every member and checks its CRC
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        return f"not a complete .keras archive: {err}"
    return None if bad is None else f"member {bad} fails its checksum"


def _load_keras(path: str) -> MaskRNN:
    # Keras reports any file that is not a zip archive as "File not found", which sends the user looking
    # for a file that is there: a cut-short copy or an interrupted save must be called what it is.
    problem = _zip_problem(path)
    if problem is not None:
        raise ModelLoadError(
            f"{path}: the model file is corrupt or truncated ({problem}). Copy or save it again; a run "
            f"folder's {CHECKPOINTS}/ folder also holds the model: load that instead.")
    try:
        model = keras.models.load_model(path, compile=False)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"{path}: cannot be loaded as a Keras model ({err}).") from err
    if not isinstance(model, MaskRNN):
        raise ModelLoadError(f"{path}: holds a {type(model).__name__}, not a MaskRNN.")
    return model


def _checkpoint_and_run_dir(path: str):
    """(checkpoint prefix or None, run folder) for a run folder, its checkpoints folder, or a prefix."""
    if os.path.isdir(path):
        folder = path if os.path.basename(os.path.normpath(path)) == CHECKPOINTS else os.path.join(path, CHECKPOINTS)
        run_dir = os.path.dirname(os.path.normpath(folder))
        return (_newest_intact(folder) if os.path.isdir(folder) else None), run_dir
    if os.path.isfile(path + ".index"):
        problem = verify_checkpoint(path)
        if problem is not None:
            raise ModelLoadError(f"checkpoint {path}: {problem}; pass the run folder to use its newest intact "
                                 "checkpoint, or another checkpoint.")
        return path, os.path.dirname(os.path.dirname(os.path.abspath(path)))
    return None, None


def _newest_intact(folder: str) -> Optional[str]:
    """The newest checkpoint of `folder` that reads back; damaged newer ones are skipped with a warning (left
    in place: the folder belongs to the training run, which moves them aside when it resumes)."""
    choice = newest_intact_checkpoint(folder, quarantine=False)
    if choice.path is None and choice.skipped:
        raise ModelLoadError(f"{folder}: every checkpoint is damaged:\n{choice.describe()}")
    if choice.skipped:
        log.warning("skipped damaged checkpoint(s):\n%s\nusing the newest intact one, %s",
                    choice.describe(), choice.path)
    return choice.path


def _load_checkpoint(prefix: str, run_dir: str) -> MaskRNN:
    config_path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isfile(config_path):
        raise ModelLoadError(
            f"{prefix}: checkpoint found but not {config_path}, which says how to build the network; "
            "give the run folder written by `python -m maskrnn_tf.train`."
        )
    with open(config_path, encoding="utf-8") as f:
        model_config = json.load(f).get("model", {})
    try:
        network = MaskRNNConfig.from_dict(model_config)
    except ValueError as err:
        raise ModelLoadError(f"{config_path}: its \"model\" section does not describe a network ({err}).") from err
    # Every model weight is restored below: the VGG-16 file the training started from is not read (it may be gone).
    model = MaskRNN(network, read_vgg_weights=False)
    # Only the model is needed: optimizer, step and data positions in the checkpoint are left unread.
    try:
        tf.train.Checkpoint(model=model).restore(prefix).expect_partial().assert_existing_objects_matched()
    except (tf.errors.OpError, IndexError, AssertionError, ValueError) as err:
        raise ModelLoadError(f"checkpoint {prefix}: cannot be restored into the network of {config_path} "
                             f"({type(err).__name__}: {err}).") from err
    return model


def load_model(
    path: str, precision: Optional[str] = None, overrides: Optional[Mapping[str, Any]] = None
) -> MaskRNN:
    """Loads a MaskRNN (see the module docstring for what `path` may be).

    precision: None keeps what loading gives (Keras rebuilds nested trunks under the global policy, float32
      by default, whatever the model was trained with); 'float32', 'bfloat16' or 'float16' rebuilds the network
      to compute in that precision (weights stay float32).
    overrides: deployment switches of MaskRNNConfig to change (e.g. {"apply_localization": False}, the paper's
      'Train' row: the localization net trained but not applied), rebuilt in `precision` (float32 when None);
      ValueError for any other field (`rebuild.DEPLOYMENT_SWITCHES`: apply_localization, box_enlarge,
      mask_threshold).
    Raises ModelLoadError naming the path when nothing loadable is there.
    """
    model = _load_any(os.fspath(path))
    if precision is None and not overrides:
        return model
    return rebuild_with_precision(model, precision or "float32", overrides)


def trained_step(path: str) -> Optional[int]:
    """The training step of the weights a model path gives: the number of a checkpoint prefix, or of the
    newest intact checkpoint (the one `load_model` takes) of a run or checkpoints folder without model.keras, or
    the step best.json records for a run's best/ folder (or its model.keras), or the N of a run's
    model_step<N>.keras (an earlier finish that training moved aside). None for another .keras file or a run
    folder holding model.keras (written when training finishes: all its steps) and when there is no
    checkpoint."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path) if path.endswith(".keras") else path
    record = read_best_record(folder)  # a run's best/ folder: the validation step it was kept at
    if record is not None and (path == folder or os.path.basename(path) == MODEL_FILE):
        return int(record["step"])
    kept = EARLIER_FINISH.fullmatch(os.path.basename(path)) if path.endswith(".keras") else None
    if kept and os.path.isfile(os.path.join(folder, CONFIG_FILE)):
        return int(kept.group(1))  # an earlier finish that training moved aside: its step is in the name
    if path.endswith(".keras") or os.path.isfile(os.path.join(path, MODEL_FILE)):
        return None
    if os.path.isfile(path + ".index"):
        prefix = path
    elif os.path.isdir(path):
        folder = path if os.path.basename(path) == CHECKPOINTS else os.path.join(path, CHECKPOINTS)
        # The checkpoint the loader takes: the newest intact one (a damaged newer one is skipped).
        prefix = (newest_intact_checkpoint(folder, quarantine=False).path or "") if os.path.isdir(folder) else ""
    else:
        return None
    number = prefix.rsplit("-", 1)[-1]
    return int(number) if number.isdigit() else None


def _load_any(path: str) -> MaskRNN:
    if path.endswith(".keras"):
        if not os.path.isfile(path):
            raise ModelLoadError(f"{path}: model file not found.")
        return _load_keras(path)
    if os.path.isfile(os.path.join(path, MODEL_FILE)):
        return _load_keras(os.path.join(path, MODEL_FILE))
    prefix, run_dir = _checkpoint_and_run_dir(path)
    if prefix is not None:
        return _load_checkpoint(prefix, run_dir)
    raise ModelLoadError(
        f"{path}: no model found (looked for a .keras file, {MODEL_FILE}, and checkpoints under "
        f"{CHECKPOINTS}/); give model.keras or the run folder written by `python -m maskrnn_tf.train`."
    )

