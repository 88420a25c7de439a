"""`python -m maskrnn_tf.flow` flags through the CLI, checked by the cache files they produce: --backend=flo
(the cache holds the .flo files' flows) and --dataset=segtrack_v2 (the shared SegTrack v2 sample)."""
import glob
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from maskrnn_tf.io import read_frame, write_palette_png
from maskrnn_tf.ops import write_flo

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")


def _flow_cli(*flags):
    return subprocess.run([sys.executable, "-m", "maskrnn_tf.flow", "--noprogress", *flags], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=240)


def _tiny_davis17(root, frames=3, height=24, width=32):
    rng = np.random.default_rng(0)
    for t in range(frames):
        (root / "JPEGImages" / "480p" / "seq").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / "480p" / "seq").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(
            root / "JPEGImages" / "480p" / "seq" / f"{t:05d}.jpg")
        labels = np.zeros((height, width), np.uint8)
        labels[4:12, 4:12] = 1
        write_palette_png(root / "Annotations" / "480p" / "seq" / f"{t:05d}.png", labels)
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("seq\n")


def test_backend_flo_caches_the_flo_files_flows(tmp_path):
    davis, flo_dir, cache = tmp_path / "davis", tmp_path / "raft", tmp_path / "cache"
    _tiny_davis17(davis)
    yy, xx = np.mgrid[0:24, 0:32].astype(np.float32)
    flows = {}
    for a, b in ((0, 1), (1, 0), (1, 2), (2, 1)):
        # Distinct per pair and direction, with fractions float16 keeps exactly (multiples of 1/32).
        flow = np.stack([xx / 8 + a - b, yy / 16 - 2 * b], axis=-1).astype(np.float32)
        flows[(a, b)] = flow
        (flo_dir / "seq").mkdir(parents=True, exist_ok=True)
        write_flo(flo_dir / "seq" / f"{a:05d}_{b:05d}.flo", flow)
    proc = _flow_cli("--dataset=davis", "--year=2017", f"--manual_dir={davis}", f"--cache_dir={cache}",
                     "--backend=flo", f"--flo_dir={flo_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 frame pairs computed" in proc.stdout
    files = sorted(glob.glob(str(cache / "flo-raft-*" / "*" / "seq" / "*.npy")))
    assert [os.path.basename(f) for f in files] == ["00000_00001.npy", "00001_00000.npy", "00001_00002.npy",
                                                    "00002_00001.npy"]
    for path in files:
        a, b = (int(s) for s in os.path.basename(path)[:-4].split("_"))
        cached = np.load(path)
        assert cached.dtype == np.float16
        np.testing.assert_array_equal(cached.astype(np.float32), flows[(a, b)])
    # A missing .flo file is named, with what the folder must hold.
    os.remove(flo_dir / "seq" / "00002_00001.flo")
    missing = _flow_cli("--dataset=davis", "--year=2017", f"--manual_dir={davis}", f"--cache_dir={tmp_path / 'c2'}",
                        "--backend=flo", f"--flo_dir={flo_dir}")
    assert missing.returncode == 1
    assert "00002_00001.flo: missing .flo file" in missing.stderr and "both directions" in missing.stderr


def test_dataset_segtrack_v2_caches_every_pair_of_the_shared_sample(shared_data, tmp_path):
    from maskrnn_tf.data.flow_backends import make_backend

    root = os.path.join(shared_data, "SegTrackv2-sample")
    cache = tmp_path / "cache"
    proc = _flow_cli("--dataset=segtrack_v2", f"--manual_dir={root}", f"--cache_dir={cache}",
                     "--backend=dis-ultrafast")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 sequences: 35 frame pairs computed, 0 already cached" in proc.stdout
    frames = sorted(os.listdir(os.path.join(root, "JPEGImages", "bmx")))
    stems = [os.path.splitext(f)[0] for f in frames]
    files = glob.glob(str(cache / "*" / "*" / "bmx" / "*.npy"))
    want = {f"{a}_{b}.npy" for a, b in zip(stems, stems[1:])} | {f"{b}_{a}.npy" for a, b in zip(stems, stems[1:])}
    assert {os.path.basename(f) for f in files} == want
    # The cached flow of a pair is the backend's flow of those two frames (float16 storage).
    path = [f for f in files if os.path.basename(f) == f"{stems[5]}_{stems[6]}.npy"][0]
    first = read_frame(os.path.join(root, "JPEGImages", "bmx", frames[5]))
    second = read_frame(os.path.join(root, "JPEGImages", "bmx", frames[6]))
    expected = make_backend("dis-ultrafast").flow(first, second)
    cached = np.load(path)
    assert cached.shape == (360, 640, 2)
    np.testing.assert_allclose(cached.astype(np.float32), expected, atol=0.02, rtol=1e-3)
    # A rerun finds everything cached.
    again = _flow_cli("--dataset=segtrack_v2", f"--manual_dir={root}", f"--cache_dir={cache}",
                      "--backend=dis-ultrafast")
    assert again.returncode == 0 and "0 frame pairs computed, 35 already cached" in again.stdout


def test_a_davis_2017_folder_without_year_is_read_as_2017_and_no_sequence_is_an_error(tmp_path):
    """--year defaults to the year of the folder (ImageSets/2017 or not): a DAVIS-2017 tree without --year fills
    the cache instead of listing no split and reporting success; a layout that lists no sequence exits 2."""
    davis, cache = tmp_path / "davis", tmp_path / "cache"
    _tiny_davis17(davis)
    proc = _flow_cli("--dataset=davis", f"--manual_dir={davis}", f"--cache_dir={cache}", "--backend=farneback")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 sequences: 2 frame pairs computed" in proc.stdout
    # --year=2016 on that folder: no DAVIS-2016 split files, no flows, and an error saying so.
    wrong = _flow_cli("--dataset=davis", "--year=2016", f"--manual_dir={davis}", f"--cache_dir={tmp_path / 'c2'}",
                      "--backend=farneback")
    assert wrong.returncode == 2, (wrong.stdout, wrong.stderr[-2000:])
    assert "no sequences" in wrong.stderr and "--year" in wrong.stderr


def test_unknown_sequences_and_a_flo_dir_without_the_flo_backend_are_usage_errors(tmp_path):
    """Bad flags exit 2 (the module's contract) with one line: an unknown --sequences name exited 1 like missing
    data, and --flo_dir with a computed backend was dropped, filling the cache with flows not asked for."""
    davis = tmp_path / "davis"
    _tiny_davis17(davis)
    unknown = _flow_cli("--dataset=davis", f"--manual_dir={davis}", f"--cache_dir={tmp_path / 'c1'}",
                        "--backend=farneback", "--sequences=seq,nope")
    assert unknown.returncode == 2, (unknown.stdout, unknown.stderr[-2000:])
    assert "--sequences" in unknown.stderr and "'nope'" in unknown.stderr and "Traceback" not in unknown.stderr
    assert not (tmp_path / "c1").exists() or not any((tmp_path / "c1").rglob("*.npy"))
    (tmp_path / "flo").mkdir()
    dropped = _flow_cli("--dataset=davis", f"--manual_dir={davis}", f"--cache_dir={tmp_path / 'c2'}",
                        "--backend=farneback", f"--flo_dir={tmp_path / 'flo'}")
    assert dropped.returncode == 2, (dropped.stdout, dropped.stderr[-2000:])
    assert "--flo_dir" in dropped.stderr and "--backend=flo" in dropped.stderr and "Traceback" not in dropped.stderr
    assert not (tmp_path / "c2").exists()
