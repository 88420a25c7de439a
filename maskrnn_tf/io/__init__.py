"""Image and mask files: frames, binary/palette masks, DAVIS palette PNG output."""
from maskrnn_tf.io.masks import (
    VOID_ID,
    ImageReadError,
    davis_palette,
    read_frame,
    read_mask,
    read_palette,
    write_palette_png,
)

__all__ = [
    "VOID_ID",
    "ImageReadError",
    "davis_palette",
    "read_frame",
    "read_mask",
    "read_palette",
    "write_palette_png",
]
