"""tfds builder `synthetic_vos`: the embedded default data for the demo and the tests (no download)."""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import tensorflow_datasets as tfds

from maskrnn_tf.data.synthetic import SyntheticConfig, generate_video
from maskrnn_tf.datasets.builder_common import CodePathFromFile, LocalDatasetInfo, video_features

# The paper this project implements: the data is made for it (tfds expects BibTeX).
_CITATION = """\
@inproceedings{Hu_NeurIPS_2017,
  author    = {Yuan-Ting Hu and Jia-Bin Huang and Alexander G. Schwing},
  title     = {MaskRNN: Instance Level Video Object Segmentation},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year      = {2017}
}"""

# Split seeds are far apart so that train, validation and test never share a video.
_SPLIT_SEED_OFFSETS = {"train": 0, "validation": 1_000_000, "test": 2_000_000}


@dataclasses.dataclass
class SyntheticVosConfig(tfds.core.BuilderConfig):
    """Generator settings and split sizes."""

    video: SyntheticConfig = SyntheticConfig()
    num_train: int = 40
    num_validation: int = 4
    num_test: int = 4
    seed: int = 0


class SyntheticVos(CodePathFromFile, tfds.core.GeneratorBasedBuilder):
    """Textured objects moving, rotating, scaling and occluding each other over a moving background."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: exact masks (ids by depth) and exact forward/backward flows."}
    BUILDER_CONFIGS = [
        SyntheticVosConfig(name="default", description="64x96, 12 frames, 40/4/4 videos."),
        SyntheticVosConfig(name="tiny", description="32x48, 6 frames, 4/2/2 videos (tests).",
                           video=SyntheticConfig(height=32, width=48, num_frames=6, max_speed=1.0),
                           num_train=4, num_validation=2, num_test=2),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        return LocalDatasetInfo(
            builder=self,
            description=(
                "Procedurally generated video object segmentation data: 1-4 textured ellipses / star polygons "
                "over a moving textured background, exact id masks (id k = k-th object from the back) and exact "
                "optical flow (u, v) from each frame to the previous and next frame."
            ),
            features=video_features(
                "png",
                flows_to_prev=tfds.features.Tensor(shape=(None, None, None, 2), dtype=np.float32, encoding="zlib"),
                flows_to_next=tfds.features.Tensor(shape=(None, None, None, 2), dtype=np.float32, encoding="zlib"),
            ),
            # Generated locally, nothing to download: the paper. Not empty: tfds would show its catalog page, which
            # this dataset is not in.
            homepage="https://arxiv.org/abs/1803.11187",
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        config: SyntheticVosConfig = self.builder_config
        counts = {"train": config.num_train, "validation": config.num_validation, "test": config.num_test}
        return {split: self._generate_examples(split, count) for split, count in counts.items() if count > 0}

    def _generate_examples(self, split: str, count: int, start: Optional[int] = None):
        config: SyntheticVosConfig = self.builder_config
        for i in range(count):
            seed = config.seed + _SPLIT_SEED_OFFSETS[split] + i
            video = generate_video(seed, config.video)
            name = f"{split}_{i:04d}"
            yield name, {
                "name": name,
                "frames": video["frames"],
                "masks": video["masks"][..., None],
                "flows_to_prev": video["flows_to_prev"],
                "flows_to_next": video["flows_to_next"],
                "num_objects": int(video["num_objects"]),
                "num_frames": int(video["frames"].shape[0]),
                "eval_t": True,
            }
