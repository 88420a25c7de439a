"""Hostile inputs to the flow readers, the flow cache and `python -m maskrnn_tf.flow` (issue 16, items 9,
15 and 16): non-finite .flo values, a cache folder that is a file, damaged cache files."""
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from maskrnn_tf.data.flow_backends import FlowBackend, make_backend
from maskrnn_tf.data.flow_cache import FlowCache, FlowCacheError
from maskrnn_tf.data.sequences import Sequence
from maskrnn_tf.ops import FloFormatError, read_flo, write_flo

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
H, W = 6, 8


class _Ramp(FlowBackend):
    """A known flow per pair (u = a + x/10, v = b - y/10), counting its calls."""

    tag = "ramp"
    needs_frames = False

    def __init__(self, shape=(H, W)):
        self.calls = 0
        self.shape = shape

    def flow(self, frame_a, frame_b, *, sequence="", stem_a="", stem_b=""):
        self.calls += 1
        y, x = np.mgrid[: self.shape[0], : self.shape[1]].astype(np.float32)
        return np.stack([int(stem_a) + x / 10, int(stem_b) - y / 10], axis=-1)


@pytest.fixture
def sequence(tmp_path):
    """A 3-frame sequence of H x W frames on disk."""
    folder = tmp_path / "frames"
    folder.mkdir()
    paths = []
    for t in range(3):
        path = folder / f"{t:05d}.png"
        Image.fromarray(np.full((H, W, 3), 40 * t, np.uint8)).save(path)
        paths.append(str(path))
    return Sequence(name="seq", dataset="test", frame_paths=tuple(paths), mask_paths=((),) * 3, num_objects=1)


# -- item 15: .flo files with NaN or Inf -------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_flo_is_rejected_naming_the_file(tmp_path, bad):
    flow = np.zeros((5, 7, 2), np.float32)
    flow[2, 3, 1] = bad
    flow[4, 6, 0] = bad
    path = tmp_path / "seq" / "00000_00001.flo"
    path.parent.mkdir()
    write_flo(path, flow)
    expected = (f"{path}: 2 non-finite flow values (NaN or Inf), the first at row 2, column 3; the flow method "
                "failed or the file is corrupt: recompute this flow.")
    with pytest.raises(FloFormatError) as err:
        read_flo(path)
    assert str(err.value) == expected
    # The folder-of-.flo backend (segment --flow=flo, the flow CLI, training) reads through it.
    with pytest.raises(FloFormatError, match="non-finite flow values"):
        make_backend("flo", str(tmp_path)).flow(None, None, sequence="seq", stem_a="00000", stem_b="00001")


def test_finite_flo_still_round_trips(tmp_path):
    flow = np.random.default_rng(3).normal(scale=1e3, size=(4, 5, 2)).astype(np.float32)
    write_flo(tmp_path / "a.flo", flow)
    np.testing.assert_array_equal(read_flo(tmp_path / "a.flo"), flow)


# -- item 16: the flow cache -------------------------------------------------------------------------------
def test_cache_dir_that_is_a_file_is_a_clear_error(tmp_path):
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("mine")
    with pytest.raises(FlowCacheError, match=rf"^flow cache folder {not_a_folder} is a file, not a folder"):
        FlowCache(_Ramp(), str(not_a_folder))
    with pytest.raises(FlowCacheError, match=rf"^flow cache folder {not_a_folder}/sub cannot be created"):
        FlowCache(_Ramp(), str(not_a_folder / "sub"))
    assert not_a_folder.read_text() == "mine"


def _damage(path, how):
    if how == "empty":
        open(path, "wb").close()
    elif how == "truncated":
        os.truncate(path, os.path.getsize(path) // 2)
    elif how == "wrong shape":
        np.save(path, np.zeros((H, W + 1, 2), np.float16))
    elif how == "nan":
        array = np.load(path)
        array[1, 1, 0] = np.nan
        np.save(path, array)
    elif how == "not a float":
        np.save(path, np.zeros((H, W, 2), np.int16))
    elif how == "garbage":
        with open(path, "wb") as f:
            f.write(b"not numpy at all")


DAMAGE = ["empty", "truncated", "wrong shape", "nan", "not a float", "garbage"]


@pytest.mark.parametrize("how", DAMAGE)
def test_damaged_cache_files_are_recomputed_on_load(tmp_path, sequence, how):
    backend = _Ramp()
    cache = FlowCache(backend, str(tmp_path / "cache"))
    want = cache.flow(sequence, 1, 2)
    path = cache.path(sequence, 1, 2)
    _damage(path, how)
    got = cache.flow(sequence, 1, 2)
    assert backend.calls == 2 and cache.repaired == 1
    np.testing.assert_array_equal(got, want)
    stored = np.load(path)  # rewritten intact
    assert stored.dtype == np.float16 and stored.shape == (H, W, 2)
    np.testing.assert_array_equal(stored.astype(np.float32), want.astype(np.float16).astype(np.float32))
    assert cache.flow(sequence, 1, 2) is not None and backend.calls == 2 and cache.repaired == 1


@pytest.mark.parametrize("how", ["empty", "truncated", "nan"])
def test_precompute_does_not_count_damaged_files_as_cached(tmp_path, sequence, how):
    backend = _Ramp()
    cache = FlowCache(backend, str(tmp_path / "cache"))
    assert cache.precompute(sequence) == 2 and backend.calls == 4
    _damage(cache.path(sequence, 2, 1), how)
    seen = []
    assert cache.precompute(sequence, seen.append) == 1
    assert seen == [True, False] and backend.calls == 5 and cache.repaired == 1
    assert cache.precompute(sequence) == 0 and backend.calls == 5


def test_a_backend_flow_that_does_not_fit_the_frames_is_refused(tmp_path, sequence):
    cache = FlowCache(_Ramp(shape=(H, W - 2)), str(tmp_path / "cache"))
    with pytest.raises(FlowCacheError, match=r"^ramp flow from frame 00000 to 00001 of seq: shape \(6, 6, 2\) is "
                                             r"not \(6, 8, 2\)"):
        cache.flow(sequence, 0, 1)
    assert not os.path.exists(cache.path(sequence, 0, 1))


# -- item 9 / 16: the flow CLI -------------------------------------------------------------------------------
def _flow_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "maskrnn_tf.flow", *args], cwd=REPO, capture_output=True,
                          text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {})), timeout=120)


def test_flow_cli_refuses_a_bad_year_at_parse_time(tmp_path):
    proc = _flow_cli("--year=2018", f"--manual_dir={tmp_path}", f"--cache_dir={tmp_path}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "flag --year=2018: must be 2016 or 2017 (DAVIS years)." in proc.stderr and "Traceback" not in proc.stderr


def test_flow_cli_refuses_a_cache_dir_that_is_a_file(tmp_path, shared_data):
    cache = tmp_path / "cache.npy"
    cache.write_bytes(b"keep me")
    proc = _flow_cli("--dataset=davis", "--year=2017", f"--manual_dir={os.path.join(shared_data, 'DAVIS-2017-sample')}",
                     f"--cache_dir={cache}", "--noprogress")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"Error: --cache_dir: flow cache folder {cache} is a file, not a folder" in proc.stderr
    assert "Traceback" not in proc.stderr and cache.read_bytes() == b"keep me"


def test_flow_cli_reports_a_cache_it_cannot_write_in_one_line(tmp_path, shared_data):
    """An OS error while writing the cache (a full disk; here a file where a sequence's folder goes) ended in a
    traceback."""
    cache = tmp_path / "cache"
    (cache / "dis-ultrafast" / "davis-480p").mkdir(parents=True)
    (cache / "dis-ultrafast" / "davis-480p" / "bear").write_text("not a folder")
    proc = _flow_cli("--dataset=davis", "--year=2017", f"--manual_dir={os.path.join(shared_data, 'DAVIS-2017-sample')}",
                     f"--cache_dir={cache}", "--backend=dis-ultrafast", "--sequences=bear", "--noprogress")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: ") and "bear" in error and "rerun" in error, proc.stderr[-2000:]


def test_flow_cli_asks_for_the_year_when_both_davis_years_lie_side_by_side(tmp_path, shared_data):
    """With DAVIS-2016/ and DAVIS-2017/ side by side in --manual_dir (the layout the README suggests), the CLI took
    2016 without a word and a davis17 training then found no cached flows."""
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "DAVIS-2016").symlink_to(os.path.join(shared_data, "DAVIS-2016"))
    (manual / "DAVIS-2017").symlink_to(os.path.join(shared_data, "DAVIS-2017-sample"))
    proc = _flow_cli("--dataset=davis", f"--manual_dir={manual}", f"--cache_dir={tmp_path / 'cache'}", "--noprogress")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "DAVIS-2016 and DAVIS-2017" in proc.stderr and "--year=2016" in proc.stderr and "--year=2017" in proc.stderr
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.npy"))


def test_flow_cli_asks_for_the_year_when_both_official_zips_lie_side_by_side(tmp_path):
    """With both years' zips in --manual_dir (the README's layout for zips) the CLI took 2017 without a word."""
    manual = tmp_path / "manual"
    manual.mkdir()
    for name in ("DAVIS-data.zip", "DAVIS-2017-trainval-480p.zip"):
        (manual / name).write_bytes(b"PK")
    proc = _flow_cli("--dataset=davis", f"--manual_dir={manual}", f"--cache_dir={tmp_path / 'cache'}", "--noprogress")
    assert proc.returncode == 2 and "DAVIS-2016 and DAVIS-2017" in proc.stderr, proc.stderr[-2000:]


def test_an_os_error_outside_the_cache_is_not_blamed_on_it(tmp_path):
    """Every OS error was reported as the flow cache's (an unreadable frames folder too)."""
    import errno

    from maskrnn_tf import flow

    cache = tmp_path / "cache"
    inside = str(cache / "dis-medium" / "x.npy")
    outside = str(tmp_path / "JPEGImages" / "480p" / "bear")
    first = flow._os_error_message(OSError(errno.ENOSPC, "No space left on device", inside), str(cache))
    second = flow._os_error_message(PermissionError(errno.EACCES, "Permission denied", outside), str(cache))
    assert first.startswith(f"cannot write the flow cache at {inside}")
    assert "flow cache" not in second and second.startswith(outside)


@pytest.fixture
def davis_copy(tmp_path, shared_data):
    """A copy of the shared DAVIS-2017 sample: a run that should have been refused writes into it."""
    root = tmp_path / "DAVIS"
    shutil.copytree(os.path.join(shared_data, "DAVIS-2017-sample"), root)
    return root


def _tree(folder):
    return sorted(os.path.relpath(os.path.join(d, n), folder) for d, dirs, files in os.walk(folder)
                  for n in dirs + files)


@pytest.mark.parametrize("manual, where, refusal", [
    (".", "JPEGImages/480p/bear", "lies inside the input --manual_dir"),
    (".", ".", "is the input --manual_dir"),
    (".", "..", "contains the input --manual_dir"),
    ("..", "JPEGImages/480p/bear", "lies inside the input --manual_dir's DAVIS folder")])
def test_flow_cli_refuses_a_cache_dir_that_overlaps_the_data_set(davis_copy, manual, where, refusal):
    """A --cache_dir in a frames folder got the cache's folders there, and the cache deletes the .npy files of its
    sequence folders to recompute them; segment's --output and evaluate's --results are refused there."""
    manual, cache = (os.path.normpath(os.path.join(davis_copy, path)) for path in (manual, where))
    before = _tree(davis_copy.parent)
    proc = _flow_cli("--dataset=davis", f"--manual_dir={manual}", f"--cache_dir={cache}", "--backend=farneback",
                     "--sequences=bear", "--noprogress")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith(f"Error: --cache_dir {cache} {refusal} {davis_copy}: "), proc.stderr[-2000:]
    assert _tree(davis_copy.parent) == before


def test_flow_cli_refuses_a_cache_dir_inside_the_folder_a_zip_is_extracted_to(tmp_path, davis_copy):
    """The official zip is read from its extraction under $XDG_CACHE_HOME: a --cache_dir there is refused too."""
    manual = tmp_path / "manual"
    manual.mkdir()
    archive = manual / "DAVIS-2017-trainval-480p.zip"
    with zipfile.ZipFile(archive, "w") as opened:
        for path in _tree(davis_copy):
            opened.write(davis_copy / path, os.path.join("DAVIS", path))
    stat = archive.stat()
    name = f"DAVIS-2017-trainval-480p-{stat.st_size}-{stat.st_mtime_ns}"  # resolve_davis_dir's extraction
    extracted = tmp_path / "xdg" / "maskrnn_tf" / "extracted" / name
    cache = extracted / "DAVIS" / "flows"
    proc = _flow_cli("--dataset=davis", f"--manual_dir={manual}", f"--cache_dir={cache}", "--backend=farneback",
                     "--noprogress", env={"XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith(f"Error: --cache_dir {cache} lies inside the input DAVIS folder extracted from "
                                  f"--manual_dir's zip {extracted / 'DAVIS'}: "), proc.stderr[-2000:]
    assert not cache.exists()


@pytest.mark.parametrize("bad", ["an empty --manual_dir", "an unknown --sequences"])
def test_flow_cli_leaves_no_cache_folder_when_it_refuses_its_inputs(tmp_path, davis_copy, bad):
    """The cache folder (and its missing parents) was created before the data set was read, and stayed, empty."""
    cache = tmp_path / "new" / "cache"
    if bad == "an empty --manual_dir":
        (tmp_path / "empty").mkdir()
        args, code = [f"--manual_dir={tmp_path / 'empty'}", "--year=2017"], 1
    else:
        args, code = [f"--manual_dir={davis_copy}", "--sequences=nope"], 2
    proc = _flow_cli("--dataset=davis", *args, f"--cache_dir={cache}", "--noprogress")
    assert proc.returncode == code and proc.stderr.startswith("Error: "), proc.stderr[-2000:]
    assert not (tmp_path / "new").exists()
