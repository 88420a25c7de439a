"""Loading a trained MaskRNN for segmentation: a `.keras` file, or a run / checkpoint folder."""
from __future__ import annotations

import os

import keras

from maskrnn_tf.model import MaskRNN

MODEL_FILE = "model.keras"


class ModelLoadError(FileNotFoundError):
    """The model file or folder is missing or holds no usable model."""


def load_model(path: str) -> MaskRNN:
    """Loads a MaskRNN from a `.keras` file, or a folder holding `model.keras` (a run dir or its export).

    Raises ModelLoadError naming the path when nothing loadable is there.
    """
    path = os.fspath(path)
    candidates = [path] if path.endswith(".keras") else [os.path.join(path, MODEL_FILE)]
    if os.path.isdir(path):
        candidates.append(os.path.join(path, "final", MODEL_FILE))
    for candidate in candidates:
        if os.path.isfile(candidate):
            model = keras.models.load_model(candidate, compile=False)
            if not isinstance(model, MaskRNN):
                raise ModelLoadError(f"{candidate}: holds a {type(model).__name__}, not a MaskRNN.")
            return model
    raise ModelLoadError(
        f"{path}: model not found (looked for {', '.join(candidates)}); give a model.keras file or the run "
        "folder written by `python -m maskrnn_tf.train`."
    )
