"""finetune_selection reads a --flagfile among the segment flags before it checks them, as segment will read it."""
import os

import pytest

from maskrnn_tf.experiments.finetune_selection import CandidateError, check_segment_flags, parse_candidate
from maskrnn_tf.experiments.results_records import ensemble_members


def test_flag_files_are_read_before_the_driver_checks_the_flags(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative flag files are read from the working folder, as segment reads them
    (tmp_path / "inner.flags").write_text("--ensemble_models=runs/a/best,runs/b/best\n")
    (tmp_path / "candidate.flags").write_text("# nested\n--finetune=recurrent\n--flagfile=inner.flags\n")
    candidate = parse_candidate("rec=--flagfile=candidate.flags --finetune_lr=1e-4")
    assert candidate.segment_args == ("--finetune=recurrent", "--ensemble_models=runs/a/best,runs/b/best",
                                      "--finetune_lr=1e-4")
    # Members named in a file are the ones the training-data check and the existence check see.
    assert ensemble_members(candidate.segment_args) == [str(tmp_path / "runs" / "a" / "best"),
                                                        str(tmp_path / "runs" / "b" / "best")]
    (tmp_path / "own.flags").write_text("--model=runs/x/final\n--finetune=none\n")
    assert parse_candidate("final=--flagfile own.flags").model("runs/x/best") == "runs/x/final"

    # A flag the driver sets is refused inside a file too (segment would take it after the driver's).
    (tmp_path / "driver.flags").write_text("--finetune=none\n--output=elsewhere\n")
    with pytest.raises(CandidateError, match="--output is set by the driver"):
        parse_candidate("o=--flagfile=driver.flags")
    with pytest.raises(CandidateError, match="--model is set by the driver"):
        check_segment_flags(["--max_size=432", "--flagfile=own.flags"])
    assert check_segment_flags(["--flagfile=inner.flags", "--max_size=432"]) == [
        "--ensemble_models=runs/a/best,runs/b/best", "--max_size=432"]
    assert check_segment_flags(["--max_size=432"]) == ["--max_size=432"]

    for call in (lambda: parse_candidate("m=--flagfile=missing.flags"),
                 lambda: check_segment_flags(["--flagfile=missing.flags"])):
        with pytest.raises(CandidateError, match="missing.flags"):
            call()
    assert not os.path.exists(tmp_path / "elsewhere")


def test_flag_files_the_driver_cannot_read_as_segment_would_are_refused_by_name(tmp_path, monkeypatch):
    """A nested directive absl does not expand (an indented line), a file that is not UTF-8 and a bare `--` (segment
    would take the flags after it for arguments) are refused with the file or flag named, no traceback."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "own.flags").write_text("--model=runs/x/final\n")
    (tmp_path / "indented.flags").write_text("--finetune=none\n  --flagfile=own.flags\n")
    (tmp_path / "utf16.flags").write_bytes("--finetune=none\n".encode("utf-16"))
    for text, message in [("i=--flagfile=indented.flags", "--flagfile=own.flags.*not read"),
                          ("u=--flagfile=utf16.flags", "utf16.flags.*UTF-8"),
                          ("d=--finetune=none -- --finetune_steps=3", "'--'"),
                          ("m=--flagfile=missing.flags", r"--candidate m: .*missing.flags")]:
        with pytest.raises(CandidateError, match=message):
            parse_candidate(text)
    with pytest.raises(CandidateError, match="--flagfile=own.flags.*not read"):
        check_segment_flags(["--flagfile=indented.flags"])
    with pytest.raises(CandidateError, match="'--'"):
        check_segment_flags(["--"])
    with pytest.raises(CandidateError) as refused:
        check_segment_flags(["--flagfile=missing.flags"])
    assert "ERROR::" not in str(refused.value)
