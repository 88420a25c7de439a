"""Procedural videos with exact masks and exact optical flow (the embedded data set `synthetic_vos`).

A video is a textured background seen through a window that slides by a sub-pixel offset every frame, with
1 to N textured objects (ellipses or star polygons) in front of it. Object i has a fixed shape and texture in
its own coordinates q and an affine pose per frame, p = A_t q + b_t (A_t = scale * rotation). Objects are
drawn back to front in id order (id 1 farthest, id N nearest), so the mask of a frame is exact and the flow
is exact too: a pixel p of frame t showing object i has q = A_t^-1 (p - b_t), and its surface point is at
A_s q + b_s in frame s = t +- 1 (whether or not it is visible there); a background pixel moves with the
window. Everything is deterministic from the seed and fast (pure NumPy + cv2.remap).
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Tuple

import cv2
import numpy as np


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Size and motion ranges of the generated videos.

    Attributes:
      height, width: frame size in pixels.
      num_frames: frames per video.
      min_objects, max_objects: range of the object count (inclusive).
      min_radius, max_radius: object radius range as a fraction of min(height, width).
      max_speed: object translation per frame, pixels (uniform in [-max, max] per axis, bounced at borders).
      max_rotation: object rotation per frame, radians.
      max_scale_amplitude: relative amplitude of each object's smooth scale oscillation.
      background_speed: maximum background translation per frame, pixels per axis.
    """

    height: int = 64
    width: int = 96
    num_frames: int = 12
    min_objects: int = 1
    max_objects: int = 4
    min_radius: float = 0.14
    max_radius: float = 0.26
    max_speed: float = 2.0
    max_rotation: float = 0.06
    max_scale_amplitude: float = 0.12
    background_speed: float = 1.0

    def __post_init__(self) -> None:
        if not 1 <= self.min_objects <= self.max_objects <= 254:
            raise ValueError(f"SyntheticConfig: need 1 <= min_objects <= max_objects <= 254, got {self}.")
        if self.height < 8 or self.width < 8 or self.num_frames < 1:
            raise ValueError(f"SyntheticConfig: frames must be at least 8x8 and num_frames >= 1, got {self}.")


def _texture(rng: np.random.Generator, height: int, width: int, saturation: float) -> np.ndarray:
    """A random colour texture [h, w, 3] float32 in 0..255: gratings + blobs + fine noise."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 215, size=3).astype(np.float32)
    image = np.broadcast_to(base, (height, width, 3)).copy()
    for _ in range(3):
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(4.0, 16.0)
        phase = rng.uniform(0, 2 * np.pi)
        colour = rng.uniform(-1, 1, size=3).astype(np.float32) * 50 * saturation
        wave = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * (2 * np.pi / period) + phase)
        image += wave[..., None] * colour
    coarse = rng.uniform(-40, 40, size=(max(2, height // 8), max(2, width // 8), 3)).astype(np.float32)
    image += cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    image += rng.normal(0, 6, size=(height, width, 3)).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.float32)


@dataclasses.dataclass
class _Object:
    kind: str  # "ellipse" or "polygon"
    params: Tuple[np.ndarray, ...]
    texture: np.ndarray
    scale: np.ndarray  # [T]
    angle: np.ndarray  # [T]
    centre: np.ndarray  # [T, 2] (x, y)

    def matrix(self, t: int) -> np.ndarray:
        c, s = np.cos(self.angle[t]), np.sin(self.angle[t])
        return self.scale[t] * np.array([[c, -s], [s, c]], np.float64)

    def inside(self, qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
        if self.kind == "ellipse":
            a, b = self.params
            return (qx / a) ** 2 + (qy / b) ** 2 <= 1.0
        angles, vx, vy = self.params
        phi = np.mod(np.arctan2(qy, qx), 2 * np.pi)
        k = np.searchsorted(angles, phi, side="right") - 1
        k = np.where(k < 0, len(angles) - 1, k)
        k1 = (k + 1) % len(angles)
        ex, ey = vx[k1] - vx[k], vy[k1] - vy[k]
        # Inside the triangle (0, v_k, v_k+1) of the sector: on the same side of the edge as the origin.
        side_point = ex * (qy - vy[k]) - ey * (qx - vx[k])
        side_origin = ex * (-vy[k]) - ey * (-vx[k])
        return side_point * side_origin >= 0


def _make_object(rng: np.random.Generator, config: SyntheticConfig) -> _Object:
    size = min(config.height, config.width)
    radius = rng.uniform(config.min_radius, config.max_radius) * size
    if rng.uniform() < 0.5:
        kind = "ellipse"
        params = (radius * rng.uniform(0.7, 1.0), radius * rng.uniform(0.45, 1.0))
    else:
        kind = "polygon"
        count = int(rng.integers(5, 10))
        # Evenly spread vertex angles with jitter keep every sector under pi (star-shaped polygon).
        angles = (np.arange(count) + rng.uniform(-0.3, 0.3, size=count)) * (2 * np.pi / count)
        angles = np.sort(np.mod(angles + rng.uniform(0, 2 * np.pi), 2 * np.pi))
        radii = radius * rng.uniform(0.55, 1.0, size=count)
        params = (angles, radii * np.cos(angles), radii * np.sin(angles))
    extent = int(np.ceil(radius * 1.6)) + 4
    texture = _texture(rng, 2 * extent, 2 * extent, saturation=1.5)
    frames = config.num_frames
    t = np.arange(frames)
    scale = 1.0 + rng.uniform(0, config.max_scale_amplitude) * np.sin(rng.uniform(0, 2 * np.pi) + 0.35 * t)
    angle = rng.uniform(0, 2 * np.pi) + rng.uniform(-config.max_rotation, config.max_rotation) * t
    centre = np.zeros((frames, 2))
    position = np.array([rng.uniform(0.2, 0.8) * config.width, rng.uniform(0.2, 0.8) * config.height])
    velocity = rng.uniform(-config.max_speed, config.max_speed, size=2)
    low = np.array([0.1 * config.width, 0.1 * config.height])
    high = np.array([0.9 * config.width, 0.9 * config.height])
    for i in range(frames):
        centre[i] = position
        position = position + velocity
        # Bounce at a margin so objects stay mostly in view.
        bounce = (position < low) | (position > high)
        velocity = np.where(bounce, -velocity, velocity)
        position = np.clip(position, low, high)
    return _Object(kind, params, texture, scale, angle, centre)


def _render(objects: List[_Object], background: np.ndarray, offsets: np.ndarray,
            config: SyntheticConfig) -> Dict[str, np.ndarray]:
    frames_count, height, width = config.num_frames, config.height, config.width
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    frames = np.zeros((frames_count, height, width, 3), np.uint8)
    masks = np.zeros((frames_count, height, width), np.uint8)
    to_prev = np.zeros((frames_count, height, width, 2), np.float32)
    to_next = np.zeros((frames_count, height, width, 2), np.float32)
    full_area = np.zeros((frames_count, len(objects)), np.int64)
    for t in range(frames_count):
        ox, oy = offsets[t]
        image = cv2.remap(background, (xx + ox).astype(np.float32), (yy + oy).astype(np.float32),
                          cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        flow_prev = np.zeros((height, width, 2))
        flow_next = np.zeros((height, width, 2))
        # Background content at p is texture point p + o_t, seen at p + o_t - o_s in frame s.
        if t > 0:
            flow_prev[...] = offsets[t] - offsets[t - 1]
        if t + 1 < frames_count:
            flow_next[...] = offsets[t] - offsets[t + 1]
        label = np.zeros((height, width), np.uint8)
        for index, obj in enumerate(objects):  # back to front: id 1 is the farthest
            inverse = np.linalg.inv(obj.matrix(t))
            dx, dy = xx - obj.centre[t, 0], yy - obj.centre[t, 1]
            qx = inverse[0, 0] * dx + inverse[0, 1] * dy
            qy = inverse[1, 0] * dx + inverse[1, 1] * dy
            inside = obj.inside(qx, qy)
            full_area[t, index] = int(inside.sum())
            if not inside.any():
                continue
            half = obj.texture.shape[0] / 2.0
            colour = cv2.remap(obj.texture, (qx + half).astype(np.float32), (qy + half).astype(np.float32),
                               cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            image[inside] = colour[inside]
            label[inside] = index + 1
            for s, flow in ((t - 1, flow_prev), (t + 1, flow_next)):
                if 0 <= s < frames_count:
                    matrix = obj.matrix(s)
                    px = matrix[0, 0] * qx + matrix[0, 1] * qy + obj.centre[s, 0]
                    py = matrix[1, 0] * qx + matrix[1, 1] * qy + obj.centre[s, 1]
                    flow[inside, 0] = (px - xx)[inside]
                    flow[inside, 1] = (py - yy)[inside]
        frames[t] = np.clip(np.rint(image), 0, 255).astype(np.uint8)
        masks[t] = label
        to_prev[t] = flow_prev
        to_next[t] = flow_next
    return {"frames": frames, "masks": masks, "flows_to_prev": to_prev, "flows_to_next": to_next,
            "full_area": full_area}


def generate_video(seed: int, config: SyntheticConfig = SyntheticConfig()) -> Dict[str, np.ndarray]:
    """Generates one video, deterministically from `seed`.

    Returns a dict of NumPy arrays:
      frames uint8 [T, H, W, 3] RGB; masks uint8 [T, H, W] ids (0 background, id k = k-th object from the
      back); flows_to_prev / flows_to_next float32 [T, H, W, 2] exact (u, v) flow from frame t to t-1 / t+1
      (zeros for the first frame's flow_to_prev and the last frame's flow_to_next); num_objects int32 scalar;
      name str scalar array ("synthetic_<seed>").
    """
    rng = np.random.default_rng(seed)
    count = int(rng.integers(config.min_objects, config.max_objects + 1))
    margin = int(np.ceil(config.background_speed * config.num_frames)) + 4
    background = _texture(rng, config.height + 2 * margin, config.width + 2 * margin, saturation=0.6)
    velocity = rng.uniform(-config.background_speed, config.background_speed, size=2)
    offsets = margin + velocity[None] * np.arange(config.num_frames)[:, None]
    for _ in range(20):
        objects = [_make_object(rng, config) for _ in range(count)]
        video = _render(objects, background, offsets, config)
        visible = np.array([(video["masks"][0] == k + 1).sum() for k in range(count)])
        # Every object must be clearly visible in the first frame (it seeds the recurrence).
        if np.all(visible >= 0.4 * np.maximum(video["full_area"][0], 1)) and np.all(visible > 0):
            break
    video.pop("full_area")
    video["num_objects"] = np.int32(count)
    video["name"] = np.array(f"synthetic_{seed:06d}")
    return video
