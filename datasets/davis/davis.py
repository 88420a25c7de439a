"""tfds builder `maskrnn_davis`: DAVIS-2016 / DAVIS-2017 from the extracted folder or the official zip.

Not `davis`: that is tfds' own DAVIS dataset (tensorflow_datasets/video/davis), and tfds refuses a second
builder of a registered name."""
from __future__ import annotations

import dataclasses
import io
import os
from typing import Dict, Iterator, List, Tuple, Union

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

from maskrnn_tf.data.sequences import (
    DAVIS_ARCHIVES, DAVIS_LAYOUT, DatasetLayoutError, Sequence, davis_splits, find_davis_root, load_masks,
    read_davis_sequence_list, resolve_davis_dir,
)
from maskrnn_tf.datasets.builder_common import CodePathFromFile, LocalDatasetInfo, manual_dir, video_features
from maskrnn_tf.io import read_frame

_ORIENTATION = 0x0112  # the EXIF tag
_JPEG_MAGIC = b"\xff\xd8\xff"  # start of image, then a marker: how every JPEG file begins, whatever its name

_CITATION = """\
@inproceedings{Perazzi_CVPR_2016,
  author    = {Federico Perazzi and Jordi Pont-Tuset and Brian McWilliams and Luc {Van Gool} and Markus Gross and
               Alexander Sorkine-Hornung},
  title     = {A Benchmark Dataset and Evaluation Methodology for Video Object Segmentation},
  booktitle = {The IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2016}
}
@article{Pont-Tuset_arXiv_2017,
  author    = {Jordi Pont-Tuset and Federico Perazzi and Sergi Caelles and Pablo Arbel{\\'a}ez and
               Alexander Sorkine-Hornung and Luc {Van Gool}},
  title     = {The 2017 DAVIS Challenge on Video Object Segmentation},
  journal   = {arXiv:1704.00675},
  year      = {2017}
}"""


@dataclasses.dataclass
class DavisConfig(tfds.core.BuilderConfig):
    """Which DAVIS release and resolution."""

    year: int = 2016
    resolution: str = "480p"


class MaskrnnDavis(CodePathFromFile, tfds.core.GeneratorBasedBuilder):
    """DAVIS video object segmentation: frames, per-frame object ids (255 = void) and metadata.

    tfds name `maskrnn_davis` (from the class name), configs `2016`, `2017`, `2017_full`.
    """

    # 2.0.0, not 1.0.0: the stored frames changed since the `davis` builder's 1.0.0 (a major change in tfds'
    # versioning), so nothing prepared before is taken for this data.
    VERSION = tfds.core.Version("2.0.1")
    RELEASE_NOTES = {
        "1.0.0": "Initial release as `davis`: 2016 and 2017 (480p; 2017 full resolution), manual download.",
        "2.0.0": "Renamed `maskrnn_davis` (`davis` is tfds' own DAVIS dataset). Frames with an EXIF orientation are "
                 "stored upright, as their annotations were drawn (1.0.0 stored their bytes, which decode "
                 "sideways). An official zip is extracted into a folder named by its size and modification time, "
                 "so a zip replaced by another of the same name is read again (1.0.0 reused the first one's "
                 "extraction).",
        "2.0.1": "Frames stored from their pixels unless they are JPEG bytes that decode whole and upright (a PNG or "
                 "BMP frame had its bytes stored under the JPEG feature; a palette BMP read back as its indices); a "
                 "truncated frame fails the build naming it.",
    }
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "DAVIS cannot be downloaded automatically. Get it from https://davischallenge.org/davis2016/code.html "
        "(DAVIS-data.zip) or https://davischallenge.org/davis2017/code.html (DAVIS-2017-trainval-480p.zip) and "
        "put the zip, or its extracted DAVIS/ folder, in the manual directory (default "
        "~/tensorflow_datasets/downloads/manual/).\n" + DAVIS_LAYOUT
    )
    BUILDER_CONFIGS = [
        DavisConfig(name="2016", description="DAVIS-2016 480p, one object, splits train/val/trainval.", year=2016),
        DavisConfig(name="2017", description="DAVIS-2017 480p, multiple objects, splits train/val.", year=2017),
        DavisConfig(name="2017_full", description="DAVIS-2017 full resolution.", year=2017,
                    resolution="Full-Resolution"),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        return LocalDatasetInfo(
            builder=self,
            description="DAVIS: densely annotated video segmentation (semi-supervised task).",
            features=video_features("jpeg", attributes=tfds.features.Sequence(tfds.features.Text())),
            homepage="https://davischallenge.org",
            citation=_CITATION,
        )

    def _root(self, dl_manager: tfds.download.DownloadManager) -> str:
        config: DavisConfig = self.builder_config
        manual = manual_dir(dl_manager, DAVIS_LAYOUT, "give the folder that holds it, {folder}, as the manual "
                            "directory (an official DAVIS zip is read from the folder it is in)")
        try:
            return find_davis_root(manual, config.resolution, year=config.year, strict=True)
        except DatasetLayoutError:
            archive = os.path.join(manual, DAVIS_ARCHIVES.get((config.year, config.resolution), ""))
            if not os.path.isfile(archive):
                raise DatasetLayoutError(
                    f"{manual}: no extracted DAVIS-{config.year} {config.resolution} folder and no "
                    f"{os.path.basename(archive)} found{self._other_year_hint(manual)}.\n" + DAVIS_LAYOUT
                ) from None
            # Not dl_manager.extract: it reuses downloads/extracted/ZIP.<zip name> whenever that exists, so a zip
            # replaced by another of the same name gave the old one's data. resolve_davis_dir names the folder
            # after the zip's size and mtime and extracts atomically; kept under tfds' extraction folder, and
            # extracted again under FORCE_REDOWNLOAD (tfds' force_extraction, the cure for a damaged extraction).
            root = resolve_davis_dir(manual, config.year, config.resolution, extract_dir=_extract_dir(dl_manager),
                                     force_extraction=bool(getattr(dl_manager, "_force_extraction", False)))
            return find_davis_root(root, config.resolution, year=config.year)

    def _other_year_hint(self, manual: str) -> str:
        """"; it holds DAVIS-<other year> data: build maskrnn_davis/<config>" when the folder is the other year's (an
        extracted folder of the wrong year is no missing folder), else ""."""
        config: DavisConfig = self.builder_config
        other = 2016 if config.year == 2017 else 2017
        try:
            find_davis_root(manual, config.resolution, year=other, strict=True)
        except DatasetLayoutError:
            return ""
        name = "2017_full" if other == 2017 and config.resolution == "Full-Resolution" else str(other)
        return f"; it holds DAVIS-{other} data: build {self.name}/{name} for it"

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        config: DavisConfig = self.builder_config
        root = self._root(dl_manager)
        splits = davis_splits(root, config.year, config.resolution)
        if not splits:
            raise DatasetLayoutError(f"{root}: no ImageSets split files for DAVIS-{config.year}.\n{DAVIS_LAYOUT}")
        # Read and validate every split before generating anything: bad input fails fast.
        sequences = {s: read_davis_sequence_list(root, config.year, s, config.resolution) for s in splits}
        checked: Dict[Tuple[str, int], bool] = {}  # shared: DAVIS-2016 trainval holds every train and val frame again
        return {split: self._generate_examples(seqs, checked) for split, seqs in sequences.items()}

    def _generate_examples(self, sequences: List[Sequence],
                           checked: Dict[Tuple[str, int], bool]) -> Iterator[Tuple[str, dict]]:
        for sequence in sequences:
            masks = load_masks(sequence)
            yield sequence.name, {
                "name": sequence.name,
                # tfds encodes each frame as it comes: a JPEG's bytes as they are, pixels as JPEG
                "frames": [_frame(p, checked) for p in sequence.frame_paths],
                "masks": masks[..., None],
                "num_objects": sequence.num_objects,
                "num_frames": sequence.num_frames,
                "eval_t": bool(sequence.eval_t),
                "attributes": list(sequence.attributes),
            }


@tfds.decode.make_decoder(output_dtype=tf.uint8)
def _decode_frame_accurately(serialized: tf.Tensor, feature: tfds.features.FeatureConnector) -> tf.Tensor:
    """A stored frame decoded as `read_frame` (Pillow's libjpeg) decodes the file: TF's default JPEG decoding (tfds'
    own) differs by up to 10 grey levels on 86% of DAVIS pixels; the integer-accurate DCT gives the same pixels."""
    del feature
    return tf.io.decode_jpeg(serialized, channels=3, dct_method="INTEGER_ACCURATE")


def frame_decoders() -> Dict[str, tfds.decode.Decoder]:
    """`decoders=` for `as_dataset`/`tfds.load` of maskrnn_davis: its frames as segment and training read the files
    (`_decode_frame_accurately`)."""
    return {"frames": _decode_frame_accurately()}


def _extract_dir(dl_manager: tfds.download.DownloadManager) -> str:
    """tfds' extraction folder (DownloadConfig.extract_dir, else <download_dir>/extracted): the private attribute
    is the only place holding the configured one."""
    extract_dir = getattr(dl_manager, "_extract_dir", None) or os.path.join(dl_manager.download_dir, "extracted")
    return os.fspath(extract_dir)


def _frame(path: str, checked: Dict[Tuple[str, int], bool]) -> Union[bytes, np.ndarray]:
    """What to store for the frame at `path`: a JPEG file's own bytes when they decode to what `read_frame` reads
    (no second JPEG encoding), else `read_frame`'s pixels, which tfds encodes as the feature's JPEG.

    Not the bytes of another format (PNG, BMP): the feature is declared JPEG, and TF decodes a palette BMP as its
    palette indices. A file that cannot be read raises ImageReadError naming it (from `read_frame`), so a truncated
    frame fails the build instead of the reading of the built data. `checked` keeps the verdict on each JPEG (by
    path and size) for this build: decoding is most of the time spent on a frame.
    """
    data = epath.Path(path).read_bytes()
    if not data.startswith(_JPEG_MAGIC):
        return read_frame(path)
    key = (path, len(data))
    if key not in checked:
        checked[key] = _decodes_as_stored(data)
    return data if checked[key] else read_frame(path)


def _decodes_as_stored(jpeg: bytes) -> bool:
    """Whether the bytes of a JPEG file decode completely to the picture `read_frame` reads: RGB or grey (TF turns
    CMYK into RGB its own way) and upright, with no EXIF orientation (`read_frame` applies it, as the annotations
    were drawn on the turned picture; decoders of the stored bytes do not)."""
    try:
        with Image.open(io.BytesIO(jpeg)) as image:
            if image.mode not in ("RGB", "L") or int(image.getexif().get(_ORIENTATION, 1) or 1) != 1:
                return False
            # At 1/8 scale: every compressed byte is still decoded (a truncated file fails), in ~60% of the time.
            image.draft(image.mode, (image.width // 8, image.height // 8))
            image.load()
    except (OSError, ValueError):  # damaged: `read_frame` decides, and raises naming the file
        return False
    return True
