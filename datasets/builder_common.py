"""Pieces shared by the project's tfds builders: the video feature set, the builders' code path, DatasetInfo and
manual directory."""
from __future__ import annotations

import inspect
import os

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from maskrnn_tf.data.sequences import DatasetLayoutError


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


def manual_dir(dl_manager: tfds.download.DownloadManager, layout: str, remedy: str) -> str:
    """The manual directory, after tfds' own check (missing or empty: its error with the builder's instructions).

    A file there (the zip itself) raises DatasetLayoutError: "<path> is a file, not a folder: " + `remedy` (with
    {folder}, the file's folder) + `layout`. tfds' `manual_dir` property lists the path (to refuse an empty folder),
    which for a file raises a bare NotADirectoryError naming no remedy; the configured path is held only in the
    private `_manual_dir` (set, "~" expanded, by DownloadManager.__init__), so it is looked at there first.
    """
    configured = getattr(dl_manager, "_manual_dir", None)
    if configured is not None and os.path.isfile(configured):
        path = os.fspath(configured)
        raise DatasetLayoutError(f"manual directory {path!r} is a file, not a folder: "
                                 f"{remedy.format(folder=repr(os.path.dirname(path)))}.\n{layout}")
    return os.fspath(dl_manager.manual_dir)


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
