"""Pieces shared by the project's tfds builders: the video feature set, the builders' code path and DatasetInfo."""
from __future__ import annotations

import inspect

import numpy as np
import tensorflow_datasets as tfds
from etils import epath


class CodePathFromFile:
    """Mixin: a builder's `code_path` is the file that defines it.

    setup.py maps datasets/ to maskrnn_tf.datasets, which tfds' guess from the module name cannot follow.
    """

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        return epath.Path(inspect.getfile(cls))


class LocalDatasetInfo(tfds.core.DatasetInfo):
    """The DatasetInfo of a dataset built from local files only, never published on the TFDS GCS bucket.

    tfds calls `initialize_from_bucket` when a builder is made on a folder not yet prepared; it creates a temporary
    folder (tempfile.mkdtemp("tfds")) before it asks GCS for metadata and never removes it, so every such builder
    left an empty tmp*tfds folder in the system temporary folder. There is nothing to fetch for these datasets.
    """

    def initialize_from_bucket(self) -> None:
        return None


def video_features(frame_encoding: str, **extra) -> tfds.features.FeaturesDict:
    """One video per example: name, frames [T,H,W,3], id masks [T,H,W,1] (PNG), counts, eval_t, plus `extra`."""
    features = {
        "name": tfds.features.Text(),
        "frames": tfds.features.Video(shape=(None, None, None, 3), encoding_format=frame_encoding),
        "masks": tfds.features.Video(shape=(None, None, None, 1), encoding_format="png"),
        "num_objects": np.int32,
        "num_frames": np.int32,
        "eval_t": np.bool_,
    }
    features.update(extra)
    return tfds.features.FeaturesDict(features)
