"""A results folder made with a segment --flagfile is reused only while the flag file says the same."""
from maskrnn_tf.experiments.results_records import record_mismatch, results_record


def test_a_changed_flagfile_is_another_run_and_its_flags_count_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # absl reads a relative --flagfile from the working folder, as segment does
    model = tmp_path / "model.keras"
    model.write_bytes(b"weights")
    member = tmp_path / "member.keras"
    member.write_bytes(b"other weights")
    (tmp_path / "inner.flags").write_text(f"# nested, as absl allows\n--ensemble_models={member}\n")
    flagfile = tmp_path / "candidate.flags"
    flagfile.write_text("--finetune=static\n--finetune_steps=50\n--flagfile=inner.flags\n")
    args = ["--flagfile=candidate.flags", "--max_size=48"]

    made = results_record(args, str(model))
    assert made["flagfile_args"] == ["--finetune=static", "--finetune_steps=50", f"--ensemble_models={member}",
                                     "--max_size=48"]
    # A member named in the file is identified by its weights, as one given on the command line is.
    assert [m["path"] for m in made["ensemble_models"]] == [str(member)]
    assert record_mismatch(made, results_record(args, str(model))) == []

    flagfile.write_text("--finetune=static\n--finetune_steps=20\n--flagfile=inner.flags\n")
    mismatch = record_mismatch(made, results_record(args, str(model)))
    assert len(mismatch) == 1 and "flagfile_args" in mismatch[0] and "--finetune_steps=20" in mismatch[0], mismatch

    # Without a flag file the record has no such key: folders recorded before it stay reusable.
    assert "flagfile_args" not in results_record(["--max_size=48"], str(model))
