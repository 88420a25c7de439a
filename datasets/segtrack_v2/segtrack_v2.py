"""tfds builder `segtrack_v2`: SegTrack v2 from its extracted folder (one split, `test`: no official split)."""
from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from maskrnn_tf.data.sequences import SEGTRACK_LAYOUT, load_masks, read_segtrack_sequence_list
from maskrnn_tf.datasets.builder_common import CodePathFromFile, LocalDatasetInfo, video_features
from maskrnn_tf.io import read_frame


class SegtrackV2(CodePathFromFile, tfds.core.GeneratorBasedBuilder):
    """SegTrack v2: 14 videos, 1.74 objects on average; frames png/bmp/jpg, binary masks per object."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: single- and multi-object layouts, manual download."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download SegTrackv2.zip from https://web.engr.oregonstate.edu/~lif/SegTrack2/dataset.html, extract it "
        "and point the manual directory at the extracted folder.\n" + SEGTRACK_LAYOUT
    )

    def _info(self) -> tfds.core.DatasetInfo:
        return LocalDatasetInfo(
            builder=self,
            description="SegTrack v2 video segmentation; object k's mask is GroundTruth/<seq>/<k>/ when N > 1.",
            features=video_features("png"),
            homepage="https://web.engr.oregonstate.edu/~lif/SegTrack2/dataset.html",
            citation="Li et al., Video Segmentation by Tracking Many Figure-Ground Segments, ICCV 2013.",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        sequences = read_segtrack_sequence_list(os.fspath(dl_manager.manual_dir))
        return {"test": self._generate_examples(sequences)}

    def _generate_examples(self, sequences):
        for sequence in sequences:
            yield sequence.name, {
                "name": sequence.name,
                "frames": np.stack([read_frame(p) for p in sequence.frame_paths]),
                "masks": load_masks(sequence)[..., None],
                "num_objects": sequence.num_objects,
                "num_frames": sequence.num_frames,
                "eval_t": False,
            }
