"""Sequence readers on the real layouts and every bad input they must reject."""
import os
import re

import numpy as np
import pytest
from PIL import Image

from maskrnn_tf.data.sequences import (
    DatasetLayoutError, davis_split_names, load_masks, read_davis_sequence_list, read_segtrack_sequence_list,
)
from maskrnn_tf.io import ImageReadError, read_mask, write_palette_png
from maskrnn_tf.io.id_images import grey_annotation_mode, read_annotation_ids
from maskrnn_tf.metrics.segtrack_evaluation import SegTrackSpec, load_segtrack_layers


def make_davis_2017(root, sequences, size=(12, 16), frames=3):
    """A tiny DAVIS-2017 tree; `sequences` maps a name to a list of id maps (one per frame) or an int N."""
    os.makedirs(os.path.join(root, "ImageSets", "2017"), exist_ok=True)
    with open(os.path.join(root, "ImageSets", "2017", "val.txt"), "w") as f:
        f.write("\n".join(sequences) + "\n")
    rng = np.random.default_rng(0)
    for name, ids in sequences.items():
        if isinstance(ids, int):
            base = np.zeros(size, np.uint8)
            for k in range(1, ids + 1):
                base[k, :] = k
            ids = [base] * frames
        frame_dir = os.path.join(root, "JPEGImages", "480p", name)
        mask_dir = os.path.join(root, "Annotations", "480p", name)
        os.makedirs(frame_dir, exist_ok=True)
        os.makedirs(mask_dir, exist_ok=True)
        for t, mask in enumerate(ids):
            pixels = rng.integers(0, 255, size=mask.shape + (3,), dtype=np.uint8)
            Image.fromarray(pixels).save(os.path.join(frame_dir, f"{t:05d}.jpg"))
            write_palette_png(os.path.join(mask_dir, f"{t:05d}.png"), mask)
    return root


def test_davis_2016_real(shared_data):
    sequences = read_davis_sequence_list(os.path.join(shared_data, "DAVIS-2016"), 2016, "val")
    names = [s.name for s in sequences]
    assert names == ["blackswan", "car-shadow", "drift-chicane", "libby"]
    blackswan = sequences[0]
    assert blackswan.num_frames == 50 and blackswan.num_objects == 1 and blackswan.eval_t is True
    assert blackswan.dataset == "davis-480p"
    ids = load_masks(blackswan)
    assert ids.shape == (50, 480, 854) and set(np.unique(ids)) == {0, 1}


def test_davis_2017_sample_ids_and_void(shared_data):
    sequences = read_davis_sequence_list(os.path.join(shared_data, "DAVIS-2017-sample"), 2017, "val")
    by_name = {s.name: s for s in sequences}
    assert by_name["bear"].num_objects == 1 and by_name["tennis"].num_objects == 2
    ids = load_masks(by_name["tennis"])
    assert set(np.unique(ids)) == {0, 1, 2, 255}


def test_segtrack_sample(shared_data):
    (bmx,) = read_segtrack_sequence_list(os.path.join(shared_data, "SegTrackv2-sample"))
    assert bmx.name == "bmx" and bmx.num_frames == 36 and bmx.num_objects == 1 and not bmx.mask_layers
    ids = load_masks(bmx)
    assert ids.shape == (36, 360, 640)
    np.testing.assert_array_equal(ids[0], read_mask(bmx.mask_paths[0][0]))


def _segtrack_duo(tmp_path, write_layer) -> None:
    """A SegTrack v2 folder `tmp_path/SegTrackv2` of one sequence "duo": two 6x8 BMP frames and two object layers,
    each written by `write_layer(path, k)` (k = 1, 2)."""
    root = tmp_path / "SegTrackv2"
    (root / "ImageSets").mkdir(parents=True)
    (root / "ImageSets" / "all.txt").write_text("*duo\n")
    (root / "ImageSets" / "duo.txt").write_text("/JPEGImages/duo/\nduo_01\nduo_02\n")
    (root / "JPEGImages" / "duo").mkdir(parents=True)
    for stem in ("duo_01", "duo_02"):
        Image.fromarray(np.full((6, 8, 3), 100, np.uint8)).save(root / "JPEGImages" / "duo" / f"{stem}.bmp")
        for k in (1, 2):
            (root / "GroundTruth" / "duo" / str(k)).mkdir(parents=True, exist_ok=True)
            write_layer(root / "GroundTruth" / "duo" / str(k) / f"{stem}.png", k)


def test_segtrack_multi_object_layers(tmp_path):
    def write_layer(path, k):
        layer = np.zeros((6, 8, 3), np.uint8)
        layer[k, :] = 255  # object k fills row k
        Image.fromarray(layer).save(path)

    _segtrack_duo(tmp_path, write_layer)
    (duo,) = read_segtrack_sequence_list(str(tmp_path))
    assert duo.num_objects == 2 and duo.mask_layers and duo.frame_paths[0].endswith(".bmp")
    ids = load_masks(duo)
    expected = np.zeros((6, 8), np.uint8)
    expected[1], expected[2] = 1, 2
    np.testing.assert_array_equal(ids[1], expected)


@pytest.mark.parametrize("listed", ["*duo\nduo\n", "duo\n*duo\n"])
def test_a_segtrack_sequence_listed_twice_is_refused_by_name(tmp_path, listed):
    """ImageSets/all.txt listing a sequence twice (with and without SegTrack's "*" multi-object mark) was read as two
    sequences: evaluate scored it twice (two rows, counted twice in the means) and segment kept one. DAVIS lists
    are refused alike."""
    _segtrack_duo(tmp_path, lambda path, k: Image.fromarray(np.full((6, 8), 255 * (k == 1), np.uint8)).save(path))
    all_txt = tmp_path / "SegTrackv2" / "ImageSets" / "all.txt"
    all_txt.write_text(listed)
    with pytest.raises(DatasetLayoutError, match=rf"{all_txt}: lists \['duo'\] more than once; list each sequence "
                                                 "once"):
        read_segtrack_sequence_list(str(tmp_path))


def test_no_manual_dir_names_layout_and_archives(tmp_path):
    with pytest.raises(DatasetLayoutError, match="DAVIS-2017-trainval-480p.zip"):
        read_davis_sequence_list(str(tmp_path / "missing"), 2017, "val")
    with pytest.raises(DatasetLayoutError, match="JPEGImages"):
        read_davis_sequence_list(str(tmp_path), 2016, "val")


def test_missing_frame_and_mask(tmp_path):
    root = make_davis_2017(str(tmp_path / "DAVIS"), {"a": 1})
    os.remove(os.path.join(root, "Annotations", "480p", "a", "00001.png"))
    with pytest.raises(DatasetLayoutError, match=r"00001.png: missing mask"):
        read_davis_sequence_list(str(tmp_path), 2017, "val")
    root2 = make_davis_2017(str(tmp_path / "d2"), {"a": 1})
    os.remove(os.path.join(root2, "JPEGImages", "480p", "a", "00001.jpg"))
    with pytest.raises(DatasetLayoutError, match="non-contiguous"):
        read_davis_sequence_list(root2, 2017, "val")
    # DAVIS-2016 lists frames explicitly: a listed frame that is gone is reported as missing.
    davis16 = tmp_path / "d16"
    os.makedirs(davis16 / "ImageSets" / "480p")
    (davis16 / "JPEGImages" / "480p" / "a").mkdir(parents=True)
    (davis16 / "ImageSets" / "480p" / "val.txt").write_text(
        "/JPEGImages/480p/a/00000.jpg /Annotations/480p/a/00000.png\n")
    with pytest.raises(DatasetLayoutError, match=r"00000.jpg: missing frame"):
        read_davis_sequence_list(str(davis16), 2016, "val")


def test_size_mismatch(tmp_path):
    root = make_davis_2017(str(tmp_path / "DAVIS"), {"a": 1})
    write_palette_png(os.path.join(root, "Annotations", "480p", "a", "00002.png"), np.zeros((10, 16), np.uint8))
    with pytest.raises(DatasetLayoutError, match=r"00002.png: mask size 16x10 differs"):
        read_davis_sequence_list(root, 2017, "val")


def test_palette_ids_skip_or_exceed(tmp_path):
    skip = np.zeros((12, 16), np.uint8)
    skip[1], skip[3] = 1, 3
    with pytest.raises(DatasetLayoutError, match=r"skip \[2\]"):
        read_davis_sequence_list(make_davis_2017(str(tmp_path / "s"), {"a": [skip] * 2}), 2017, "val")
    first = np.zeros((12, 16), np.uint8)
    first[1] = 1
    later = first.copy()
    later[5] = 2
    (seq,) = read_davis_sequence_list(make_davis_2017(str(tmp_path / "e"), {"a": [first, later]}), 2017, "val")
    with pytest.raises(DatasetLayoutError, match=r"00001.png: object id 2 exceeds the 1 object"):
        load_masks(seq)


def test_unreadable_image(tmp_path):
    root = make_davis_2017(str(tmp_path / "DAVIS"), {"a": 1})
    with open(os.path.join(root, "JPEGImages", "480p", "a", "00001.jpg"), "wb") as f:
        f.write(b"not a jpeg")
    with pytest.raises(ImageReadError, match=r"00001.jpg: unreadable image"):
        read_davis_sequence_list(root, 2017, "val")


def test_davis_2017_ignores_hidden_files_beside_the_frames(tmp_path):
    # macOS writes "._<name>" AppleDouble files when copying to exFAT/network drives; they are not frames.
    root = make_davis_2017(str(tmp_path / "DAVIS"), {"a": 1})
    for sub, ext in (("JPEGImages", "jpg"), ("Annotations", "png")):
        for t in range(3):
            with open(os.path.join(root, sub, "480p", "a", f"._{t:05d}.{ext}"), "wb") as f:
                f.write(b"\x00\x05\x16\x07" + bytes(60))
    (seq,) = read_davis_sequence_list(root, 2017, "val")
    assert [os.path.basename(p) for p in seq.frame_paths] == ["00000.jpg", "00001.jpg", "00002.jpg"]
    assert [os.path.basename(p) for (p,) in seq.mask_paths] == ["00000.png", "00001.png", "00002.png"]
    assert load_masks(seq).shape == (3, 12, 16)


def test_a_manual_dir_that_is_the_zip_itself_is_named_as_a_file_not_as_missing(tmp_path):
    archive = tmp_path / "DAVIS-2017-trainval-480p.zip"
    archive.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip: the point is that it exists
    with pytest.raises(DatasetLayoutError, match=r"is a file, not a folder.*folder that holds it") as err:
        read_davis_sequence_list(str(archive), 2017, "val")
    assert "does not exist" not in str(err.value)
    with pytest.raises(DatasetLayoutError, match=r"is a file, not a folder"):
        read_segtrack_sequence_list(str(archive))


@pytest.mark.parametrize("year", [2016, 2017])
def test_a_listed_sequence_whose_folder_is_missing_names_the_list_and_the_remedy(tmp_path, year):
    # A subset of DAVIS kept with the official split files: the error must say which list names the sequence.
    root = make_davis_2017(str(tmp_path / "DAVIS"), {"a": 1, "gone": 1})
    if year == 2016:
        lines = [f"/JPEGImages/480p/{n}/{t:05d}.jpg /Annotations/480p/{n}/{t:05d}.png" for n in ("a", "gone")
                 for t in range(3)]
        os.makedirs(os.path.join(root, "ImageSets", "480p"))
        with open(os.path.join(root, "ImageSets", "480p", "val.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
    import shutil

    shutil.rmtree(os.path.join(root, "JPEGImages", "480p", "gone"))
    split_file = os.path.join("ImageSets", "480p" if year == 2016 else "2017", "val.txt")
    with pytest.raises(DatasetLayoutError) as err:
        read_davis_sequence_list(root, year, "val")
    message = str(err.value)
    assert os.path.join("JPEGImages", "480p", "gone") in message and split_file in message
    assert "remove" in message and "restore" in message


@pytest.mark.parametrize("second", ["0/1 grey", "DAVIS red", "pure red", "0/255 over an anti-aliased edge"])
def test_segtrack_layers_are_read_like_any_annotation(tmp_path, second):
    """Each object's layer was read with a bare `grey > 127`: a layer saved 0/1 or in DAVIS red (grey 38)
    vanished, and training, segment and evaluate lost that object without a word; other colours are refused by
    name, as for any annotation."""
    def write_layer(path, k):
        if k == 1:
            layer = np.zeros((6, 8), np.uint8)
            layer[1, :] = 255
        elif second == "0/1 grey":
            layer = np.zeros((6, 8), np.uint8)
            layer[2, :] = 1
        elif second.endswith("red"):
            layer = np.zeros((6, 8, 3), np.uint8)
            layer[2, :, 0] = 128 if second == "DAVIS red" else 255
        else:  # the object's row at 255, a faint anti-aliased edge of 40 below it: the edge is background
            layer = np.zeros((6, 8), np.uint8)
            layer[2, :], layer[3, :] = 255, 40
        Image.fromarray(layer).save(path)

    _segtrack_duo(tmp_path, write_layer)
    (duo,) = read_segtrack_sequence_list(str(tmp_path))
    if second == "pure red":
        with pytest.raises(ImageReadError, match=r"duo/2/duo_01.png: RGB annotation with 1 colour"):
            load_masks(duo)
        return
    expected = np.zeros((6, 8), np.uint8)
    expected[1], expected[2] = 1, 2
    for ids in load_masks(duo):
        np.testing.assert_array_equal(ids, expected)
    spec = SegTrackSpec(name="duo", frames=("duo_01", "duo_02"), sequence=duo)
    np.testing.assert_array_equal(load_segtrack_layers(spec, [0, 1]).sum(axis=(1, 2, 3)), [16, 16])


def test_a_later_grey_rgb_annotation_of_davis_greys_reads_as_grey(tmp_path):
    """A grey annotation saved as RGB whose only non-zero value was 64, 128 or 192 (a few edge pixels of the object
    leaving) was looked up in the DAVIS palette, as objects 56, 7 or 63, though the sequence's first frame is grey."""
    first, later = str(tmp_path / "00000.png"), str(tmp_path / "00001.png")
    mask = np.zeros((4, 4, 3), np.uint8)
    mask[1:3, 1:3] = 255
    Image.fromarray(mask).save(first)
    edge = np.zeros((4, 4, 3), np.uint8)
    edge[0, 0] = 128
    Image.fromarray(edge).save(later)
    mode = grey_annotation_mode(first)
    expected = np.zeros((4, 4), np.uint8)
    expected[0, 0] = 1
    np.testing.assert_array_equal(read_annotation_ids(later, mode), expected)
    # A colour first annotation keeps the palette reading: 128 grey is then DAVIS's object 7.
    colours = np.zeros((4, 4, 3), np.uint8)
    colours[0, 0], colours[1, 1] = (128, 0, 0), (128, 128, 128)
    Image.fromarray(colours).save(first)
    assert read_annotation_ids(later, grey_annotation_mode(first))[0, 0] == 7


def test_unpadded_or_repeated_frame_names_are_refused_for_what_they_are(tmp_path):
    """0.jpg ... 11.jpg was refused as "frame 10 follows 1 ... restore the missing frames", though none was
    missing; a frame saved twice (00000.jpg and 00000.png) as "frame 0 follows 0"."""
    from maskrnn_tf.data.sequences import check_contiguous

    with pytest.raises(DatasetLayoutError, match=r"not zero-padded.*00000.jpg, 00001.jpg"):
        check_contiguous(sorted(f"/d/{n}.jpg" for n in range(12)), "sequence a")
    with pytest.raises(DatasetLayoutError, match=r"frame 0 twice \(00000.jpg and 00000.png\).*one image per frame"):
        check_contiguous(["/d/00000.jpg", "/d/00000.png", "/d/00001.jpg"], "sequence a")
    with pytest.raises(DatasetLayoutError, match=r"frame 3 follows 1.*restore the missing frames"):
        check_contiguous(["/d/00001.jpg", "/d/00003.jpg"], "sequence a")
    check_contiguous([f"/d/{n:05d}.jpg" for n in range(12)], "sequence a")
    # Padded names listed out of order (a DAVIS-2016 or SegTrack list file with two lines swapped): the list's
    # order is wrong, not the names.
    with pytest.raises(DatasetLayoutError, match=r"00002.jpg: .*listed out of order \(00002.jpg before "
                                                 r"00001.jpg\).*ImageSets") as err:
        check_contiguous(["/d/00000.jpg", "/d/00002.jpg", "/d/00001.jpg", "/d/00003.jpg"], "sequence a")
    assert "zero-padded" not in str(err.value)


def test_a_sequence_listed_twice_in_a_split_file_is_refused_naming_the_file(tmp_path):
    """val.txt listing bear twice was read as two sequences: the tfds builder then failed after generating the
    whole split ("Two examples share the same hashed key!", naming neither file nor line) and a scoring would count
    the sequence twice in its means."""
    root = make_davis_2017(str(tmp_path / "d"), {"bear": 1, "tennis": 2})
    list_path = os.path.join(root, "ImageSets", "2017", "val.txt")
    with open(list_path, "w") as f:
        f.write("bear\ntennis\nbear\n")
    for validate in (True, "first_mask", False):
        with pytest.raises(DatasetLayoutError, match=re.escape(f"{list_path}: lists ['bear'] more than once")):
            read_davis_sequence_list(root, 2017, "val", validate=validate)
    with pytest.raises(DatasetLayoutError, match=re.escape(f"{list_path}: lists ['bear'] more than once")):
        davis_split_names(root, 2017, "val")


def test_frames_of_different_sizes_are_named_with_their_sizes(tmp_path):
    """The message held a Python list of ((height, width), path) tuples."""
    root = make_davis_2017(str(tmp_path / "d"), {"bear": 1})
    frame = os.path.join(root, "JPEGImages", "480p", "bear", "00002.jpg")
    mask = os.path.join(root, "Annotations", "480p", "bear", "00002.png")
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(frame)
    write_palette_png(mask, np.zeros((20, 30), np.uint8))
    first = os.path.join(root, "JPEGImages", "480p", "bear", "00000.jpg")
    with pytest.raises(DatasetLayoutError, match=re.escape(
            f"sequence bear: frames of different sizes (16x12: {first} and 1 more; 30x20: {frame}); all frames of a "
            "video must have the same size.")):
        read_davis_sequence_list(root, 2017, "val")


def test_chosen_names_keeps_the_order_given_and_refuses_unknown_repeated_or_no_names():
    from maskrnn_tf.data.sequences import chosen_names

    available = ["alpha", "beta", "gamma"]
    assert chosen_names(available, None, "DAVIS-2017 val") == available
    assert chosen_names(available, ("gamma", "alpha"), "DAVIS-2017 val") == ["gamma", "alpha"]
    with pytest.raises(ValueError, match=r"^sequence 'delta' is not in DAVIS-2017 val; choose from \['alpha', "):
        chosen_names(available, ["alpha", "delta"], "DAVIS-2017 val")
    with pytest.raises(KeyError, match=r"sequences 'delta', 'eps' are not in"):
        chosen_names(available, ["delta", "eps"], "here", KeyError)
    with pytest.raises(ValueError, match=r"\['beta'\] named more than once"):
        chosen_names(available, ["beta", "alpha", "beta"], "here")
    with pytest.raises(ValueError, match="--sequences is empty"):
        chosen_names(available, [], "here")
