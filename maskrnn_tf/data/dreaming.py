"""Dreamt clips: a short video with exact masks and exact optical flow, synthesized from one annotated frame.

The idea is Lucid Data Dreaming's (Khoreva et al., IJCV 2019): cut the objects out of the frame, fill the
background where they were, then move the background (a camera) and every object (its own motion and a
smooth non-rigid deformation) and composite them again, frame after frame, in a random depth order, under a
drifting illumination. Every layer L (the background, then each object) has a forward map from the *source*
frame's coordinates q to frame t,

    F_L,t(q) = A_L,t (q + D_L,t(q)) + b_L,t        (A, b affine; D a smooth displacement field, 0 for the background)

with F_L,0 the identity. Frame t is rendered by inverse mapping (q = F_L,t^-1(p), found by fixed-point
iteration because of D), and the flow of a pixel p of frame t that shows layer L is F_L,s(F_L,t^-1(p)) - p
for s = t +- 1: exact, whether or not that surface point is visible in frame s. A pixel shows the front-most
layer whose coverage there is at least one half; its mask id and its flow are that layer's.
Everything is deterministic from the seed (pure NumPy + OpenCV).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, List, Optional, Tuple

import cv2
import numpy as np

VOID = 255
# Median per-frame speed |(dx, dy)| of a translation path over its largest speed (`_speeds`, both axes drawn
# independently; tests/data/test_dreaming.py samples it).
MEDIAN_SPEED_FRACTION = 0.536


@dataclasses.dataclass(frozen=True)
class DreamConfig:
    """Clip length and motion magnitudes of dreamt clips (all "per frame" values are the largest speed).

    Attributes:
      num_frames: T, frames per clip (frame 0 is the source frame, before illumination).
      camera_shift: background translation per frame, fraction of min(H, W).
      camera_rotation_deg: background rotation per frame, degrees.
      camera_zoom: background log-scale change per frame.
      object_shift: object translation per frame (on top of the camera), fraction of min(H, W).
      object_rotation_deg: object rotation per frame about its centroid, degrees.
      object_zoom: object log-scale change per frame.
      nonrigid: largest displacement of the non-rigid warp, fraction of the object's size (max of its box
        sides); the field is capped so that the warp stays invertible.
      nonrigid_grid: control points per side of the coarse random displacement grid.
      gain_drift: per-channel log-gain change per frame.
      bias_drift: brightness offset change per frame, in 0..255 units.
      gamma_drift: log-gamma change per frame.
      inpaint_dilation: pixels the object union is dilated by before inpainting (removes edge halos).
      inpaint_radius: cv2.inpaint neighbourhood radius, pixels.
    """

    num_frames: int = 8
    camera_shift: float = 0.006
    camera_rotation_deg: float = 0.3
    camera_zoom: float = 0.004
    object_shift: float = 0.012
    object_rotation_deg: float = 1.5
    object_zoom: float = 0.012
    nonrigid: float = 0.03
    nonrigid_grid: int = 4
    gain_drift: float = 0.025
    bias_drift: float = 2.5
    gamma_drift: float = 0.025
    inpaint_dilation: int = 5
    inpaint_radius: int = 5

    def __post_init__(self) -> None:
        if self.num_frames < 2:
            raise ValueError(f"DreamConfig: num_frames must be >= 2 (a clip needs a flow), got {self.num_frames}.")
        if self.nonrigid_grid < 2:
            raise ValueError(f"DreamConfig: nonrigid_grid must be >= 2, got {self.nonrigid_grid}.")
        magnitudes = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in
                      ("num_frames", "nonrigid_grid")}
        negative = [name for name, value in magnitudes.items() if value < 0]
        if negative:
            raise ValueError(f"DreamConfig: magnitudes must be >= 0; negative: {', '.join(negative)}.")

    def with_speed(self, speed: float) -> "DreamConfig":
        """This config with the camera's and the objects' translation speeds multiplied by `speed` (> 0).

        The defaults move slower than DAVIS video: on the 22 DAVIS-2016 train sequences trained on, the median
        per-frame flow is 0.013 of the short side on the objects, 0.015 on the background, and 0.023 between
        the two (DIS); default clips give 0.008, 0.004 and 0.007, speed 3 gives 0.023, 0.011 and 0.022."""
        if not speed > 0:
            raise ValueError(f"DreamConfig.with_speed: speed must be > 0, got {speed}.")
        return dataclasses.replace(self, camera_shift=self.camera_shift * speed, object_shift=self.object_shift * speed)

    def with_motion(self, object_motion: float, camera_motion: float,
                    speed_range: Tuple[float, float] = (0.5, 8.0)) -> "DreamConfig":
        """This config with translation speeds whose median per frame is `camera_motion` for the camera and
        `object_motion` for the objects relative to it (fractions of the short side, as `video_motion`
        measures them), each kept within `speed_range` times this config's own (a still first pair does not
        make a clip without motion, nor a flow outlier one that leaves the frame)."""
        low, high = speed_range
        if not 0 < low <= high:
            raise ValueError(f"DreamConfig.with_motion: need 0 < low <= high, got {speed_range}.")
        if not (object_motion >= 0 and camera_motion >= 0):
            raise ValueError(f"DreamConfig.with_motion: motions must be >= 0, got {object_motion}, {camera_motion}.")

        def shift(motion: float, default: float) -> float:
            return float(np.clip(motion / MEDIAN_SPEED_FRACTION, low * default, high * default))

        return dataclasses.replace(self, camera_shift=shift(camera_motion, self.camera_shift),
                                   object_shift=shift(object_motion, self.object_shift))


def video_motion(flow: np.ndarray, ids: np.ndarray) -> Tuple[float, float]:
    """(object, camera) motion of a frame pair as fractions of the short side: the norm of the objects' median
    flow minus the background's, and the background's median flow length. `flow` [H, W, 2] from the frame of
    `ids` (0 background, 1..254 objects, 255 void: left out) to the next. No object or no background: 0."""
    flow, ids = np.asarray(flow, np.float32), np.asarray(ids)
    if flow.shape != ids.shape + (2,):
        raise ValueError(f"video_motion: flow {flow.shape} does not fit ids {ids.shape}.")
    side = float(min(ids.shape))
    on, off = (ids > 0) & (ids < VOID), ids == 0
    if not on.any() or not off.any():
        return 0.0, 0.0
    camera = np.median(flow[off], axis=0)
    relative = np.median(flow[on], axis=0) - camera
    return float(np.linalg.norm(relative)) / side, float(np.median(np.linalg.norm(flow[off], axis=-1))) / side


@dataclasses.dataclass(frozen=True)
class DreamtClip:
    """A dreamt clip.

    Attributes:
      frames: uint8 [T, H, W, 3] (same channel order as the source frame).
      masks: uint8 [T, H, W] object ids (0 = background; the source's ids; void is not carried over).
      flow_fwd: float32 [T-1, H, W, 2] (u, v) = (dx, dy) flow from frame t to t+1.
      flow_bwd: float32 [T-1, H, W, 2] flow from frame t+1 to t.
      flow_next: float32 [H, W, 2] flow from the last frame to the next one, which the motion continues into
        but is not rendered (a clip cut from a video has its last frame's flow to the next too).
      background: uint8 [H, W, 3] the inpainted background layer in source coordinates.
      depth_order: object ids back to front.
      layer_alpha: float32 [T, K, H, W] coverage of each object (ids ascending) ignoring occlusion, or None.
      layer_flow_fwd: float32 [T-1, K, H, W, 2] each object's own flow t -> t+1 everywhere, or None.
    """

    frames: np.ndarray
    masks: np.ndarray
    flow_fwd: np.ndarray
    flow_bwd: np.ndarray
    flow_next: np.ndarray
    background: np.ndarray
    depth_order: Tuple[int, ...]
    layer_alpha: Optional[np.ndarray] = None
    layer_flow_fwd: Optional[np.ndarray] = None

    @property
    def flows_to_prev(self) -> np.ndarray:
        """[T, H, W, 2] flow from frame t to t-1 (zeros for frame 0): the model's `flow_to_prev` per frame."""
        return np.concatenate([np.zeros_like(self.flow_bwd[:1]), self.flow_bwd], axis=0)

    @property
    def flows_to_next(self) -> np.ndarray:
        """[T, H, W, 2] flow from frame t to t+1 (the last frame's to the unrendered next one): the model's
        `flow_to_next`."""
        return np.concatenate([self.flow_fwd, self.flow_next[None]], axis=0)


def inpaint_background(frame: np.ndarray, ids: np.ndarray, dilation: int = 5, radius: int = 5) -> np.ndarray:
    """The frame with every object (ids 1..254) and void (255) removed: the dilated union is filled by
    cv2.inpaint (Telea). Returns uint8 [H, W, 3]. The dilation takes the objects' blended edge pixels too."""
    hole = (np.asarray(ids) != 0).astype(np.uint8)
    if dilation > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilation + 1, 2 * dilation + 1))
        hole = cv2.dilate(hole, kernel)
    if not hole.any():
        return np.array(frame, np.uint8, copy=True)
    return cv2.inpaint(np.ascontiguousarray(frame, np.uint8), hole, radius, cv2.INPAINT_TELEA)


def _speeds(rng: np.random.Generator, num_frames: int, magnitude: float) -> np.ndarray:
    """A smooth speed profile [T-1] with |v| <= magnitude: a constant part plus a slow oscillation."""
    base, swing = rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0)
    omega, phase = rng.uniform(0.2, 0.6), rng.uniform(0.0, 2 * np.pi)
    i = np.arange(num_frames - 1)
    return magnitude * (2.0 / 3.0) * (base + 0.5 * swing * np.sin(omega * i + phase))


def _path(rng: np.random.Generator, num_frames: int, magnitude: float) -> np.ndarray:
    """A smooth trajectory [T] starting at 0: the running sum of `_speeds`."""
    return np.concatenate([[0.0], np.cumsum(_speeds(rng, num_frames, magnitude))])


def _similarity(centre: np.ndarray, shift: np.ndarray, angle: float, log_scale: float) -> np.ndarray:
    """3x3 homogeneous map x -> centre + shift + s R(angle) (x - centre)."""
    c, s = np.cos(angle), np.sin(angle)
    linear = np.exp(log_scale) * np.array([[c, -s], [s, c]])
    out = np.eye(3)
    out[:2, :2] = linear
    out[:2, 2] = centre + shift - linear @ centre
    return out


def _motion_paths(rng: np.random.Generator, config: DreamConfig, centre: np.ndarray, shift: float,
                  rotation_deg: float, zoom: float, size: float) -> List[np.ndarray]:
    """The maps of frames 0..T: one past the clip, for the last frame's flow to the next. (The random draws
    do not depend on the length: a clip is the start of a longer one of the same seed.)"""
    t = config.num_frames + 1
    dx, dy = _path(rng, t, shift * size), _path(rng, t, shift * size)
    angle = _path(rng, t, np.deg2rad(rotation_deg))
    scale = _path(rng, t, zoom)
    return [_similarity(centre, np.array([dx[i], dy[i]]), angle[i], scale[i]) for i in range(t)]


@dataclasses.dataclass
class _Layer:
    """One layer: its maps F_t = affine[t] applied to q + field(t) (field None = no non-rigid part)."""

    affine: List[np.ndarray]  # [T + 1] 3x3
    fields: Optional[Tuple[np.ndarray, np.ndarray, float]] = None  # (G1, G2 full-res [H, W, 2], omega)
    image: Optional[np.ndarray] = None  # premultiplied colour [H, W, 3] float32 (objects)
    alpha: Optional[np.ndarray] = None  # [H, W] float32 (objects)
    object_id: int = 0
    box: Optional[Tuple[float, float, float, float]] = None  # source region that can matter (x0, y0, x1, y1)

    def window(self, t: int, height: int, width: int) -> Tuple[slice, slice]:
        """The part of frame t this layer can cover (the whole frame for the background): the image of its
        source box under the affine part. Objects are small: working on their window saves most of the time."""
        if self.box is None:
            return slice(0, height), slice(0, width)
        x0, y0, x1, y1 = self.box
        corners = np.array([[x0, y0, 1.0], [x1, y0, 1.0], [x0, y1, 1.0], [x1, y1, 1.0]]) @ self.affine[t][:2].T
        left, top = np.floor(corners.min(0)) - 2
        right, bottom = np.ceil(corners.max(0)) + 3
        left, right = int(np.clip(left, 0, width)), int(np.clip(right, 0, width))
        top, bottom = int(np.clip(top, 0, height)), int(np.clip(bottom, 0, height))
        return slice(top, max(top, bottom)), slice(left, max(left, right))

    def field(self, t: int) -> Optional[np.ndarray]:
        if self.fields is None:
            return None
        first, second, omega = self.fields
        # D_0 = 0 and D_t changes smoothly in t.
        return (np.sin(omega * t) * first + (1.0 - np.cos(omega * t)) * second).astype(np.float32)

    def forward(self, t: int, qx: np.ndarray, qy: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """F_t(q) for source coordinates q (float32 maps)."""
        field = self.field(t)
        if field is not None:
            d = cv2.remap(field, qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            qx, qy = qx + d[..., 0], qy + d[..., 1]
        a = self.affine[t]
        return (a[0, 0] * qx + a[0, 1] * qy + a[0, 2]).astype(np.float32), \
               (a[1, 0] * qx + a[1, 1] * qy + a[1, 2]).astype(np.float32)

    def inverse(self, t: int, px: np.ndarray, py: np.ndarray, iterations: int = 30,
                tolerance: float = 1e-3) -> Tuple[np.ndarray, np.ndarray]:
        """F_t^-1(p): r = A^-1 (p - b), then q = r - D(q) by fixed-point iteration (D is a contraction)."""
        inv = np.linalg.inv(self.affine[t])
        rx = (inv[0, 0] * px + inv[0, 1] * py + inv[0, 2]).astype(np.float32)
        ry = (inv[1, 0] * px + inv[1, 1] * py + inv[1, 2]).astype(np.float32)
        field = self.field(t)
        if field is None:
            return rx, ry
        qx, qy = rx, ry
        for _ in range(iterations):
            d = cv2.remap(field, qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            nx, ny = rx - d[..., 0], ry - d[..., 1]
            change = max(float(np.abs(nx - qx).max()), float(np.abs(ny - qy).max()))
            qx, qy = nx, ny
            if change < tolerance:
                break
        return qx, qy


def _nonrigid_fields(rng: np.random.Generator, mask: np.ndarray, config: DreamConfig
                     ) -> Optional[Tuple[np.ndarray, np.ndarray, float]]:
    """Two smooth displacement fields over the object's box (bicubic upsampling of coarse random grids,
    constant outside the box) and a temporal frequency; None when the warp is off."""
    ys, xs = np.nonzero(mask)
    height, width = mask.shape
    size = float(max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1))
    amplitude = config.nonrigid * size
    g = config.nonrigid_grid
    coarse = rng.uniform(-1.0, 1.0, size=(2, g, g, 2)).astype(np.float32)
    omega = rng.uniform(0.15, 0.4)
    if amplitude <= 0:
        return None
    margin = int(np.ceil(0.25 * size))
    y0, y1 = max(int(ys.min()) - margin, 0), min(int(ys.max()) + margin + 1, height)
    x0, x1 = max(int(xs.min()) - margin, 0), min(int(xs.max()) + margin + 1, width)
    fields = []
    for grid in coarse:
        box = cv2.resize(grid * amplitude, (x1 - x0, y1 - y0), interpolation=cv2.INTER_CUBIC)
        fields.append(np.pad(box, ((y0, height - y1), (x0, width - x1), (0, 0)), mode="edge"))
    # |D_t| <= |G1| + 2|G2| in Lipschitz constant; keep it under 0.5 so the map stays one-to-one and the
    # fixed-point inversion converges fast.
    lipschitz = sum(k * max(float(np.abs(np.diff(f, axis=a)).max()) for a in (0, 1)) * np.sqrt(2)
                    for k, f in zip((1.0, 2.0), fields))
    if lipschitz > 0.5:
        fields = [f * (0.5 / lipschitz) for f in fields]
    return fields[0].astype(np.float32), fields[1].astype(np.float32), omega


def _illumination(rng: np.random.Generator, config: DreamConfig) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame gain [T, 3], bias [T] and gamma [T], the identity at frame 0."""
    t = config.num_frames
    gain = np.exp(np.stack([_path(rng, t, config.gain_drift) for _ in range(3)], axis=-1))
    bias = _path(rng, t, config.bias_drift)
    gamma = np.exp(_path(rng, t, config.gamma_drift))
    return gain, bias, gamma


def _check_inputs(frame: np.ndarray, ids: np.ndarray) -> None:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"dream_clip: frame must be uint8 [H, W, 3], got {frame.dtype} {frame.shape}.")
    if ids.shape != frame.shape[:2] or ids.dtype != np.uint8:
        raise ValueError(f"dream_clip: ids must be uint8 [H, W] matching the frame {frame.shape[:2]}, "
                         f"got {ids.dtype} {ids.shape}.")


def _flow(layers: List[_Layer], target: int, windows, inverses, visible: np.ndarray, xx: np.ndarray,
          yy: np.ndarray, own: Optional[List[np.ndarray]] = None) -> np.ndarray:
    """Flow [H, W, 2] from a rendered frame (its layers' `windows`, inverse maps and `visible` layer per pixel)
    to frame `target`: a pixel p showing layer L goes to F_L,target(F_L^-1(p)), whether or not that point is
    visible in frame `target`. Every pixel a layer shows lies in its window, so the windows suffice. `own`
    (keep_layers, windows are whole frames) collects each object's flow everywhere."""
    out = np.zeros(visible.shape + (2,), np.float32)
    for index, (layer, w, inverse) in enumerate(zip(layers, windows, inverses)):
        if inverse is None:
            continue
        tx, ty = layer.forward(target, *inverse)
        flow = np.stack([tx - xx[w], ty - yy[w]], -1)
        on = visible[w] == index
        out[w][on] = flow[on]
        if own is not None and index > 0:
            own.append(flow)
    return out


def dream_clip(frame: np.ndarray, ids: np.ndarray, seed: int, config: DreamConfig = DreamConfig(),
               background: Optional[np.ndarray] = None, keep_layers: bool = False,
               motion_size: Optional[float] = None) -> DreamtClip:
    """Synthesizes a T-frame clip with exact masks and flows from one frame and its object ids.

    Args:
      frame: uint8 [H, W, 3].
      ids: uint8 [H, W]: 0 background, 1..254 objects, 255 void (treated as background, and inpainted).
      seed: the clip is a deterministic function of (frame, ids, seed, config).
      config: motion magnitudes, see DreamConfig.
      background: optional precomputed `inpaint_background(frame, ids, ...)` (reuse it for many clips).
      keep_layers: also return each object's unoccluded coverage and flow over the whole frame (for checks;
        slower, because objects are then rendered over the whole frame instead of their windows).
      motion_size: the length, in pixels, the config's shifts are fractions of (default min(H, W)); a crop of a
        frame passes the whole frame's, so that its objects move as fast as they would in the frame.

    Returns:
      A DreamtClip (frame 0 shows the source layout: the objects where they were, background inpainted
      only in the dilated ring around them).
    """
    frame = np.asarray(frame)
    ids = np.asarray(ids)
    _check_inputs(frame, ids)
    rng = np.random.default_rng(seed)
    height, width = ids.shape
    size = float(min(height, width) if motion_size is None else motion_size)
    if not size > 0:
        raise ValueError(f"dream_clip: motion_size must be > 0, got {motion_size}.")
    object_ids = [int(i) for i in np.unique(ids) if 0 < i < VOID]
    if background is None:
        background = inpaint_background(frame, ids, config.inpaint_dilation, config.inpaint_radius)
    elif background.shape != frame.shape:
        raise ValueError(f"dream_clip: background must have the frame's shape {frame.shape}, got {background.shape}.")

    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    camera = _motion_paths(rng, config, centre, config.camera_shift, config.camera_rotation_deg,
                           config.camera_zoom, size)
    layers = [_Layer(affine=camera)]
    source = frame.astype(np.float32)
    for object_id in object_ids:
        mask = ids == object_id
        ys, xs = np.nonzero(mask)
        own = _motion_paths(rng, config, np.array([xs.mean(), ys.mean()]), config.object_shift,
                            config.object_rotation_deg, config.object_zoom, size)
        fields = _nonrigid_fields(rng, mask, config)
        alpha = mask.astype(np.float32)
        # The object's pixels, one more for the bilinear edge, and as far as the non-rigid warp reaches.
        reach = 1.0 if fields is None else 1.0 + float(np.abs(fields[0]).max() + 2 * np.abs(fields[1]).max())
        box = None if keep_layers else (xs.min() - reach, ys.min() - reach, xs.max() + reach, ys.max() + reach)
        layers.append(_Layer(affine=[c @ o for c, o in zip(camera, own)], fields=fields,
                             image=source * alpha[..., None], alpha=alpha, object_id=object_id, box=box))
    order = rng.permutation(len(object_ids)) + 1  # layer indices, back to front
    gain, bias, gamma = _illumination(rng, config)

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames, masks, flow_fwd, flow_bwd = [], [], [], []
    alphas = [] if keep_layers else None
    layer_flows = [] if keep_layers else None
    previous = None  # (windows, inverse maps, visible layer) of frame t-1
    bg_float = background.astype(np.float32)
    lookup = np.array([0] + [layer.object_id for layer in layers[1:]], np.uint8)
    for t in range(config.num_frames):
        windows = [layer.window(t, height, width) for layer in layers]
        # Each layer's source coordinates q = F_t^-1(p) for the pixels p of its window (None: off-frame).
        inverses = [layer.inverse(t, xx[w], yy[w]) if xx[w].size else None for layer, w in zip(layers, windows)]
        image = cv2.remap(bg_float, *inverses[0], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        visible = np.zeros((height, width), np.int32)
        frame_alpha = np.zeros((len(layers) - 1, height, width), np.float32) if keep_layers else None
        for index in order:  # back to front
            if inverses[index] is None:
                continue
            layer, w, (qx, qy) = layers[index], windows[index], inverses[index]
            a = cv2.remap(layer.alpha, qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            premultiplied = cv2.remap(layer.image, qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            # Premultiplied sampling keeps the source background out of the object's soft edge.
            colour = premultiplied / np.maximum(a, 1e-6)[..., None]
            image[w] = a[..., None] * colour + (1.0 - a[..., None]) * image[w]
            visible[w][a >= 0.5] = index
            if keep_layers:
                frame_alpha[index - 1] = a
        lit = np.clip(image * np.float32(gain[t] / 255.0) + np.float32(bias[t] / 255.0), 0.0, 1.0)
        lit = np.float32(255.0) * np.power(lit, np.float32(gamma[t]))
        frames.append(np.clip(np.rint(lit), 0, 255).astype(np.uint8))
        masks.append(lookup[visible])
        if keep_layers:
            alphas.append(frame_alpha)
        if previous is not None:
            own_fwd = [] if keep_layers else None
            flow_fwd.append(_flow(layers, t, *previous, xx, yy, own_fwd))
            flow_bwd.append(_flow(layers, t - 1, windows, inverses, visible, xx, yy))
            if keep_layers:
                layer_flows.append(np.stack(own_fwd) if own_fwd else np.zeros((0, height, width, 2), np.float32))
        previous = (windows, inverses, visible)
    flow_next = _flow(layers, config.num_frames, *previous, xx, yy)

    return DreamtClip(
        frames=np.stack(frames), masks=np.stack(masks), flow_fwd=np.stack(flow_fwd).astype(np.float32),
        flow_bwd=np.stack(flow_bwd).astype(np.float32), flow_next=flow_next, background=background,
        depth_order=tuple(layers[i].object_id for i in order),
        layer_alpha=np.stack(alphas).astype(np.float32) if keep_layers else None,
        layer_flow_fwd=np.stack(layer_flows).astype(np.float32) if keep_layers else None,
    )


def estimate_flows(clip: DreamtClip, flow_fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> DreamtClip:
    """The first T-1 frames of a T-frame `clip` with their flows estimated from the rendered frames by
    `flow_fn(frame_a, frame_b) -> [H, W, 2]` instead of the exact ones; masks stay exact.

    A network is fed estimated flow (DIS) on real video: finetuned or trained on exact flow, it would learn
    from flow magnitudes and mask warps sharper than any it gets. Dream one frame more than wanted (a clip's
    first frames do not depend on its length), so that the last kept frame's flow to the next is estimated too.
    """
    if clip.frames.shape[0] < 3:
        raise ValueError(f"estimate_flows: need a clip of at least 3 frames (2 kept + 1 for the last flow), "
                         f"got {clip.frames.shape[0]}.")
    frames = clip.frames
    forward = [np.asarray(flow_fn(frames[t], frames[t + 1]), np.float32) for t in range(len(frames) - 1)]
    backward = [np.asarray(flow_fn(frames[t + 1], frames[t]), np.float32) for t in range(len(frames) - 2)]
    keep = len(frames) - 1
    return dataclasses.replace(
        clip, frames=frames[:keep], masks=clip.masks[:keep], flow_fwd=np.stack(forward[:-1]),
        flow_bwd=np.stack(backward), flow_next=forward[-1],
        layer_alpha=None if clip.layer_alpha is None else clip.layer_alpha[:keep],
        layer_flow_fwd=None if clip.layer_flow_fwd is None else clip.layer_flow_fwd[:keep - 1])


def dream_clip_with_flow(frame: np.ndarray, ids: np.ndarray, seed: int, config: DreamConfig,
                         flow_fn: Optional[Callable[[np.ndarray, np.ndarray], np.ndarray]], **kwargs) -> DreamtClip:
    """`dream_clip` (same frames and masks), its flows estimated by `flow_fn` (None: the exact ones): one frame
    more is dreamt, so that the last frame's flow to the next is estimated too (`estimate_flows`)."""
    if flow_fn is None:
        return dream_clip(frame, ids, seed, config, **kwargs)
    longer = dataclasses.replace(config, num_frames=config.num_frames + 1)
    return estimate_flows(dream_clip(frame, ids, seed, longer, **kwargs), flow_fn)
