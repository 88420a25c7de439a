"""The demo's held-out videos: a DAVIS-2017 tree that the project's own readers accept, equal to the generator,
with the generator's exact flows as .flo files in the layout `segment --flow=flo` reads."""
import os

import numpy as np
import pytest

from maskrnn_tf.data.sequences import load_masks, read_davis_sequence_list
from maskrnn_tf.data.synthetic import SyntheticConfig, generate_video
from maskrnn_tf.demo import write_heldout_davis
from maskrnn_tf.io import read_frame
from maskrnn_tf.ops import read_flo


def test_heldout_tree_round_trips(tmp_path):
    root = str(tmp_path / "heldout")
    names = write_heldout_davis(root, 2, seed_base=123)
    assert names == ["heldout00", "heldout01"]
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]  # written atomically
    sequences = read_davis_sequence_list(root, 2017, "val")
    assert [s.name for s in sequences] == names
    for i, seq in enumerate(sequences):
        video = generate_video(123 + i, SyntheticConfig())
        np.testing.assert_array_equal(load_masks(seq), video["masks"])
        np.testing.assert_array_equal(read_frame(seq.frame_paths[3]), video["frames"][3])  # PNG: lossless
        assert seq.num_objects == int(video["num_objects"])
        # Exact flows, both directions of every consecutive pair, bit-exact through .flo (float32).
        flow_dir = os.path.join(root, "flow", seq.name)
        count = len(video["frames"])
        expected = {f"{t:05d}_{t - 1:05d}.flo" for t in range(1, count)}
        expected |= {f"{t:05d}_{t + 1:05d}.flo" for t in range(count - 1)}
        assert set(os.listdir(flow_dir)) == expected
        for t in (1, count - 1):
            np.testing.assert_array_equal(read_flo(os.path.join(flow_dir, f"{t:05d}_{t - 1:05d}.flo")),
                                          video["flows_to_prev"][t])
        for t in (0, count - 2):
            np.testing.assert_array_equal(read_flo(os.path.join(flow_dir, f"{t:05d}_{t + 1:05d}.flo")),
                                          video["flows_to_next"][t])
        assert np.abs(video["flows_to_next"][0]).max() > 0  # a real flow, not zeros
    # A second call with the same videos reuses the finished tree instead of rewriting it.
    mtime = os.stat(os.path.join(root, "ImageSets", "2017", "val.txt")).st_mtime_ns
    assert write_heldout_davis(root, 2, seed_base=123) == names
    assert os.stat(os.path.join(root, "ImageSets", "2017", "val.txt")).st_mtime_ns == mtime


def test_a_finished_tree_of_other_videos_is_refused_not_reused(tmp_path):
    """A rerun asking for other held-out videos (--heldout_videos, another seed) got the old ones silently."""
    import pytest

    root = str(tmp_path / "heldout")
    write_heldout_davis(root, 1, seed_base=123)
    for count, seed in ((3, 123), (1, 999)):
        with pytest.raises(FileExistsError, match=r"heldout.*1 held-out video.*earlier demo.*another --run_dir"):
            write_heldout_davis(root, count, seed_base=seed)
    assert [s.name for s in read_davis_sequence_list(root, 2017, "val")] == ["heldout00"]


def test_an_interrupted_tree_leaves_no_temporary_folder(tmp_path, monkeypatch):
    """Ctrl-C while the videos are written: no half tree at root and no temporary folder beside it; the hidden
    temporary folder of a killed demo (dead pid) is removed by the next one."""
    import pytest

    from maskrnn_tf import ops
    from maskrnn_tf.io import tmp_dirs

    calls = []

    def interrupted(path, flow):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(path, flow)

    real = ops.write_flo
    monkeypatch.setattr(ops, "write_flo", interrupted)
    root = str(tmp_path / "heldout")
    with pytest.raises(KeyboardInterrupt):
        write_heldout_davis(root, 2, seed_base=123)
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(ops, "write_flo", real)
    killed = tmp_path / f".heldout.tmp-{tmp_dirs.owner_tag(999999999)}-abc"  # a dead process of ours
    (killed / "JPEGImages").mkdir(parents=True)
    write_heldout_davis(root, 1, seed_base=123)
    assert os.listdir(tmp_path) == ["heldout"]


def test_a_folder_in_the_way_that_is_not_a_finished_tree_is_never_deleted(tmp_path):
    """<run_dir>/heldout_davis may hold something else (the user's files, a tree of an old demo without flows):
    it is left as it is, with an error that names it, and nothing is generated or left half-written."""
    import pytest

    root = tmp_path / "heldout"
    root.mkdir()
    (root / "notes.txt").write_text("mine\n")
    with pytest.raises(FileExistsError, match=r"heldout.*not a finished held-out tree.*move it or remove it"):
        write_heldout_davis(str(root), 2, seed_base=123)
    assert os.listdir(root) == ["notes.txt"] and (root / "notes.txt").read_text() == "mine\n"
    assert sorted(os.listdir(tmp_path)) == ["heldout"]


@pytest.mark.parametrize("flag", ["--heldout_videos=0", "--finetune_steps=-1"])
def test_the_demo_refuses_what_a_later_stage_would_when_parsed(tmp_path, flag):
    """--heldout_videos=0 would train for minutes and then write an empty held-out tree that segment refuses;
    --finetune_steps=-1 would train and then be refused by segment (stage 3)."""
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-m", "maskrnn_tf.demo", flag, f"--run_dir={tmp_path / 'demo'}"],
                          cwd=repo, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and flag[2:].split("=")[0] in proc.stderr, proc.stderr
    assert "train" not in proc.stdout and not (tmp_path / "demo").exists()  # stopped before the first command


def test_ctrl_c_lets_the_running_command_save_before_the_demo_stops(tmp_path):
    """The demo ran its commands with subprocess.call, which kills the child 0.25 s after Ctrl-C: the training was
    killed before it could save its checkpoint (and a SIGTERM to the demo left it running, holding its run dir).
    The command now gets SIGTERM and the demo waits for it."""
    import signal
    import sys
    import threading
    import time

    from maskrnn_tf.demo import _run

    saved, ready = tmp_path / "saved", tmp_path / "ready"
    child = ("import pathlib, signal, sys, time\n"
             "def stop(signum, frame):\n"
             "    time.sleep(1.0)  # a checkpoint being written\n"
             f"    pathlib.Path({str(saved)!r}).write_text('ckpt')\n"
             "    sys.exit(128 + signum)\n"
             "signal.signal(signal.SIGTERM, stop)\n"
             f"pathlib.Path({str(ready)!r}).write_text('up')\n"
             "time.sleep(60)\n")

    def interrupt():
        while not ready.exists():
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C reaches the demo

    # A pytest-xdist worker ignores SIGINT (Ctrl-C goes to its controller): Python's own handler, for this test.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=interrupt, daemon=True).start()
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            _run([sys.executable, "-c", child])
    finally:
        signal.signal(signal.SIGINT, previous)
    assert saved.read_text() == "ckpt" and time.monotonic() - started < 30


def test_the_flag_file_is_found_beside_the_package_or_here_or_asked_for(tmp_path, monkeypatch):
    """After `pip install .` the package is copied alone: the demo's training was started with a flag file that
    does not exist, and failed inside the training command."""
    from absl import app

    from maskrnn_tf import demo

    repo = os.path.dirname(os.path.dirname(os.path.abspath(demo.__file__)))
    assert demo.default_flagfile() == os.path.join(repo, "synthetic.flags")
    monkeypatch.setattr(demo, "_repo_root", lambda: str(tmp_path / "site-packages"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(app.UsageError, match=r"synthetic.flags is neither beside the package .*--flagfile_path="):
        demo.default_flagfile()
    (tmp_path / "synthetic.flags").write_text("--dataset=synthetic_vos\n")
    assert demo.default_flagfile() == str(tmp_path / "synthetic.flags")


@pytest.mark.slow
def test_ctrl_c_at_the_terminal_stops_the_demo_in_one_line_and_the_training_says_sigint(tmp_path):
    """A terminal's Ctrl-C (SIGINT to the demo's process group) during the training: the training saved and said
    "stopped by signal SIGTERM" (the demo's SIGTERM after the user's SIGINT renamed the stop), and the demo ended
    with a KeyboardInterrupt traceback. Now the training names SIGINT and the demo says one line, exit 130."""
    import signal
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    flagfile = tmp_path / "tiny.flags"
    flagfile.write_text("\n".join([
        "--dataset=synthetic_vos", "--crop_height=32", "--crop_width=48", "--synthetic_train_videos=2",
        "--model_width=0.125", "--fc_units=16", "--batch_size=2", "--stage_a_steps=100000", "--stage_b_steps=0",
        "--precision=float32", "--val_videos=0", "--eval_every=0", "--log_every=1", "--checkpoint_every=100000"]) + "\n")
    run_dir = tmp_path / "demo"
    proc = subprocess.Popen([sys.executable, "-m", "maskrnn_tf.demo", f"--run_dir={run_dir}",
                             f"--flagfile_path={flagfile}"], cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "step 2/" in line:
                break
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        rest = proc.stdout.read()
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    output = "".join(seen) + rest
    assert code == 130, output[-3000:]
    assert "stopped by signal SIGINT" in rest and "SIGTERM" not in rest, rest
    assert "demo: interrupted;" in rest and "Rerun the same command to resume" in rest, rest
    assert "Traceback" not in output, output[-3000:]
    checkpoints = os.listdir(run_dir / "checkpoints")
    assert any(name.endswith(".index") for name in checkpoints), checkpoints
