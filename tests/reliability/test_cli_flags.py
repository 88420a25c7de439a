"""Numeric flags of segment and evaluate are checked when parsed: a clear error and exit 2 (issue 16, items 9
and 14's segment part)."""
import os
import subprocess
import sys

import pytest
from absl import flags

from maskrnn_tf import segment

segment.define_flags()  # segment's flags, which these tests parse (evaluate's are tested in subprocesses)

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.mark.parametrize("arg, message", [
    ("--finetune_lr=nan", "--finetune_lr=nan: must be a finite number"),
    ("--finetune_lr=0", "--finetune_lr=0.0: must be > 0"),
    ("--finetune_lr=inf", "--finetune_lr=inf: must be a finite number"),
    ("--finetune_steps=-1", "--finetune_steps=-1: must be >= 0"),
    ("--finetune_loc_weight=-0.5", "--finetune_loc_weight=-0.5: must be >= 0"),
    ("--finetune_iou_weight=-0.5", "--finetune_iou_weight=-0.5: must be >= 0"),
    ("--finetune_iou_weight=nan", "--finetune_iou_weight=nan: must be a finite number"),
    ("--max_size=-5", "--max_size=-5: must be 0 or >= 32"),
    ("--max_size=16", "--max_size=16: must be 0 or >= 32 (0 keeps the full size"),
    ("--read_ahead=-1", "--read_ahead=-1: must be >= 0"),
    ("--finetune_check_frames=-1", "--finetune_check_frames=-1: must be >= 0"),
    ("--davis_year=2018", "--davis_year must be 2016 or 2017"),
    ("--max_growth=0.9", "--max_growth=0.9: must be 0 or >= 1 (0 = no cap"),
    ("--max_growth=inf", "--max_growth=inf: must be a finite number"),
])
def test_bad_numbers_are_refused_when_parsed(arg, message):
    flags.FLAGS.unparse_flags()
    try:
        with pytest.raises(flags.IllegalFlagValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
            flags.FLAGS(["prog", arg])
    finally:
        flags.FLAGS.unparse_flags()


def test_good_values_pass():
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["prog", "--finetune_lr=1e-4", "--max_size=32", "--max_size=0", "--finetune_steps=0",
                     "--max_growth=1.05"])
    assert flags.FLAGS.max_size == 0
    flags.FLAGS.unparse_flags()


@pytest.mark.parametrize("module, arg", [("maskrnn_tf.segment", "--finetune_lr=nan"),
                                         ("maskrnn_tf.evaluate", "--processes=-2")])
def test_the_binaries_exit_2_with_one_line(module, arg, tmp_path):
    proc = subprocess.run([sys.executable, "-m", module, arg, f"--output={tmp_path / 'o'}" if "segment" in module
                           else f"--results={tmp_path}"], capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: flag {arg.split('=')[0]}=") and "Traceback" not in proc.stderr
    assert f"{arg}: must be" in proc.stderr


@pytest.mark.parametrize("module, args, message", [
    ("maskrnn_tf.segment", ["--davis_root=d", "--probs_format=png"], "Error: --probs_format sets how --save_probs"),
    ("maskrnn_tf.segment", ["--video=v"], "Error: --video needs --first_mask"),
    ("maskrnn_tf.ablation", ["--train_flags=t.flags", "--run_root=r", "--davis_root=.", "--full_run=nothing",
                             "--variants=rnn"], "error: --full_run=nothing: no model.keras there"),
])
def test_what_a_binary_refuses_after_parsing_is_one_line_too(module, args, message, tmp_path):
    """A refusal of the binary's main (a flag combination it cannot run, an input it will not take) came below
    absl's usage text: the module's docstring and its every flag, about 200 lines for segment."""
    (tmp_path / "t.flags").write_text("--stage_a_steps=1\n")
    proc = subprocess.run([sys.executable, "-m", module, *args, "--output=o"] if module.endswith("segment") else
                          [sys.executable, "-m", module, *args], cwd=tmp_path, capture_output=True, text=True, env=ENV,
                          timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith(message), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["t.flags"]


def test_frames_below_the_network_minimum_are_refused_before_any_work(video, tmp_path):
    import numpy as np

    from maskrnn_tf.inference import SegmentOptions, flow_propagation_step, segment_video

    def step_never_called(*args):
        raise AssertionError("the step must not run")

    frames, mask = video
    out = str(tmp_path / "out")
    # 56x40 frames capped at 32 become 32x23: below 32, and 45 is the smallest cap that keeps 32 rows.
    with pytest.raises(ValueError, match=r"vid: frames of 56x40 are processed at 32x23, below the network's minimum "
                                         r"side of 32 pixels; pass --max_size=45 or more"):
        segment_video(step_never_called, frames, mask, None, out, SegmentOptions(max_size=32, min_size=32,
                                                                                 progress=False))
    assert not os.path.exists(out)
    zero = lambda a, b: np.zeros(a.shape[:2] + (2,), np.float32)  # noqa: E731
    assert segment_video(flow_propagation_step, frames, mask, zero, out,
                         SegmentOptions(max_size=45, min_size=32, progress=False)) == 4


def test_expand_user_paths_expands_string_and_list_flags(monkeypatch, tmp_path):
    """A leading ~ (left alone by the shell after '=') is expanded in a path flag and in each item of a list flag
    (segment's --ensemble_models); other values are kept."""
    from absl import flags

    from maskrnn_tf.flag_validation import expand_user_paths

    monkeypatch.setenv("HOME", str(tmp_path))
    values = flags.FlagValues()
    flags.DEFINE_string("model", None, "", flag_values=values)
    flags.DEFINE_list("members", [], "", flag_values=values)
    flags.DEFINE_string("unset", None, "", flag_values=values)
    values(["prog", "--model=~/a.keras", "--members=~/b,runs/c,~/d"])
    expand_user_paths(("model", "members", "unset"), values)
    assert values.model == f"{tmp_path}/a.keras"
    assert values.members == [f"{tmp_path}/b", "runs/c", f"{tmp_path}/d"]
    assert values.unset is None


# A flag file line written without its dashes (`max_size=64`) reaches the program as a plain argument; none of the
# binaries takes one, so each refuses it by name instead of running with the flag at its default.
# Each binary with the flags it requires (values never read: the refusal comes before any work).
STRAY_ARGUMENT_BINARIES = {
    "maskrnn_tf.segment": [], "maskrnn_tf.evaluate": [], "maskrnn_tf.flow": [], "maskrnn_tf.train": [],
    "maskrnn_tf.demo": [], "export.export_main": [], "export.client_main": [],
    "maskrnn_tf.finetune_selection": ["--model=m", "--davis_root=d", "--output=o"],
    "maskrnn_tf.finetune_table": ["--results=r"], "maskrnn_tf.ablation": ["--train_flags=t", "--davis_root=d"]}


@pytest.mark.parametrize("module, required", STRAY_ARGUMENT_BINARIES.items())
def test_a_flag_file_line_without_dashes_is_refused_by_name(module, required, tmp_path):
    flagfile = tmp_path / "my.flags"
    flagfile.write_text("max_size=64\n")
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    proc = subprocess.run([sys.executable, "-m", module, f"--flagfile={flagfile}", *required], capture_output=True,
                          text=True, env=ENV, cwd=repo, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "error: unexpected argument 'max_size=64'" in proc.stderr and "--max_size=64" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_parse_flags_or_exit_keeps_the_program_name_and_refuses_extras():
    from maskrnn_tf.flag_validation import parse_flags_or_exit

    flags.FLAGS.unparse_flags()
    try:
        assert parse_flags_or_exit(["prog", "--max_size=32"]) == ["prog"]
        written = []
        with pytest.raises(SystemExit) as exit_info:
            parse_flags_or_exit(["prog", "all_frames", "x=1"], stderr=written.append)
        assert exit_info.value.code == 2
        assert written[0].startswith("error: unexpected arguments 'all_frames', 'x=1'")
    finally:
        flags.FLAGS.unparse_flags()


def test_a_nested_flag_file_not_found_says_it_is_read_from_the_working_directory(tmp_path, monkeypatch):
    """absl reads a --flagfile line inside a flag file from the working directory, not from that file's folder:
    the shipped davis16_cpu_prior.flags run from another folder said only "Unable to open flagfile: ...
    'davis16_cpu.flags'"."""
    from maskrnn_tf.flag_validation import parse_flags_or_exit

    (tmp_path / "recipe").mkdir()
    (tmp_path / "recipe" / "inner.flags").write_text("--max_size=32\n")
    (tmp_path / "recipe" / "outer.flags").write_text("--flagfile=inner.flags\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    flags.FLAGS.unparse_flags()
    written = []
    try:
        with pytest.raises(SystemExit) as exit_info:
            parse_flags_or_exit(["prog", f"--flagfile={tmp_path / 'recipe' / 'outer.flags'}"], stderr=written.append)
    finally:
        flags.FLAGS.unparse_flags()
    assert exit_info.value.code == 2
    assert "inner.flags" in written[0] and f"working directory ({elsewhere})" in written[0], written[0]
    assert "repository root" in written[0]


# A flag file that is not UTF-8 (a Latin-1 "é" in a comment) ended every binary in absl's UnicodeDecodeError
# traceback (exit 1), which named no file.
@pytest.mark.parametrize("module", ["maskrnn_tf.evaluate", "maskrnn_tf.flow"])
def test_a_flag_file_that_is_not_utf8_is_named_in_one_line(module, tmp_path):
    flagfile = tmp_path / "latin1.flags"
    flagfile.write_bytes(b"--noprogress\n# caf\xe9\n")
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    proc = subprocess.run([sys.executable, "-m", module, f"--flagfile={flagfile}"], capture_output=True, text=True,
                          env=ENV, cwd=repo, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr == (f"error: {flagfile}: not UTF-8 text (byte 0xe9 on line 2: invalid continuation byte); "
                           "save it as UTF-8.\n")


def _parse_error(argv):
    """(exit code, message) of parse_flags_or_exit refusing `argv`."""
    from maskrnn_tf.flag_validation import parse_flags_or_exit

    flags.FLAGS.unparse_flags()
    written = []
    try:
        with pytest.raises(SystemExit) as exit_info:
            parse_flags_or_exit(argv, stderr=written.append)
    finally:
        flags.FLAGS.unparse_flags()
    return exit_info.value.code, "".join(written)


def test_a_non_utf8_flag_file_read_from_another_is_named_with_the_one_including_it(tmp_path, monkeypatch):
    (tmp_path / "inner.flags").write_bytes(b"--max_size=64\n# caf\xe9\n")
    (tmp_path / "outer.flags").write_text("--max_size=32\n--flagfile=inner.flags\n")
    monkeypatch.chdir(tmp_path)
    code, message = _parse_error(["prog", "--flagfile", "outer.flags"])
    assert code == 2
    assert message == ("error: inner.flags (included by outer.flags): not UTF-8 text (byte 0xe9 on line 2: invalid "
                       "continuation byte); save it as UTF-8.\n")


@pytest.mark.parametrize("case", ["absolute path", "folder"])
def test_the_working_directory_hint_comes_only_for_a_relative_path_not_found(case, tmp_path, monkeypatch):
    """The hint that relative flag file paths are read from the working directory came for every flag file absl
    could not open: a missing absolute path and a folder too, which reading from elsewhere would not fix."""
    (tmp_path / "a_folder").mkdir()
    monkeypatch.chdir(tmp_path)
    target = str(tmp_path / "missing.flags") if case == "absolute path" else "a_folder"
    code, message = _parse_error(["prog", f"--flagfile={target}"])
    assert code == 2 and "Unable to open flagfile" in message and target in message, message
    assert "working directory" not in message, message


def test_defined_once_runs_a_definition_once_and_again_after_it_raised():
    """The binaries' define_flags: a second call (tests of several files in one process, an entry point after a
    library import) defines nothing twice; a definition that raised part way is not taken for done."""
    from maskrnn_tf.flag_validation import defined_once

    calls = []

    @defined_once
    def define_flags():
        """Doc."""
        calls.append(1)
        if len(calls) == 1:
            raise flags.DuplicateFlagError("x")

    with pytest.raises(flags.DuplicateFlagError):
        define_flags()
    define_flags()
    define_flags()
    assert calls == [1, 1] and define_flags.__doc__ == "Doc." and define_flags.__name__ == "define_flags"
