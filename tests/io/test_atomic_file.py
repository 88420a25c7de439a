"""Files written whole or not at all, with the mode the user's umask asks for (mkstemp alone gives 0600)."""
import dataclasses
import os
import signal
import stat

import numpy as np
import pytest

from maskrnn_tf.data.flow_backends import FlowBackend
from maskrnn_tf.data.flow_cache import FlowCache
from maskrnn_tf.data.sequences import read_segtrack_sequence_list
from maskrnn_tf.io import tmp_dirs, write_palette_png
from maskrnn_tf.io import atomic_file
from maskrnn_tf.io.atomic_file import atomic_write
from maskrnn_tf.metrics.report import write_reports
from maskrnn_tf.ops import read_flo, write_flo


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _hidden(folder) -> list:
    return [n for n in os.listdir(folder) if n.startswith(".")]


def test_atomic_write_gives_the_umask_mode_and_replaces(tmp_path, umask_027):
    path = tmp_path / "sub" / "a.txt"
    atomic_write(str(path), lambda tmp: open(tmp, "w", encoding="utf-8").write("one"))
    assert path.read_text() == "one" and _mode(path) == 0o640  # 0666 & ~027
    atomic_write(str(path), lambda tmp: open(tmp, "w", encoding="utf-8").write("two"))
    assert path.read_text() == "two" and _hidden(path.parent) == []


def test_atomic_write_failing_keeps_the_old_file_and_no_partial(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")

    def fail(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(str(path), fail)
    assert path.read_text() == "old" and _hidden(tmp_path) == []


def test_atomic_write_keeps_the_suffix_for_writers_that_add_one(tmp_path):
    path = tmp_path / "a.npy"
    atomic_write(str(path), lambda tmp: np.save(tmp, np.arange(3)), suffix=".npy")  # np.save adds .npy otherwise
    np.testing.assert_array_equal(np.load(path), np.arange(3))
    assert sorted(os.listdir(tmp_path)) == ["a.npy"]


def _text(text):
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    return write


def test_the_temp_of_a_killed_write_is_removed_by_the_next_write_of_that_path(tmp_path):
    path = tmp_path / "results.json"

    def killed(tmp):  # SIGKILL mid-write: no `finally` runs
        _text('{"half')(tmp)
        os._exit(9)

    pid = os.fork()
    if pid == 0:
        try:
            atomic_write(str(path), killed, suffix=".json")
        finally:
            os._exit(1)
    assert os.waitpid(pid, 0)[1] >> 8 == 9
    (stale,) = _hidden(tmp_path)
    # The user's files with similar names stay; a killed write of another file in the folder goes too.
    users = [".results.json.backup.tmp", ".results.json.tmp-notes", ".results.json.tmp-1-abc.json",
             f".notes.tmp-1.2.3@{tmp_dirs._host()}-final",  # shaped like a tag, but no 12-digit boot id
             f".results.json.tmp-{tmp_dirs.owner_tag(pid)}-Abc.json", f".results.json.tmp-{tmp_dirs.owner_tag(pid)}"]
    for name in users:
        (tmp_path / name).write_text("not atomic_write's")
    (tmp_path / f".other.png.tmp-{tmp_dirs.owner_tag(pid)}-k3j_2x.png").write_text("a killed write of other.png")
    atomic_write(str(path), _text("{}"), suffix=".json")
    assert path.read_text() == "{}" and sorted(_hidden(tmp_path)) == sorted(users)
    assert stale.startswith(f".results.json.tmp-{tmp_dirs.owner_tag(pid)}-") and stale.endswith(".json")


def test_a_folder_is_listed_once_per_process_not_once_per_write(tmp_path, monkeypatch):
    # Results are written a frame at a time: a listing per write would cost time quadratic in the frames.
    listed = []
    real_listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda p=".": listed.append(os.fspath(p)) or real_listdir(p))
    for frame in range(5):
        atomic_write(str(tmp_path / f"{frame:05d}.png"), _text("png"), suffix=".png")
    atomic_write(str(tmp_path / "sub" / "a.json"), _text("{}"), suffix=".json")
    assert listed == [str(tmp_path), str(tmp_path / "sub")]


def test_only_files_are_removed_never_a_folder_or_link_of_such_a_name(tmp_path):
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    (tmp_path / "mine.txt").write_text("the user's")
    folder = tmp_path / f".a.txt.tmp-{tmp_dirs.owner_tag(dead)}-abc"
    folder.mkdir()
    link = tmp_path / f".a.txt.tmp-{tmp_dirs.owner_tag(dead)}-xyz"
    link.symlink_to(tmp_path / "mine.txt")
    atomic_write(str(tmp_path / "a.txt"), _text("new"))
    assert folder.is_dir() and link.is_symlink() and (tmp_path / "mine.txt").read_text() == "the user's"


def test_the_temp_of_a_live_write_is_kept_until_its_process_is_killed(tmp_path):
    path = tmp_path / "a.npy"
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_r)
            atomic_write(str(path), lambda tmp: (os.write(ready_w, b"."), os.read(go_r, 1)), suffix=".npy")
        finally:
            os._exit(1)
    os.close(ready_w)
    try:
        assert os.read(ready_r, 1) == b"."  # the child is writing its temporary file
        (live,) = _hidden(tmp_path)
        atomic_write(str(path), lambda tmp: np.save(tmp, np.arange(3)), suffix=".npy")
        assert _hidden(tmp_path) == [live]
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        for fd in (ready_r, go_r, go_w):
            os.close(fd)
    next_run = os.fork()  # the next process to write into the folder
    if next_run == 0:
        try:
            atomic_file._swept_folders.clear()  # a new process, not a fork of this one, has swept nothing yet
            atomic_write(str(path), lambda tmp: np.save(tmp, np.arange(4)), suffix=".npy")
            os._exit(0)
        finally:
            os._exit(1)
    assert os.waitpid(next_run, 0)[1] == 0
    assert _hidden(tmp_path) == [] and np.load(path).tolist() == [0, 1, 2, 3]


def test_flo_files_get_the_umask_mode(tmp_path, umask_027):
    flow = np.random.default_rng(0).normal(size=(5, 7, 2)).astype(np.float32)
    write_flo(tmp_path / "a.flo", flow)
    np.testing.assert_array_equal(read_flo(tmp_path / "a.flo"), flow)
    assert _mode(tmp_path / "a.flo") == 0o640 and _hidden(tmp_path) == []


def test_palette_pngs_get_the_umask_mode(tmp_path, umask_027):
    write_palette_png(tmp_path / "00000.png", np.eye(4, dtype=np.uint8))
    assert _mode(tmp_path / "00000.png") == 0o640 and _hidden(tmp_path) == []


class _Ramp(FlowBackend):
    """A flow that depends only on the frame size (no flow computation needed)."""

    tag = "ramp"

    def flow(self, frame_a, frame_b, **kwargs):
        height, width = frame_a.shape[:2]
        return np.full((height, width, 2), 1.5, np.float32)


def test_flow_cache_files_get_the_umask_mode(shared_data, tmp_path, umask_027):
    (bmx,) = read_segtrack_sequence_list(os.path.join(shared_data, "SegTrackv2-sample"))
    bmx = dataclasses.replace(bmx, frame_paths=bmx.frame_paths[:2], mask_paths=bmx.mask_paths[:2])
    cache = FlowCache(_Ramp(), str(tmp_path))
    assert cache.precompute(bmx) == 1
    path = cache.path(bmx, 0, 1)
    assert np.load(path).dtype == np.float16 and _mode(path) == 0o640
    assert _hidden(os.path.dirname(path)) == []


def test_evaluation_csvs_get_the_umask_mode(tmp_path, umask_027):
    class _Results:
        split = "val"

        def global_metrics(self):
            return {"J&F-Mean": 0.5, "J-Mean": 0.5}

        def per_sequence_rows(self):
            return [{"Sequence": "a_1", "J-Mean": 0.5, "F-Mean": 0.5}]

    for path in write_reports(_Results(), str(tmp_path)):
        assert _mode(path) == 0o640
    assert _hidden(tmp_path) == []


@pytest.mark.parametrize("name", ["a" * 251 + ".png", "é" * 120 + ".json"])  # 255 and 245 bytes
def test_atomic_write_takes_a_name_up_to_the_filesystem_limit(tmp_path, name):
    # The temporary's name adds the owner tag and a random part: it must still fit the 255 bytes of one name.
    atomic_write(str(tmp_path / name), lambda tmp: open(tmp, "w", encoding="utf-8").write("whole"))
    assert (tmp_path / name).read_text() == "whole" and _hidden(tmp_path) == []


def _recording_syncs(monkeypatch):
    """Every fsync and rename of atomic_file, in order: ("fsync", the path the descriptor is open on, its size then)
    and ("replace", source, target)."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        events.append(("fsync", path, os.path.getsize(path) if os.path.isfile(path) else None))
        real_fsync(fd)

    def replace(source, target):
        events.append(("replace", os.fspath(source), os.fspath(target)))
        real_replace(source, target)

    monkeypatch.setattr(atomic_file.os, "fsync", fsync)
    monkeypatch.setattr(atomic_file.os, "replace", replace)
    return events


def test_a_durable_write_syncs_the_whole_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    """A rename can reach the disk before the data it names: after a power loss the file is empty. The files a run
    resumes from (config.json, precision.json, model.keras, the checkpoint index) are written durably."""
    events = _recording_syncs(monkeypatch)
    target = tmp_path / "config.json"

    def write(tmp):
        with open(tmp, "w") as f:
            f.write("x" * 100)

    atomic_write(str(target), write, durable=True)
    assert [e[0] for e in events] == ["fsync", "replace", "fsync"], events
    assert events[0][2] == 100 and events[0][1] == events[1][1]  # the temporary file, whole, then renamed
    assert events[1][2] == str(target) and events[2][1] == str(tmp_path)
    events.clear()
    atomic_write(str(tmp_path / "00000.png"), write)  # results: no fsync
    assert [e[0] for e in events] == ["replace"]


def test_the_files_a_run_resumes_from_are_written_durably(tmp_path, monkeypatch):
    from maskrnn_tf.training.checkpointing import write_run_precision
    from maskrnn_tf.training.config import TrainConfig
    from maskrnn_tf.training.run_dir import write_run_config

    events = _recording_syncs(monkeypatch)
    write_run_config(str(tmp_path), TrainConfig())
    write_run_precision(str(tmp_path), "bfloat16")
    synced = [os.path.basename(e[2]) for e in events if e[0] == "replace"]
    assert synced == ["config.json", "precision.json"]
    assert [e[0] for e in events] == ["fsync", "replace", "fsync"] * 2, events


def test_a_folder_that_cannot_be_fsynced_leaves_the_durable_write_done(tmp_path, monkeypatch):
    """Some FUSE and CIFS mounts refuse to fsync a folder (EINVAL): the file is whole and in place by then."""
    import errno

    real_fsync = os.fsync

    def fsync(fd):
        if os.path.isdir(os.readlink(f"/proc/self/fd/{fd}")):
            raise OSError(errno.EINVAL, "Invalid argument")
        real_fsync(fd)

    monkeypatch.setattr(atomic_file.os, "fsync", fsync)
    target = tmp_path / "config.json"
    atomic_write(str(target), lambda tmp: open(tmp, "w").write("{}"), durable=True)
    assert target.read_text() == "{}"
