"""tfds builder `segtrack_v2`: SegTrack v2 from its extracted folder (one split, `test`: no official split)."""
from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from maskrnn_tf.data.sequences import SEGTRACK_LAYOUT, load_masks, read_segtrack_sequence_list
from maskrnn_tf.datasets.builder_common import CodePathFromFile, LocalDatasetInfo, manual_dir, video_features
from maskrnn_tf.io import read_frame

_CITATION = """\
@inproceedings{Li_ICCV_2013,
  author    = {Fuxin Li and Taeyoung Kim and Ahmad Humayun and David Tsai and James M. Rehg},
  title     = {Video Segmentation by Tracking Many Figure-Ground Segments},
  booktitle = {IEEE International Conference on Computer Vision (ICCV)},
  pages     = {2192--2199},
  year      = {2013}
}"""


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
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        manual = manual_dir(dl_manager, SEGTRACK_LAYOUT, "extract it and give the extracted folder, or the one "
                            "holding its SegTrackv2/ folder (such as {folder}), as the manual directory")
        sequences = read_segtrack_sequence_list(manual)
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
