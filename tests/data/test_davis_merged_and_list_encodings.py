"""DAVIS-2016 and DAVIS-2017 extracted into one DAVIS/ folder, and split lists saved with a BOM or in UTF-16.

Both official zips unpack into DAVIS/: extracted into one folder, the year extracted last replaces the other's
Annotations/480p/<seq>/. DAVIS-2016's grey 0/255 masks over DAVIS-2017's palette masks read as one object per
sequence without a word; DAVIS-2017's palette masks under a 2016 config failed with "object id 2 exceeds the 1
object(s) of the first frame", which blames the masks, not the merge. List files saved by Windows editors
("\\ufeffbear": "missing frame folder of bear") or in UTF-16 (a bare UnicodeDecodeError without a path) were not
read as the names they hold."""
import os
import shutil

import numpy as np
import pytest

from maskrnn_tf.data.sequences import (
    DatasetLayoutError, load_masks, read_davis_sequence_list, read_segtrack_sequence_list,
)

_LIST_2016 = "/JPEGImages/480p/{name}/{t:05d}.jpg /Annotations/480p/{name}/{t:05d}.png"


def _copy_frames(source: str, root: str, name: str, frames: int = 2) -> None:
    """Copies the first `frames` frames and annotations of DAVIS sequence `name` from `source` into `root`."""
    for sub, ext in (("JPEGImages", "jpg"), ("Annotations", "png")):
        os.makedirs(os.path.join(root, sub, "480p", name))
        for t in range(frames):
            shutil.copy(os.path.join(source, sub, "480p", name, f"{t:05d}.{ext}"),
                        os.path.join(root, sub, "480p", name, f"{t:05d}.{ext}"))


def _write(path: str, text: str, encoding: str = "utf-8") -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding=encoding, newline="") as f:
        f.write(text)


def _davis_2016_part(shared_data: str, root: str) -> str:
    """Two frames of DAVIS-2016's blackswan (grey 0/255 masks) with its ImageSets/480p/val.txt."""
    _copy_frames(os.path.join(shared_data, "DAVIS-2016"), root, "blackswan")
    _write(os.path.join(root, "ImageSets", "480p", "val.txt"),
           "".join(_LIST_2016.format(name="blackswan", t=t) + "\n" for t in range(2)))
    return root


def test_davis_2016_masks_over_davis_2017_are_refused_as_a_merged_tree(shared_data, tmp_path):
    root = _davis_2016_part(shared_data, str(tmp_path / "DAVIS"))
    _write(os.path.join(root, "ImageSets", "2017", "train.txt"), "blackswan\n")
    with pytest.raises(DatasetLayoutError) as err:
        read_davis_sequence_list(str(tmp_path), 2017, "train")
    message = str(err.value)
    assert os.path.join("blackswan", "00000.png") in message
    assert "ImageSets/480p" in message and "ImageSets/2017" in message and "separate folders" in message
    # The same tree still reads as DAVIS-2016, whose masks these are.
    (swan,) = read_davis_sequence_list(str(tmp_path), 2016, "val")
    assert swan.num_objects == 1 and set(np.unique(load_masks(swan))) == {0, 1}
    # Without DAVIS-2016's split folder it is a DAVIS-2017 layout of grey masks, which reads (one object here).
    shutil.rmtree(os.path.join(root, "ImageSets", "480p"))
    (swan,) = read_davis_sequence_list(str(tmp_path), 2017, "train")
    assert swan.num_objects == 1


def test_davis_2017_masks_under_a_2016_config_name_the_merged_tree(shared_data, tmp_path):
    root = str(tmp_path / "DAVIS")
    shutil.copytree(os.path.join(shared_data, "DAVIS-2017-sample"), root)
    _write(os.path.join(root, "ImageSets", "480p", "val.txt"),
           "".join(_LIST_2016.format(name=n, t=t) + "\n" for n in ("bear", "tennis") for t in range(2)))
    with pytest.raises(DatasetLayoutError) as err:
        for sequence in read_davis_sequence_list(root, 2016, "val"):
            load_masks(sequence)
    message = str(err.value)
    assert os.path.join("tennis", "00000.png") in message
    assert "ImageSets/480p" in message and "ImageSets/2017" in message and "separate folders" in message
    # DAVIS-2017 reading of the same tree is unaffected: its masks are palette PNGs.
    by_name = {s.name: s for s in read_davis_sequence_list(root, 2017, "val")}
    assert by_name["tennis"].num_objects == 2 and by_name["bear"].num_objects == 1


def test_davis_2017_list_with_a_bom_reads_its_names(shared_data, tmp_path):
    root = str(tmp_path / "DAVIS")
    shutil.copytree(os.path.join(shared_data, "DAVIS-2017-sample"), root)
    _write(os.path.join(root, "ImageSets", "2017", "val.txt"), "bear\r\ntennis\r\n", "utf-8-sig")
    assert [s.name for s in read_davis_sequence_list(root, 2017, "val")] == ["bear", "tennis"]


def test_davis_2016_list_with_a_bom_reads_its_frames(shared_data, tmp_path):
    root = _davis_2016_part(shared_data, str(tmp_path / "DAVIS"))
    path = os.path.join(root, "ImageSets", "480p", "val.txt")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    _write(path, text, "utf-8-sig")
    (swan,) = read_davis_sequence_list(root, 2016, "val")
    assert swan.name == "blackswan" and swan.num_frames == 2


def test_segtrack_lists_with_a_bom_read_their_names(shared_data, tmp_path):
    source, root = os.path.join(shared_data, "SegTrackv2-sample"), str(tmp_path / "SegTrackv2")
    stems = ["bmx_06668", "bmx_06669"]
    for sub in ("JPEGImages", "GroundTruth"):
        os.makedirs(os.path.join(root, sub, "bmx"))
        for stem in stems:
            shutil.copy(os.path.join(source, sub, "bmx", stem + ".png"), os.path.join(root, sub, "bmx"))
    _write(os.path.join(root, "ImageSets", "all.txt"), "*bmx\n", "utf-8-sig")
    _write(os.path.join(root, "ImageSets", "bmx.txt"), "".join(s + "\n" for s in stems), "utf-8-sig")
    (bmx,) = read_segtrack_sequence_list(root)
    assert bmx.name == "bmx" and bmx.num_frames == 2


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le"])
def test_a_utf_16_list_is_refused_naming_the_file(shared_data, tmp_path, encoding):
    """Windows Notepad's "Unicode" is UTF-16 with a byte order mark; without one (utf-16-le) the names decode as
    UTF-8 with a NUL after every letter."""
    root = str(tmp_path / "DAVIS")
    shutil.copytree(os.path.join(shared_data, "DAVIS-2017-sample"), root)
    path = os.path.join(root, "ImageSets", "2017", "val.txt")
    _write(path, "bear\ntennis\n", encoding)
    with pytest.raises(DatasetLayoutError, match="UTF-8") as err:
        read_davis_sequence_list(root, 2017, "val")
    assert path in str(err.value)


@pytest.mark.parametrize("encoding, guess", [("utf-16", "UTF-16"), ("latin-1", "Latin-1 or Windows-1252")])
def test_a_list_that_is_not_utf_8_names_the_likely_encoding(tmp_path, encoding, guess):
    """A Latin-1 list (an accented name saved by an older editor) was told it might be UTF-16."""
    from maskrnn_tf.io.list_files import read_list_lines

    path = tmp_path / "val.txt"
    path.write_text("café\nbear\n", encoding=encoding)
    with pytest.raises(ValueError, match=rf"{path}: not UTF-8 text \(byte 0x[0-9a-f]{{2}} on line \d+: .*{guess}.*\); save the file as "
                                         "UTF-8") as refused:
        read_list_lines(str(path))
    assert ("UTF-16" in str(refused.value)) == (encoding == "utf-16")


@pytest.mark.parametrize("bom, end", [(b"", b"\n"), (b"\xef\xbb\xbf", b"\n"), (b"", b"\r\n"), (b"", b"\r")])
def test_a_list_not_utf_8_far_into_the_file_names_the_byte_and_its_line(tmp_path, bom, end):
    """The byte offset came from the text reader's chunk (8 KiB), not the file: a bad byte on line 1001 of a long
    list read "byte 1"; it is now the byte as the flag files name it, with its line."""
    from maskrnn_tf.io.list_files import read_list_lines

    path = tmp_path / "val.txt"
    path.write_bytes(bom + b"".join(b"sequence-%04d" % i + end for i in range(1000)) + b"caf\xe9" + end)
    with pytest.raises(ValueError, match=r"not UTF-8 text \(byte 0xe9 on line 1001: invalid continuation byte"):
        read_list_lines(str(path))
