"""Palette PNGs as people make them from other masks, and damaged PNGs.

- A result quantised from a DAVIS-colour RGB mask (`Image.quantize`) has its indices ordered by colour: the background
  is not index 0. It was scored with the wrong ids (J 0 for a result equal to the ground truth), silently.
- `Image.convert("P")` of an RGB mask dithers into the web palette: one object becomes a checkerboard of two or more
  indices, which were tracked as that many objects.
- `Image.convert("P")` of a grey 0/255 mask keeps the values with a grey palette: index 255 was read as void, so the
  mask held "no object".
- A PNG with a corrupt chunk raised Pillow's SyntaxError through every reader (a traceback, not a named file).
"""
import numpy as np
import pytest
from PIL import Image

from maskrnn_tf.io import ImageReadError, davis_palette, read_frame, write_palette_png
from maskrnn_tf.io.id_images import read_annotation_ids, read_label_image, read_result_ids_and_0_255


def two_objects() -> np.ndarray:
    ids = np.zeros((40, 60), np.uint8)
    ids[5:20, 5:25], ids[22:36, 30:55] = 1, 2
    return ids


def test_a_quantised_palette_result_is_refused_by_name(tmp_path):
    path = str(tmp_path / "00001.png")
    Image.fromarray(davis_palette()[two_objects()]).quantize(8).save(path)
    image = Image.open(path)
    assert np.asarray(image)[0, 0] != 0 and np.asarray(image.getpalette()[:3]).any()  # the premise: as made
    with pytest.raises(ImageReadError, match=r"00001.png: palette PNG whose background \(black\) is index .*"
                                             r"indices are colours.*write_palette_png"):
        read_result_ids_and_0_255(path, objects=2)


def test_palette_results_written_by_ids_read_as_before(tmp_path):
    path = str(tmp_path / "00001.png")
    write_palette_png(path, two_objects())
    ids, binary = read_result_ids_and_0_255(path, objects=2)
    np.testing.assert_array_equal(ids, two_objects())
    assert not binary


def dithered(path) -> None:
    Image.fromarray(davis_palette()[two_objects()]).convert("P").save(path)
    values = np.asarray(Image.open(path))
    assert len(np.unique(values[two_objects() == 1])) >= 2  # the premise: one object, several indices


def test_a_dithered_palette_first_mask_or_annotation_is_refused_by_name(tmp_path):
    path = str(tmp_path / "first.png")
    dithered(path)
    with pytest.raises(ImageReadError, match=r"first.png: palette PNG whose object id\(s\) \[.*\] have no pixel "
                                             r"inside a region of their own.*dither"):
        read_label_image(path)
    with pytest.raises(ImageReadError, match=r"first.png: palette PNG whose object id\(s\) .*dither"):
        read_annotation_ids(path)


def test_thin_and_touching_objects_of_a_palette_mask_read_as_before(tmp_path):
    """A one-pixel line (a leash, a string) has no pixel inside a region of its own either, on the background, along
    an object, between two or diagonally across one: it is not dithering."""
    ids = two_objects()
    ids[38, 2:58] = 3  # a line on the background
    ids[20, 5:25] = 4  # a line along object 1's lower edge
    ids[21, 30:55] = 5  # a line along object 2's upper edge, touching line 4 at one corner
    ids[6:19, 25] = 6  # a line between object 1 and a column of object 2
    ids[6:19, 26] = 2
    path = str(tmp_path / "first.png")
    write_palette_png(path, ids)
    np.testing.assert_array_equal(read_label_image(path)[0], ids)
    np.testing.assert_array_equal(read_annotation_ids(path), ids)
    across = np.zeros((60, 80), np.uint8)
    across[5:55, 5:75] = 1
    for k in range(40):
        across[10 + k, 20 + k] = 2  # a diagonal line across object 1 (no side of itself)
    write_palette_png(path, across)
    np.testing.assert_array_equal(read_label_image(path)[0], across)
    np.testing.assert_array_equal(read_annotation_ids(path), across)


def test_a_grey_palette_0_255_mask_is_a_binary_mask(tmp_path):
    mask = (two_objects() == 1).astype(np.uint8) * 255
    path = str(tmp_path / "00000.png")
    Image.fromarray(mask).convert("P").save(path)
    assert Image.open(path).mode == "P" and set(np.unique(np.asarray(Image.open(path)))) == {0, 255}  # premise
    np.testing.assert_array_equal(read_label_image(path)[0], mask // 255)
    ids, binary = read_result_ids_and_0_255(path, objects=1)
    np.testing.assert_array_equal(ids, mask // 255)
    assert binary  # a DAVIS-2016 binary result, as its grey (L) twin


def test_grey_palette_ground_truth_keeps_its_indices_in_every_frame(tmp_path):
    """Ground truth of ids saved through convert("P") (a palette of its own greys): every frame's indices are its ids,
    void included, also a frame where only background and void are left."""
    from maskrnn_tf.inference.first_mask import read_first_annotation
    from maskrnn_tf.io.id_images import grey_annotation_mode

    ids = two_objects()
    ids[0:3, :] = 255
    empty = np.where(ids == 255, 255, 0).astype(np.uint8)
    for name, frame in (("00000.png", ids), ("00001.png", empty)):
        Image.fromarray(frame).convert("P").save(tmp_path / name)
    first = str(tmp_path / "00000.png")
    np.testing.assert_array_equal(read_annotation_ids(first, grey_annotation_mode(first)), ids)
    np.testing.assert_array_equal(read_annotation_ids(str(tmp_path / "00001.png"), grey_annotation_mode(first)),
                                  empty)
    assert tuple(read_first_annotation(first).object_ids) == (1, 2)


def test_a_davis_palette_mask_with_void_keeps_its_void(tmp_path):
    ids = two_objects()
    ids[0:3, :] = 255
    path = str(tmp_path / "00000.png")
    write_palette_png(path, ids)
    np.testing.assert_array_equal(read_label_image(path)[0], ids)
    np.testing.assert_array_equal(read_annotation_ids(path), ids)


def broken_png(path) -> None:
    """A valid grey PNG whose IDAT chunk length is 9 bytes short (Pillow: SyntaxError, "broken PNG file")."""
    Image.fromarray(two_objects() * 100).save(path)
    data = bytearray(open(path, "rb").read())
    idat = data.index(b"IDAT") - 4
    data[idat:idat + 4] = (int.from_bytes(data[idat:idat + 4], "big") - 9).to_bytes(4, "big")
    open(path, "wb").write(bytes(data))
    with pytest.raises(SyntaxError):
        Image.open(path).load()  # the premise


@pytest.mark.parametrize("reader", [read_frame, read_label_image, read_annotation_ids, read_result_ids_and_0_255])
def test_a_damaged_png_is_refused_by_name(tmp_path, reader):
    path = str(tmp_path / "00003.png")
    broken_png(path)
    with pytest.raises(ImageReadError, match=r"00003.png: unreadable image .*replace it"):
        reader(path)


@pytest.mark.parametrize("name", ["00001.png", "00001.jpg"])
def test_a_jpeg_result_is_named_as_jpeg_not_as_resized(tmp_path, name):
    """Grey JPEG data (also under a .png name) was refused as "resized with interpolation": a wrong cause and fix."""
    path = str(tmp_path / name)
    Image.fromarray((two_objects() == 1).astype(np.uint8) * 255).save(path, format="JPEG")
    with pytest.raises(ImageReadError, match=r"00001\.(png|jpg): JPEG data.*save results as PNG") as err:
        read_result_ids_and_0_255(path, objects=1)
    assert "interpolation" not in str(err.value)
