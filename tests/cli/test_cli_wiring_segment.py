"""`python -m maskrnn_tf.segment` flags through the CLI, checked by their effect: --sequences (only those
sequences are written) and --jit_compile (the model step really goes through XLA, with the same masks)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from maskrnn_tf.data.synthetic import SyntheticConfig, generate_video
from maskrnn_tf.io import read_mask, write_palette_png

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TINY = SyntheticConfig(height=40, width=56, num_frames=4, min_objects=1, max_objects=2)
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")


def _segment(*flags, env=None):
    return subprocess.run([sys.executable, "-m", "maskrnn_tf.segment", "--noprogress", *flags], cwd=REPO,
                          env=env or ENV, capture_output=True, text=True, timeout=240)


def _segment_in_process(*flags):
    """`segment`'s entry (flags parsed by absl as on the command line, errors reported as the CLI reports them)
    in this process: its exit status. For tests of what a flag does, not of the process (exit codes of bad
    input, start-up output), which keep `_segment`; spares a TensorFlow start-up per run."""
    from absl import flags as absl_flags

    from maskrnn_tf import segment

    segment.define_flags()
    absl_flags.FLAGS.unparse_flags()
    absl_flags.FLAGS(["segment", "--noprogress", *flags])
    try:
        return segment.guarded([])
    finally:
        absl_flags.FLAGS.unparse_flags()


@pytest.fixture(scope="module")
def davis_root(tmp_path_factory):
    """A tiny DAVIS-2017 layout: sequences alpha, beta, gamma (synthetic videos, 4 frames of 40x56)."""
    root = tmp_path_factory.mktemp("davis")
    names = ("alpha", "beta", "gamma")
    for seed, name in enumerate(names):
        video = generate_video(seed + 1, TINY)
        (root / "JPEGImages" / "480p" / name).mkdir(parents=True)
        (root / "Annotations" / "480p" / name).mkdir(parents=True)
        for t, frame in enumerate(video["frames"]):
            Image.fromarray(frame).save(root / "JPEGImages" / "480p" / name / f"{t:05d}.jpg", quality=95)
            write_palette_png(root / "Annotations" / "480p" / name / f"{t:05d}.png", video["masks"][t])
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("\n".join(names) + "\n")
    return str(root)


def test_sequences_segments_only_the_named_sequences(davis_root, tmp_path):
    out = tmp_path / "out"
    proc = _segment("--method=flow_propagation", f"--davis_root={davis_root}", "--sequences=gamma,alpha",
                    f"--output={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "wrote 2 sequences" in proc.stdout
    assert sorted(os.listdir(out)) == ["alpha", "gamma", "segment_run.json"]
    for name in ("alpha", "gamma"):
        assert sorted(os.listdir(out / name)) == [f"{t:05d}.png" for t in range(4)]
        first = read_mask(os.path.join(davis_root, "Annotations", "480p", name, "00000.png"))
        np.testing.assert_array_equal(read_mask(str(out / name / "00000.png")), first)
    unknown = _segment("--method=flow_propagation", f"--davis_root={davis_root}", "--sequences=alpha,delta",
                       f"--output={tmp_path / 'other'}")
    assert unknown.returncode == 2
    assert "sequence 'delta' is not in DAVIS-2017 val" in unknown.stderr and "alpha" in unknown.stderr
    assert not (tmp_path / "other").exists()


def test_jit_compile_runs_the_model_step_through_xla(davis_root, tmp_path):
    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    model = str(tmp_path / "model.keras")
    MaskRNN(MaskRNNConfig(width=0.125, fc_units=16)).save(model)
    common = ["--method=maskrnn", f"--model={model}", "--finetune_steps=0", "--precision=float32",
              f"--davis_root={davis_root}", "--sequences=beta"]
    outputs = {}
    for jit in (True, False):
        dump = tmp_path / f"xla_dump_{jit}"
        env = dict(ENV, XLA_FLAGS=f"--xla_dump_to={dump}")
        outputs[jit] = tmp_path / f"out_{jit}"
        proc = _segment(*common, f"--output={outputs[jit]}", "--jit_compile" if jit else "--nojit_compile", env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        # XLA writes a module dump for every cluster it compiles: only the jit-compiled run has any.
        modules = [n for n in os.listdir(dump)] if dump.exists() else []
        assert bool(modules) == jit, modules[:5]
        # The record says which: XLA may reorder sums and flip pixels, so the two runs' masks may differ.
        assert json.loads((outputs[jit] / "segment_run.json").read_text())["jit_compile"] is jit
    for t in range(4):
        a = read_mask(str(outputs[False] / "beta" / f"{t:05d}.png"))
        b = read_mask(str(outputs[True] / "beta" / f"{t:05d}.png"))
        assert np.mean(a == b) >= 0.99, t  # XLA reorders float sums: a few pixels at 0.5 may flip


def test_segment_run_json_records_the_settings_that_change_the_masks(davis_root, tmp_path):
    """--noapply_localization and --finetune_lr change the masks: two runs differing only in them had the same
    segment_run.json. It records the localization actually applied (the model's, after any override), the
    learning rate when finetuning runs, and --jit_compile."""
    model = _tiny_network(tmp_path)  # trained with apply_localization=True
    common = ["--method=maskrnn", f"--model={model}", "--precision=float32", f"--davis_root={davis_root}",
              "--sequences=beta"]
    assert _segment_in_process(*common, "--finetune=static", "--finetune_steps=1", "--finetune_lr=1e-3",
                               "--finetune_check_frames=0", "--noapply_localization",
                               f"--output={tmp_path / 'tuned'}") == 0
    assert _segment_in_process(*common, "--finetune=none", f"--output={tmp_path / 'plain'}") == 0
    tuned, plain = (json.loads((tmp_path / name / "segment_run.json").read_text()) for name in ("tuned", "plain"))
    assert tuned["apply_localization"] is False and tuned["finetune_lr"] == 1e-3 and tuned["jit_compile"] is False
    # Without the flag: the model's own setting; no finetuning ran, so no learning rate shaped the masks.
    assert plain["apply_localization"] is True and "finetune_lr" not in plain and plain["jit_compile"] is False


def test_the_baseline_records_no_model_and_its_flo_dir_and_notes_the_flags_it_does_not_use(davis_root, tmp_path,
                                                                                          monkeypatch, capsys):
    """--method=flow_propagation ignores --model and the finetuning flags (the experiment drivers pass --model to
    it too, so it is not refused): the record named the model all the same. It records "model": None, the
    absolute --flo_dir the flows came from, and prints one note naming the flags given in vain."""
    from maskrnn_tf.ops import write_flo

    flo = tmp_path / "flo" / "beta"
    flo.mkdir(parents=True)
    for t in range(1, 4):  # the baseline warps backwards only
        write_flo(flo / f"{t:05d}_{t - 1:05d}.flo", np.zeros((40, 56, 2), np.float32))
    model = _tiny_network(tmp_path)
    monkeypatch.chdir(tmp_path)  # a relative --flo_dir is recorded absolute
    common = ["--method=flow_propagation", f"--davis_root={davis_root}", "--sequences=beta", "--flow=flo",
              "--flo_dir=flo"]
    assert _segment_in_process(*common, f"--model={model}", "--finetune_steps=3",
                               f"--output={tmp_path / 'with_model'}") == 0
    record = json.loads((tmp_path / "with_model" / "segment_run.json").read_text())
    assert record["model"] is None and record["flo_dir"] == os.path.join(os.getcwd(), "flo")
    assert "finetune_lr" not in record and "jit_compile" not in record and "apply_localization" not in record
    notes = [line for line in capsys.readouterr().out.splitlines() if "not used" in line]
    assert len(notes) == 1 and "--model" in notes[0] and "--finetune_steps" in notes[0], notes
    assert _segment_in_process(*common, f"--output={tmp_path / 'plain'}") == 0
    assert "not used" not in capsys.readouterr().out


def test_probs_format_without_save_probs_is_a_usage_error(tmp_path):
    """--probs_format chooses how --save_probs writes the probabilities: alone it was dropped without a word."""
    proc = _segment("--method=flow_propagation", "--probs_format=png", "--video=x", "--first_mask=y",
                    f"--output={tmp_path / 'o'}")
    assert proc.returncode == 2 and "--probs_format" in proc.stderr and "--save_probs" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o").exists()


def test_no_sequence_to_segment_is_an_error_not_an_empty_results_folder(davis_root, tmp_path):
    """`--sequences=` (absl parses it as an empty list) or a split list without names gave an output folder
    holding only segment_run.json, which the evaluation then read as a result."""
    import shutil

    from maskrnn_tf.inference import SegmentOptions, flow_propagation_step, segment_davis

    def zero_flow(a, b):
        return np.zeros(a.shape[:2] + (2,), np.float32)

    out = tmp_path / "out"
    with pytest.raises(ValueError, match="--sequences is empty"):
        segment_davis(davis_root, "val", zero_flow, str(out), step_fn=flow_propagation_step,
                      options=SegmentOptions(progress=False), sequences=[])
    empty_split = tmp_path / "davis"
    shutil.copytree(davis_root, empty_split)
    (empty_split / "ImageSets" / "2017" / "val.txt").write_text("\n")
    with pytest.raises(ValueError, match=r"val\.txt lists no sequences"):
        segment_davis(str(empty_split), "val", zero_flow, str(out), step_fn=flow_propagation_step,
                      options=SegmentOptions(progress=False))
    assert not out.exists()


def test_a_first_frame_whose_ids_skip_an_object_is_segmented_with_its_own_ids(davis_root, tmp_path):
    """DAVIS-2017 first frames with ids 1 and 3 (or 2 alone: object 1 not in the first frame) were refused when
    the split was listed, for every sequence of it, though evaluate scores them (as davis2017-evaluation does:
    objects 1..the highest id) and --video segments them. Training, which needs ids 1..N, still refuses them."""
    import shutil

    from maskrnn_tf.data.sequences import DatasetLayoutError, read_davis_sequence_list

    gapped = tmp_path / "davis"
    shutil.copytree(davis_root, gapped)
    first = {}
    for name in ("alpha", "beta"):
        folder = gapped / "Annotations" / "480p" / name
        for path in sorted(folder.iterdir()):
            ids = read_mask(str(path))
            moved = np.where(ids == 2, 3, np.where(ids == 1, 1 if ids.max() == 2 else 2, ids)).astype(np.uint8)
            write_palette_png(path, moved)
        first[name] = read_mask(str(folder / "00000.png"))
    assert set(np.unique(first["alpha"])) == {0, 2} and set(np.unique(first["beta"])) == {0, 1, 3}
    listed = {s.name: s.num_objects for s in read_davis_sequence_list(str(gapped), 2017, "val",
                                                                       validate="first_mask")}
    assert listed == {"alpha": 2, "beta": 3, "gamma": 2}
    with pytest.raises(DatasetLayoutError, match=r"alpha/00000\.png: palette ids \[2\] skip \[1\]"):
        read_davis_sequence_list(str(gapped), 2017, "val")
    out = tmp_path / "out"
    assert _segment_in_process("--method=flow_propagation", f"--davis_root={gapped}", f"--output={out}") == 0
    for name in ("alpha", "beta"):
        np.testing.assert_array_equal(read_mask(str(out / name / "00000.png")), first[name])
        for t in range(1, 4):
            assert set(np.unique(read_mask(str(out / name / f"{t:05d}.png")))) <= set(np.unique(first[name]))


def test_sequences_reads_only_the_named_sequences_of_the_split(davis_root, tmp_path):
    """A sequence of the split that --sequences does not name, broken (no frames, no first annotation), stopped
    the run on the ones named; a name not in the split is still refused, naming the split's sequences."""
    import shutil

    broken = tmp_path / "davis"
    shutil.copytree(davis_root, broken)
    shutil.rmtree(broken / "JPEGImages" / "480p" / "gamma")
    (broken / "Annotations" / "480p" / "alpha" / "00000.png").unlink()
    out = tmp_path / "out"
    assert _segment_in_process("--method=flow_propagation", f"--davis_root={broken}", "--sequences=beta",
                               f"--output={out}") == 0
    assert sorted(os.listdir(out)) == ["beta", "segment_run.json"]
    # The flow cache (python -m maskrnn_tf.flow's) is opened for the named sequences too.
    assert _segment_in_process("--method=flow_propagation", f"--davis_root={broken}", "--sequences=beta",
                               f"--flow_cache_dir={tmp_path / 'cache'}", f"--output={tmp_path / 'cached'}") == 0
    assert sorted(os.listdir(tmp_path / "cached")) == ["beta", "segment_run.json"]
    assert _segment_in_process("--method=flow_propagation", f"--davis_root={broken}", "--sequences=beta,delta",
                               f"--output={tmp_path / 'other'}") == 2
    assert not (tmp_path / "other").exists()
    assert _segment_in_process("--method=flow_propagation", f"--davis_root={broken}", "--sequences=beta,gamma",
                               f"--output={tmp_path / 'other'}") == 2  # named, and broken: refused
    assert not (tmp_path / "other").exists()


def test_ctrl_c_says_what_was_left_instead_of_a_traceback(davis_root, tmp_path, monkeypatch, capsys):
    """Ctrl-C while segmenting printed a TensorFlow-deep traceback; the folder was handled right (its temporary
    removed, an --overwrite's old folder kept) but nothing said so."""
    from maskrnn_tf import inference

    out = tmp_path / "out"
    assert _segment_in_process("--method=flow_propagation", f"--davis_root={davis_root}", "--sequences=alpha",
                               f"--output={out}") == 0
    before = {name: (out / "alpha" / name).read_bytes() for name in os.listdir(out / "alpha")}
    capsys.readouterr()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(inference, "flow_propagation_step", interrupted)
    assert _segment_in_process("--method=flow_propagation", f"--davis_root={davis_root}", "--sequences=alpha",
                               f"--output={out}", "--overwrite") == 130
    err = capsys.readouterr().err
    assert err.strip() == f"Interrupted: {out} is as it was before this run.", err
    assert {name: (out / "alpha" / name).read_bytes() for name in os.listdir(out / "alpha")} == before
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no temporary folder left beside it


def test_flow_cache_dir_takes_the_full_resolution_flows_resized_and_stores_missing_ones(davis_root, tmp_path):
    """--flow_cache_dir: the flows of python -m maskrnn_tf.flow's cache (computed on the full frames, as
    training reads them), resized to --max_size. The masks equal those of the same flows given as .flo files;
    the cache is filled where it was empty; without --davis_root the flag is refused."""
    import cv2

    from maskrnn_tf.data.flow_backends import make_backend
    from maskrnn_tf.inference import cached_davis_flow_fn
    from maskrnn_tf.io import read_frame
    from maskrnn_tf.ops import write_flo

    cache = tmp_path / "cache"
    common = ["--method=flow_propagation", f"--davis_root={davis_root}", "--sequences=beta", "--max_size=32",
              "--flow=dis-ultrafast"]
    proc = _segment(*common, f"--flow_cache_dir={cache}", f"--output={tmp_path / 'cached'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    stored = sorted(p.name for p in (cache / "dis-ultrafast" / "davis-480p" / "beta").iterdir())
    # The baseline warps backwards only; frames.json records the frames the flows are of.
    assert stored == ["00001_00000.npy", "00002_00001.npy", "00003_00002.npy", "frames.json"]
    # The cached flows are the backend's flows of the full 40x56 frames (stored in float16).
    frames = [read_frame(os.path.join(davis_root, "JPEGImages", "480p", "beta", f"{t:05d}.jpg")) for t in range(4)]
    full = make_backend("dis-ultrafast").flow(frames[2], frames[1])
    np.testing.assert_allclose(np.load(cache / "dis-ultrafast" / "davis-480p" / "beta" / "00002_00001.npy"),
                               full, atol=0.02)
    # Given at 20x28 they are resized (bilinear, vectors halved), as the training crops get them.
    flow_fn = cached_davis_flow_fn("dis-ultrafast", str(cache), davis_root, "val").for_sequence("beta")
    small = [cv2.resize(f, (28, 20), interpolation=cv2.INTER_AREA) for f in frames]
    expected = cv2.resize(full, (28, 20), interpolation=cv2.INTER_LINEAR) * 0.5
    np.testing.assert_allclose(flow_fn(small[2], small[1], "00002", "00001"), expected, atol=0.02)
    with pytest.raises(ValueError, match="not a sequence of the DAVIS split"):
        flow_fn.for_sequence("delta")
    # The same flows as .flo files give the same masks.
    for path in (cache / "dis-ultrafast" / "davis-480p" / "beta").glob("*.npy"):
        (tmp_path / "flo" / "beta").mkdir(parents=True, exist_ok=True)
        write_flo(tmp_path / "flo" / "beta" / (path.stem + ".flo"), np.load(path).astype(np.float32))
    proc = _segment(*common[:-1], "--flow=flo", f"--flo_dir={tmp_path / 'flo'}", f"--output={tmp_path / 'flo_out'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    for t in range(4):
        np.testing.assert_array_equal(read_mask(tmp_path / "cached" / "beta" / f"{t:05d}.png"),
                                      read_mask(tmp_path / "flo_out" / "beta" / f"{t:05d}.png"))
    refused = _segment("--method=flow_propagation", f"--video={davis_root}/JPEGImages/480p/beta",
                       f"--first_mask={davis_root}/Annotations/480p/beta/00000.png",
                       f"--flow_cache_dir={cache}", f"--output={tmp_path / 'video'}")
    assert refused.returncode != 0 and "--flow_cache_dir needs --davis_root" in refused.stderr


def test_finetune_check_frames_records_the_cycle_check_of_every_sequence(davis_root, tmp_path):
    """--finetune_check_frames (10 by default) wraps the online finetuning: segment_run.json notes, per
    sequence, the cycle IoU before and after finetuning and whether the finetuning was kept (kept exactly when
    it did not go round worse); with --finetune_check_frames=0 there is no check."""
    import json

    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    model = str(tmp_path / "model.keras")
    MaskRNN(MaskRNNConfig(width=0.125, fc_units=16)).save(model)
    common = ["--method=maskrnn", f"--model={model}", "--finetune=static", "--finetune_steps=2",
              "--finetune_lr=1e-3", "--precision=float32", f"--davis_root={davis_root}", "--sequences=alpha,beta"]
    # In this process: the test is about what the flag does (segment_run.json), not the process boundary.
    assert _segment_in_process(*common, f"--output={tmp_path / 'checked'}") == 0  # on by default
    record = json.loads((tmp_path / "checked" / "segment_run.json").read_text())
    assert record["finetune_check_frames"] == 10
    for name in ("alpha", "beta"):
        entry = record["finetune_log"][name]
        assert entry["updates"] == 2
        assert 0.0 <= entry["cycle_before"] <= 1.0 and 0.0 <= entry["cycle_after"] <= 1.0
        assert entry["kept_finetuning"] == (entry["cycle_after"] >= entry["cycle_before"])
    assert _segment_in_process(*common[:-1], "--sequences=alpha", "--finetune_check_frames=0",
                               f"--output={tmp_path / 'unchecked'}") == 0
    record = json.loads((tmp_path / "unchecked" / "segment_run.json").read_text())
    assert "finetune_check_frames" not in record and "cycle_before" not in record["finetune_log"]["alpha"]
    # A negative value: tests/reliability/test_cli_flags.py (refused when parsed).


def _tiny_network(tmp_path, spread=False):
    """Saves a tiny random network as tmp_path/model.keras and returns its path. `spread`: it answers 1 everywhere
    (a fusion bias of 50, no box restriction), whatever its random weights."""
    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    model_path = str(tmp_path / "model.keras")
    network = MaskRNN(MaskRNNConfig(width=0.125, fc_units=16, apply_localization=not spread))
    if spread:
        network.stream_fusion.bias.assign([50.0])
    network.save(model_path)
    return model_path


def _step_wrapper_flag(davis_root, tmp_path, flag, key, wrap, spread=False):
    """Segments `beta` with a tiny random network with `flag` and with none (in this process) and with the
    library's model step passed through `wrap(step, model)` on the same network; checks that segment_run.json
    notes `key` only with the flag and that the flow-propagation baseline refuses the flag (exit 2, naming it and
    --method=maskrnn, no output). Returns (cli, library, plain) probabilities of frames 1-3. `spread`: the
    network answers 1 everywhere (a fusion bias of 50, no box restriction), whatever its random weights."""

    from maskrnn_tf import inference

    model_path = _tiny_network(tmp_path, spread)
    common = ["--method=maskrnn", f"--model={model_path}", "--finetune=none", "--precision=float32", "--save_probs",
              f"--davis_root={davis_root}", "--sequences=beta"]
    assert _segment_in_process(*common, flag, f"--output={tmp_path / 'with'}") == 0
    assert _segment_in_process(*common, f"--output={tmp_path / 'plain'}") == 0
    assert key in json.loads((tmp_path / "with" / "segment_run.json").read_text())
    assert key not in json.loads((tmp_path / "plain" / "segment_run.json").read_text())

    model = inference.load_model(model_path, precision="float32")
    step = wrap(inference.model_step_fn(model), model)
    inference.segment_davis(davis_root, "val", inference.make_flow_fn("dis"), str(tmp_path / "library"), step_fn=step,
                            options=inference.SegmentOptions(save_probs="npy", progress=False), sequences=["beta"])
    frames = []
    for t in range(1, 4):
        name = os.path.join("beta", "probs", f"{t:05d}.npy")
        frames.append(tuple(np.load(tmp_path / folder / name).astype(np.float32)
                            for folder in ("with", "library", "plain")))
    baseline = _segment("--method=flow_propagation", flag, f"--davis_root={davis_root}",
                        f"--output={tmp_path / 'baseline'}")
    assert baseline.returncode == 2 and flag.split("=")[0] in baseline.stderr
    assert "--method=maskrnn" in baseline.stderr and not (tmp_path / "baseline").exists()
    return frames


def test_flip_average_segments_with_the_mean_of_the_plain_and_the_mirrored_step(davis_root, tmp_path):
    """--flip_average gives the probabilities of the library's flip-averaged step (run here in-process on the
    same model), differs from the plain run, and is noted in segment_run.json."""
    from maskrnn_tf.inference.flip_average import flip_averaged_step

    frames = _step_wrapper_flag(davis_root, tmp_path, "--flip_average", "flip_average",
                                lambda step, model: flip_averaged_step(step))
    for cli, library, _ in frames:
        np.testing.assert_allclose(cli, library, atol=2e-3)
    assert json.loads((tmp_path / "with" / "segment_run.json").read_text())["flip_average"] is True
    changed = max(float(np.abs(cli - plain).max()) for cli, _, plain in frames)
    assert changed > 0.01  # a random network is far from mirror-symmetric: averaging changes its answer


def test_max_growth_segments_with_the_librarys_growth_limited_step(davis_root, tmp_path):
    """--max_growth gives the probabilities of the library's growth-limited step on the same model, is noted in
    segment_run.json, and is refused with the flow-propagation baseline."""
    from maskrnn_tf.inference.growth_limit import growth_limited_step

    frames = _step_wrapper_flag(davis_root, tmp_path, "--max_growth=1.0", "max_growth",
                                lambda step, model: growth_limited_step(step, 1.0, float(model.config.mask_threshold)),
                                spread=True)
    for cli, library, _ in frames:
        np.testing.assert_allclose(cli, library, atol=2e-3)
    assert json.loads((tmp_path / "with" / "segment_run.json").read_text())["max_growth"] == 1.0
    cut = sum(int(np.count_nonzero((plain > 0.5) & (cli <= 0.5))) for cli, _, plain in frames)
    assert cut > 0  # the network's masks cover the frame: the cap of 1.0 removes pixels


def _as_library_step(davis_root, tmp_path, step_fn, options, cli, other):
    """Segments `beta` with the library's loop (`step_fn`, `options`) into tmp_path/library; checks that the CLI's
    probabilities of frames 1-3 (folder `cli`) are the library's and returns their largest difference from those
    of folder `other` (the CLI without the flag)."""
    from maskrnn_tf import inference

    inference.segment_davis(davis_root, "val", inference.make_flow_fn("dis"), str(tmp_path / "library"),
                            step_fn=step_fn, options=options, sequences=["beta"])
    changed = 0.0
    for t in range(1, 4):
        name = os.path.join("beta", "probs", f"{t:05d}.npy")
        got, library, plain = (np.load(tmp_path / folder / name).astype(np.float32)
                               for folder in (cli, "library", other))
        np.testing.assert_allclose(got, library, atol=2e-3)
        changed = max(changed, float(np.abs(got - plain).max()))
    return changed


def test_carry_labels_segments_as_the_library_carrying_the_fused_masks(davis_root, tmp_path):
    """--carry=labels gives the probabilities of the library's loop carrying the fused masks on the same model,
    differs from carrying the probabilities (the default), and is noted in segment_run.json; an unknown value is
    a usage error; the cycle check of online finetuning carries probabilities all the same."""
    from maskrnn_tf import inference
    from maskrnn_tf.inference.cycle_check import cycle_iou
    from maskrnn_tf.io import read_frame
    from maskrnn_tf.io.id_images import read_label_image
    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    import keras

    model_path = str(tmp_path / "model.keras")
    # Seeded: some random networks answer near 0 or 1 everywhere, where carrying labels changes nothing.
    keras.utils.set_random_seed(0)
    MaskRNN(MaskRNNConfig(width=0.125, fc_units=16)).save(model_path)
    common = ["--method=maskrnn", f"--model={model_path}", "--finetune=none", "--precision=float32", "--save_probs",
              f"--davis_root={davis_root}", "--sequences=beta"]
    assert _segment_in_process(*common, "--carry=labels", f"--output={tmp_path / 'labels'}") == 0
    assert _segment_in_process(*common, f"--output={tmp_path / 'probs'}") == 0
    assert json.loads((tmp_path / "labels" / "segment_run.json").read_text())["carry"] == "labels"
    assert json.loads((tmp_path / "probs" / "segment_run.json").read_text())["carry"] == "probs"
    model = inference.load_model(model_path, precision="float32")
    options = inference.SegmentOptions(save_probs="npy", progress=False, carry="labels",
                                       threshold=float(model.config.mask_threshold))
    changed = _as_library_step(davis_root, tmp_path, inference.model_step_fn(model), options, "labels", "probs")
    assert changed > 0.01  # from frame 2 on the network sees 0/1 masks instead of its own probabilities
    # The cycle check of online finetuning carries probabilities whatever --carry says: its IoU before
    # finetuning is the library's cycle_iou over frames 0-3 with carry="probs" (not the one with "labels").
    checked = [*common[:2], "--finetune=static", "--finetune_steps=1", "--finetune_check_frames=3", *common[3:],
               "--carry=labels", f"--output={tmp_path / 'checked'}"]
    assert _segment_in_process(*checked) == 0
    record = json.loads((tmp_path / "checked" / "segment_run.json").read_text())
    assert record["finetune_check_carry"] == "probs"
    before = record["finetune_log"]["beta"]
    frames = [read_frame(os.path.join(davis_root, "JPEGImages", "480p", "beta", f"{t:05d}.jpg")) for t in range(4)]
    ids = read_label_image(os.path.join(davis_root, "Annotations", "480p", "beta", "00000.png"))[0]
    objects = [int(i) for i in np.unique(ids) if i not in (0, 255)]
    model = inference.load_model(model_path, precision="float32")  # the weights before finetuning
    expected = {carry: cycle_iou(inference.model_step_fn(model), frames, ids, objects, inference.make_flow_fn("dis"),
                                 threshold=float(model.config.mask_threshold), carry=carry)
                for carry in ("labels", "probs")}
    assert before["cycle_before"] == pytest.approx(expected["probs"], abs=1e-4)
    assert abs(expected["labels"] - expected["probs"]) > 1e-3
    refused = _segment(*common, "--carry=binary", f"--output={tmp_path / 'refused'}")
    assert refused.returncode != 0 and "--carry" in refused.stderr and not (tmp_path / "refused").exists()


def test_ensemble_models_segment_with_the_mean_of_the_networks_steps(davis_root, tmp_path):
    """--ensemble_models gives the probabilities of the library's ensemble step over --model's and the members'
    networks, differs from --model alone, is noted in segment_run.json; with online finetuning every network is
    finetuned (segment_run.json: each one's updates); refused (usage error, no output) with the flow-propagation
    baseline and with a member of another mask_threshold."""
    import keras
    from absl import app

    from maskrnn_tf import inference
    from maskrnn_tf.inference.ensemble import ensemble_step
    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    paths = []
    for seed, threshold in ((0, 0.5), (1, 0.5), (2, 0.3)):
        keras.utils.set_random_seed(seed)
        paths.append(str(tmp_path / f"model{seed}.keras"))
        MaskRNN(MaskRNNConfig(width=0.125, fc_units=16, mask_threshold=threshold)).save(paths[-1])
    common = ["--method=maskrnn", f"--model={paths[0]}", "--finetune=none", "--precision=float32", "--save_probs",
              f"--davis_root={davis_root}", "--sequences=beta"]
    assert _segment_in_process(*common, f"--ensemble_models={paths[1]}", f"--output={tmp_path / 'ensemble'}") == 0
    assert _segment_in_process(*common, f"--output={tmp_path / 'single'}") == 0
    record = json.loads((tmp_path / "ensemble" / "segment_run.json").read_text())
    assert record["ensemble_models"] == [paths[1]]
    assert "ensemble_models" not in json.loads((tmp_path / "single" / "segment_run.json").read_text())
    steps = [inference.model_step_fn(inference.load_model(path, precision="float32")) for path in paths[:2]]
    changed = _as_library_step(davis_root, tmp_path, ensemble_step(steps),
                               inference.SegmentOptions(save_probs="npy", progress=False), "ensemble", "single")
    assert changed > 0.01  # two random networks answer differently: the mean is not --model's answer
    finetuned = [f for f in common if f != "--finetune=none"] + [
        "--finetune=static", "--finetune_steps=2", "--finetune_lr=1e-3", "--finetune_check_frames=0",
        f"--ensemble_models={paths[1]}", f"--output={tmp_path / 'finetuned'}"]
    assert _segment_in_process(*finetuned) == 0
    record = json.loads((tmp_path / "finetuned" / "segment_run.json").read_text())
    assert record["ensemble_finetune"] == [{"model": paths[1], "apply_localization": True, "finetune": "static",
                                          "finetune_steps": 2, "finetune_layers": "all"}]
    entry = record["finetune_log"]["beta"]
    assert [member["updates"] for member in entry["members"]] == [2, 2] and entry["updates"] == 4
    assert entry["seconds"] == pytest.approx(sum(member["seconds"] for member in entry["members"]))
    refusals = [
        (["--method=flow_propagation", f"--ensemble_models={paths[1]}"], "--method=maskrnn"),
        ([f"--model={paths[0]}", f"--ensemble_models={paths[2]}", "--finetune=none"], "mask_threshold 0.3"),
        ([f"--model={paths[0]}", f"--ensemble_models={paths[1]},", "--finetune=none"], "an empty path"),
    ]
    for flags, message in refusals:
        with pytest.raises(app.UsageError, match=message):
            _segment_in_process(*flags, "--precision=float32", f"--davis_root={davis_root}", "--sequences=beta",
                                f"--output={tmp_path / 'refused'}")
        assert not (tmp_path / "refused").exists()
    # A member is an input: an output folder on it is refused (exit 2) and the file is left as it was.
    before = (tmp_path / "model1.keras").read_bytes()
    assert _segment_in_process(*common, f"--ensemble_models={paths[1]}", f"--output={paths[1]}") == 2
    assert (tmp_path / "model1.keras").read_bytes() == before


def test_tilde_paths_go_to_the_home_folder_in_segment_and_evaluate(davis_root, tmp_path):
    """`--output=~/res`: the shell leaves ~ after `=` alone; segment and evaluate expand it themselves instead of
    writing into a folder named `~` in the working directory."""
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    os.symlink(davis_root, home / "davis")
    env = dict(ENV, HOME=str(home), PYTHONPATH=REPO)
    run = dict(cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    proc = subprocess.run([sys.executable, "-m", "maskrnn_tf.segment", "--noprogress", "--method=flow_propagation",
                           "--davis_root=~/davis", "--sequences=alpha", "--output=~/res"], **run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(os.listdir(home / "res" / "alpha"))[:2] == ["00000.png", "00001.png"]
    proc = subprocess.run([sys.executable, "-m", "maskrnn_tf.evaluate", "--davis_root=~/davis", "--results=~/res",
                           "--sequences=alpha", "--output_dir=~/scores"], **run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert os.path.isfile(home / "scores" / "global_results-val.csv")
    assert not os.path.exists(cwd / "~")


def test_a_sequence_named_twice_is_refused_before_anything_is_written(davis_root, tmp_path):
    out = tmp_path / "out"
    proc = _segment("--method=flow_propagation", f"--davis_root={davis_root}", "--sequences=alpha,beta,alpha",
                    f"--output={out}")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "['alpha'] named more than once" in proc.stderr
    assert not out.exists()



@pytest.mark.parametrize("flag", ["--sequences=alpha", "--split=train", "--davis_year=2017"])
def test_dataset_flags_with_a_single_video_are_refused(davis_root, tmp_path, flag):
    """--sequences, --split and --davis_year choose among a dataset's sequences: with --video they used to be
    ignored without a word (the user's video segmented whole, whatever they asked for)."""
    video = os.path.join(davis_root, "JPEGImages", "480p", "alpha")
    first = os.path.join(davis_root, "Annotations", "480p", "alpha", "00000.png")
    out = tmp_path / "out"
    proc = _segment("--method=flow_propagation", f"--video={video}", f"--first_mask={first}", flag,
                    f"--output={out}")
    name = flag.split("=")[0]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"{name} applies to --davis_root" in proc.stderr and "drop it" in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("flag", ["--split=train", "--davis_year=2017"])
def test_davis_flags_with_segtrack_are_refused(davis_root, tmp_path, flag):
    out = tmp_path / "out"
    proc = _segment("--method=flow_propagation", f"--segtrack_root={davis_root}", flag, f"--output={out}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"{flag.split('=')[0]} applies to --davis_root" in proc.stderr and not out.exists()


def test_color_gate_segments_with_the_librarys_gated_step_and_gates_the_baseline_too(davis_root, tmp_path):
    """--color_gate gives the probabilities of the library's colour-gated callback on the same network (one that
    answers 1 everywhere: the gate alone decides), is noted in segment_run.json, and gates the flow-propagation
    baseline as well (it needs no network)."""
    from maskrnn_tf import inference
    from maskrnn_tf.inference.color_gate import ColorGatedPrepare

    model_path = _tiny_network(tmp_path, spread=True)
    common = ["--method=maskrnn", f"--model={model_path}", "--finetune=none", "--precision=float32", "--save_probs",
              f"--davis_root={davis_root}", "--sequences=beta"]
    assert _segment_in_process(*common, "--color_gate=0.3", "--color_gate_band=0.1",
                               f"--output={tmp_path / 'with'}") == 0
    record = json.loads((tmp_path / "with" / "segment_run.json").read_text())
    assert record["color_gate"] == {"threshold": 0.3, "band": 0.1}
    model = inference.load_model(model_path, precision="float32")
    prepare = ColorGatedPrepare(inference.model_step_fn(model), None, 0.3, 0.1)
    inference.segment_davis(davis_root, "val", inference.make_flow_fn("dis"), str(tmp_path / "library"),
                            prepare=prepare, options=inference.SegmentOptions(save_probs="npy", progress=False),
                            sequences=["beta"])
    cut = 0
    for t in range(1, 4):
        name = os.path.join("beta", "probs", f"{t:05d}.npy")
        cli, library = (np.load(tmp_path / folder / name).astype(np.float32) for folder in ("with", "library"))
        np.testing.assert_allclose(cli, library, atol=2e-3)
        cut += int(np.count_nonzero(cli <= 0.5))
    assert cut > 0  # the network says 1 everywhere: what is 0 the gate cut
    for name, gate in (("baseline", ["--color_gate=0.3"]), ("baseline_plain", [])):
        assert _segment_in_process("--method=flow_propagation", *gate, f"--davis_root={davis_root}", "--save_probs",
                                   "--sequences=beta", f"--output={tmp_path / name}") == 0
    assert json.loads((tmp_path / "baseline" / "segment_run.json").read_text())["color_gate"]["threshold"] == 0.3
    prepare = ColorGatedPrepare(inference.flow_propagation_step, None, 0.3, 0.03)
    inference.segment_davis(davis_root, "val", inference.make_flow_fn("dis"), str(tmp_path / "library_baseline"),
                            prepare=prepare, options=inference.SegmentOptions(save_probs="npy", progress=False,
                                                                             need_next_flow=False),
                            sequences=["beta"])
    changed = 0.0
    for t in range(1, 4):
        name = os.path.join("beta", "probs", f"{t:05d}.npy")
        cli, library, plain = (np.load(tmp_path / folder / name).astype(np.float32)
                               for folder in ("baseline", "library_baseline", "baseline_plain"))
        np.testing.assert_allclose(cli, library, atol=2e-3)
        changed = max(changed, float(np.abs(cli - plain).max()))
    assert changed > 0.5  # the gate cut some of the propagated mask


@pytest.mark.parametrize("flag", ["--color_gate=1", "--color_gate=-0.1", "--color_gate_band=0", "--color_gate_band=2"])
def test_color_gate_settings_out_of_range_are_usage_errors(tmp_path, flag):
    proc = _segment("--method=flow_propagation", flag, "--video=x", "--first_mask=y", f"--output={tmp_path / 'o'}")
    assert proc.returncode == 2 and f"{flag.split('=')[0]}=" in proc.stderr and not (tmp_path / "o").exists()


def test_color_gate_band_without_the_gate_is_a_usage_error(tmp_path):
    proc = _segment("--method=flow_propagation", "--color_gate_band=0.05", "--video=x", "--first_mask=y",
                    f"--output={tmp_path / 'o'}")
    assert proc.returncode == 2 and "--color_gate_band" in proc.stderr and "--color_gate (e.g. 0.1)" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_a_colour_prior_network_segments_with_tables_fitted_on_the_first_frame(davis_root, tmp_path):
    """A network trained with model.color_prior_input: segment fits each object's RGB table on the sequence's
    first frame and annotation (the model's band) and feeds it at every step: the CLI's probabilities are those of
    the library's loop given tables fitted here from the files. Static finetuning (auto's choice here: no
    config.json) and recurrent finetuning with its cycle check run with the tables."""
    import functools

    from maskrnn_tf import inference
    from maskrnn_tf.inference.color_gate import fit_color_model
    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    model_path = str(tmp_path / "model.keras")
    MaskRNN(MaskRNNConfig(width=0.125, fc_units=16, color_prior_input=True, color_prior_band=0.2)).save(model_path)
    common = [f"--model={model_path}", "--precision=float32", "--save_probs", f"--davis_root={davis_root}",
              "--sequences=beta"]
    assert _segment_in_process(*common, "--finetune=none", f"--output={tmp_path / 'cli'}") == 0

    frame = np.asarray(Image.open(os.path.join(davis_root, "JPEGImages", "480p", "beta", "00000.jpg")).convert("RGB"))
    labels = read_mask(os.path.join(davis_root, "Annotations", "480p", "beta", "00000.png"))
    ids = [int(i) for i in np.unique(labels) if 0 < i < 255]
    tables = fit_color_model(frame, labels, ids, 0.2, space="rgb")
    model = inference.load_model(model_path, precision="float32")
    step = functools.partial(inference.model_step_fn(model), color_model=tables)
    plain = inference.model_step_fn(model)
    assert plain.color_model is None
    with pytest.raises(ValueError, match="colour tables"):
        plain(frame, np.zeros(frame.shape[:2] + (2,)), np.zeros(frame.shape[:2] + (2,)),
              (labels[None] == 1).astype(np.float32), np.zeros((1, 4)))
    options = inference.SegmentOptions(save_probs="npy", progress=False)
    assert _as_library_step(davis_root, tmp_path, step, options, "cli", "cli") == 0.0
    # Tables of another band give other probabilities: the band the CLI used is the model's.
    other = functools.partial(inference.model_step_fn(model), color_model=fit_color_model(frame, labels, ids, 1.0,
                                                                                             space="rgb"))
    inference.segment_davis(davis_root, "val", inference.make_flow_fn("dis"), str(tmp_path / "other"), step_fn=other,
                            options=options, sequences=["beta"])
    name = os.path.join("beta", "probs", "00001.npy")
    assert np.abs(np.load(tmp_path / "other" / name) - np.load(tmp_path / "cli" / name)).max() > 1e-3

    # Static finetuning (--finetune=auto's choice for a .keras file without config.json) trains with the tables.
    assert _segment_in_process(*common, "--finetune_steps=2", f"--output={tmp_path / 'static'}") == 0
    log = json.loads((tmp_path / "static" / "segment_run.json").read_text())
    assert log["finetune"] == "static" and log["finetune_log"]["beta"]["updates"] == 2, log
    assert log["finetune_layers"] == "all", log  # --finetune_layers=auto: all weights for static finetuning
    # Recurrent finetuning and its cycle check step the network with the video's tables bound (the check judging
    # the weights --finetune_mix made).
    assert _segment_in_process(*common, "--finetune=recurrent", "--finetune_steps=2", "--finetune_budget=0",
                               "--finetune_check_frames=2", "--finetune_mix=0.5",
                               f"--output={tmp_path / 'recurrent'}") == 0
    log = json.loads((tmp_path / "recurrent" / "segment_run.json").read_text())
    assert log["finetune"] == "recurrent" and log["finetune_mix"] == 0.5, log
    beta = log["finetune_log"]["beta"]
    assert beta["updates"] == 2 and beta["cycle_before"] is not None and beta["cycle_after"] is not None, beta


def test_colour_prior_networks_segment_as_an_ensemble_each_with_tables_at_its_own_band(davis_root, tmp_path):
    """--ensemble_models with colour prior networks: every network gets the sequence's first-frame tables at its
    own model.color_prior_band (a plain network beside them none); the CLI's probabilities are those of the
    library's ensemble step over the steps given those tables, and not those with the member's tables at
    --model's band. With checked recurrent finetuning each network is finetuned and checked with its tables, and a
    colour prior member finetunes statically too."""
    import functools

    import keras

    from maskrnn_tf import inference
    from maskrnn_tf.inference.color_gate import fit_color_model
    from maskrnn_tf.inference.ensemble import ensemble_step
    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    paths, bands = [], (1.0, 0.05, None)
    for seed, band in enumerate(bands):
        keras.utils.set_random_seed(seed)
        paths.append(str(tmp_path / f"model{seed}.keras"))
        prior = {} if band is None else {"color_prior_input": True, "color_prior_band": band}
        MaskRNN(MaskRNNConfig(width=0.125, fc_units=16, **prior)).save(paths[-1])
    common = ["--precision=float32", "--save_probs", f"--davis_root={davis_root}", "--sequences=beta"]
    assert _segment_in_process(*common, f"--model={paths[0]}", "--finetune=none",
                               f"--ensemble_models={paths[1]},{paths[2]}", f"--output={tmp_path / 'cli'}") == 0

    frame = np.asarray(Image.open(os.path.join(davis_root, "JPEGImages", "480p", "beta", "00000.jpg")).convert("RGB"))
    labels = read_mask(os.path.join(davis_root, "Annotations", "480p", "beta", "00000.png"))
    ids = [int(i) for i in np.unique(labels) if 0 < i < 255]
    plain = [inference.model_step_fn(inference.load_model(path, precision="float32")) for path in paths]

    def steps(member_band):
        return [functools.partial(plain[0], color_model=fit_color_model(frame, labels, ids, bands[0], space="rgb")),
                functools.partial(plain[1], color_model=fit_color_model(frame, labels, ids, member_band,
                                                                        space="rgb")),
                plain[2]]

    options = inference.SegmentOptions(save_probs="npy", progress=False)
    inference.segment_davis(davis_root, "val", inference.make_flow_fn("dis"), str(tmp_path / "wrong_band"),
                            step_fn=ensemble_step(steps(bands[0])), options=options, sequences=["beta"])
    assert _as_library_step(davis_root, tmp_path, ensemble_step(steps(bands[1])), options, "cli", "wrong_band") > 2e-3

    checked = [*common, f"--model={paths[2]}", f"--ensemble_models={paths[0]}", "--finetune=recurrent",
               "--finetune_steps=1", "--finetune_budget=0", "--finetune_check_frames=2",
               "--finetune_clip_length=2", f"--output={tmp_path / 'recurrent'}"]  # one unrolled frame: 3 traces
    assert _segment_in_process(*checked) == 0
    members = json.loads((tmp_path / "recurrent" / "segment_run.json").read_text())["finetune_log"]["beta"]["members"]
    assert [member["updates"] for member in members] == [1, 1], members
    assert all(member["cycle_before"] is not None and member["cycle_after"] is not None for member in members)

    assert _segment_in_process(*common, "--finetune=static", "--finetune_steps=1", "--finetune_check_frames=0",
                               f"--model={paths[2]}", f"--ensemble_models={paths[1]}",
                               f"--output={tmp_path / 'static'}") == 0
    members = json.loads((tmp_path / "static" / "segment_run.json").read_text())["finetune_log"]["beta"]["members"]
    assert [member["updates"] for member in members] == [1, 1], members


@pytest.mark.parametrize("mix", ["0", "1.5"])
def test_a_finetune_mix_outside_zero_to_one_is_a_usage_error(tmp_path, mix):
    proc = _segment("--method=flow_propagation", f"--finetune_mix={mix}", "--video=x", "--first_mask=y",
                    f"--output={tmp_path / 'o'}")
    assert proc.returncode == 2 and "--finetune_mix" in proc.stderr and "1 keeps all" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o").exists()


def test_flo_dir_without_flow_flo_is_a_usage_error(tmp_path):
    """--flo_dir names where --flow=flo reads its flows: with the default --flow=dis it was dropped without a word
    and the masks came from DIS flows the user did not ask for."""
    (tmp_path / "flo").mkdir()
    proc = _segment("--method=flow_propagation", f"--flo_dir={tmp_path / 'flo'}", "--video=x", "--first_mask=y",
                    f"--output={tmp_path / 'o'}")
    assert proc.returncode == 2 and "--flo_dir" in proc.stderr and "--flow=flo" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o").exists()


@pytest.mark.parametrize("mode, layers", [("static", ["--finetune_layers=heads"]), ("recurrent", [])])
def test_finetune_layers_heads_finetunes_with_the_trunks_as_trained(davis_root, tmp_path, monkeypatch, mode, layers):
    """--finetune_layers=heads, and the default (auto) for recurrent finetuning: the finetuning segment runs updates
    only the layers above the VGG trunks (the weights it finetuned differ from the saved ones there and nowhere in a
    trunk), and segment_run.json records it; auto is all weights for static finetuning, the paper's."""
    from maskrnn_tf.flag_validation import resolve_finetune_layers

    assert resolve_finetune_layers("auto", "static") == "all" and resolve_finetune_layers("block5", "recurrent") == \
        "block5"
    import importlib

    import keras

    from maskrnn_tf import inference
    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    finetune_module = importlib.import_module("maskrnn_tf.inference.finetune")  # the package names a function so

    keras.utils.set_random_seed(5)
    model_path = str(tmp_path / "model.keras")
    saved = MaskRNN(MaskRNNConfig(width=0.125, fc_units=16))
    saved.build()
    saved.save(model_path)
    finetuned = []

    def snapshot(model):
        finetuned.append({v.path + f"#{n}": v.numpy() for n, v in enumerate(model.weights)})

    if mode == "static":
        on_video = finetune_module.finetune_on_video

        def finetune_on_video(model, *args, **kwargs):
            losses = on_video(model, *args, **kwargs)
            snapshot(model)
            return losses

        monkeypatch.setattr(finetune_module, "finetune_on_video", finetune_on_video)
    else:
        from maskrnn_tf.inference.recurrent_finetune import RecurrentFinetuner

        run = RecurrentFinetuner.run

        def run_and_snapshot(self, *args, **kwargs):
            result = run(self, *args, **kwargs)
            snapshot(self.model)
            return result

        monkeypatch.setattr(RecurrentFinetuner, "run", run_and_snapshot)
    assert _segment_in_process(f"--model={model_path}", "--precision=float32", f"--davis_root={davis_root}",
                               "--sequences=beta", f"--finetune={mode}", "--finetune_steps=2", "--finetune_budget=0",
                               "--finetune_lr=1e-3", "--finetune_check_frames=0", *layers,
                               f"--output={tmp_path / 'o'}") == 0
    log = json.loads((tmp_path / "o" / "segment_run.json").read_text())
    assert log["finetune"] == mode and log["finetune_layers"] == "heads", log
    assert finetuned, "no finetuned weights were put back"
    before = {v.path + f"#{n}": v.numpy() for n, v in enumerate(saved.weights)}
    changed = {key for key, value in finetuned[0].items() if not np.array_equal(value, before[key])}
    assert changed and not any(key.startswith("block") for key in changed), changed
    assert {key.split("/")[0] for key in changed} >= {"side_fuse", "fc1"}, changed
    assert inference.RecurrentFinetuneConfig().layers == "all" and inference.FinetuneConfig().layers == "all"


def test_check_flags_refuses_flags_segment_cannot_run_together_and_exits_0_on_a_runnable_command(tmp_path):
    """--check_flags runs segment's checks of its flags as a whole (what the experiment drivers run for every
    command before the first) and stops before any input is read or anything written; --flow is one of the
    backends at parse time (an unknown one was found when the first flow was computed)."""
    from maskrnn_tf.data.flow_backends import FRAME_FLOWS
    from maskrnn_tf.flag_validation import FLOW_BACKENDS

    assert FLOW_BACKENDS == FRAME_FLOWS + ("flo",)
    out = tmp_path / "o"
    base = ["--check_flags", "--davis_root=/nonexistent/davis", f"--output={out}", "--model=/nonexistent/m.keras"]
    proc = _segment(*base)
    assert proc.returncode == 0, proc.stderr
    for flags, says in ((["--method=flow_propagation", "--max_growth=1.1"], "--max_growth"),
                        (["--flow=flo"], "--flow=flo needs --flo_dir"),
                        (["--flow=flo", "--flo_dir=X", "--flow_cache_dir=C"], "--flow_cache_dir"),
                        (["--flow=raft"], "must be one of dis, dis-medium")):
        proc = _segment(*base, *flags)
        assert proc.returncode in (1, 2) and says in proc.stderr, (flags, proc.stderr)
    assert not out.exists()
