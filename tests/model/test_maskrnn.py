"""The MaskRNN step: shapes, box restriction, fusion, gradients, batching, serialization, precision."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from maskrnn_tf.model import MaskRNN, MaskRNNConfig, fuse_probabilities
from maskrnn_tf.ops import box_mask, enlarge_boxes

TINY = MaskRNNConfig(width=0.125, fc_units=32)


def _inputs(h=30, w=50, n=2, seed=0):
    rng = np.random.default_rng(seed)
    frame = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
    flow_prev = rng.normal(0, 1.5, (h, w, 2)).astype(np.float32)
    flow_next = rng.normal(0, 1.5, (h, w, 2)).astype(np.float32)
    prev = np.zeros((n, h, w), np.float32)
    prev[0, 4:14, 6:20] = 1.0
    if n > 1:
        prev[1, h // 2 : h - 3, w // 2 : w - 4] = 1.0
    return frame, flow_prev, flow_next, prev


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(1)
    return MaskRNN(TINY)


@pytest.mark.parametrize("h,w", [(30, 50), (33, 47)])
def test_shapes_and_ranges(model, h, w):
    out = model.step(*_inputs(h, w, n=2))
    assert out["probs"].shape == (2, h, w) and out["logits"].shape == (2, h, w)
    assert out["boxes"].shape == (2, 4) and out["deltas"].shape == (2, 4)
    assert all(v.dtype == tf.float32 for v in out.values())
    probs = out["probs"].numpy()
    assert probs.min() >= 0.0 and probs.max() <= 1.0
    assert model.fuse(out["probs"]).shape == (h, w)


def test_frames_below_16_pixels_a_side_are_refused_by_name(model):
    with pytest.raises(ValueError, match="15x40 pixels are too small: the network needs at least 16 pixels a side"):
        model.step(*_inputs(15, 40))
    with pytest.raises(ValueError, match="40x12 pixels"):
        model({"frame": tf.zeros((1, 40, 12, 3)), "flow_to_prev": tf.zeros((1, 40, 12, 2)),
               "flow_to_next": tf.zeros((1, 40, 12, 2)), "prev_probs": tf.zeros((1, 40, 12))})
    assert model.step(*_inputs(16, 40))["probs"].shape == (2, 16, 40)  # the smallest it takes


def _decoded_boxes(deltas, proposals, weights, height, width, clip=True):
    """Fast R-CNN decoding written out: centre (cy, cx) += (ty / wy * h, tx / wx * w), size (h, w) *= exp(th / wh,
    tw / ww) of the proposal, then (with `clip`) each coordinate clipped to the frame [0, height] x [0, width]."""
    p = np.asarray(proposals, np.float64)
    t = np.asarray(deltas, np.float64) / np.asarray(weights, np.float64)
    ph, pw = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1]
    cy, cx = (p[:, 0] + p[:, 2]) / 2 + t[:, 0] * ph, (p[:, 1] + p[:, 3]) / 2 + t[:, 1] * pw
    h, w = ph * np.exp(t[:, 2]), pw * np.exp(t[:, 3])
    boxes = np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], -1)
    return np.clip(boxes, 0, [height, width, height, width]) if clip else boxes


def test_zero_outside_enlarged_box(model):
    # Make the box head predict something off the proposal so the restriction is visible: a zero kernel, so
    # the deltas are the bias whatever the features.
    head = model.localization_head.get_layer("deltas")
    kernel, bias = head.get_weights()
    known = np.array([2.0, -3.0, -1.0, -2.0], np.float32)
    try:
        head.set_weights([np.zeros_like(kernel), known])
        frame, _, flow_next, prev = _inputs()
        corner = np.zeros((1, 30, 50), np.float32)
        corner[0, 24:30, 0:6] = 1.0  # in the bottom-left corner: its decoded box leaves the frame
        prev = np.concatenate([prev, corner])
        # A zero flow to the previous frame: the proposals are the previous masks' boxes, known by hand.
        out = model.step(frame, np.zeros_like(flow_next), flow_next, prev)
        proposals = [[4, 6, 14, 20], [15, 25, 27, 46], [24, 0, 30, 6]]
        np.testing.assert_array_equal(out["proposals"].numpy(), proposals)
        np.testing.assert_array_equal(out["deltas"].numpy(), np.tile(known, (3, 1)))
        # By hand, object 1 (proposal 4..14 x 6..20: centre (9, 13), size 10 x 14), weights (10, 10, 5, 5):
        # centre (9 + 0.2 * 10, 13 - 0.3 * 14) = (11, 8.8), size (10 e^-0.2, 14 e^-0.4) = (8.187, 9.384),
        # box (6.906, 4.108, 15.094, 13.492). Object 3 (24..30 x 0..6): centre (28.2, 1.2), size
        # (4.912, 4.022), box (25.744, -0.811, 30.656, 3.211) clipped to (25.744, 0, 30, 3.211).
        want = _decoded_boxes(np.tile(known, (3, 1)), proposals, TINY.delta_weights, 30, 50)
        np.testing.assert_allclose(want[0], [6.906, 4.108, 15.094, 13.492], atol=1e-3)
        np.testing.assert_allclose(want[2], [25.744, 0.0, 30.0, 3.211], atol=1e-3)
        np.testing.assert_allclose(out["boxes"].numpy(), want, rtol=1e-5, atol=1e-4)
        # The mask is restricted to the box as predicted (not clipped) enlarged about its centre.
        predicted = _decoded_boxes(np.tile(known, (3, 1)), proposals, TINY.delta_weights, 30, 50, clip=False)
        np.testing.assert_allclose(predicted[2], [25.744, -0.811, 30.656, 3.211], atol=1e-3)
        probs = out["probs"].numpy()
        inside = box_mask(enlarge_boxes(predicted.astype(np.float32), TINY.box_enlarge), 30, 50).numpy()
        assert np.all(probs[inside == 0] == 0.0)
        assert np.all(probs[inside == 1] > 0.0)  # sigmoid is never exactly 0 inside
        assert (inside == 0).any()
        # Without the restriction, the same weights give non-zero values there.
        unrestricted = tf.sigmoid(out["logits"]).numpy()
        assert np.all(unrestricted[inside == 0] > 0)
    finally:
        head.set_weights([kernel, bias])


def _stream_inputs(m, *step_args):
    """Runs m.step and returns the inputs [B, H, W, C] its appearance and flow streams were called with (each
    stream wrapped by a recorder for the call; set past Keras' attribute tracking, and put back)."""
    seen = {}
    streams = {"appearance_stream": m.appearance_stream, "flow_stream": m.flow_stream}

    def recorder(name, stream):
        def call(x, training=False):
            seen[name] = np.array(x)
            return stream(x, training=training)
        return call

    try:
        for name, stream in streams.items():
            object.__setattr__(m, name, recorder(name, stream))
        m.step(*step_args)
    finally:
        for name, stream in streams.items():
            object.__setattr__(m, name, stream)
    return seen["appearance_stream"], seen["flow_stream"]


def _warp_reference(prev, flow):
    """out[y, x] = prev[y + v, x + u], bilinear, edges repeated (SciPy), for masks [N, H, W] and one flow."""
    yy, xx = np.mgrid[0 : flow.shape[0], 0 : flow.shape[1]].astype(np.float64)
    coords = [yy + flow[..., 1], xx + flow[..., 0]]
    return np.stack([ndimage.map_coordinates(p.astype(np.float64), coords, order=1, mode="nearest") for p in prev])


def test_the_streams_read_the_centred_warped_mask_and_both_flow_magnitudes(model):
    """The appearance stream gets the frame and the warped previous mask centred on 0.5 and scaled by
    mask_input_scale; the flow stream gets |flow to t-1| and |flow to t+1| times flow_input_scale, then the
    same mask channel."""
    frame, flow_prev, flow_next, prev = _inputs(n=2)
    appearance, flow = _stream_inputs(model, frame, flow_prev, flow_next, prev)
    assert appearance.shape == (2, 30, 50, 4) and flow.shape == (2, 30, 50, 3)
    mask_in = (_warp_reference(prev, flow_prev) - 0.5) * TINY.mask_input_scale
    assert TINY.mask_input_scale == 128.0 and mask_in.min() == -64.0 and mask_in.max() == 64.0
    np.testing.assert_allclose(appearance[..., 3], mask_in, atol=1e-3)
    np.testing.assert_allclose(flow[..., 2], mask_in, atol=1e-3)
    for channel, f in enumerate((flow_prev, flow_next)):
        magnitude = np.hypot(f[..., 0].astype(np.float64), f[..., 1].astype(np.float64)) * TINY.flow_input_scale
        np.testing.assert_allclose(flow[..., channel], np.broadcast_to(magnitude, (2, 30, 50)), rtol=1e-5, atol=1e-4)
    # A zero flow warps nothing: the mask channel is the previous mask itself, -64 off it and +64 on it.
    appearance, _ = _stream_inputs(model, frame, np.zeros_like(flow_prev), flow_next, prev)
    np.testing.assert_array_equal(appearance[..., 3], np.where(prev > 0, 64.0, -64.0))


def test_median_flow_reference_feeds_the_flow_stream_motion_relative_to_the_median():
    """flow_reference='median': the flow stream's magnitude channels are |flow - its median| (numpy, over every 4th
    row and column); the mask channel is warped by the raw flow. Weights are those of the 'none' model."""
    keras.utils.set_random_seed(1)
    raw = MaskRNN(TINY)
    relative = MaskRNN(TINY.override({"flow_reference": "median"}))
    frame, flow_prev, flow_next, prev = _inputs(n=2)
    raw.step(frame, flow_prev, flow_next, prev)
    relative.step(frame, flow_prev, flow_next, prev)
    relative.set_weights(raw.get_weights())
    shift = np.float32([4.0, -3.0])
    _, flow = _stream_inputs(relative, frame, flow_prev + shift, flow_next - shift, prev)
    _, raw_flow = _stream_inputs(raw, frame, flow_prev + shift, flow_next - shift, prev)
    np.testing.assert_allclose(flow[..., 2], raw_flow[..., 2], atol=1e-4)
    for channel, f in enumerate((flow_prev + shift, flow_next - shift)):
        centred = f - np.median(f[::4, ::4].reshape(-1, 2), axis=0)
        magnitude = np.hypot(centred[..., 0], centred[..., 1]) * TINY.flow_input_scale
        np.testing.assert_allclose(flow[..., channel], np.broadcast_to(magnitude, (2, 30, 50)), rtol=1e-5, atol=1e-3)
        assert np.abs(raw_flow[..., channel] - flow[..., channel]).max() > 10.0


def test_median_flow_reference_ignores_a_uniform_camera_motion():
    """With flow_reference='median' a constant flow added to both flows (a camera pan) leaves the output as it
    was when the previous mask is uniform (its warp is then unchanged too); with 'none' it changes."""
    keras.utils.set_random_seed(2)
    frame, flow_prev, flow_next, _ = _inputs(n=1)
    prev = np.full((1, 30, 50), 0.7, np.float32)
    shift = np.float32([5.0, 2.5])
    for reference, same in (("median", True), ("none", False)):
        m = MaskRNN(TINY.override({"flow_reference": reference}))
        a = m.step(frame, flow_prev, flow_next, prev)["logits"].numpy()
        b = m.step(frame, flow_prev + shift, flow_next + shift, prev)["logits"].numpy()
        assert np.allclose(a, b, atol=1e-4) == same, reference


def test_keras_round_trip_keeps_the_flow_reference(tmp_path):
    keras.utils.set_random_seed(3)
    m = MaskRNN(TINY.override({"flow_reference": "median"}))
    args = _inputs()
    want = m.step(*args)
    m.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.config.flow_reference == "median"
    np.testing.assert_array_equal(loaded.step(*args)["probs"].numpy(), want["probs"].numpy())


def test_the_flow_to_the_next_frame_changes_the_output(model):
    """Only flow_to_next changes: the output does (it reaches the flow stream's second channel)."""
    frame, flow_prev, flow_next, prev = _inputs(n=1)
    a = model.step(frame, flow_prev, flow_next, prev)
    b = model.step(frame, flow_prev, 3.0 * flow_next[::-1, ::-1], prev)
    np.testing.assert_array_equal(a["warped"].numpy(), b["warped"].numpy())
    assert np.abs(a["logits"].numpy() - b["logits"].numpy()).max() > 1e-3

def test_proposal_is_the_warped_mask_box_with_fallbacks(model):
    frame, _, flow_next, prev = _inputs(n=2)
    zero = np.zeros_like(flow_next)
    prev[1] = 0.0  # empty previous mask: falls back to the previous box, else the whole frame
    out = model.step(frame, zero, flow_next, prev)
    np.testing.assert_array_equal(out["proposals"].numpy(), [[4, 6, 14, 20], [0, 0, 30, 50]])
    out = model.step(frame, zero, flow_next, prev, prev_boxes=np.array([[1, 1, 5, 5], [2, 3, 9, 12]], np.float32))
    np.testing.assert_array_equal(out["proposals"].numpy(), [[4, 6, 14, 20], [2, 3, 9, 12]])


def test_fusion_hand_made():
    probs = np.zeros((3, 2, 4), np.float32)
    probs[:, 0, 0] = [0.9, 0.2, 0.7]  # object 1 wins
    probs[:, 0, 1] = [0.6, 0.8, 0.8]  # tie between 2 and 3 -> lowest index (2)
    probs[:, 0, 2] = [0.4, 0.5, 0.3]  # all at or below 0.5 -> background
    probs[:, 0, 3] = [0.1, 0.2, 0.51]  # 3 just above
    probs[:, 1, :] = [[0.0], [0.0], [0.0]]
    np.testing.assert_array_equal(fuse_probabilities(probs).numpy(), [[1, 2, 0, 3], [0, 0, 0, 0]])
    assert fuse_probabilities(np.zeros((0, 2, 3), np.float32)).numpy().tolist() == [[0, 0, 0], [0, 0, 0]]


def test_every_weight_gets_a_gradient():
    keras.utils.set_random_seed(2)
    m = MaskRNN(TINY)
    # The deltas layer starts at zero, which would block fc1's gradient: randomise it for this check.
    d = m.localization_head.get_layer("deltas")
    d.set_weights([np.random.default_rng(0).normal(0, 0.1, d.get_weights()[0].shape).astype(np.float32), d.get_weights()[1]])
    frame, fp, fn, prev = _inputs()
    with tf.GradientTape() as tape:
        out = m.step(frame, fp, fn, prev, training=True)
        loss = tf.reduce_mean(out["logits"]) + tf.reduce_sum(out["deltas"])
    grads = tape.gradient(loss, m.trainable_weights)
    missing = [w.path for w, g in zip(m.trainable_weights, grads) if g is None or not np.any(g.numpy())]
    assert not missing


def test_batch_equals_single_object_calls(model):
    frame, fp, fn, prev = _inputs(n=3)
    prev[2, 20:25, 5:15] = 1.0
    batch = model.step(frame, fp, fn, prev)
    for i in range(3):
        single = model.step(frame, fp, fn, prev[i : i + 1])
        for key in ("probs", "logits", "boxes"):
            np.testing.assert_allclose(single[key].numpy()[0], batch[key].numpy()[i], atol=1e-4, rtol=1e-4)


def test_keras_round_trip(model, tmp_path):
    args = _inputs()
    want = model.step(*args)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded, MaskRNN) and loaded.config == model.config
    got = loaded.step(*args)
    for key in want:
        np.testing.assert_array_equal(got[key].numpy(), want[key].numpy())
    assert MaskRNN.from_config(model.get_config()).config == model.config


def test_a_new_model_saves_whole_and_without_warning(tmp_path):
    """Every weight is made in __init__: a model saved before any call holds them all, and Keras does not warn
    that it "has not yet been built" (it did, in every tool that saves a fresh model)."""
    import warnings

    fresh = MaskRNN(MaskRNNConfig(width=0.125, fc_units=16, side_channels=4))
    assert fresh.built
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fresh.save(tmp_path / "fresh.keras")
    assert not [w for w in caught if "not yet been built" in str(w.message)]
    loaded = keras.models.load_model(tmp_path / "fresh.keras")
    assert len(loaded.weights) == len(fresh.weights)
    for a, b in zip(loaded.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("overrides", [{"use_flow_stream": False}, {"use_warped_mask": False}, {"apply_localization": False}])
def test_ablation_variants_run(overrides):
    m = MaskRNN(TINY.override(overrides))
    out = m.step(*_inputs(n=1))
    assert out["probs"].shape == (1, 30, 50)
    if overrides.get("apply_localization") is False:
        np.testing.assert_allclose(out["probs"].numpy(), tf.sigmoid(out["logits"]).numpy())


def test_warp_mask_off_feeds_the_previous_mask_unmoved():
    frame, flow_prev, flow_next, prev = _inputs(n=2)
    flow_prev = np.full_like(flow_prev, 3.0)  # everything moved 3 px right and down
    warping = MaskRNN(TINY)
    still = MaskRNN(TINY.override({"warp_mask": False}))
    still.set_weights(warping.get_weights())
    moved = warping.step(frame, flow_prev, flow_next, prev)["warped"].numpy()
    kept = still.step(frame, flow_prev, flow_next, prev)["warped"].numpy()
    np.testing.assert_array_equal(kept, prev)
    # frame t pixel (y, x) matches frame t-1 pixel (y + 3, x + 3): the mask moves up-left by 3
    np.testing.assert_allclose(moved[0, 1:11, 3:17], 1.0, atol=1e-6)
    assert moved[0, 12, 18] == 0.0 and prev[0, 12, 18] == 1.0
    proposals = still.step(frame, flow_prev, flow_next, prev)["proposals"].numpy()
    np.testing.assert_allclose(proposals[0], [4, 6, 14, 20])


def _copy_under_policy(model, policy):
    """A MaskRNN built under the mixed `policy` with `model`'s weights."""
    keras.mixed_precision.set_global_policy(policy)
    try:
        m = MaskRNN(TINY)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    m.set_weights(model.get_weights())
    return m


# Measured max |difference| to float32 on these inputs: probs 0.026 (bfloat16) and 0.0029 (float16), logits 0.12
# and 0.013 (the largest over weight seeds 1-3 and input seeds 0-1: probs 0.026 / 0.0029, logits 0.12 / 0.014),
# with the inputs reaching the model in float32 (before: logits up to 0.17 / 0.015).
@pytest.mark.parametrize("policy,probs_tol,logits_tol", [("mixed_bfloat16", 0.04, 0.25), ("mixed_float16", 0.005, 0.025)])
def test_mixed_precision_outputs_float32(model, policy, probs_tol, logits_tol):
    m = _copy_under_policy(model, policy)
    args = _inputs()
    out, ref = m.step(*args), model.step(*args)
    assert all(v.dtype == tf.float32 for v in out.values())
    assert m.appearance_stream.get_layer("appearance_stream_vgg16").get_layer("block1_conv1").compute_dtype != "float32"
    np.testing.assert_allclose(out["probs"].numpy(), ref["probs"].numpy(), atol=probs_tol)
    np.testing.assert_allclose(out["logits"].numpy(), ref["logits"].numpy(), atol=logits_tol)
    assert np.abs(out["logits"].numpy() - ref["logits"].numpy()).max() > 0  # it did compute in lower precision


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_keeps_the_geometry_inputs_in_float32(model, policy):
    """The flows, the previous mask and boxes enter the warp and the box arithmetic in float32 under every policy:
    Keras casts a model's float inputs to its compute dtype before `call` unless told not to, which rounded a flow
    of 1.3 px to 1.296875 (bfloat16) and a box corner at 703 to 704 before any of it was used."""
    m = _copy_under_policy(model, policy)
    frame, flow_prev, flow_next, prev = _inputs()
    prev = prev * np.float32(0.7) + np.float32(0.01)  # probabilities that 16 bits cannot hold exactly
    flow_prev = flow_prev + np.float32(1.3)
    boxes = np.array([[3.3, 5.1, 13.7, 21.9], [0.0, 0.0, 0.0, 0.0]], np.float32)
    out, ref = m.step(frame, flow_prev, flow_next, prev, boxes), model.step(frame, flow_prev, flow_next, prev, boxes)
    np.testing.assert_allclose(out["warped"].numpy(), ref["warped"].numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(out["proposals"].numpy(), ref["proposals"].numpy(), rtol=0, atol=1e-5)


def test_step_in_tf_function_and_under_xla_matches_eager(model):
    args = _inputs()
    eager = model.step(*args)
    graph = tf.function(model.step)(*args)
    xla = tf.function(model.step, jit_compile=True)(*args)
    for key in ("probs", "boxes"):
        np.testing.assert_allclose(graph[key].numpy(), eager[key].numpy(), atol=1e-5)
        np.testing.assert_allclose(xla[key].numpy(), eager[key].numpy(), atol=1e-4)


def test_a_step_without_objects_is_refused_by_name(model):
    """prev_probs [0, H, W] failed inside oneDNN's convolution (an error naming no input of the step)."""
    frame, flow_prev, flow_next, prev = _inputs()
    empty = np.zeros((0,) + prev.shape[1:], np.float32)
    with pytest.raises(ValueError, match=r"MaskRNN.step: prev_probs holds no object \(\[0, H, W\]\)"):
        model.step(frame, flow_prev, flow_next, empty)
    with pytest.raises(ValueError, match="holds no object"):
        tf.function(model.step)(frame, flow_prev, flow_next, empty)
    # A step traced for any number of objects still runs with one.
    spec = tf.TensorSpec([None] + list(prev.shape[1:]), tf.float32)
    traced = tf.function(lambda p: model.step(frame, flow_prev, flow_next, p), input_signature=[spec])
    np.testing.assert_allclose(traced(prev[:1])["probs"].numpy(), model.step(frame, flow_prev, flow_next,
                                                                             prev[:1])["probs"].numpy(), atol=1e-5)


def _outputs_equal(a, b):
    return all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


def test_without_flow_stream_the_output_ignores_the_flows():
    keras.utils.set_random_seed(3)
    full = MaskRNN(TINY)
    no_flow = MaskRNN(TINY.override({"use_flow_stream": False}))
    frame, flow_prev, flow_next, prev = _inputs(n=1)
    other_prev, other_next = flow_prev[::-1, ::-1] * 2.0 + 1.0, -3.0 * flow_next[::-1]
    # An empty previous mask warps to an empty mask whatever the flow, so the flows can only reach the
    # output through the flow stream.
    empty = np.zeros_like(prev)
    assert _outputs_equal(no_flow.step(frame, flow_prev, flow_next, empty),
                          no_flow.step(frame, other_prev, other_next, empty))
    changed = full.step(frame, other_prev, other_next, empty)["logits"].numpy()
    assert np.abs(changed - full.step(frame, flow_prev, flow_next, empty)["logits"].numpy()).max() > 1e-3
    # With a real mask, the flow to the next frame (read by the flow stream only) still changes nothing.
    assert _outputs_equal(no_flow.step(frame, flow_prev, flow_next, prev), no_flow.step(frame, flow_prev, other_next, prev))


def test_without_the_mask_input_the_logits_ignore_the_mask():
    keras.utils.set_random_seed(4)
    full = MaskRNN(TINY)
    no_mask = MaskRNN(TINY.override({"use_warped_mask": False}))
    frame, flow_prev, flow_next, prev = _inputs(n=1)
    other = np.zeros_like(prev)
    other[0, 15:28, 25:45] = 1.0
    # The segmentation streams no longer see the mask; the localization (boxes, and probs through the box)
    # still starts from the warped mask's box, so only the logits are mask-free.
    a, b = no_mask.step(frame, flow_prev, flow_next, prev), no_mask.step(frame, flow_prev, flow_next, other)
    np.testing.assert_array_equal(a["logits"].numpy(), b["logits"].numpy())
    a, b = full.step(frame, flow_prev, flow_next, prev), full.step(frame, flow_prev, flow_next, other)
    assert np.abs(a["logits"].numpy() - b["logits"].numpy()).max() > 1e-3


def test_tf_checkpoint_reaches_every_weight(model, tmp_path):
    # Training checkpoints track the model through tf.train.Checkpoint: all sub-models must be reachable.
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    saved = [n for n, _ in tf.train.list_variables(path) if n.startswith("model/")]
    assert len(saved) == len(model.weights)
    keras.utils.set_random_seed(99)
    other = MaskRNN(TINY)
    tf.train.Checkpoint(model=other).read(path).assert_existing_objects_matched()
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_loc_stop_gradient_keeps_the_box_loss_out_of_the_trunk():
    keras.utils.set_random_seed(2)
    cfg = TINY.override({"loc_stop_gradient": True})
    joint, detached = MaskRNN(TINY), MaskRNN(cfg)
    frame, fp, fn, prev = _inputs()
    joint.step(frame, fp, fn, prev)
    detached.step(frame, fp, fn, prev)
    detached.set_weights(joint.get_weights())
    for m in (joint, detached):
        d = m.localization_head.get_layer("deltas")
        d.set_weights([np.random.default_rng(0).normal(0, 0.1, d.get_weights()[0].shape).astype(np.float32),
                       d.get_weights()[1]])
    outs, trunk, head = {}, {}, {}
    for name, m in (("joint", joint), ("detached", detached)):
        with tf.GradientTape() as tape:
            outs[name] = m.step(frame, fp, fn, prev, training=True)
            loss = tf.reduce_sum(outs[name]["deltas"])  # the box regression alone
        # The boxes read the appearance stream's conv5_3; the flow stream never reaches them.
        grads = tape.gradient(loss, [m.appearance_stream.trainable_weights, m.localization_head.trainable_weights])
        trunk[name], head[name] = grads
    # The forward pass is the same network: the option only cuts the backward path.
    for key in ("deltas", "boxes", "probs", "logits"):
        np.testing.assert_array_equal(outs["detached"][key].numpy(), outs["joint"][key].numpy())

    def reached(g):
        return g is not None and bool(np.any(g.numpy()))

    assert sum(reached(g) for g in trunk["joint"]) >= 26  # every conv kernel and bias up to conv5_3
    assert not any(reached(g) for g in trunk["detached"])
    assert head["joint"] and all(reached(g) for g in head["joint"])
    for a, b in zip(head["detached"], head["joint"]):  # the head's own gradient is unchanged
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-7)
    assert MaskRNNConfig.from_dict(cfg.to_dict()).loc_stop_gradient is True


def test_the_restriction_enlarges_the_predicted_box_before_it_is_clipped(model, monkeypatch):
    """The box was clipped to the frame and then enlarged, about the clipped box's centre: a box predicted over
    rows -10..30 of a 40-row frame restricted the mask to rows up to 33.75 instead of the 1.25x box's 35 (row 34
    zeroed). The box returned stays clipped to the frame."""
    from maskrnn_tf.model import maskrnn as maskrnn_module

    h, w = 40, 48
    predicted = tf.constant([[-10.0, 8.0, 30.0, 40.0]])
    monkeypatch.setattr(maskrnn_module, "decode_box_deltas", lambda deltas, proposals, weights: predicted)
    frame, flow_prev, flow_next, prev = _inputs(h, w, n=1)
    out = model.step(frame, flow_prev, flow_next, prev)
    probs = out["probs"].numpy()[0]
    rows = np.flatnonzero(probs.max(axis=1) > 0)
    assert rows.min() == 0 and rows.max() == 34  # -15..35 by pixel centres: rows 0..34
    cols = np.flatnonzero(probs.max(axis=0) > 0)
    assert cols.min() == 4 and cols.max() == 43  # 4..44: centres 4.5..43.5
    np.testing.assert_allclose(out["boxes"].numpy(), [[0.0, 8.0, 30.0, 40.0]])


def test_roi_feature_stride_maps_the_proposals_onto_conv5_3_and_round_trips(monkeypatch):
    from maskrnn_tf.model import maskrnn as maskrnn_module
    from maskrnn_tf.ops import boxes_on_feature_map

    config = MaskRNNConfig(width=0.125, fc_units=16, side_channels=4, roi_feature_stride=16)
    model = MaskRNN(config)
    assert MaskRNN.from_config(model.get_config()).config.roi_feature_stride == 16
    seen = []
    real = maskrnn_module.roi_pool

    def spy(features, boxes, indices, size):
        seen.append((tf.shape(features).numpy(), np.asarray(boxes)))
        return real(features, boxes, indices, size)

    monkeypatch.setattr(maskrnn_module, "roi_pool", spy)
    frame, flow_prev, flow_next, prev = _inputs(64, 80, n=1)
    out = model.step(frame, flow_prev, flow_next, prev)
    (shape, boxes), = seen
    assert tuple(shape[1:3]) == (4, 5)
    np.testing.assert_allclose(boxes, boxes_on_feature_map(out["proposals"], 16, 4, 5).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="roi_feature_stride must be 0 .* or 16"):
        MaskRNNConfig(roi_feature_stride=8)
