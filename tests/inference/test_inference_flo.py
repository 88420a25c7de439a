"""Precomputed `.flo` flows in the segment loop: looked up by sequence and frame name, resized under
--max_size, used by online finetuning, and a clear error for a missing file."""
import importlib
import os
import types

import numpy as np
import pytest
from absl import app, flags
from PIL import Image

from maskrnn_tf import segment
from maskrnn_tf.inference import (
    FinetuneConfig,
    FloFileFlow,
    SegmentOptions,
    VideoSource,
    flow_propagation_step,
    make_flow_fn,
    propagate,
    read_first_mask,
    segment_video,
)
from maskrnn_tf.io import read_mask
from maskrnn_tf.ops import resize_flow, warp_with_flow, write_flo

from .conftest import custom_palette, write_palette

segment.define_flags()  # segment's flags, which these tests parse

SEQUENCE = "clip"
# The module, not the `finetune` function the package re-exports under the same name.
finetune_module = importlib.import_module("maskrnn_tf.inference.finetune")


def write_exact_flows(flo_dir: str, sequence: str, video) -> None:
    """The generator's exact flows as `<flo_dir>/<sequence>/<t>_<t±1>.flo`."""
    folder = os.path.join(flo_dir, sequence)
    os.makedirs(folder, exist_ok=True)
    count = len(video["frames"])
    for t in range(count):
        if t > 0:
            write_flo(os.path.join(folder, f"{t:05d}_{t - 1:05d}.flo"), video["flows_to_prev"][t])
        if t < count - 1:
            write_flo(os.path.join(folder, f"{t:05d}_{t + 1:05d}.flo"), video["flows_to_next"][t])


@pytest.fixture()
def flo_video(tmp_path, synthetic_video):
    """(frames folder named SEQUENCE, first mask, flo_dir with its exact flows)."""
    frames = tmp_path / SEQUENCE
    frames.mkdir()
    for t, frame in enumerate(synthetic_video["frames"]):
        Image.fromarray(frame).save(frames / f"{t:05d}.png")
    mask = str(tmp_path / "first.png")
    write_palette(mask, synthetic_video["masks"][0], custom_palette())
    flo_dir = str(tmp_path / "flo")
    write_exact_flows(flo_dir, SEQUENCE, synthetic_video)
    return str(frames), mask, flo_dir


def run_cli(*args: str) -> int:
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["segment", "--noprogress", *args])
    return segment.main([])


def hand_propagation(first: np.ndarray, flows_to_prev: np.ndarray) -> list:
    """Baseline by hand: probs_t = warp_with_flow(probs_{t-1}, flow t -> t-1) > 0.5."""
    probs = [first]
    for t in range(1, len(flows_to_prev)):
        flow = np.broadcast_to(flows_to_prev[t], (len(first),) + flows_to_prev[t].shape)
        warped = warp_with_flow(probs[-1][..., None], flow)[..., 0].numpy()
        probs.append((warped > 0.5).astype(np.float32))
    return probs


def labels_of(probs: np.ndarray) -> np.ndarray:
    return np.where(probs.max(0) > 0.5, probs.argmax(0) + 1, 0)


def test_baseline_with_flo_flows_moves_the_mask_like_warping_by_hand(tmp_path, synthetic_video):
    video = synthetic_video
    flo_dir = str(tmp_path / "flo")
    write_exact_flows(flo_dir, SEQUENCE, video)
    flow_fn = make_flow_fn("flo", flo_dir)
    assert isinstance(flow_fn, FloFileFlow)
    first = np.stack([(video["masks"][0] == k).astype(np.float32) for k in (1, 2)])
    stems = [f"{t:05d}" for t in range(6)]
    results = list(propagate(flow_propagation_step, iter(video["frames"]), first, flow_fn.for_sequence(SEQUENCE),
                             need_next_flow=False, stems=stems))
    want = hand_propagation(first, video["flows_to_prev"])
    for result, expected in zip(results, want):
        np.testing.assert_array_equal(result.probs, expected)
    assert not np.array_equal(results[-1].probs, first)  # the mask really moved
    # A name-based flow without stems is refused rather than guessed.
    with pytest.raises(ValueError, match="stems"):
        list(propagate(flow_propagation_step, iter(video["frames"]), first, flow_fn.for_sequence(SEQUENCE)))


def test_cli_segments_a_frames_folder_with_flo_flows(tmp_path, flo_video, synthetic_video):
    frames, mask, flo_dir = flo_video
    out = str(tmp_path / "out")
    assert run_cli(f"--video={frames}", f"--first_mask={mask}", "--method=flow_propagation", "--flow=flo",
                   f"--flo_dir={flo_dir}", f"--output={out}") == 0
    first = np.stack([(synthetic_video["masks"][0] == k).astype(np.float32) for k in (1, 2)])
    want = hand_propagation(first, synthetic_video["flows_to_prev"])
    assert sorted(os.listdir(out)) == [f"{t:05d}.png" for t in range(6)] + ["segment_run.json"]
    for t in range(6):  # the exact flows were used: equal to warping by hand, ids as in the first mask
        np.testing.assert_array_equal(read_mask(os.path.join(out, f"{t:05d}.png")), labels_of(want[t]))


def test_davis_sequences_read_flows_under_their_sequence_name(tmp_path, synthetic_video):
    from maskrnn_tf.io import write_palette_png

    video, name = synthetic_video, "swan"
    root = tmp_path / "davis"
    for sub in ("JPEGImages", "Annotations"):
        (root / sub / "480p" / name).mkdir(parents=True)
    for t, (frame, ids) in enumerate(zip(video["frames"], video["masks"])):
        Image.fromarray(frame).save(root / "JPEGImages" / "480p" / name / f"{t:05d}.png")
        write_palette_png(str(root / "Annotations" / "480p" / name / f"{t:05d}.png"), ids)
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text(name + "\n")
    flo_dir = str(tmp_path / "flo")
    write_exact_flows(flo_dir, name, video)
    out = str(tmp_path / "out")
    assert run_cli(f"--davis_root={root}", "--method=flow_propagation", "--flow=flo", f"--flo_dir={flo_dir}",
                   f"--output={out}") == 0
    first = np.stack([(video["masks"][0] == k).astype(np.float32) for k in (1, 2)])
    want = hand_propagation(first, video["flows_to_prev"])
    for t in range(6):
        np.testing.assert_array_equal(read_mask(os.path.join(out, name, f"{t:05d}.png")), labels_of(want[t]))


def test_missing_flo_files_are_found_before_any_sequence_is_segmented(tmp_path, synthetic_video, monkeypatch):
    """A .flo file missing from the last pair of the last sequence was found when the loop reached it: the earlier
    sequences' work (their finetuning too) was thrown away with the unfinished folder."""
    from maskrnn_tf import inference
    from maskrnn_tf.io import write_palette_png

    video, root, flo_dir = synthetic_video, tmp_path / "davis", str(tmp_path / "flo")
    for name in ("aa", "bb"):
        for sub in ("JPEGImages", "Annotations"):
            (root / sub / "480p" / name).mkdir(parents=True)
        for t, (frame, ids) in enumerate(zip(video["frames"], video["masks"])):
            Image.fromarray(frame).save(root / "JPEGImages" / "480p" / name / f"{t:05d}.png")
            write_palette_png(str(root / "Annotations" / "480p" / name / f"{t:05d}.png"), ids)
        write_exact_flows(flo_dir, name, video)
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("aa\nbb\n")
    os.remove(os.path.join(flo_dir, "bb", "00005_00004.flo"))
    steps = []

    def counted(*args, **kwargs):
        steps.append(1)
        return flow_propagation_step(*args, **kwargs)

    monkeypatch.setattr(inference, "flow_propagation_step", counted)
    out = str(tmp_path / "out")
    with pytest.raises(FileNotFoundError, match=r"bb/00005_00004.flo: missing .flo file"):
        run_cli(f"--davis_root={root}", "--method=flow_propagation", "--flow=flo", f"--flo_dir={flo_dir}",
                f"--output={out}")
    assert steps == [] and not os.path.exists(out)
    # The baseline reads no flow to the next frame: a folder without them is enough for it.
    write_exact_flows(flo_dir, "bb", video)
    for name in ("aa", "bb"):
        for t in range(5):
            os.remove(os.path.join(flo_dir, name, f"{t:05d}_{t + 1:05d}.flo"))
    assert run_cli(f"--davis_root={root}", "--method=flow_propagation", "--flow=flo", f"--flo_dir={flo_dir}",
                   f"--output={out}") == 0
    assert len(steps) == 10


def test_max_size_resizes_flo_flows_and_outputs_have_the_input_size(tmp_path, flo_video, synthetic_video):
    frames, mask, flo_dir = flo_video
    seen = []

    def recording_step(frame, to_prev, to_next, probs, boxes):
        seen.append((frame.shape, to_prev, to_next))
        return flow_propagation_step(frame, to_prev, to_next, probs, boxes)

    out = str(tmp_path / "small")
    segment_video(recording_step, frames, mask, make_flow_fn("flo", flo_dir), out,
                  SegmentOptions(max_size=28, progress=False))
    for t in range(6):
        assert read_mask(os.path.join(out, f"{t:05d}.png")).shape == (40, 56)
    assert len(seen) == 5
    for t, (shape, to_prev, to_next) in enumerate(seen, start=1):
        assert shape == (20, 28, 3) and to_prev.shape == (20, 28, 2)
        want = resize_flow(synthetic_video["flows_to_prev"][t][None], (20, 28))[0].numpy()
        np.testing.assert_allclose(to_prev, want, rtol=0, atol=1e-6)
        if t < 5:
            want_next = resize_flow(synthetic_video["flows_to_next"][t][None], (20, 28))[0].numpy()
            np.testing.assert_allclose(to_next, want_next, rtol=0, atol=1e-6)
    # Half the size, half the displacement: a uniform flow of (4, -2) px reads back as (2, -1).
    uniform = np.broadcast_to(np.array([4.0, -2.0], np.float32), (40, 56, 2))
    write_flo(os.path.join(flo_dir, SEQUENCE, "00001_00000.flo"), uniform)
    flow = FloFileFlow(make_flow_fn("flo", flo_dir).backend, SEQUENCE)(np.zeros((20, 28, 3), np.uint8), None,
                                                                       "00001", "00000")
    np.testing.assert_allclose(flow, np.broadcast_to([2.0, -1.0], (20, 28, 2)), atol=1e-6)


def test_finetuning_reads_the_first_flow_from_the_flo_folder(monkeypatch, flo_video, synthetic_video):
    frames, mask, flo_dir = flo_video
    captured = {}

    def fake_finetune(model, first_frame, ids, object_ids, flow_to_next, config, color_model=None):
        captured.update(frame=first_frame, flow=flow_to_next)
        return []

    monkeypatch.setattr(finetune_module, "finetune", fake_finetune)
    source = VideoSource(frames)
    assert source.name == SEQUENCE
    first = read_first_mask(mask, source.size)
    model = types.SimpleNamespace(config=types.SimpleNamespace(color_prior_input=False))  # finetune is the fake
    finetune_module.finetune_on_video(model, source, first, make_flow_fn("flo", flo_dir), max_size=28,
                                      config=FinetuneConfig(steps=1))
    want = resize_flow(synthetic_video["flows_to_next"][0][None], (20, 28))[0].numpy()
    assert captured["frame"].shape == (20, 28, 3)
    np.testing.assert_allclose(captured["flow"], want, rtol=0, atol=1e-6)


def test_missing_flo_file_is_named_and_nothing_is_written(tmp_path, flo_video, tiny_model_path):
    frames, mask, flo_dir = flo_video
    out = str(tmp_path / "out")
    missing = os.path.join(flo_dir, SEQUENCE, "00003_00002.flo")
    with open(missing, "rb") as f:
        kept = f.read()
    os.remove(missing)
    with pytest.raises(FileNotFoundError, match="00003_00002.flo: missing .flo file"):
        run_cli(f"--video={frames}", f"--first_mask={mask}", "--method=flow_propagation", "--flow=flo",
                f"--flo_dir={flo_dir}", f"--output={out}")
    assert not os.path.exists(out)
    with open(missing, "wb") as f:
        f.write(kept)
    # Online finetuning reads the flow 0 -> 1 (the loop never does): it comes from the folder too.
    os.remove(os.path.join(flo_dir, SEQUENCE, "00000_00001.flo"))
    with pytest.raises(FileNotFoundError, match="00000_00001.flo"):
        run_cli(f"--video={frames}", f"--first_mask={mask}", f"--model={tiny_model_path}", "--finetune_steps=1",
                "--finetune_check_frames=0", "--flow=flo", f"--flo_dir={flo_dir}", f"--output={out}")
    assert not os.path.exists(out)
    os.remove(missing)
    # The cycle check (on by default) goes round the first frames with the folder's flows before finetuning.
    with pytest.raises(FileNotFoundError, match="00003_00002.flo: missing .flo file"):
        run_cli(f"--video={frames}", f"--first_mask={mask}", f"--model={tiny_model_path}", "--finetune_steps=1",
                "--flow=flo", f"--flo_dir={flo_dir}", f"--output={out}")
    assert not os.path.exists(out)
    with pytest.raises(app.UsageError, match=r"^--flow=flo needs --flo_dir \(the folder of "
                       r"<sequence>/<stem_a>_<stem_b>\.flo files\)\.$"):
        run_cli(f"--video={frames}", f"--first_mask={mask}", "--method=flow_propagation", "--flow=flo",
                f"--output={out}")


def test_finetuning_skips_updates_with_non_finite_gradients(monkeypatch, synthetic_video):
    import tensorflow as tf

    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    model = MaskRNN(MaskRNNConfig(width=0.125, fc_units=16))
    before = [w.numpy().copy() for w in model.weights]
    real = finetune_module._batch_losses
    monkeypatch.setattr(finetune_module, "_batch_losses",
                        lambda *a, **k: real(*a, **k) * tf.constant(float("nan")))  # NaN loss and gradients
    losses = finetune_module.finetune(model, synthetic_video["frames"][0], synthetic_video["masks"][0], [1],
                                      synthetic_video["flows_to_next"][0],
                                      finetune_module.FinetuneConfig(steps=3, learning_rate=1e-3))
    assert len(losses) == 3 and np.isnan(losses).all()
    for b, w in zip(before, model.weights):  # every update skipped: no weight became NaN or moved
        np.testing.assert_array_equal(w.numpy(), b)
