"""tfds builders on the shared real data, on tiny trees and zips made here, and on the synthetic generator."""
import io
import os
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from maskrnn_tf.data.sequences import DatasetLayoutError
from maskrnn_tf.data.synthetic import generate_video
from maskrnn_tf.datasets.davis import MaskrnnDavis, frame_decoders
from maskrnn_tf.datasets.segtrack_v2 import SegtrackV2
from maskrnn_tf.datasets.synthetic_vos import SyntheticVos
from maskrnn_tf.io import ImageReadError, read_frame, read_mask

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "data"))
from test_data_sequences import make_davis_2017  # noqa: E402  (shared tiny-tree helper)


def _prepare(builder, manual_dir=None):
    config = tfds.download.DownloadConfig(manual_dir=manual_dir) if manual_dir else None
    builder.download_and_prepare(download_config=config)
    return builder


def _examples(builder, split):
    return {e["name"].decode(): e for e in tfds.as_numpy(builder.as_dataset(split=split))}


def _davis_2016_subset(shared_data, tmp_path, names=("blackswan", "car-shadow"), frames=4):
    """A DAVIS-2016 tree with the first frames of two real val sequences (symlinks), to stay fast."""
    src = os.path.join(shared_data, "DAVIS-2016")
    root = tmp_path / "DAVIS"
    lines = []
    for name in names:
        for sub, ext in (("JPEGImages", "jpg"), ("Annotations", "png")):
            (root / sub / "480p" / name).mkdir(parents=True, exist_ok=True)
            for t in range(frames):
                os.symlink(os.path.join(src, sub, "480p", name, f"{t:05d}.{ext}"),
                           root / sub / "480p" / name / f"{t:05d}.{ext}")
        lines += [f"/JPEGImages/480p/{name}/{t:05d}.jpg /Annotations/480p/{name}/{t:05d}.png" for t in range(frames)]
    (root / "ImageSets" / "480p").mkdir(parents=True)
    (root / "ImageSets" / "480p" / "val.txt").write_text("\n".join(lines) + "\n")
    os.symlink(os.path.join(src, "Annotations", "db_info.yml"), root / "Annotations" / "db_info.yml")
    return src, str(tmp_path)


def test_davis_2016_real_subset(shared_data, tmp_path):
    src, manual = _davis_2016_subset(shared_data, tmp_path)
    builder = _prepare(MaskrnnDavis(config="2016", data_dir=str(tmp_path / "tfds")), manual)
    assert list(builder.info.splits.keys()) == ["val"]
    examples = _examples(builder, "val")
    assert sorted(examples) == ["blackswan", "car-shadow"]
    swan = examples["blackswan"]
    assert swan["frames"].shape == (4, 480, 854, 3) and swan["masks"].shape == (4, 480, 854, 1)
    assert swan["num_objects"] == 1 and swan["num_frames"] == 4 and swan["eval_t"]
    # The original JPEG bytes are stored (no re-encoding): decoding them gives exactly the same pixels.
    path = os.path.join(src, "JPEGImages", "480p", "blackswan", "00002.jpg")
    np.testing.assert_array_equal(swan["frames"][2], tf.io.decode_jpeg(tf.io.read_file(path)).numpy())
    assert np.abs(swan["frames"][2].astype(int) - read_frame(path).astype(int)).mean() < 2.0
    # Decoded with frame_decoders(), the frames are the pixels segment and training read from the files.
    accurate = {e["name"].decode(): e for e in tfds.as_numpy(builder.as_dataset(split="val",
                                                                                decoders=frame_decoders()))}
    for name in ("blackswan", "car-shadow"):
        for t in range(4):
            frame = os.path.join(src, "JPEGImages", "480p", name, f"{t:05d}.jpg")
            np.testing.assert_array_equal(accurate[name]["frames"][t], read_frame(frame), err_msg=f"{name} {t}")
    np.testing.assert_array_equal(
        swan["masks"][3, ..., 0], read_mask(os.path.join(src, "Annotations", "480p", "blackswan", "00003.png")))


def test_davis_2017_sample_object_ids_and_void(shared_data, tmp_path):
    manual = os.path.join(shared_data, "DAVIS-2017-sample")
    examples = _examples(_prepare(MaskrnnDavis(config="2017", data_dir=str(tmp_path)), manual), "val")
    assert examples["tennis"]["num_objects"] == 2 and examples["bear"]["num_objects"] == 1
    np.testing.assert_array_equal(
        examples["tennis"]["masks"][1, ..., 0],
        read_mask(os.path.join(manual, "Annotations", "480p", "tennis", "00001.png")))
    assert set(np.unique(examples["tennis"]["masks"])) == {0, 1, 2, 255}


def test_davis_2017_official_zip(tmp_path):
    tree = make_davis_2017(str(tmp_path / "tree" / "DAVIS"), {"pair": 2, "solo": 1})
    manual = tmp_path / "manual"
    manual.mkdir()
    with zipfile.ZipFile(manual / "DAVIS-2017-trainval-480p.zip", "w") as archive:
        for folder, _, files in os.walk(tree):
            for name in files:
                path = os.path.join(folder, name)
                archive.write(path, os.path.relpath(path, tmp_path / "tree"))
    examples = _examples(_prepare(MaskrnnDavis(config="2017", data_dir=str(tmp_path / "tfds")), str(manual)), "val")
    assert examples["pair"]["num_objects"] == 2 and examples["pair"]["frames"].shape == (3, 12, 16, 3)
    assert set(np.unique(examples["pair"]["masks"])) == {0, 1, 2}


def test_davis_frames_stored_sideways_are_built_as_their_annotations_see_them(tmp_path):
    """The builder stored a JPEG's bytes as they are, so a frame with an EXIF orientation (a phone video's frames)
    decoded sideways, 16x12 beside 12x16 masks, though the size check (which applies the rotation) passed."""
    root = make_davis_2017(str(tmp_path / "DAVIS"), {"pair": 2})
    frame = os.path.join(root, "JPEGImages", "480p", "pair", "00001.jpg")
    rows, cols = np.mgrid[0:12, 0:16]
    upright = np.stack([rows * 20, cols * 15, np.full((12, 16), 128)], -1).astype(np.uint8)  # smooth: JPEG keeps it
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90).save(frame, exif=exif, quality=100)
    assert read_frame(frame).shape == upright.shape
    examples = _examples(_prepare(MaskrnnDavis(config="2017", data_dir=str(tmp_path / "tfds")), root), "val")
    frames = examples["pair"]["frames"]
    assert frames.shape == (3, 12, 16, 3)
    # Stored again as JPEG (the feature's encoding): the picture upright, within JPEG's loss.
    assert np.abs(frames[1].astype(int) - read_frame(frame)).mean() < 3
    assert np.abs(frames[1].astype(int) - upright).mean() < 6  # twice JPEG; a turned picture is ~50 off


def _smooth_picture(size: tuple[int, int] = (12, 16)) -> np.ndarray:
    """A [H, W, 3] uint8 picture smooth enough that JPEG keeps it within a few levels."""
    rows, cols = np.mgrid[0:size[0], 0:size[1]]
    return np.stack([rows * 20, cols * 15, np.full(size, 128)], -1).astype(np.uint8)


def test_davis_truncated_frame_fails_the_build_naming_it(tmp_path):
    """A JPEG frame's bytes were stored without being decoded (only its header was read, for the EXIF orientation):
    a truncated frame built a dataset marked complete that failed only when read, in TF ("jpeg::Uncompress failed"
    or "crop window"), naming no file."""
    root = make_davis_2017(str(tmp_path / "DAVIS"), {"pair": 2})
    frame = os.path.join(root, "JPEGImages", "480p", "pair", "00001.jpg")
    with open(frame, "rb") as f:
        data = f.read()
    scan = data.rindex(b"\xff\xda")  # start of scan: cut the compressed pixels in half, keep a readable header
    with open(frame, "wb") as f:
        f.write(data[: scan + (len(data) - scan) // 2])
    data_dir = str(tmp_path / "tfds")
    with pytest.raises(ImageReadError, match=re.escape(frame) + r": unreadable image \(image file is truncated"):
        _prepare(MaskrnnDavis(config="2017", data_dir=data_dir), root)
    # Nothing that tfds would load: the version folder is not there, so a new builder is not prepared.
    builder = MaskrnnDavis(config="2017", data_dir=data_dir)
    assert not builder.is_prepared() and not os.path.exists(builder.data_dir)


@pytest.mark.parametrize("kind", ["palette bmp", "png", "png named .jpg"])
def test_davis_frames_that_are_not_jpeg_are_stored_as_their_pixels(tmp_path, kind):
    """read_davis_sequence_list takes .png and .bmp frames, and the builder stored every frame's own bytes in a
    feature declared JPEG: TF decoded a palette BMP as its palette indices in grey, and a PNG was stored as PNG
    under the JPEG label readers are told. Whether a file is a JPEG is in its bytes, not its name."""
    root = make_davis_2017(str(tmp_path / "DAVIS"), {"pair": 2})
    folder = os.path.join(root, "JPEGImages", "480p", "pair")
    os.remove(os.path.join(folder, "00001.jpg"))
    picture = Image.fromarray(_smooth_picture())
    if kind == "palette bmp":
        path = os.path.join(folder, "00001.bmp")
        picture.convert("P", palette=Image.Palette.ADAPTIVE).save(path)
        assert Image.open(path).mode == "P"
    else:
        path = os.path.join(folder, "00001.png" if kind == "png" else "00001.jpg")
        picture.save(path, format="PNG")
    builder = _prepare(MaskrnnDavis(config="2017", data_dir=str(tmp_path / "tfds")), root)
    frames = _examples(builder, "val")["pair"]["frames"]
    assert frames.shape == (3, 12, 16, 3)
    # The project reader's pixels, through the feature's JPEG encoding (tfds' tf.image.encode_jpeg) and nothing
    # else; the palette indices read as grey were ~90 off.
    want = read_frame(path)
    np.testing.assert_array_equal(frames[1], tf.image.decode_jpeg(tf.image.encode_jpeg(want)).numpy())
    assert np.abs(frames[1].astype(int) - want).mean() < 5  # JPEG's loss on so small a picture: ~3
    # Every stored frame is a JPEG, as the feature declares; the real JPEGs are their files' own bytes.
    skip = {"frames": tfds.decode.SkipDecoding()}
    (stored,) = [e["frames"] for e in tfds.as_numpy(builder.as_dataset(split="val", decoders=skip))]
    assert [Image.open(io.BytesIO(encoded)).format for encoded in stored] == ["JPEG"] * 3
    for t in (0, 2):
        with open(os.path.join(folder, f"{t:05d}.jpg"), "rb") as f:
            assert stored[t] == f.read()


@pytest.mark.parametrize("builder_class, config, archive", [
    (MaskrnnDavis, "2017", "DAVIS-2017-trainval-480p.zip"), (SegtrackV2, None, "SegTrackv2.zip")])
def test_a_zip_given_as_the_manual_directory_names_the_folder_to_give(tmp_path, builder_class, config, archive):
    """tfds' dl_manager.manual_dir lists the manual directory before the project's layout code sees it: the zip
    itself given as manual_dir failed as a bare NotADirectoryError, never reaching the project's "is a file" message."""
    folder = tmp_path / "downloads"
    folder.mkdir()
    with zipfile.ZipFile(folder / archive, "w") as opened:
        opened.writestr("README.txt", "not read")
    kwargs = {"config": config} if config else {}
    with pytest.raises(DatasetLayoutError, match="is a file, not a folder") as err:
        _prepare(builder_class(data_dir=str(tmp_path / "tfds"), **kwargs), str(folder / archive))
    assert repr(str(folder / archive)) in str(err.value) and repr(str(folder)) in str(err.value)


def _bibtex_entries(citation: str) -> list[tuple[str, str, str]]:
    """The (type, key, fields) of each BibTeX entry in `citation`; fails on text that is not BibTeX."""
    entries = re.findall(r"@(\w+)\{([^,\s]+),(.*?)\n\}", citation.strip() + "\n", re.DOTALL)
    assert entries and re.sub(r"@\w+\{[^,\s]+,.*?\n\}", "", citation, flags=re.DOTALL).strip() == "", citation
    for _, _, fields in entries:
        assert fields.count("{") == fields.count("}"), citation
        assert {"author", "title", "year"} <= set(re.findall(r"^\s*(\w+)\s*=", fields, re.MULTILINE)), citation
    return entries


@pytest.mark.parametrize("builder_class, config, titles", [
    (MaskrnnDavis, "2016", ["A Benchmark Dataset and Evaluation Methodology for Video Object Segmentation",
                            "The 2017 DAVIS Challenge on Video Object Segmentation"]),
    (SegtrackV2, None, ["Video Segmentation by Tracking Many Figure-Ground Segments"]),
    (SyntheticVos, None, ["MaskRNN: Instance Level Video Object Segmentation"]),
])
def test_builders_cite_in_bibtex_and_link_a_real_homepage(tmp_path, builder_class, config, titles):
    """The citations were plain text where tfds expects BibTeX, and synthetic_vos had no citation and a made-up
    homepage (https://example.invalid/...)."""
    kwargs = {"config": config} if config else {}
    info = builder_class(data_dir=str(tmp_path), **kwargs).info
    entries = _bibtex_entries(info.citation)
    assert [re.search(r"title\s*=\s*\{(.*?)\},?\n", fields).group(1) for _, _, fields in entries] == titles
    # Not a made-up address, nor tfds' catalog page (where an empty homepage points; these are not in the catalog).
    assert info.homepage.startswith("https://") and "example.invalid" not in info.homepage
    assert "tensorflow.org/datasets/catalog" not in info.homepage


def test_davis_without_manual_data_explains_layout(tmp_path):
    (tmp_path / "manual").mkdir()
    # tfds itself refuses an empty manual directory, with our instructions (archive names and layout).
    with pytest.raises(AssertionError, match=r"(?s)DAVIS-data.zip.*JPEGImages/480p"):
        _prepare(MaskrnnDavis(config="2016", data_dir=str(tmp_path / "tfds")), str(tmp_path / "manual"))
    # A manual directory holding something else: our own error, with the same instructions.
    (tmp_path / "manual" / "notes.txt").write_text("not DAVIS")
    with pytest.raises(DatasetLayoutError, match=r"(?s)DAVIS-data.zip found.*ImageSets/480p"):
        _prepare(MaskrnnDavis(config="2016", data_dir=str(tmp_path / "tfds2")), str(tmp_path / "manual"))


def test_davis_config_of_the_other_year_names_the_year_and_the_config_to_build(tmp_path):
    # An extracted DAVIS-2017 folder is an extracted DAVIS folder: "neither an extracted DAVIS folder nor
    # DAVIS-data.zip found" sent users checking their extraction, not the config they asked for.
    make_davis_2017(str(tmp_path / "manual" / "DAVIS"), {"a": 1})
    with pytest.raises(DatasetLayoutError, match=r"no extracted DAVIS-2016 480p folder.*maskrnn_davis/2017") as err:
        _prepare(MaskrnnDavis(config="2016", data_dir=str(tmp_path / "tfds")), str(tmp_path / "manual"))
    assert "DAVIS-data.zip" in str(err.value) and "neither an extracted DAVIS folder" not in str(err.value)


def test_davis_bad_tree_fails_before_writing(tmp_path):
    tree = make_davis_2017(str(tmp_path / "DAVIS"), {"a": 1})
    os.remove(os.path.join(tree, "Annotations", "480p", "a", "00002.png"))
    with pytest.raises(DatasetLayoutError, match="missing mask"):
        _prepare(MaskrnnDavis(config="2017", data_dir=str(tmp_path / "tfds")), str(tmp_path))


def _zip_tree(tree: str, archive: str) -> None:
    """Zips the DAVIS/ folder `tree` as the official zips do (member names start with DAVIS/)."""
    os.makedirs(os.path.dirname(archive), exist_ok=True)
    with zipfile.ZipFile(archive, "w") as opened:
        for folder, _, files in os.walk(tree):
            for name in files:
                path = os.path.join(folder, name)
                opened.write(path, os.path.relpath(path, os.path.dirname(tree)))


@pytest.mark.parametrize("where", ["same folder", "other folder"])
def test_davis_zip_replaced_by_one_of_the_same_name_is_read_again(tmp_path, where):
    """tfds' dl_manager.extract reuses <data_dir>/downloads/extracted/ZIP.<zip name> whenever it exists, so a zip
    replaced by another of the same name (a fresh download, another manual folder) gave the old zip's splits."""
    zip_name = "DAVIS-2017-trainval-480p.zip"
    first = make_davis_2017(str(tmp_path / "tree1" / "DAVIS"), {"old": 1}, frames=1)
    _zip_tree(first, str(tmp_path / "manual1" / zip_name))
    data_dir = str(tmp_path / "tfds")
    builder = _prepare(MaskrnnDavis(config="2017", data_dir=data_dir), str(tmp_path / "manual1"))
    assert sorted(_examples(builder, "val")) == ["old"]

    second = make_davis_2017(str(tmp_path / "tree2" / "DAVIS"), {"pair": 2, "solo": 1}, frames=2)
    with open(os.path.join(second, "ImageSets", "2017", "train.txt"), "w") as f:
        f.write("solo\n")
    with open(os.path.join(second, "ImageSets", "2017", "val.txt"), "w") as f:
        f.write("pair\n")
    manual = tmp_path / ("manual1" if where == "same folder" else "manual2")
    if where == "same folder":
        os.remove(manual / zip_name)
    _zip_tree(second, str(manual / zip_name))
    # Rebuild keeping what was downloaded and extracted (what a user does after replacing a manual file).
    builder = MaskrnnDavis(config="2017", data_dir=data_dir)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(manual), download_mode=tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS))
    assert sorted(builder.info.splits.keys()) == ["train", "val"]
    assert sorted(_examples(builder, "train")) == ["solo"]
    pair = _examples(builder, "val")["pair"]
    assert pair["num_objects"] == 2 and pair["frames"].shape == (2, 12, 16, 3)
    # Both zips extracted under the download folder (never into the manual folder nor the user's cache).
    extracted = os.path.join(data_dir, "downloads", "extracted")
    assert len([n for n in os.listdir(extracted) if n.startswith("DAVIS-2017-trainval-480p-")]) == 2
    assert sorted(os.listdir(manual)) == [zip_name]


_OFFICIAL_FIRST = """
import tensorflow_datasets as tfds
official = tfds.builder_cls("davis")  # tfds' own DAVIS (tensorflow_datasets/video/davis), registered first
import maskrnn_tf.datasets.davis
print(official.__module__, tfds.builder_cls("davis").__module__, tfds.builder_cls("maskrnn_davis").__module__)
"""


def test_davis_builder_does_not_clash_with_the_tfds_davis_dataset(tmp_path):
    """The builder was registered as `davis`, tfds' own dataset's name: imported after tfds.builder("davis") it
    raised "Dataset with name davis already registered", imported first it hid tfds' dataset."""
    out = subprocess.run([sys.executable, "-c", _OFFICIAL_FIRST], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["tensorflow_datasets.video.davis.davis"] * 2 + ["maskrnn_tf.datasets.davis.davis"]
    # Here the project's builder was imported first: each name still gives its own builder.
    assert tfds.builder_cls("maskrnn_davis") is MaskrnnDavis
    assert tfds.builder_cls("davis").__module__ == "tensorflow_datasets.video.davis.davis"
    builder = tfds.builder("maskrnn_davis/2017", data_dir=str(tmp_path))
    assert isinstance(builder, MaskrnnDavis)
    # A new name and a new major version: nothing prepared by the `davis` builder 1.0.0 (frames with an EXIF
    # orientation stored sideways) is read as this data.
    assert MaskrnnDavis.VERSION.major >= 2 and str(MaskrnnDavis.VERSION) in MaskrnnDavis.RELEASE_NOTES
    assert builder.data_dir == os.path.join(str(tmp_path), "maskrnn_davis", "2017", str(MaskrnnDavis.VERSION))


def test_segtrack_sample(shared_data, tmp_path):
    manual = os.path.join(shared_data, "SegTrackv2-sample")
    examples = _examples(_prepare(SegtrackV2(data_dir=str(tmp_path)), manual), "test")
    bmx = examples["bmx"]
    assert bmx["frames"].shape == (36, 360, 640, 3) and bmx["num_objects"] == 1
    np.testing.assert_array_equal(bmx["frames"][5], read_frame(os.path.join(manual, "JPEGImages", "bmx", "bmx_06673.png")))
    np.testing.assert_array_equal(
        bmx["masks"][5, ..., 0], read_mask(os.path.join(manual, "GroundTruth", "bmx", "bmx_06673.png")))


def test_synthetic_vos_matches_generator(tmp_path):
    builder = _prepare(SyntheticVos(config="tiny", data_dir=str(tmp_path)))
    assert builder.info.splits["train"].num_examples == 4
    example = _examples(builder, "validation")["validation_0001"]
    config = builder.builder_config
    video = generate_video(config.seed + 1_000_000 + 1, config.video)
    np.testing.assert_array_equal(example["frames"], video["frames"])
    np.testing.assert_array_equal(example["masks"][..., 0], video["masks"])
    np.testing.assert_array_equal(example["flows_to_prev"], video["flows_to_prev"])
    np.testing.assert_array_equal(example["flows_to_next"], video["flows_to_next"])
    assert example["num_objects"] == video["num_objects"]


@pytest.mark.parametrize("builder_class, config", [(MaskrnnDavis, "2016"), (SegtrackV2, None), (SyntheticVos, None)])
def test_a_builder_on_an_unprepared_folder_leaves_no_temporary_folder(tmp_path, monkeypatch, builder_class, config):
    """tfds' DatasetInfo.initialize_from_bucket makes a temporary folder (tempfile.mkdtemp("tfds")) for GCS
    metadata before it asks whether there is any, and never removes it: every builder made on a folder not yet
    prepared left an empty /tmp/tmp*tfds. These datasets are never on GCS: their builders ask for nothing."""
    import tempfile

    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    kwargs = {"config": config} if config else {}
    builder = builder_class(data_dir=str(tmp_path / "data"), **kwargs)
    assert builder.info.name == builder_class.name
    assert os.listdir(private) == []


def test_davis_force_redownload_extracts_the_zip_again(tmp_path):
    """tfds' FORCE_REDOWNLOAD means download and extract again (the user's cure for a damaged extraction, a file
    deleted or changed in it); the zip's size+mtime folder was reused whatever the mode."""
    zip_name = "DAVIS-2017-trainval-480p.zip"
    tree = make_davis_2017(str(tmp_path / "tree" / "DAVIS"), {"pair": 2, "solo": 1}, frames=2)
    _zip_tree(tree, str(tmp_path / "manual" / zip_name))
    data_dir = str(tmp_path / "tfds")
    builder = _prepare(MaskrnnDavis(config="2017", data_dir=data_dir), str(tmp_path / "manual"))
    want = _examples(builder, "val")["pair"]["masks"]
    extracted = os.path.join(data_dir, "downloads", "extracted")
    (folder,) = [os.path.join(extracted, n) for n in os.listdir(extracted) if n.startswith(zip_name[:-4])]
    damaged = os.path.join(folder, "DAVIS", "Annotations", "480p", "pair", "00001.png")
    read_mask_before = read_mask(damaged)
    with open(damaged, "wb") as f:  # a damaged extraction: the file is there, its bytes are not the zip's
        f.write(b"not a png")

    def rebuild(mode):
        fresh = MaskrnnDavis(config="2017", data_dir=data_dir)
        fresh.download_and_prepare(download_config=tfds.download.DownloadConfig(
            manual_dir=str(tmp_path / "manual"), download_mode=mode))
        return fresh

    # REUSE_CACHE_IF_EXISTS keeps the extraction (the file it cannot read is named in the error)...
    with pytest.raises(Exception, match="00001.png"):
        rebuild(tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS)
    # ...FORCE_REDOWNLOAD extracts the zip again, into the same folder, and builds from it.
    builder = rebuild(tfds.download.GenerateMode.FORCE_REDOWNLOAD)
    np.testing.assert_array_equal(_examples(builder, "val")["pair"]["masks"], want)
    np.testing.assert_array_equal(read_mask(damaged), read_mask_before)
    assert [n for n in os.listdir(extracted) if n.startswith(zip_name[:-4])] == [os.path.basename(folder)]
    assert not [n for n in os.listdir(extracted) if n.startswith(".")]  # no temporary or replaced folder left
    assert sorted(os.listdir(tmp_path / "manual")) == [zip_name]
