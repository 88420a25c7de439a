"""The Table 2 ablation: variant switches build valid configs, scores are read back, the table is right,
and the driver runs end to end on a tiny synthetic DAVIS tree."""
import json
import os
import subprocess
import sys

import pytest

from maskrnn_tf.experiments.ablation_variants import (ABLATION_VARIANTS, ablation_markdown,
                                                      finetune_loc_weight, read_scores, record_mismatch,
                                                      results_record, select_variants, training_variant,
                                                      variant_overrides)
from maskrnn_tf.training.config import TrainConfig

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_rows_add_one_component_each_like_the_paper():
    switches = [(v.flow_stream, v.warp_mask, v.loc_train, v.loc_apply, v.rnn) for v in ABLATION_VARIANTS]
    assert switches[0] == (False,) * 5 and switches[-1] == (True,) * 5
    for before, after in zip(switches, switches[1:]):
        assert sum(after) == sum(before) + 1 and all(a >= b for a, b in zip(after, before))


def test_overrides_switch_the_config_and_keep_enabled_values():
    base = TrainConfig().override({"loss.loc_weight": 0.1, "stage_b_steps": 50})
    first = base.override(variant_overrides(ABLATION_VARIANTS[0]))
    assert not first.model.use_flow_stream and not first.model.warp_mask and not first.model.apply_localization
    assert first.loss.loc_weight == 0.0 and first.stage_b_steps == 0 and first.model.use_warped_mask
    full = base.override(variant_overrides(ABLATION_VARIANTS[-1]))
    assert full == base  # the full model is the flag file itself
    loc_train = base.override(variant_overrides(select_variants(["loc_train"])[0]))
    assert loc_train.loss.loc_weight == 0.1 and not loc_train.model.apply_localization
    with pytest.raises(ValueError, match="unknown ablation variant"):
        select_variants(["nope"])


def test_only_the_stage_a_apply_row_shares_a_training():
    shared = {v.name: training_variant(v).name for v in ABLATION_VARIANTS}
    assert shared == {"astream": "astream", "fstream": "fstream", "warp": "warp", "loc_train": "loc_train",
                      "loc_apply": "loc_train", "rnn": "rnn"}
    base = TrainConfig().override({"loss.loc_weight": 0.1})
    apply_row, train_row = select_variants(["loc_train", "loc_apply"])[::-1]
    trained = base.override(variant_overrides(training_variant(apply_row)))
    assert trained == base.override(variant_overrides(train_row)) and trained.stage_b_steps == 0


def test_rows_trained_without_the_box_loss_finetune_without_it():
    weights = {v.name: finetune_loc_weight(v, 0.1) for v in ABLATION_VARIANTS}
    assert weights == {"astream": 0.0, "fstream": 0.0, "warp": 0.0, "loc_train": 0.1, "loc_apply": 0.1, "rnn": 0.1}


def test_results_record_tells_what_changed(tmp_path):
    model = tmp_path / "model.keras"
    model.write_bytes(b"x" * 10)
    args = ["--model=m", "--max_size=432", f"--output={tmp_path}/r", "--noprogress", "--finetune_steps=50"]
    record = results_record(args, str(model))
    assert record["segment_args"] == ["--model=m", "--max_size=432", "--finetune_steps=50"]
    assert record["model_bytes"] == 10
    assert record_mismatch(record, record) == []
    assert record_mismatch(None, record) == ["no record of how it was made: a folder made otherwise, or a call "
                                             "stopped right after its segment"]
    other = results_record(["--model=m", "--max_size=240", "--finetune_steps=50"], str(model))
    assert record_mismatch(record, other) == ["segment arguments: stored ['--max_size=432'], now ['--max_size=240']"]
    # A folder recorded before segment checked its finetuning by default (--finetune_check_frames) is another run.
    before = {k: v for k, v in record.items() if k != "segment_defaults"}
    from maskrnn_tf.flag_validation import AUTO_FINETUNE_LAYERS, FINETUNE_CHECK_FRAMES

    defaults = {"finetune_check_frames": FINETUNE_CHECK_FRAMES, "finetune_layers": AUTO_FINETUNE_LAYERS}
    assert record_mismatch(before, record) == [f"segment_defaults: stored None, now {defaults!r}"]
    # One recorded before recurrent finetuning's default became the layers above the trunks, the same.
    check_only = {**record, "segment_defaults": {"finetune_check_frames": FINETUNE_CHECK_FRAMES}}
    assert record_mismatch(check_only, record) == [
        f"segment_defaults: stored {check_only['segment_defaults']!r}, now {defaults!r}"]
    model.write_bytes(b"y" * 11)  # retrained
    assert record_mismatch(record, results_record(args, str(model)))[0].startswith("model_bytes: stored 10, now 11")
    # The same flags in another order: absl takes the last of a repeated flag, so it can be another run.
    a, b = "--max_size=432", "--max_size=512"
    assert record_mismatch(results_record([a, "--finetune=none", b], str(model)),
                           results_record([b, "--finetune=none", a], str(model))) != []


def test_a_retrained_ensemble_member_or_rewritten_flo_files_are_another_run(tmp_path):
    """The record named --model's file only: a retrained --ensemble_models member (or .flo files written again
    under --flo_dir) left it as it was, and a results folder of the old networks (flows) was reused."""
    model = tmp_path / "model.keras"
    model.write_bytes(b"m")
    member = tmp_path / "member.keras"
    member.write_bytes(b"x" * 10)
    args = ["--finetune=none", f"--ensemble_models={member}"]
    record = results_record(args, str(model))
    assert record_mismatch(record, results_record(args, str(model))) == []
    member.write_bytes(b"y" * 11)  # retrained
    mismatch = record_mismatch(record, results_record(args, str(model)))
    assert mismatch and "ensemble_models" in mismatch[0] and str(member) in mismatch[0]
    # The same size, written later: its mtime tells, as it does for --model.
    record = results_record(args, str(model))
    os.utime(member, (member.stat().st_atime, member.stat().st_mtime + 10))
    assert record_mismatch(record, results_record(args, str(model))) != []
    # A run folder member is recorded by the model.keras segment loads from it.
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"r")
    run_args = ["--finetune=none", f"--ensemble_models={member},{run}"]
    record = results_record(run_args, str(model))
    (run / "model.keras").write_bytes(b"rr")
    assert record_mismatch(record, results_record(run_args, str(model))) != []
    # .flo files read with --flow=flo: rewritten ones are other flows (no file is read: only their sizes and times).
    flows = tmp_path / "flow" / "seq"
    flows.mkdir(parents=True)
    (flows / "00000_00001.flo").write_bytes(b"f" * 20)
    flo_args = ["--finetune=none", "--flow=flo", f"--flo_dir={tmp_path / 'flow'}"]
    record = results_record(flo_args, str(model))
    assert record_mismatch(record, results_record(flo_args, str(model))) == []
    (flows / "00000_00001.flo").write_bytes(b"g" * 24)
    assert record_mismatch(record, results_record(flo_args, str(model))) != []
    # Without either flag the record keeps its keys: folders recorded before stay reusable.
    assert not {"ensemble_models", "flo_dir"} & set(results_record(["--finetune=none"], str(model)))


def test_results_made_by_other_code_are_another_run(tmp_path, monkeypatch):
    """A folder matched on segment's arguments and the model file only: masks segmented before a change of segment's
    code (the side outputs' resize, the box restriction) were reused beside new ones and compared with them."""
    from maskrnn_tf.experiments import results_records

    package = tmp_path / "package"
    (package / "inference").mkdir(parents=True)
    (package / "segment.py").write_text("A = 1\n")
    (package / "inference" / "step.py").write_text("B = 2\n")
    (package / "README.md").write_text("notes")
    first = results_records.code_fingerprint(str(package))
    assert first == results_records.code_fingerprint(str(package))
    (package / "README.md").write_text("other notes")  # not code
    assert results_records.code_fingerprint(str(package)) == first
    # Neither what segment and evaluate never run (the serving and tfds folders, inside the package once installed;
    # the drivers, the training CLI) nor an editor's hidden lock file (a link to nothing) counts, nor crashes it.
    (package / "export").mkdir()
    (package / "export" / "client.py").write_text("C = 1\n")
    (package / "train.py").write_text("T = 1\n")
    (package / "inference" / ".#step.py").symlink_to(package / "inference" / "gone")
    assert results_records.code_fingerprint(str(package)) == first
    (package / "inference" / "step.py").write_text("B = 3\n")
    changed = results_records.code_fingerprint(str(package))
    assert changed != first
    model = tmp_path / "model.keras"
    model.write_bytes(b"x")
    monkeypatch.setattr(results_records, "code_fingerprint", lambda package_dir=None: first)
    stored = results_record(["--finetune=none"], str(model))
    monkeypatch.setattr(results_records, "code_fingerprint", lambda package_dir=None: changed)
    assert record_mismatch(stored, results_record(["--finetune=none"], str(model))) == [
        f"code: made by other maskrnn_tf sources (stored {first[:12]}, now {changed[:12]})"]
    older = {k: v for k, v in stored.items() if k != "code"}  # a folder recorded before the code was
    assert record_mismatch(older, results_record(["--finetune=none"], str(model))) == [
        "code: made by maskrnn_tf sources it did not record"]


def test_a_run_folder_is_recorded_by_the_checkpoint_segment_loads(tmp_path):
    """A run folder without model.keras (a training in progress) was recorded by the folder's own size and mtime,
    which new checkpoints do not change: results segmented with an older checkpoint were taken for the newer's."""
    run = tmp_path / "run"
    checkpoints = run / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "ckpt-100.index").write_bytes(b"a" * 5)
    before = results_record(["--finetune=none"], str(run))
    (checkpoints / "ckpt-200.index").write_bytes(b"b" * 5)
    (checkpoints / "checkpoint").write_text('model_checkpoint_path: "ckpt-200"\n')
    assert record_mismatch(before, results_record(["--finetune=none"], str(run))) != []
    # The checkpoint the state file names is the one segment loads, whatever other files lie there.
    (checkpoints / "checkpoint").write_text('model_checkpoint_path: "ckpt-100"\n'
                                            'all_model_checkpoint_paths: "ckpt-100"\n')
    assert results_record(["--finetune=none"], str(run))["model_checkpoint"] == os.path.join("checkpoints",
                                                                                            "ckpt-100.index")


def test_scores_and_markdown(tmp_path):
    (tmp_path / "global_results-val.csv").write_text("J&F-Mean,J-Mean,F-Mean\n0.5,0.61234,0.38766\n")
    scores = read_scores(str(tmp_path))
    assert scores == {"J&F-Mean": 0.5, "J-Mean": 0.61234, "F-Mean": 0.38766}
    assert read_scores(str(tmp_path / "missing")) is None
    table = ablation_markdown([(ABLATION_VARIANTS[0], scores, None, 90.0), (ABLATION_VARIANTS[-1], None, scores, 30),
                               (ABLATION_VARIANTS[1], None, None, float("nan"))])
    lines = table.strip().splitlines()
    assert len(lines) == 5
    assert lines[4] == "| + FStream | x |  |  |  |  | - | - | - | - | - |"
    assert lines[2] == "| AStream |  |  |  |  |  | 61.2 | 38.8 | - | - | 1.5 |"
    assert lines[3] == "| + RNN (full model) | x | x | x | x | x | - | - | 61.2 | 38.8 | 0.5 |"
    shared = ablation_markdown([(select_variants(["loc_apply"])[0], scores, scores, 120.0)])
    assert shared.strip().splitlines()[2].endswith("| 2.0 (shared) |")


def test_the_training_clock_adds_up_across_interrupted_calls(tmp_path):
    from maskrnn_tf.experiments.commands import run_command as _run

    clock = tmp_path / "train_seconds.txt.partial"
    clock.write_text("100.0\n")  # what an interrupted first call left
    seconds = _run([sys.executable, "-c", "import time; time.sleep(0.2)"], clock=str(clock))
    assert 100.2 <= seconds < 130 and float(clock.read_text()) == pytest.approx(seconds, abs=0.1)
    with pytest.raises(SystemExit, match="exit code 3"):
        _run([sys.executable, "-c", "raise SystemExit(3)"])


def test_stopping_the_driver_stops_its_command(tmp_path):
    """SIGTERM to the driver reaches the running command (training saves a checkpoint on it), and the driver
    waits for it: no orphan goes on writing into the run folder."""
    import signal
    import time

    pid_file, clock = tmp_path / "child.pid", tmp_path / "clock"
    clock.write_text("100.0\n")  # an earlier, interrupted call's time
    child = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    driver = ("import signal, sys; from maskrnn_tf.experiments.commands import run_command, on_sigterm; "
              "signal.signal(signal.SIGTERM, on_sigterm); "
              f"run_command([sys.executable, '-c', {child!r}], clock={str(clock)!r})")
    proc = subprocess.Popen([sys.executable, "-c", driver], cwd=REPO)
    deadline = time.time() + 60
    while not (pid_file.exists() and pid_file.read_text()) and time.time() < deadline:
        time.sleep(0.1)
    child_pid = int(pid_file.read_text())
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    with pytest.raises(ProcessLookupError):
        os.kill(child_pid, 0)  # gone (reaped by the driver)
    assert 100.4 <= float(clock.read_text()) < 160  # this call's time is added to the earlier one's


def test_a_second_stop_while_the_command_saves_still_waits_for_it(tmp_path):
    """A second SIGTERM (or Ctrl-C) while the command was saving escaped the driver's wait: the driver exited and
    the training went on writing its checkpoint into the run folder, holding its lock, with no one waiting."""
    import signal
    import time

    ready, saved, clock = tmp_path / "ready", tmp_path / "saved", tmp_path / "clock"
    child = ("import pathlib, signal, sys, time\n"
             "def stop(signum, frame):\n"
             "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
             "    time.sleep(2.0)  # a checkpoint being written\n"
             f"    pathlib.Path({str(saved)!r}).write_text('ckpt')\n"
             "    sys.exit(128 + signum)\n"
             "signal.signal(signal.SIGTERM, stop)\n"
             f"pathlib.Path({str(ready)!r}).write_text('up')\n"
             "time.sleep(120)\n")
    driver = ("import signal, sys; from maskrnn_tf.experiments.commands import run_command, on_sigterm; "
              "signal.signal(signal.SIGTERM, on_sigterm); "
              f"run_command([sys.executable, '-c', {child!r}], clock={str(clock)!r})")
    proc = subprocess.Popen([sys.executable, "-c", driver], cwd=REPO)
    deadline = time.time() + 60
    while not ready.exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)  # again, while the command saves
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert saved.read_text() == "ckpt"  # the driver ended only once its command had saved


def test_driver_end_to_end_on_a_tiny_synthetic_tree(tmp_path):
    from maskrnn_tf.demo import write_heldout_davis

    davis = str(tmp_path / "davis")
    write_heldout_davis(davis, 1, 2_000_000)
    flagfile = tmp_path / "tiny.flags"
    flagfile.write_text("\n".join([
        "--dataset=synthetic_vos", "--crop_height=32", "--crop_width=48", "--synthetic_train_videos=4",
        "--model_width=0.125", "--fc_units=16", "--batch_size=2", "--clip_batch_size=1", "--clip_length=3",
        "--stage_a_steps=2", "--stage_b_steps=1", "--val_videos=0", "--precision=float32", "--loc_weight=0.1",
    ]) + "\n")
    root = tmp_path / "ablation"
    cmd = [sys.executable, "-m", "maskrnn_tf.ablation", f"--train_flags={flagfile}", f"--run_root={root}",
           f"--davis_root={davis}", "--variants=loc_train,loc_apply", "--finetune_steps=0", "--max_size=48",
           "--flow=flo", f"--flo_dir={davis}/flow"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    table = (root / "ablation.md").read_text()
    rows = table.strip().splitlines()[2:]
    assert [r.split("|")[1].strip() for r in rows] == ["+ Loc. net: train", "+ Loc. net: apply"]
    for name in ("loc_train", "loc_apply"):
        assert read_scores(str(root / name / "results_ft0")) is not None
    assert float((root / "loc_train" / "train_seconds.txt").read_text()) > 0
    assert not (root / "loc_train" / "train_seconds.txt.partial").exists()
    config = (root / "loc_train" / "config.json").read_text()
    assert '"apply_localization": false' in config and '"stage_b_steps": 0' in config
    # The two loc rows share one training (box off); the apply row deploys it with the box switched on.
    assert sum(line.startswith("$ ") and " maskrnn_tf.train " in line for line in run.stdout.splitlines()) == 1
    assert not (root / "loc_apply" / "config.json").exists()
    assert run.stdout.count(" --apply_localization ") == 1 and run.stdout.count(" --noapply_localization ") == 1
    # A second call finds everything done and only rewrites the table.
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "maskrnn_tf.train" not in again.stdout
    assert (root / "ablation.md").read_text() == table
    # --full_run deploys an existing run of the flag file for the full-model row instead of training it, also
    # one whose config.json still holds a retired key (data.data_dir, written before it was removed). The run
    # here is the loc_train weights under the config train writes for the flag file alone (the full model's
    # training is not run: the driver reads only config.json and model.keras).
    full = tmp_path / "full"
    full.mkdir()
    (full / "model.keras").write_bytes((root / "loc_train" / "model.keras").read_bytes())
    rnn = select_variants(["rnn"])[0]
    rnn_sets = [f"--set={k}={json.dumps(v)}" for k, v in variant_overrides(training_variant(rnn)).items()]
    printed = subprocess.run([sys.executable, "-m", "maskrnn_tf.train", f"--flagfile={flagfile}", "--print_config",
                              *rnn_sets], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert printed.returncode == 0, printed.stderr[-3000:]
    stored = json.loads(printed.stdout)
    assert stored["model"]["apply_localization"] and stored["stage_b_steps"] == 1
    stored["data"]["data_dir"] = str(tmp_path / "tfds")
    (full / "config.json").write_text(json.dumps(stored, indent=2))
    reused = subprocess.run(cmd[:4] + [f"--run_root={tmp_path / 'reuse'}", cmd[5], f"--full_run={full}",
                                       "--variants=rnn"] + cmd[7:], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=600)
    assert reused.returncode == 0, reused.stdout[-3000:] + reused.stderr[-3000:]
    assert "maskrnn_tf.train" not in reused.stdout and f"--model={full / 'model.keras'}" in reused.stdout
    # The same weights with the box applied: the loc_apply row's segmentation.
    assert read_scores(str(tmp_path / "reuse" / "rnn" / "results_ft0")) == read_scores(
        str(root / "loc_apply" / "results_ft0"))
    reused_rows = (tmp_path / "reuse" / "ablation.md").read_text().strip().splitlines()[2:]
    assert [r.split("|")[1].strip() for r in reused_rows] == ["+ RNN (full model)"]
    missing = subprocess.run(cmd + [f"--full_run={tmp_path / 'nothing'}"], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=600)
    assert missing.returncode == 2 and "no model.keras there" in missing.stderr
    # A run of other flags is not taken for the full model (here: the loc_train run).
    wrong = subprocess.run(cmd[:4] + [f"--run_root={tmp_path / 'wrong'}", cmd[5], f"--full_run={root / 'loc_train'}",
                                      "--variants=rnn"] + cmd[7:], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=600)
    assert wrong.returncode == 2 and "was trained with another config" in wrong.stderr
    assert "model.apply_localization: stored False, now True" in wrong.stderr
    # Results made with other settings are refused, not reused; rows not asked for stay in the table.
    other = subprocess.run(cmd[:6] + ["--variants=loc_train"] + cmd[7:8] + ["--max_size=40"] + cmd[9:], cwd=REPO,
                           env=env, capture_output=True, text=True, timeout=600)
    assert other.returncode == 2 and "was made with other settings" in other.stderr and "--max_size=40" in other.stderr
    only = subprocess.run(cmd[:6] + ["--variants=loc_apply"] + cmd[7:], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert only.returncode == 0 and "maskrnn_tf.segment" not in only.stdout
    assert (root / "ablation.md").read_text() == table


def _stand_in_driver(monkeypatch, tmp_path, finetune_steps):
    """The ablation driver, in-process, on one row (AStream) whose run is a stand-in model.keras, with stand-in
    segment and evaluate commands (no TensorFlow); returns the driver and the list of commands it runs."""
    import types

    from maskrnn_tf import ablation as driver

    run_dir = tmp_path / "root" / "astream"
    run_dir.mkdir(parents=True)
    (run_dir / "model.keras").write_bytes(b"model")
    (tmp_path / "davis").mkdir()
    (tmp_path / "tiny.flags").write_text("--stage_a_steps=1\n")
    ran = []

    def run_command(args, clock=None, driver=""):
        ran.append(args)
        folder = next(a.split("=", 1)[1] for a in args if a.startswith(("--output=", "--results=")))
        if args[2] == "maskrnn_tf.segment":
            os.makedirs(folder)
        else:
            with open(os.path.join(folder, "global_results-val.csv"), "w") as f:
                f.write("J&F-Mean,J-Mean,F-Mean\n0.500,0.600,0.400\n")
        return 0.0

    monkeypatch.setattr(driver, "run_command", run_command)
    monkeypatch.setattr(driver, "_split_problem", lambda: "")  # no DAVIS tree: the stand-in reads none
    monkeypatch.setattr(driver, "_check_trained", lambda *a: None)  # the stand-in run has no config.json
    monkeypatch.setattr(driver, "FLAGS", types.SimpleNamespace(
        train_flags=str(tmp_path / "tiny.flags"), run_root=str(tmp_path / "root"), davis_root=str(tmp_path / "davis"),
        split="val", full_run=None, variants=["astream"], train_set=[], max_size=48, finetune_steps=finetune_steps,
        finetune_lr=1e-5, finetune_loc_weight=0.1, finetune_class_balance=False, flow="dis", flo_dir=None))
    return driver, ran


def test_a_resumed_ablation_does_not_reuse_scores_changed_since_its_evaluate(monkeypatch, tmp_path):
    """In-process with stand-in segment and evaluate commands (no TensorFlow): the table's numbers are those of
    the driver's own evaluate, not of a CSV scored again otherwise (or edited) since."""
    driver, ran = _stand_in_driver(monkeypatch, tmp_path, finetune_steps=0)
    row = "| AStream |  |  |  |  |  | 60.0 | 40.0 | - | - | - |"
    assert driver.main([]) == 0 and [args[2] for args in ran] == ["maskrnn_tf.segment", "maskrnn_tf.evaluate"]
    assert row in (tmp_path / "root" / "ablation.md").read_text()
    assert driver.main([]) == 0 and len(ran) == 2  # resumed: nothing run again
    # Scored since with --all_frames (or edited): scored again by the driver, not put in the table.
    (tmp_path / "root" / "astream" / "results_ft0" / "global_results-val.csv").write_text(
        "J&F-Mean,J-Mean,F-Mean\n0.900,0.950,0.850\n")
    assert driver.main([]) == 0 and [args[2] for args in ran[2:]] == ["maskrnn_tf.evaluate"]
    assert row in (tmp_path / "root" / "ablation.md").read_text()


def test_an_ablation_stopped_as_its_segment_shuts_down_after_finishing_resumes_with_that_folder(monkeypatch,
                                                                                             tmp_path):
    """Ctrl-C after segment put its finished folder in place but before it exited: no record was written, and the
    rerun refused the folder as made "with other settings" (exit 2) instead of resuming."""
    driver, ran = _stand_in_driver(monkeypatch, tmp_path, finetune_steps=0)
    stand_in = driver.run_command

    def interrupted_after_segment(args, clock=None, driver=""):
        stand_in(args, clock, driver)
        if args[2] == "maskrnn_tf.segment":
            (tmp_path / "root" / "astream" / "results_ft0" / "segment_run.json").write_text("{}")
            raise KeyboardInterrupt
        return 0.0

    monkeypatch.setattr(driver, "run_command", interrupted_after_segment)
    with pytest.raises(KeyboardInterrupt):
        driver.main([])
    monkeypatch.setattr(driver, "run_command", stand_in)
    assert driver.main([]) == 0 and [args[2] for args in ran] == ["maskrnn_tf.segment", "maskrnn_tf.evaluate"]
    assert "| AStream |  |  |  |  |  | 60.0 | 40.0 | - | - | - |" in (tmp_path / "root" / "ablation.md").read_text()


def test_segment_settings_and_a_split_segment_would_refuse_stop_the_ablation_before_it_trains(monkeypatch, tmp_path,
                                                                                                capsys):
    """The pre-checks covered the variant names, the flag file, the DAVIS folder and --flo_dir: an unknown --flow,
    a --max_size or --split segment refuses were found by the first segment, after a whole training."""
    from maskrnn_tf import ablation

    split_problem = ablation._split_problem
    for n, (change, says) in enumerate((({"flow": "raft"}, "must be one of dis"), ({"max_size": 8}, "--max_size"),
                                        ({"flow": "flo"}, "--flow=flo needs --flo_dir"))):
        driver, ran = _stand_in_driver(monkeypatch, tmp_path / str(n), finetune_steps=5)
        for name, value in change.items():
            setattr(driver.FLAGS, name, value)
        assert driver.main([]) == 2 and not ran
        err = capsys.readouterr().err
        assert says in err and "Nothing was run." in err, err
    driver, ran = _stand_in_driver(monkeypatch, tmp_path / "split", finetune_steps=0)
    monkeypatch.setattr(driver, "_split_problem", split_problem)
    assert driver.main([]) == 2 and not ran
    assert "--split=val: the split of --davis_root=" in capsys.readouterr().err


def test_a_row_not_asked_for_whose_run_has_another_config_is_left_out(monkeypatch, tmp_path, capsys):
    """Rows not in --variants were shown from earlier calls whatever flag file their run was trained with: AStream
    trained from A.flags stood beside + FStream from B.flags as one table."""
    driver, ran = _stand_in_driver(monkeypatch, tmp_path, finetune_steps=0)
    assert driver.main([]) == 0
    row = "| AStream |  |  |  |  |  | 60.0 | 40.0 | - | - | - |"
    assert row in (tmp_path / "root" / "ablation.md").read_text()
    (tmp_path / "root" / "fstream").mkdir()
    (tmp_path / "root" / "fstream" / "model.keras").write_bytes(b"model")
    driver.FLAGS.variants = ["fstream"]
    trained_otherwise = {str(tmp_path / "root" / "astream")}
    monkeypatch.setattr(driver, "_trained_mismatch", lambda run_dir, sets: (
        ["model.width: stored 0.25, now 0.5"] if run_dir in trained_otherwise else []))
    capsys.readouterr()
    assert driver.main([]) == 0
    table = (tmp_path / "root" / "ablation.md").read_text()
    assert "| AStream |" not in table and "| + FStream |" in table
    out = capsys.readouterr().out
    assert "AStream" in out and "left out" in out and "model.width" in out
    # Trained as the flag file says: shown again.
    trained_otherwise.clear()
    assert driver.main([]) == 0 and row in (tmp_path / "root" / "ablation.md").read_text()



def test_a_full_run_given_once_stays_the_full_model_row_of_later_calls(monkeypatch, tmp_path, capsys):
    """A call with --full_run=<the recipe's run> made the full-model row; a later call adding a row without
    --full_run dropped that row from the table (its run is not under --run_root). Recorded in --run_root now; a
    recorded run whose model is gone is refused by name, and nothing is trained into it."""
    driver, ran = _stand_in_driver(monkeypatch, tmp_path, finetune_steps=0)
    monkeypatch.setattr(driver, "_trained_mismatch", lambda run_dir, sets: [])  # stand-in runs: no config.json
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    (recipe / "model.keras").write_bytes(b"model")
    driver.FLAGS.full_run, driver.FLAGS.variants = str(recipe), ["rnn"]
    assert driver.main([]) == 0
    full_row = "| + RNN (full model) | x | x | x | x | x | 60.0 | 40.0 | - | - | - |"
    assert full_row in (tmp_path / "root" / "ablation.md").read_text()
    assert not any("maskrnn_tf.train" in args for args in ran)
    driver.FLAGS.full_run, driver.FLAGS.variants = None, ["astream"]
    capsys.readouterr()
    assert driver.main([]) == 0
    table = (tmp_path / "root" / "ablation.md").read_text()
    assert full_row in table and "| AStream |" in table, table
    assert str(recipe) in capsys.readouterr().out
    (recipe / "model.keras").unlink()
    driver.FLAGS.variants = ["rnn"]
    count = len(ran)
    assert driver.main([]) == 2
    err = capsys.readouterr().err
    assert "full_run.json" in err and str(recipe) in err and "no model.keras" in err
    assert len(ran) == count and sorted(os.listdir(recipe)) == []
    # A file of that name that is not the driver's record is neither read as one nor replaced.
    for own in ("my notes\n", '{"full_run": 3}\n', "[]\n"):
        (tmp_path / "root" / "full_run.json").write_text(own)
        driver.FLAGS.full_run = str(tmp_path / "root" / "astream")
        assert driver.main([]) == 2 and "not this driver's record" in capsys.readouterr().err
        assert (tmp_path / "root" / "full_run.json").read_text() == own and len(ran) == count


def test_a_refused_full_run_is_not_recorded(monkeypatch, tmp_path, capsys):
    """--full_run naming a run of other settings was recorded before it was refused: later calls without the flag
    took it as the full-model row's run and were refused with a hint to pass a flag they had not passed. The
    refused run is not recorded; the run recorded before stays, and a recorded run that no longer matches is
    refused naming the record."""
    from absl import app

    from maskrnn_tf.ablation import _check_trained

    driver, ran = _stand_in_driver(monkeypatch, tmp_path, finetune_steps=0)
    monkeypatch.setattr(driver, "_check_trained", _check_trained)  # the check itself, on a stand-in mismatch
    recipe, other = tmp_path / "recipe", tmp_path / "other"
    for run in (recipe, other):
        run.mkdir()
        (run / "model.keras").write_bytes(b"model")
    mismatched = {str(other)}
    monkeypatch.setattr(driver, "_trained_mismatch", lambda run_dir, sets: (
        ["model.width: stored 0.25, now 0.5"] if run_dir in mismatched else []))
    record = tmp_path / "root" / "full_run.json"
    driver.FLAGS.full_run, driver.FLAGS.variants = str(recipe), ["rnn"]
    assert driver.main([]) == 0 and json.loads(record.read_text()) == {"full_run": str(recipe)}
    for variants in (["rnn"], ["astream"]):  # also when the call does not deploy the full-model row
        driver.FLAGS.full_run, driver.FLAGS.variants = str(other), variants
        with pytest.raises(app.UsageError, match=r"other was trained with another config.*model\.width"):
            driver.main([])
        assert json.loads(record.read_text()) == {"full_run": str(recipe)}
    driver.FLAGS.full_run, driver.FLAGS.variants = None, ["rnn"]
    assert driver.main([]) == 0
    assert "| + RNN (full model) |" in (tmp_path / "root" / "ablation.md").read_text()
    mismatched.add(str(recipe))  # the flag file changed since
    with pytest.raises(app.UsageError, match=r"recipe was trained with another config.*delete .*full_run\.json"):
        driver.main([])


def test_finetuned_columns_run_the_papers_static_finetuning_without_the_cycle_check(monkeypatch, tmp_path):
    """The finetuned columns are the paper's online finetuning (static, every video's updates kept): segment's
    default cycle check, which may undo a video's finetuning, is switched off by name."""
    driver, ran = _stand_in_driver(monkeypatch, tmp_path, finetune_steps=50)
    assert driver.main([]) == 0
    segments = [args for args in ran if args[2] == "maskrnn_tf.segment"]
    by_steps = {next(a for a in args if a.startswith("--finetune_steps=")): args for args in segments}
    assert sorted(by_steps) == ["--finetune_steps=0", "--finetune_steps=50"]
    finetuned, plain = by_steps["--finetune_steps=50"], by_steps["--finetune_steps=0"]
    assert "--finetune=static" in finetuned and "--finetune_check_frames=0" in finetuned
    assert not any(a.startswith(("--finetune=", "--finetune_check_frames")) for a in plain)


def test_a_run_trained_before_a_setting_existed_is_deployed_at_that_settings_default(monkeypatch, tmp_path):
    """A finished run's config.json that lacks keys added since (here model.flow_reference and loss.iou_weight)
    is the flag file's config when those keys are at their defaults, as resuming the training treats it; a key
    present at another value is still refused, by name."""
    import json
    import types

    from absl import app

    from maskrnn_tf import ablation as driver

    flags_file = tmp_path / "tiny.flags"
    flags_file.write_text("--dataset=synthetic_vos\n--stage_a_steps=2\n--stage_b_steps=1\n")
    monkeypatch.setattr(driver, "FLAGS", types.SimpleNamespace(train_flags=str(flags_file)))
    expected = driver._expected_config([])
    older = json.loads(json.dumps(expected))
    del older["model"]["flow_reference"], older["loss"]["iou_weight"]
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(older))
    driver._check_trained(str(run), [], "hint")
    other = json.loads(json.dumps(older))
    other["model"]["width"] = 0.25
    (run / "config.json").write_text(json.dumps(other))
    with pytest.raises(app.UsageError, match=r"model\.width"):
        driver._check_trained(str(run), [], "hint")
    other = json.loads(json.dumps(expected))
    other["model"]["flow_reference"] = "median"
    (run / "config.json").write_text(json.dumps(other))
    with pytest.raises(app.UsageError, match=r"model\.flow_reference"):
        driver._check_trained(str(run), [], "hint")


def test_bad_driver_input_is_refused_by_name_before_anything_runs(monkeypatch, tmp_path, capsys):
    import types

    from maskrnn_tf import ablation as driver

    flagfile = tmp_path / "tiny.flags"
    flagfile.write_text("--stage_a_steps=1\n")
    (tmp_path / "davis").mkdir()
    good = dict(train_flags=str(flagfile), run_root=str(tmp_path / "root"), davis_root=str(tmp_path / "davis"),
                variants=["astream"])
    monkeypatch.setattr(driver, "run_command", lambda *a, **k: pytest.fail(f"ran {a[0][2]}"))
    for bad, message in ((dict(variants=["nope"]), "--variants: unknown ablation variant(s) ['nope']"),
                         (dict(train_flags=str(tmp_path / "typo.flags")), "typo.flags: no such file"),
                         (dict(davis_root=str(tmp_path / "DAVS")), "DAVS: no such folder"),
                         # segment would refuse it hours later, after the first training
                         (dict(flo_dir=str(tmp_path)), "--flo_dir is read only with --flow=flo")):
        monkeypatch.setattr(driver, "FLAGS", types.SimpleNamespace(**{"flow": "dis", "flo_dir": None, **good, **bad},
                                                                   full_run=None))
        assert driver.main([]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "root").exists()


def test_a_results_record_names_the_code_before_the_work_and_rows_of_other_code_are_noted(monkeypatch, tmp_path,
                                                                                          capsys):
    """The record was taken after a segment of hours: sources edited meanwhile were recorded as what made the masks.
    A row not asked for whose results other code made dropped out of the table without a word."""
    from maskrnn_tf.experiments import results_records

    code = ["before"]
    monkeypatch.setattr(results_records, "code_fingerprint", lambda package_dir=None: code[0])
    driver, ran = _stand_in_driver(monkeypatch, tmp_path, finetune_steps=0)
    stand_in = driver.run_command

    def edited_meanwhile(args, clock=None, driver=""):
        out = stand_in(args, clock, driver)
        code[0] = "after"  # the sources change while the command runs
        return out

    monkeypatch.setattr(driver, "run_command", edited_meanwhile)
    assert driver.main([]) == 0
    record = json.loads((tmp_path / "root" / "astream" / "results_ft0" / "ablation_record.json").read_text())
    assert record["code"] == "before"
    (tmp_path / "root" / "fstream").mkdir()
    (tmp_path / "root" / "fstream" / "model.keras").write_bytes(b"model")
    monkeypatch.setattr(driver, "_trained_mismatch", lambda run_dir, sets: [])
    driver.FLAGS.variants = ["fstream"]
    capsys.readouterr()
    assert driver.main([]) == 0
    assert "| AStream |" not in (tmp_path / "root" / "ablation.md").read_text()
    out = capsys.readouterr().out
    assert "note: row AStream (0 finetuning steps) left out" in out and "code: made by other" in out
