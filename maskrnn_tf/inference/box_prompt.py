"""A first-frame mask from one box per object, with OpenCV's GrabCut (for users who have no mask tool).

Boxes are `x0,y0,x1,y1` in pixels of the input frame: (x0, y0) is the top-left pixel inside the box,
(x1, y1) the corner just past the bottom-right one (as in slicing: the box holds columns x0..x1-1 and rows
y0..y1-1), so 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height. Several objects: `box;box;...`; object k
(1-based) is the k-th box.
"""
from __future__ import annotations

import logging
from typing import List, Sequence, Tuple

import cv2
import numpy as np

from maskrnn_tf.inference.first_mask import FirstMask
from maskrnn_tf.inference.video_reader import VideoSource
from maskrnn_tf.io import davis_palette

Box = Tuple[int, int, int, int]
# GrabCut fits 5-component colour models inside and outside the box: both need a few pixels at least.
MIN_BOX_SIDE = 4
GRABCUT_ITERATIONS = 5


class BoxError(ValueError):
    """A box prompt is malformed or does not fit the frame."""


def parse_boxes(text: str) -> List[Box]:
    """Parses 'x0,y0,x1,y1[;x0,y0,x1,y1...]' into integer boxes (one per object); checks x0 < x1, y0 < y1."""
    boxes = []
    for k, part in enumerate(p.strip() for p in text.split(";")):
        if not part:
            continue
        try:
            values = tuple(int(v) for v in part.split(","))
        except ValueError:
            values = ()
        if len(values) != 4:
            raise BoxError(f"box {k + 1} {part!r}: expected four integers x0,y0,x1,y1 (pixels of the first frame, "
                           "e.g. 120,60,400,300), boxes separated by ';'.")
        x0, y0, x1, y1 = values
        if not (x0 < x1 and y0 < y1):
            raise BoxError(f"box {k + 1} {part!r}: needs x0 < x1 and y0 < y1 (top-left corner first, then the "
                           "bottom-right one).")
        boxes.append(values)
    if not boxes:
        raise BoxError(f"{text!r}: no box; give x0,y0,x1,y1 per object, separated by ';'.")
    return boxes


def check_boxes(boxes: Sequence[Box], frame_size: Tuple[int, int]) -> None:
    """Raises BoxError unless every box lies inside a frame of `frame_size` = (height, width), is at least
    MIN_BOX_SIDE pixels on each side and leaves some of the frame outside it (GrabCut's background)."""
    height, width = frame_size
    for k, (x0, y0, x1, y1) in enumerate(boxes, start=1):
        text = f"box {k} ({x0},{y0},{x1},{y1})"
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            raise BoxError(f"{text} is not inside the first frame ({width}x{height}): keep 0 <= x0 < x1 <= {width} "
                           f"and 0 <= y0 < y1 <= {height}.")
        if x1 - x0 < MIN_BOX_SIDE or y1 - y0 < MIN_BOX_SIDE:
            raise BoxError(f"{text} is smaller than {MIN_BOX_SIDE}x{MIN_BOX_SIDE} pixels; draw it around the "
                           "whole object.")
        if (x0, y0, x1, y1) == (0, 0, width, height):
            raise BoxError(f"{text} covers the whole frame: GrabCut learns the background from outside the box; "
                           "draw it tighter around the object.")


def grabcut_box(frame: np.ndarray, box: Box, iterations: int = GRABCUT_ITERATIONS) -> np.ndarray:
    """The [H, W] bool foreground GrabCut finds inside `box` of an RGB uint8 frame (nothing outside it).

    When GrabCut keeps nothing (a box around a flat region), the whole box is returned, with a warning.
    """
    x0, y0, x1, y1 = box
    labels = np.zeros(frame.shape[:2], np.uint8)
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    bgr = np.ascontiguousarray(frame[..., ::-1])
    cv2.setRNGSeed(0)  # GrabCut's k-means initialisation: the same mask for the same frame and box
    cv2.grabCut(bgr, labels, (x0, y0, x1 - x0, y1 - y0), background, foreground, iterations, cv2.GC_INIT_WITH_RECT)
    mask = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    if not mask.any():
        logging.warning("GrabCut found no object in box %s; using the whole box as its mask.", box)
        mask[y0:y1, x0:x1] = True
    return mask


def mask_from_boxes(frame: np.ndarray, boxes: Sequence[Box], iterations: int = GRABCUT_ITERATIONS) -> np.ndarray:
    """[H, W] uint8 object ids (0 background, k for the k-th box), each object cut separately with GrabCut.

    Where two objects' masks overlap, the object of the smaller box wins (a small box inside a large one is
    the object in front, e.g. a person on a horse).
    """
    check_boxes(boxes, frame.shape[:2])
    labels = np.zeros(frame.shape[:2], np.uint8)
    areas = [(x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in boxes]
    # Largest first, so smaller boxes overwrite; ties keep the given order (the later box wins).
    for k in sorted(range(len(boxes)), key=lambda i: -areas[i]):
        labels[grabcut_box(frame, boxes[k], iterations)] = k + 1
    lost = [k + 1 for k in range(len(boxes)) if not (labels == k + 1).any()]
    if lost:
        raise BoxError(f"object(s) {lost}: their GrabCut masks lie entirely under smaller boxes' objects; draw "
                       "their boxes around the visible part.")
    return labels


def first_mask_from_boxes(video: str, boxes: Sequence[Box], iterations: int = GRABCUT_ITERATIONS,
                          allow_partial: bool = False) -> FirstMask:
    """The first-frame mask of `video` (a folder of frames or a video file) made from `boxes` with GrabCut,
    with the DAVIS palette; raises BoxError when a box does not fit the frame. `allow_partial`: as VideoSource's
    (a video file that decodes fewer frames than it declares is read, not refused)."""
    source = VideoSource(video, allow_partial=allow_partial)
    check_boxes(boxes, source.size)
    frames = source.frames()
    try:
        frame = next(frames)
    finally:
        frames.close()
    labels = mask_from_boxes(frame, boxes, iterations)
    return FirstMask(labels=labels, object_ids=tuple(range(1, len(boxes) + 1)), palette=davis_palette())
