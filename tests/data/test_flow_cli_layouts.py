"""The flow CLI on DAVIS trees users have besides trainval 480p: test-dev (first masks only), Full-Resolution; its
scores of the flows on a console free of TensorFlow's start-up lines."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from test_data_sequences import make_davis_2017  # noqa: E402  (shared tiny-tree helper)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _flow_cli(*args, cwd=REPO, env=None):
    command = [sys.executable, "-m", "maskrnn_tf.flow", "--dataset=davis", "--backend=farneback", "--noprogress",
               *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=120,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2") if env is None else env)


def test_flow_cli_precomputes_a_test_dev_tree_that_has_first_masks_only(tmp_path):
    # DAVIS-2017 test-dev ships the first frame's mask only; flows need frames, and segment reads them from the
    # cache, so the CLI must fill it without asking for masks it does not use.
    root = make_davis_2017(str(tmp_path / "DAVIS"), {"a": 1})
    sets = os.path.join(root, "ImageSets", "2017")
    os.rename(os.path.join(sets, "val.txt"), os.path.join(sets, "test-dev.txt"))
    for t in (1, 2):
        os.remove(os.path.join(root, "Annotations", "480p", "a", f"{t:05d}.png"))
    cache = tmp_path / "cache"
    run = _flow_cli(f"--manual_dir={tmp_path}", f"--cache_dir={cache}", "--warp_iou")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "2 frame pairs computed" in run.stdout
    assert "not scored: frames without a mask" in run.stdout
    files = sorted(os.listdir(cache / "farneback" / "davis-480p" / "a"))
    assert files == ["00000_00001.npy", "00001_00000.npy", "00001_00002.npy", "00002_00001.npy", "frames.json"]


def test_flow_cli_finds_the_year_of_a_full_resolution_tree(tmp_path):
    # DAVIS-2017-trainval-Full-Resolution.zip extracts to JPEGImages/Full-Resolution/ and ImageSets/2017/, no 480p.
    root = make_davis_2017(str(tmp_path / "DAVIS"), {"a": 1})
    for sub in ("JPEGImages", "Annotations"):
        os.rename(os.path.join(root, sub, "480p"), os.path.join(root, sub, "Full-Resolution"))
    cache = tmp_path / "cache"
    run = _flow_cli(f"--manual_dir={tmp_path}", f"--cache_dir={cache}", "--resolution=Full-Resolution")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "2 frame pairs computed" in run.stdout
    assert os.path.isfile(cache / "farneback" / "davis-Full-Resolution" / "a" / "00000_00001.npy")


def test_flow_cli_scores_without_tensorflow_start_up_noise(tmp_path):
    """--warp_iou warps masks with TensorFlow, whose start-up lines (absl, oneDNN, CUDA probing) reached the
    console, twice; every CLI hides them (the user's environment as it is: no TF_CPP_MIN_LOG_LEVEL set)."""
    from maskrnn_tf import _console

    make_davis_2017(str(tmp_path / "DAVIS"), {"a": 1})
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", _console.VERBOSE_ENV)}
    run = _flow_cli(f"--manual_dir={tmp_path}", f"--cache_dir={tmp_path / 'cache'}", "--warp_iou",
                    "--motion_contrast", env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "| **all** | 2 |" in run.stdout and "| **mean of 1** |" in run.stdout, run.stdout
    noise = [line for line in run.stderr.splitlines() if _console.is_noise(line)]
    assert not noise, run.stderr[-2000:]


def test_flow_cli_sequences_opens_only_the_sequences_named(tmp_path):
    """--sequences filtered the list after every sequence of every split was opened and checked: another
    sequence's broken files stopped the run on those named. A name in no split is still refused, naming the split's."""
    import shutil

    root = make_davis_2017(str(tmp_path / "DAVIS"), {"a": 1, "b": 1})
    shutil.rmtree(os.path.join(root, "JPEGImages", "480p", "b"))
    cache = tmp_path / "cache"
    run = _flow_cli(f"--manual_dir={tmp_path}", f"--cache_dir={cache}", "--sequences=a")
    assert run.returncode == 0, run.stderr[-2000:]
    assert sorted(os.listdir(cache / "farneback" / "davis-480p")) == ["a"]
    unknown = _flow_cli(f"--manual_dir={tmp_path}", f"--cache_dir={cache}", "--sequences=a,c")
    assert unknown.returncode == 2 and "['c'] not in the data set (2 sequences listed: a, b)" in unknown.stderr, \
        unknown.stderr
