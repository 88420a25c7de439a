"""Reading frames and masks in the layouts of DAVIS and SegTrack, and writing DAVIS palette PNGs."""
from __future__ import annotations

import os
import struct
from typing import Optional

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from maskrnn_tf.io.atomic_file import atomic_write

VOID_ID = 255  # DAVIS-2017: pixels excluded from evaluation


class ImageReadError(ValueError):
    """An image or mask file is missing, unreadable or not of the expected kind."""


_ORIENTATION = 0x0112  # the EXIF tag


def _open(path: str) -> Image.Image:
    if not os.path.isfile(path):
        raise ImageReadError(f"{path}: file not found.")
    try:
        image = Image.open(path)
        image.load()
    # SyntaxError: Pillow's "broken PNG file" (a corrupt chunk); DecompressionBombError: a size meant to exhaust memory.
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as err:
        raise ImageReadError(
            f"{path}: unreadable image ({err}); replace it with a valid JPEG/PNG/BMP file."
        ) from err
    # An EXIF Orientation tag (an image stored sideways, shown upright by every viewer) applies to masks as to
    # frames: a mask read unturned beside upright frames was tracked as a rotated object (or refused for its
    # size). Transposing keeps a palette image's indices, palette and transparency.
    try:
        if image.getexif().get(_ORIENTATION, 1) == 1:
            return image  # as stored (exif_transpose would copy it, without its `format`)
        upright = ImageOps.exif_transpose(image)
    except (ValueError, TypeError, KeyError, OSError, SyntaxError, struct.error):  # unreadable EXIF: as stored
        return image
    upright.format = image.format  # what the readers name (a JPEG saved as a result)
    return upright


def read_frame(path: str | os.PathLike) -> np.ndarray:
    """Reads a video frame as uint8 RGB [H, W, 3]; 16-bit grey images keep their top 8 bits, as OpenCV reads them
    (Pillow's own conversion clips them at 255, which turns a 16-bit frame nearly white). An EXIF Orientation tag
    (phone photos stored sideways) is applied, as OpenCV and image viewers do: the picture an annotation was drawn
    on."""
    image = _open(os.fspath(path))
    if image.mode.startswith("I"):  # I;16, I;16B, or I (32-bit ints, how some Pillow versions open 16-bit PNGs)
        grey = (np.clip(np.asarray(image, np.int64), 0, 65535) >> 8).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def read_palette(path: str | os.PathLike) -> Optional[np.ndarray]:
    """The [256, 3] uint8 palette of an indexed PNG, or None when the image is not indexed."""
    image = _open(os.fspath(path))
    if image.mode != "P":
        return None
    flat = np.asarray(image.getpalette() or [], dtype=np.uint8)
    palette = np.zeros((256, 3), np.uint8)
    palette.reshape(-1)[: flat.size] = flat[: 768]
    return palette


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Reads a mask as uint8 object ids [H, W] (0 background, 255 void), as the DAVIS tools read masks: palette
    PNGs of ids, grey PNGs of ids (8 or 16 bit) or 0/255 binary masks (foreground 1), RGB masks in DAVIS palette
    colours; anything else is refused by name (`maskrnn_tf.io.id_images.read_annotation_ids`: a 0/1 mask or a red
    object thresholded as grey read as empty). The form is decided on this file alone: for a later frame of a
    grey sequence (only ids 2 and 255, say) use `read_annotation_ids(path, grey_annotation_mode(first_frame))`.

    Raises:
      ImageReadError: a missing or unreadable file, or one that is none of those forms.
    """
    from maskrnn_tf.io.id_images import read_annotation_ids

    return read_annotation_ids(path)


def davis_palette() -> np.ndarray:
    """The DAVIS / PASCAL VOC colour map [256, 3] uint8 (id 1 red, 2 green, 3 yellow, ...)."""
    palette = np.zeros((256, 3), np.uint8)
    for index in range(256):
        value, r, g, b = index, 0, 0, 0
        for bit in range(8):
            r |= ((value >> 0) & 1) << (7 - bit)
            g |= ((value >> 1) & 1) << (7 - bit)
            b |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette[index] = (r, g, b)
    return palette


def write_palette_png(path: str | os.PathLike, labels: np.ndarray, palette: Optional[np.ndarray] = None) -> None:
    """Writes object ids [H, W] as an indexed PNG (atomically: temporary file, then rename)."""
    path = os.fspath(path)
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"write_palette_png({path}): labels must be [H, W], got shape {labels.shape}.")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError(f"write_palette_png({path}): ids must be in 0..255.")
    palette = davis_palette() if palette is None else np.asarray(palette, np.uint8).reshape(256, 3)
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(palette.reshape(-1).tolist())
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"), suffix=".png")
