"""segment never loses the user's files: outputs that overlap inputs, --overwrite, --overlay, stale temporaries,
permissions, and the frame-0 output (issue 16, items 1, 2, 3, 11 and the umask part of 19)."""
import json
import os
import re
import stat

import numpy as np
import pytest

from maskrnn_tf.inference import (OutputExistsError, SegmentOptions, UnsafeOutputError, flow_propagation_step,
                                  segment_video)
from maskrnn_tf.inference.output_dir import MARKER_FILE, atomic_output_dir
from maskrnn_tf.io import read_mask, tmp_dirs

from killed_runs import die_before_rename  # tests/killed_runs.py

from .conftest import FRAMES, run_cli, square_ids, write_palette_png


def zero_flow(a, b):
    return np.zeros(a.shape[:2] + (2,), np.float32)


def files_of(folder):
    return sorted(os.listdir(folder))


def test_output_equal_to_the_video_is_refused_even_with_overwrite(video):
    frames, mask = video
    before = files_of(frames)
    with pytest.raises(UnsafeOutputError, match=r"--output .*vid is the input --video"):
        run_cli(f"--video={frames}", f"--first_mask={mask}", f"--output={frames}", "--overwrite")
    assert files_of(frames) == before


def test_output_containing_the_video_is_refused(tmp_path, video):
    frames, mask = video
    with open(tmp_path / "notes.txt", "w") as f:
        f.write("mine")
    with pytest.raises(UnsafeOutputError, match=r"contains the input --video"):
        run_cli(f"--video={frames}", f"--first_mask={mask}", f"--output={tmp_path}", "--overwrite")
    assert len(files_of(frames)) == FRAMES and (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("where", ["video", "first_mask", "flo_dir", "model", "davis_root", "segtrack_root"])
def test_output_inside_or_around_an_input_is_refused(tmp_path, video, where):
    frames, mask = video
    args = [f"--video={frames}", f"--first_mask={mask}"]
    if where == "video":
        out = os.path.join(frames, "results")
    elif where == "first_mask":
        out = str(tmp_path / "masks")
        os.makedirs(out)
        os.replace(mask, os.path.join(out, "first.png"))
        args = [f"--video={frames}", f"--first_mask={out}/first.png", "--overwrite"]
    elif where == "flo_dir":
        os.makedirs(tmp_path / "flo")
        out = str(tmp_path / "flo" / "out")
        args += ["--flow=flo", f"--flo_dir={tmp_path / 'flo'}"]
    elif where == "model":
        os.makedirs(tmp_path / "run")
        out = str(tmp_path / "run" / "results")
        args = [a for a in args] + [f"--model={tmp_path / 'run'}"]
    else:
        os.makedirs(tmp_path / "DATA")
        out = str(tmp_path / "DATA" / "results")
        args = [f"--{where}={tmp_path / 'DATA'}"]
    flag = "--" + where
    with pytest.raises(UnsafeOutputError, match=flag):
        run_cli(*args, f"--output={out}")
    assert not os.path.exists(out) or os.listdir(out) == ["first.png"]


def test_overwrite_replaces_only_a_folder_segment_wrote(tmp_path, video):
    frames, mask = video
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"not mine to delete")
    with pytest.raises(OutputExistsError, match=f"{MARKER_FILE}.*delete it yourself"):
        run_cli(f"--video={frames}", f"--first_mask={mask}", f"--output={foreign}", "--overwrite")
    assert (foreign / "holiday.jpg").read_bytes() == b"not mine to delete"
    out = str(tmp_path / "out")
    assert run_cli(f"--video={frames}", f"--first_mask={mask}", f"--output={out}") == 0
    with open(os.path.join(out, MARKER_FILE), encoding="utf-8") as f:
        meta = json.load(f)
    assert meta["written_by"] == "maskrnn_tf.segment" and meta["frames"] == FRAMES
    assert meta["video"] == os.path.abspath(frames)
    assert meta["files"] == [f"{t:05d}.png" for t in range(FRAMES)]
    # A file added since (the user's notes) is theirs: --overwrite refuses rather than delete it.
    with open(os.path.join(out, "notes.txt"), "w") as f:
        f.write("mine")
    with pytest.raises(OutputExistsError, match=r"did not write \(notes.txt\).*Move them out"):
        run_cli(f"--video={frames}", f"--first_mask={mask}", f"--output={out}", "--overwrite")
    assert open(os.path.join(out, "notes.txt")).read() == "mine"
    os.remove(os.path.join(out, "notes.txt"))
    # Scores evaluate recorded for these results describe the old results: they go with them, as do the drivers'
    # records of the folder.
    _write_tool_files(out)
    assert run_cli(f"--video={frames}", f"--first_mask={mask}", f"--output={out}", "--overwrite") == 0
    assert files_of(out) == [f"{t:05d}.png" for t in range(FRAMES)] + [MARKER_FILE]
    # A folder of an earlier version, whose record lists no files: what segment writes goes, nothing else.
    with open(os.path.join(out, MARKER_FILE), "w") as f:
        json.dump({"written_by": "maskrnn_tf.segment"}, f)
    open(os.path.join(out, "notes.txt"), "w").close()
    with pytest.raises(OutputExistsError, match=r"did not write \(notes.txt\)"):
        run_cli(f"--video={frames}", f"--first_mask={mask}", f"--output={out}", "--overwrite")
    os.remove(os.path.join(out, "notes.txt"))
    assert run_cli(f"--video={frames}", f"--first_mask={mask}", f"--output={out}", "--overwrite") == 0


def _write_tool_files(out):
    """evaluate's score table with its record of it (as scoring `out`, unchanged since) and the ablation and
    finetune_selection drivers' records of the folder, as those tools write them."""
    table = os.path.join(out, "global_results-val.csv")
    with open(table, "w") as f:
        f.write("J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay\n0.5,0.5,0.5,0.0,0.5,0.5,0.0\n")
    entry = {"results": ".", "size": os.stat(table).st_size, "mtime_ns": os.stat(table).st_mtime_ns}
    with open(os.path.join(out, "evaluate_run.json"), "w") as f:
        json.dump({"written_by": "maskrnn_tf.evaluate", "files": {"global_results-val.csv": entry}}, f)
    from maskrnn_tf.experiments.results_records import results_record

    model = os.path.join(os.path.dirname(out), "model.keras")  # a stand-in: the record keeps its size and mtime
    with open(model, "wb") as f:
        f.write(b"model")
    for name in ("ablation_record.json", "selection_record.json"):  # what the drivers write, as they write it
        with open(os.path.join(out, name), "w") as f:
            json.dump(results_record(["--finetune=none", f"--output={out}"], model), f)


def test_scores_no_record_lists_say_how_to_let_overwrite_replace_them(tmp_path, video):
    """Tables evaluate wrote before it kept evaluate_run.json (or davis2017-evaluation's) are refused by
    --overwrite like any file it did not write; the refusal says how to have them go with the results."""
    frames, mask = video
    out = str(tmp_path / "out")
    assert run_cli(f"--video={frames}", f"--first_mask={mask}", f"--output={out}") == 0
    with open(os.path.join(out, "global_results-val.csv"), "w") as f:
        f.write("J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay\n0.5,0.5,0.5,0.0,0.5,0.5,0.0\n")
    with pytest.raises(OutputExistsError, match=r"did not write \(global_results-val\.csv\).*score tables no "
                                                 r"evaluate_run\.json records .*python -m maskrnn_tf\.evaluate"):
        run_cli(f"--video={frames}", f"--first_mask={mask}", f"--output={out}", "--overwrite")
    assert os.path.isfile(os.path.join(out, "global_results-val.csv"))


@pytest.mark.parametrize("name, content", [
    ("global_results-baseline-copy.csv", "my notes\n"),
    ("per-sequence_results-val.csv", "Sequence,J-Mean,F-Mean\nmine_1,0.9,0.9\n"),  # a table evaluate never recorded
    ("global_results-val.csv", "J&F-Mean,J-Mean\n0.9,0.9\n"),  # recorded, then changed by the user
    ("ablation_record.json", "x"),
    ("selection_record.json", '{"my": "notes"}'),
    ("evaluate_run.json", '{"my": "notes"}'),
])
def test_overwrite_keeps_files_named_like_the_tools_but_not_theirs(tmp_path, video, name, content):
    """Files named as evaluate's tables or the drivers' records were dropped with the results by name alone,
    whatever they held: a user's copy of a table, or notes under one of those names, were deleted."""
    frames, mask = video
    out = str(tmp_path / "out")
    assert run_cli(f"--video={frames}", f"--first_mask={mask}", f"--output={out}") == 0
    _write_tool_files(out)
    with open(os.path.join(out, name), "w") as f:
        f.write(content)
    before = {n: open(os.path.join(out, n), "rb").read() for n in files_of(out)}
    with pytest.raises(OutputExistsError, match=r"did not write \(.*" + name.replace(".", r"\.")):
        run_cli(f"--video={frames}", f"--first_mask={mask}", f"--output={out}", "--overwrite")
    assert {n: open(os.path.join(out, n), "rb").read() for n in files_of(out)} == before


def test_overlay_inside_the_output_survives_overwrite(tmp_path, video):
    frames, mask = video
    out = str(tmp_path / "out")
    overlay = os.path.join(out, "overlay.mp4")
    segment_video(flow_propagation_step, frames, mask, zero_flow, out, SegmentOptions(progress=False))
    segment_video(flow_propagation_step, frames, mask, zero_flow, out, SegmentOptions(progress=False),
                  overlay_path=overlay, overwrite=True)
    assert os.path.getsize(overlay) > 0
    assert MARKER_FILE in files_of(out) and not [n for n in files_of(tmp_path) if n.startswith(".")]


def test_overwrite_replaces_an_overlay_outside_the_output_only_when_segment_wrote_it(tmp_path, video):
    frames, mask = video
    out, options = str(tmp_path / "out"), SegmentOptions(progress=False)
    # The user's own video where the overlay would go: --overwrite must not replace it.
    theirs = tmp_path / "clip.mp4"
    theirs.write_bytes(b"the user's own video")
    with pytest.raises(OutputExistsError, match="did not write"):
        segment_video(flow_propagation_step, frames, mask, zero_flow, out, options, overlay_path=str(theirs),
                      overwrite=True)
    assert theirs.read_bytes() == b"the user's own video" and not os.path.exists(out)
    # An overlay segment wrote (named, as it is, in the segment_run.json of --output) is replaced.
    ours = tmp_path / "overlay.mp4"
    segment_video(flow_propagation_step, frames, mask, zero_flow, out, options, overlay_path=str(ours))
    with open(os.path.join(out, MARKER_FILE), encoding="utf-8") as f:
        assert json.load(f)["overlay"]["path"] == os.path.realpath(ours)
    segment_video(flow_propagation_step, frames, mask, zero_flow, out, options, overlay_path=str(ours), overwrite=True)
    assert ours.stat().st_size > 1000
    # Changed since (the user saved their own edit under that name): no longer segment's to replace.
    ours.write_bytes(b"edited by the user")
    with pytest.raises(OutputExistsError, match="did not write"):
        segment_video(flow_propagation_step, frames, mask, zero_flow, out, options, overlay_path=str(ours),
                      overwrite=True)
    assert ours.read_bytes() == b"edited by the user"
    # A folder there is refused up front, not after the whole video is segmented.
    (tmp_path / "folder.mp4").mkdir()
    with pytest.raises(OutputExistsError, match="not a file"):
        segment_video(flow_propagation_step, frames, mask, zero_flow, out, options,
                      overlay_path=str(tmp_path / "folder.mp4"), overwrite=True)


def test_overlay_that_is_the_input_video_is_refused(tmp_path, video):
    frames, mask = video
    with pytest.raises(UnsafeOutputError, match="--overlay"):
        run_cli(f"--video={frames}", f"--first_mask={mask}", f"--output={tmp_path / 'o'}", f"--overlay={mask}")
    assert read_mask(mask).max() == 2


def test_stale_temporary_folder_of_a_killed_run_is_removed(tmp_path, video, caplog):
    frames, mask = video
    out = str(tmp_path / "out")
    # A child process starts writing the output and dies without cleaning up (as under SIGKILL).
    pid = os.fork()
    if pid == 0:  # the child: filesystem work only, then an immediate exit that skips every cleanup
        try:
            with atomic_output_dir(out) as tmp:
                open(os.path.join(tmp, "00000.png"), "w").close()
                os._exit(9)
        finally:
            os._exit(1)
    assert os.waitpid(pid, 0)[1] >> 8 == 9
    leftovers = [n for n in files_of(tmp_path) if n.startswith(".out.tmp-")]
    assert len(leftovers) == 1
    # A live process's folder (ours, under another name) must be kept.
    live = tmp_path / f".out.tmp-{os.getpid()}@other-host-abc"
    live.mkdir()
    with caplog.at_level("WARNING"):
        segment_video(flow_propagation_step, frames, mask, zero_flow, out, SegmentOptions(progress=False))
    assert [n for n in files_of(tmp_path) if n.startswith(".out.tmp-")] == [live.name]
    assert f"removed {os.path.join(str(tmp_path), leftovers[0])}" in caplog.text


def test_the_cli_says_what_it_cleaned_up_in_a_plain_warning_line(tmp_path, video):
    """The notice of a removed temporary folder reached the console with absl's log prefix
    ("W1207 04:00:00.123456 12345 output_dir.py:230] removed ..."), unlike every other line segment prints."""
    import subprocess
    import sys

    frames, mask = video
    out = str(tmp_path / "out")
    pid = os.fork()
    if pid == 0:  # a run killed while writing: its temporary folder stays behind
        try:
            with atomic_output_dir(out):
                os._exit(9)
        finally:
            os._exit(1)
    assert os.waitpid(pid, 0)[1] >> 8 == 9
    (stale,) = [n for n in files_of(tmp_path) if n.startswith(".out.tmp-")]
    proc = subprocess.run([sys.executable, "-m", "maskrnn_tf.segment", "--method=flow_propagation", f"--video={frames}",
                           f"--first_mask={mask}", f"--output={out}", "--noprogress"], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == 0, proc.stderr
    notice = [line for line in proc.stderr.splitlines() if "removed" in line]
    assert notice == [f"warning: removed {os.path.join(str(tmp_path), stale)}, the temporary folder of an interrupted "
                      "run (its process is gone)"], proc.stderr


def test_results_of_a_run_killed_while_replacing_them_come_back(tmp_path, video, caplog):
    frames, mask = video
    out = str(tmp_path / "out")
    segment_video(flow_propagation_step, frames, mask, zero_flow, out, SegmentOptions(progress=False))
    before = {name: open(os.path.join(out, name), "rb").read() for name in files_of(out)}
    # A child process overwrites them and dies between moving the old folder away and moving the new one in.
    def overwrite():
        with atomic_output_dir(out, overwrite=True) as tmp:
            open(os.path.join(tmp, "00000.png"), "w").close()

    die_before_rename(overwrite, 2)
    assert not os.path.exists(out)
    # The next run puts the old results back before anything else, so without --overwrite it is refused.
    with caplog.at_level("WARNING"), pytest.raises(OutputExistsError, match="--overwrite"):
        segment_video(flow_propagation_step, frames, mask, zero_flow, out, SegmentOptions(progress=False))
    assert {name: open(os.path.join(out, name), "rb").read() for name in files_of(out)} == before
    assert f"restored {out}" in caplog.text
    assert [n for n in files_of(tmp_path) if n.startswith(".")] == []


def test_an_output_name_up_to_the_filesystem_limit_is_written_and_replaced(tmp_path, video):
    # The hidden names beside them (the folder being written, the old copy while replacing, the partial video)
    # add the owner tag to the name: they must still fit one file name's 255 bytes.
    frames, mask = video
    out, overlay = str(tmp_path / ("o" * 250)), str(tmp_path / ("v" * 251 + ".mp4"))
    for overwrite in (False, True):
        segment_video(flow_propagation_step, frames, mask, zero_flow, out, SegmentOptions(progress=False),
                      overlay_path=overlay, overwrite=overwrite)
    assert MARKER_FILE in files_of(out) and os.path.getsize(overlay) > 0
    assert [n for n in files_of(tmp_path) if n.startswith(".")] == []


def test_an_old_copy_an_earlier_version_left_under_the_whole_name_comes_back(tmp_path, video, caplog):
    # Before names were cut for the owner tag, a name of 200 bytes fitted whole (`.<name>.old-<owner>-*`); such a
    # version killed while replacing the results leaves them there, and this version puts them back.
    frames, mask = video
    name = "o" * 200
    assert tmp_dirs.hidden_prefix(name, "old") != f".{name}.old-"  # cut here, whole in the earlier version
    out = str(tmp_path / name)
    segment_video(flow_propagation_step, frames, mask, zero_flow, out, SegmentOptions(progress=False))
    before = {n: open(os.path.join(out, n), "rb").read() for n in files_of(out)}
    os.makedirs(tmp_path / "new")
    die_before_rename(lambda: tmp_dirs.replace_dir(str(tmp_path / "new"), out, f".{name}.old-"), 2)
    assert not os.path.exists(out)
    with caplog.at_level("WARNING"), pytest.raises(OutputExistsError, match="--overwrite"):
        segment_video(flow_propagation_step, frames, mask, zero_flow, out, SegmentOptions(progress=False))
    assert {n: open(os.path.join(out, n), "rb").read() for n in files_of(out)} == before
    assert f"restored {out}" in caplog.text


def test_outputs_follow_the_umask(tmp_path, video):
    frames, mask = video
    out = str(tmp_path / "out")
    old = os.umask(0o022)
    try:
        segment_video(flow_propagation_step, frames, mask, zero_flow, out, SegmentOptions(progress=False))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(os.path.join(out, "00001.png")).st_mode) == 0o644


def test_void_of_the_first_mask_is_written_as_background(tmp_path, video):
    frames, _ = video
    ids = square_ids(0)
    ids[0:3, :] = 255  # a void band, as in DAVIS-2017 annotations
    mask = str(tmp_path / "void.png")
    write_palette_png(mask, ids)
    out = str(tmp_path / "out")
    segment_video(flow_propagation_step, frames, mask, zero_flow, out, SegmentOptions(progress=False))
    first = read_mask(os.path.join(out, "00000.png"))
    np.testing.assert_array_equal(first, np.where(ids == 255, 0, ids))


def test_partial_overlay_of_a_killed_run_is_removed(tmp_path, video, caplog):
    frames, mask = video
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)  # a process id that is no longer running
    partial = tmp_path / f".ov.mp4.tmp-{tmp_dirs.owner_tag(pid)}-abc123.mp4"
    partial.write_bytes(b"half an mp4")
    with caplog.at_level("WARNING"):
        segment_video(flow_propagation_step, frames, mask, zero_flow, str(tmp_path / "out"),
                      SegmentOptions(progress=False), overlay_path=str(tmp_path / "ov.mp4"))
    assert not partial.exists() and os.path.getsize(tmp_path / "ov.mp4") > 0
    assert f"removed {partial}" in caplog.text
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(tmp_path / "ov.mp4").st_mode) == 0o666 & ~umask  # not mkstemp's 0600


def _guarded(*args):
    """segment's entry as the command line runs it (bad input: one line on stderr and exit status 2)."""
    from absl import flags

    from maskrnn_tf import segment

    segment.define_flags()
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["segment", "--noprogress", *args])
    try:
        return segment.guarded([])
    finally:
        flags.FLAGS.unparse_flags()


def test_an_output_under_a_regular_file_is_refused_before_the_model_loads(tmp_path, video, capsys):
    """An --output (or --overlay) under a file printed only "[Errno 17] File exists", and for --video only after
    the model had loaded and finetuned."""
    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    frames, mask = video
    model = str(tmp_path / "model.keras")
    MaskRNN(MaskRNNConfig(width=0.125, fc_units=16)).save(model)
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    common = [f"--video={frames}", f"--first_mask={mask}", f"--model={model}", "--finetune=static",
              "--finetune_steps=1", "--precision=float32"]
    assert _guarded(*common, f"--output={notes}/results") == 2
    captured = capsys.readouterr()
    assert "online finetuning" not in captured.out  # refused before the model loaded
    error = captured.err.strip()
    assert len(error.splitlines()) == 1 and f"{notes} is a file" in error and "--output" in error, error
    assert notes.read_text() == "mine"
    # The overlay's folder likewise: a file there is named as such, not as a missing folder to create.
    assert _guarded(*common, f"--output={tmp_path / 'out'}", f"--overlay={notes}/overlay.mp4") == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and f"{notes} is a file" in error and "--overlay" in error, error
    assert notes.read_text() == "mine" and not (tmp_path / "out").exists()


def test_an_output_in_a_folder_that_cannot_be_written_is_refused_up_front(tmp_path, video, monkeypatch, capsys):
    """A folder without write permission gave a PermissionError traceback (exit 1) when the results were
    written. As root every folder is writable, so os.access is told that one folder is not."""
    from maskrnn_tf.inference import output_dir

    frames, mask = video
    shared = tmp_path / "shared"
    shared.mkdir()
    access = os.access
    monkeypatch.setattr(output_dir.os, "access",
                        lambda path, mode, **kw: os.path.realpath(path) != str(shared) and access(path, mode, **kw))
    common = ["--method=flow_propagation", f"--video={frames}", f"--first_mask={mask}"]
    for flags in ([f"--output={shared}/new/results"], [f"--output={tmp_path / 'out'}", f"--overlay={shared}/o.mp4"]):
        assert _guarded(*common, *flags) == 2
        error = capsys.readouterr().err.strip()
        assert len(error.splitlines()) == 1 and str(shared) in error and "write" in error, error
        assert flags[-1].split("=")[0] in error
    assert os.listdir(shared) == [] and not (tmp_path / "out").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_an_output_in_a_read_only_folder_is_refused_up_front(tmp_path, video, capsys):
    frames, mask = video
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o555)
    try:
        assert _guarded("--method=flow_propagation", f"--video={frames}", f"--first_mask={mask}",
                        f"--output={shared}/results") == 2
    finally:
        shared.chmod(0o755)
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and f"{shared} cannot be written" in error, error
    assert os.listdir(shared) == []


def test_an_os_error_while_writing_is_one_line_and_exit_2(tmp_path, video, monkeypatch, capsys):
    """Whatever the up-front checks cannot foresee (the folder's permissions changed meanwhile, a full disk) is
    reported as one line naming the path, not a traceback."""
    import errno

    from maskrnn_tf.inference import output_dir

    frames, mask = video

    def refuse(parent, prefix):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), parent)

    monkeypatch.setattr(output_dir, "make_owned_tmp_dir", refuse)
    assert _guarded("--method=flow_propagation", f"--video={frames}", f"--first_mask={mask}",
                    f"--output={tmp_path / 'out'}") == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and str(tmp_path) in error and "Permission denied" in error, error
    assert "Errno" not in error and not (tmp_path / "out").exists()


def test_overwrite_without_overlay_keeps_the_old_overlay_replaceable(tmp_path, video, caplog):
    """`--output=R --overlay=R.mp4`, then `--output=R --overwrite`: R.mp4 (with the earlier masks) stayed, no
    longer named by R's record, so `--overlay=R.mp4 --overwrite` was refused as a file segment did not write.
    It is kept (never deleted), named in the new record, and the user is warned that it shows the earlier masks."""
    frames, mask = video
    results, overlay = str(tmp_path / "R"), str(tmp_path / "R.mp4")
    assert run_cli(f"--video={frames}", f"--first_mask={mask}", f"--output={results}", f"--overlay={overlay}") == 0
    first = open(overlay, "rb").read()
    with caplog.at_level("WARNING"):
        assert run_cli(f"--video={frames}", f"--first_mask={mask}", f"--output={results}", "--overwrite") == 0
    assert open(overlay, "rb").read() == first
    assert overlay in caplog.text and "earlier masks" in caplog.text
    with open(os.path.join(results, MARKER_FILE), encoding="utf-8") as f:
        record = json.load(f)
    assert "overlay" not in record  # this run wrote none
    assert [entry["path"] for entry in record["earlier_overlays"]] == [os.path.realpath(overlay)]
    before = os.stat(overlay).st_mtime_ns
    assert run_cli(f"--video={frames}", f"--first_mask={mask}", f"--output={results}", f"--overlay={overlay}",
                   "--overwrite") == 0
    assert os.stat(overlay).st_mtime_ns != before and os.path.getsize(overlay) > 1000
    with open(os.path.join(results, MARKER_FILE), encoding="utf-8") as f:
        record = json.load(f)
    assert record["overlay"]["path"] == os.path.realpath(overlay) and "earlier_overlays" not in record
    # An overlay under another name likewise keeps the earlier one replaceable, and the other way round.
    other = str(tmp_path / "other.mp4")
    for current, earlier in ((other, overlay), (overlay, other)):
        assert run_cli(f"--video={frames}", f"--first_mask={mask}", f"--output={results}", f"--overlay={current}",
                       "--overwrite") == 0
        with open(os.path.join(results, MARKER_FILE), encoding="utf-8") as f:
            record = json.load(f)
        assert record["overlay"]["path"] == os.path.realpath(current)
        assert [entry["path"] for entry in record["earlier_overlays"]] == [os.path.realpath(earlier)]
    assert [n for n in files_of(tmp_path) if n.startswith(".")] == []


def test_an_output_under_a_link_names_what_the_link_is(tmp_path):
    """Every link was called "a link to nothing", one to a file included, and a dangling one ended "move that nothing
    away"."""
    from maskrnn_tf.inference.output_dir import UnwritableOutputError, check_writable_location

    target = tmp_path / "notes.txt"
    target.write_text("mine")
    (tmp_path / "to_file").symlink_to(target)
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    with pytest.raises(UnwritableOutputError, match=r"to_file is a link to a file, not a folder.*move that link away"):
        check_writable_location(str(tmp_path / "to_file" / "results"))
    with pytest.raises(UnwritableOutputError, match=r"dangling is a link to nothing, not a folder.*move that link away"):
        check_writable_location(str(tmp_path / "dangling" / "results"))
    with pytest.raises(UnwritableOutputError, match=r"notes.txt is a file, not a folder.*move that file away"):
        check_writable_location(str(target / "results"))
    assert target.read_text() == "mine"


@pytest.mark.parametrize("name", ["overlay.avi", "overlay.mkv", "overlay", "overlay.mp4.bak"])
def test_an_overlay_named_as_another_container_is_refused(tmp_path, name):
    """The overlay is written as an MP4 file (mp4v) and renamed to --overlay: `x.avi` held an MP4 under an AVI
    name, which players that trust the extension refuse."""
    from maskrnn_tf.inference.segmenter import check_overlay_path

    with pytest.raises(ValueError, match=re.escape(f"--overlay {tmp_path / name}: the overlay is an MP4 video")):
        check_overlay_path(str(tmp_path / name), str(tmp_path / "out"), False, [])
    check_overlay_path(str(tmp_path / "overlay.MP4"), str(tmp_path / "out"), False, [])
    assert files_of(tmp_path) == []


def test_a_read_only_file_system_is_named_as_such_not_as_permissions(tmp_path, monkeypatch):
    """A folder on a read-only mount was refused as one 'this user' cannot write, with advice to change its
    permissions, which cannot help there."""
    from maskrnn_tf.io import output_paths

    real_statvfs = os.statvfs

    class ReadOnly:
        def __init__(self, result):
            self.f_flag = result.f_flag | os.ST_RDONLY

    monkeypatch.setattr(output_paths.os, "access", lambda path, mode: False)
    monkeypatch.setattr(output_paths.os, "statvfs", lambda path: ReadOnly(real_statvfs(path)))
    with pytest.raises(output_paths.UnwritableOutputError,
                       match=re.escape(f"--output {tmp_path / 'out'}: the folder {tmp_path} is on a read-only file "
                                       "system. Choose another --output on a writable disk.")):
        output_paths.check_writable_location(str(tmp_path / "out"))


def test_a_failed_run_removes_the_folders_it_made_for_its_output(tmp_path):
    """--output=new/a/b/out made new/a/b for the output, and a run that then failed (a truncated frame) left the
    empty folders behind; folders that were there before, and any a user filled meanwhile, stay."""
    (tmp_path / "kept").mkdir()
    for out in (tmp_path / "new" / "a" / "b" / "out", tmp_path / "kept" / "c" / "out"):
        with pytest.raises(RuntimeError):
            with atomic_output_dir(str(out)):
                raise RuntimeError("a truncated frame")
    assert files_of(tmp_path) == ["kept"] and files_of(tmp_path / "kept") == []
