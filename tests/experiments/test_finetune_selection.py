"""Finetuning selection: candidates parse or are refused by name, each mode's best on the selection split is
chosen, and the driver runs segment and evaluate end to end (reusing, never mixing, results folders)."""
import json
import os
import shutil
import subprocess
import sys

import pytest
from absl import app

from maskrnn_tf.experiments.finetune_comparison import FinetuneRun, read_run
from maskrnn_tf.experiments.finetune_selection import (Candidate, CandidateError, check_segment_flags,
                                                       choose_per_mode, parse_candidate, parse_candidates,
                                                       selection_markdown, trained_on)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _run(label, mode, scores, seconds=None):
    return FinetuneRun(label=label, mode=mode, objects=dict(scores), updates={},
                       finetune_seconds=dict(seconds or {}), segment_seconds={})


def test_candidates_parse_like_a_shell_and_bad_ones_are_refused_by_name():
    assert parse_candidate("static50=--finetune=static --finetune_steps=50") == Candidate(
        "static50", ("--finetune=static", "--finetune_steps=50"))
    assert parse_candidate("rec='--finetune=recurrent'  --finetune_lr=1e-4").segment_args == (
        "--finetune=recurrent", "--finetune_lr=1e-4")
    for text, message in [("--finetune=none", "LABEL=SEGMENT_FLAGS"), ("a b=--finetune=none", "LABEL="),
                          ("x=", "no segment flags"), ("x=finetune=none", "is not a --flag"),
                          ("x=--finetune=none --output=/tmp/o", "--output is set by the driver"),
                          ("x=--nooverwrite", "--nooverwrite is set by the driver"), ("x='--a", "No closing quotation")]:
        with pytest.raises(CandidateError, match=message):
            parse_candidate(text)
    final = parse_candidate("final=--model=runs/x/model.keras --finetune=none")
    assert final.model("runs/x/best") == "runs/x/model.keras" and final.flags_without_model() == ["--finetune=none"]
    assert parse_candidate("b=--finetune=none").model("runs/x/best") == "runs/x/best"
    with pytest.raises(CandidateError, match="--model=PATH"):
        parse_candidate("m=--model runs/x")
    with pytest.raises(CandidateError, match="distinct labels"):
        parse_candidates(["a=--finetune=none", "a=--finetune=static"])


def test_segment_flags_for_every_candidate_cannot_take_the_drivers_place():
    """--segment_flag goes to every segment command after the driver's own flags: a --model there would score
    every candidate with that model while selection.md names --model; --split or --output would mix folders."""
    check_segment_flags(["--max_size=432", "--flow=dis", "--noflip_average"])
    for flag, message in [("--model=runs/x/best", "--model is set by the driver"),
                          ("--split=train", "--split is set by the driver"),
                          ("--output=/tmp/o", "--output is set by the driver"),
                          ("--nooverwrite", "--nooverwrite is set by the driver"),
                          ("max_size=432", "is not a --flag")]:
        with pytest.raises(CandidateError, match=message):
            check_segment_flags([flag])


def test_each_mode_keeps_its_best_candidate_by_j_then_f_and_the_first_of_a_tie():
    runs = [_run("rec_a", "recurrent", {"s_1": (0.50, 0.40)}), _run("none", "none", {"s_1": (0.45, 0.45)}),
            _run("static_a", "static", {"s_1": (0.60, 0.50)}), _run("rec_b", "recurrent", {"s_1": (0.55, 0.30)}),
            _run("static_b", "static", {"s_1": (0.60, 0.55)}), _run("rec_c", "recurrent", {"s_1": (0.55, 0.30)})]
    chosen = choose_per_mode(runs)
    assert list(chosen) == ["none", "static", "recurrent"]
    assert {m: r.label for m, r in chosen.items()} == {"none": "none", "static": "static_b", "recurrent": "rec_b"}


def test_a_candidate_scored_nan_is_never_chosen_over_a_number():
    """evaluate writes NaN for an object with no frame scored: a NaN candidate listed first was kept (NaN compares
    false both ways), and one of only NaN candidates is still each mode's choice (the first)."""
    nan = float("nan")
    runs = [_run("static_nan", "static", {"s_1": (nan, nan)}), _run("static_ok", "static", {"s_1": (0.30, 0.20)}),
            _run("rec_ok", "recurrent", {"s_1": (0.40, 0.30)}), _run("rec_nan", "recurrent", {"s_1": (nan, 0.9)}),
            _run("none_nan", "none", {"s_1": (nan, nan)})]
    assert {m: r.label for m, r in choose_per_mode(runs).items()} == {
        "none": "none_nan", "static": "static_ok", "recurrent": "rec_ok"}


def test_the_tables_put_the_selection_numbers_beside_the_reported_ones():
    select = [_run("none", "none", {"a_1": (0.5, 0.4), "b_1": (0.3, 0.2)}),
              _run("st", "static", {"a_1": (0.7, 0.6), "b_1": (0.5, 0.4)}, {"a": 30.0, "b": 50.0})]
    chosen = choose_per_mode(select)
    report = {"none": _run("none", "none", {"c_1": (0.8, 0.7)})}
    table = selection_markdown(select, chosen, report, "train: a, b", "val")
    lines = table.splitlines()
    assert lines[0] == "## Selection split (train: a, b)"
    assert "| none | none | 40.0 | 30.0 | - | x |" in lines
    assert "| st | static | 60.0 | 50.0 | 40 | x |" in lines
    # The static choice has no reported run yet (an interrupted call): its row says so.
    assert "| none | none | 80.0 | 70.0 | 40.0 | 30.0 | - |" in lines
    assert "| static | st | - | - | 60.0 | 50.0 | - |" in lines
    assert "### Per object, reported split (val)" in lines
    # The floor's runs head both tables and are never chosen, even where they beat every candidate.
    floor = [_run("floor", "floor", {"a_1": (0.9, 0.9), "b_1": (0.9, 0.9)}), _run("floor", "floor", {"c_1": (0.2, 0.1)})]
    lines = selection_markdown(select, chosen, report, "train: a, b", "val", floor).splitlines()
    assert lines[4] == "| floor | floor | 90.0 | 90.0 | - |  |"
    assert "| floor | floor | 20.0 | 10.0 | 90.0 | 90.0 | - |" in lines
    assert lines.index("| floor | floor | 20.0 | 10.0 | 90.0 | 90.0 | - |") < lines.index(
        "| none | none | 80.0 | 70.0 | 40.0 | 30.0 | - |")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """An untrained tiny MaskRNN saved as a run folder (config.json + model.keras), and a synthetic tree of two
    videos with exact flows."""
    import keras

    from maskrnn_tf.demo import write_heldout_davis
    from maskrnn_tf.model import MaskRNN
    from maskrnn_tf.training.config import TrainConfig

    root = tmp_path_factory.mktemp("selection")
    davis = str(root / "davis")
    names = write_heldout_davis(davis, 2, 3_000_000)
    config = TrainConfig().override({"model.width": 0.125, "model.fc_units": 16, "model.side_channels": 4,
                                     "stage_b_steps": 5, "loss.loc_weight": 0.1})
    folder = root / "run"
    folder.mkdir()
    (folder / "config.json").write_text(config.to_json() + "\n")
    keras.utils.set_random_seed(0)
    MaskRNN(config.model).save(str(folder / "model.keras"))
    return str(root / "run"), davis, names


@pytest.mark.slow
def test_the_driver_chooses_on_the_selection_split_and_reports_each_choice_once(tiny_model, tmp_path):
    run, davis, (first, second) = tiny_model
    out = tmp_path / "selection"
    cmd = [sys.executable, "-m", "maskrnn_tf.finetune_selection", f"--model={run}", f"--davis_root={davis}",
           "--select_split=val", f"--select_sequences={first}", "--report_split=val",
           f"--report_sequences={second}", "--segment_flag=--max_size=48", "--segment_flag=--flow=flo",
           f"--segment_flag=--flo_dir={davis}/flow", "--candidate=none=--finetune=none",
           "--candidate=static1=--finetune=static --finetune_steps=1 --finetune_lr=1e-3", f"--output={out}",
           "--nofloor"]  # the floor's two segment runs: the stand-in test after this one
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # Each candidate was scored on the selection sequence only, each mode's choice on the reported one only.
    for label in ("none", "static1"):
        selected = read_run(label, str(out / "select" / label))
        assert selected.objects and all(name.startswith(first + "_") for name in selected.objects)
    record = json.loads((out / "selection.json").read_text())
    assert record["chosen"] == {"none": "none", "static": "static1"} and record["select_sequences"] == [first]
    assert sorted(os.listdir(out / "report")) == ["none", "static1"]
    for label in ("none", "static1"):
        reported = read_run(label, str(out / "report" / label))
        assert reported.objects and all(name.startswith(second + "_") for name in reported.objects)
        assert reported.mode == ("static" if label == "static1" else "none")
    # The reported numbers are evaluate's, read back from the folders the driver wrote.
    table = (out / "selection.md").read_text()
    j, f = read_run("static1", str(out / "report" / "static1")).mean()
    sj, sf = read_run("static1", str(out / "select" / "static1")).mean()
    assert f"| static | static1 | {100 * j:.1f} | {100 * f:.1f} | {100 * sj:.1f} | {100 * sf:.1f} |" in table
    assert done.stdout.count(" maskrnn_tf.segment ") == 4 and done.stdout.count(" maskrnn_tf.evaluate ") == 4

    # A second call reuses every folder (a changed candidate is refused: the stand-in test above).
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "maskrnn_tf.segment" not in again.stdout
    assert (out / "selection.md").read_text() == table


def test_without_selection_sequences_the_driver_refuses_to_run(tiny_model, tmp_path):
    run, davis, _ = tiny_model
    cmd = [sys.executable, "-m", "maskrnn_tf.finetune_selection", f"--model={run}", f"--davis_root={davis}",
           f"--output={tmp_path / 'out'}"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "held no val_sequences out of training" in done.stderr
    assert not (tmp_path / "out").exists()
    bad = subprocess.run(cmd + ["--select_sequences=x", "--candidate=x=--output=y"], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 2 and "--output is set by the driver" in bad.stderr


# Choose on the train split's bear, report on the val split, no floor: the stand-in driver tests' usual splits.
_BEAR_THEN_VAL = dict(select_split="train", select_sequences=["bear"], report_split="val", report_sequences=None,
                      floor=False)


def _stand_in_driver(monkeypatch, tmp_path, j_values, **flags):
    """finetune_selection with stand-in segment and evaluate commands (no TensorFlow): segment writes a folder
    with its segment_run.json, evaluate a per-sequence CSV of `j_values` (object -> J, or folder name -> that;
    F = J / 2). Returns the module, the model and the list of commands run."""
    import types

    from maskrnn_tf import finetune_selection as driver

    model = tmp_path / "model.keras"
    model.write_bytes(b"model")
    ran = []

    def run_command(args, clock=None, driver=""):
        ran.append(args[2])
        folder = next(a.split("=", 1)[1] for a in args if a.startswith(("--output=", "--results=")))
        if args[2] == "maskrnn_tf.segment":
            mode = next((a.split("=", 1)[1] for a in args if a.startswith("--finetune=")), "none")
            os.makedirs(folder)
            (tmp_path / folder / "segment_run.json").write_text(json.dumps({"finetune": mode}))
        else:
            split = next(a.split("=", 1)[1] for a in args if a.startswith("--split="))
            values = j_values.get(os.path.basename(folder), j_values)
            rows = "".join(f"{name},{j:.3f},{j / 2:.3f}\n" for name, j in values.items())
            (tmp_path / folder / f"per-sequence_results-{split}.csv").write_text("Sequence,J-Mean,F-Mean\n" + rows)
        return 0.0

    monkeypatch.setattr(driver, "run_command", run_command)
    monkeypatch.setattr(driver, "_split_problem", lambda *args: "")  # no DAVIS tree: the stand-in reads none
    monkeypatch.setattr(driver, "FLAGS", types.SimpleNamespace(davis_root=str(tmp_path / "davis"), segment_flag=[],
                                                               **flags))
    return driver, str(model), ran


def test_the_floor_runs_on_both_splits_with_the_segment_flags_alone_and_heads_both_tables(monkeypatch, tmp_path):
    """The no-learning floor (segment --method=flow_propagation, with --segment_flag and nothing of a candidate's)
    runs on the selection split's and the reported split's sequences, beside the candidates, from the same flows;
    its rows head both tables and it is never chosen, even above every candidate."""
    out = tmp_path / "out"
    j_values = {"none": {"bear_1": 0.5}, "s1": {"bear_1": 0.6}, "floor": {"bear_1": 0.9}}
    driver, model, ran = _stand_in_driver(
        monkeypatch, tmp_path, j_values, model=str(tmp_path / "model.keras"), output=str(out),
        **dict(_BEAR_THEN_VAL, floor=True, report_sequences=["blackswan"]),
        candidate=["none=--finetune=none", "s1=--finetune=static --finetune_steps=9"])
    driver.FLAGS.segment_flag = ["--flow=flo", "--flo_dir=X"]
    commands = []
    stand_in = driver.run_command
    reported_floor = f"--results={out / 'report' / 'floor'}"

    def run_command(args, **kwargs):
        commands.append(args)
        seconds = stand_in(args, **kwargs)
        if reported_floor in args:  # the reported split's floor scores otherwise than the selection split's
            (out / "report" / "floor" / "per-sequence_results-val.csv").write_text(
                "Sequence,J-Mean,F-Mean\nbear_1,0.300,0.150\n")  # stand-in objects: bear_1 everywhere
        return seconds

    monkeypatch.setattr(driver, "run_command", run_command)
    assert driver.main([]) == 0
    floors = [args for args in commands if args[2] == "maskrnn_tf.segment" and "--method=flow_propagation" in args]
    assert len(floors) == 2
    for args, split, sequences, part in ((floors[0], "train", "bear", "select"),
                                         (floors[1], "val", "blackswan", "report")):
        assert f"--split={split}" in args and f"--sequences={sequences}" in args
        assert f"--output={out / part / 'floor'}" in args
        assert "--flow=flo" in args and "--flo_dir=X" in args
        assert not any(a.startswith("--finetune") for a in args), args
        assert any(f"--results={out / part / 'floor'}" in a for a in next(
            c for c in commands if c[2] == "maskrnn_tf.evaluate" and f"--results={out / part / 'floor'}" in c))
    record = json.loads((out / "selection.json").read_text())
    assert record["chosen"] == {"none": "none", "static": "s1"}
    # Both splits' floors are recorded (keyed by label, as the candidates are, the report's replaced the other).
    assert sorted(record["floor"]) == ["report", "select"]
    assert record["floor"]["select"]["objects"] == {"bear_1": [0.9, 0.45]}
    assert record["floor"]["report"]["objects"] == {"bear_1": [0.3, 0.15]}
    table = (out / "selection.md").read_text().splitlines()
    rows = [line for line in table if line.startswith("| ")]
    assert rows[1].startswith("| floor | floor | 90.0 | 45.0 |"), table
    assert any(line.startswith("| floor | floor | 30.0 | 15.0 | 90.0 | 45.0 |") for line in table), table
    assert sum(line.startswith("| floor | floor |") for line in table) == 2, table
    # A resumed call runs nothing again and does not take the reported floor for an earlier report.
    ran_before = len(commands)
    assert driver.main([]) == 0 and len(commands) == ran_before
    assert (out / "selection.md").read_text().splitlines() == table
    assert "reported earlier" not in "\n".join(table)
    assert [report["candidate"] for report in json.loads((out / "selection.json").read_text())["reports"]] == [
        "none", "s1"]


def test_a_resumed_call_does_not_reuse_scores_changed_since_its_evaluate(monkeypatch, tmp_path):
    driver, model, ran = _stand_in_driver(monkeypatch, tmp_path, {"bear_1": 0.8, "cows_1": 0.4})
    folder = str(tmp_path / "select" / "none")
    score = lambda: driver._segment_and_score("none", ["--finetune=none"], "train", ["bear", "cows"],  # noqa: E731
                                              model, folder)
    assert score().mean() == pytest.approx((0.6, 0.3)) and ran == ["maskrnn_tf.segment", "maskrnn_tf.evaluate"]
    assert score().mean() == pytest.approx((0.6, 0.3)) and len(ran) == 2  # resumed: nothing run again
    # The folder scored since on one sequence only (evaluate --sequences=bear): the driver's own evaluate runs
    # again instead of the mean of one object entering the table as the candidate's.
    csv_path = tmp_path / "select" / "none" / "per-sequence_results-train.csv"
    csv_path.write_text("Sequence,J-Mean,F-Mean\nbear_1,0.800,0.400\n")
    assert score().mean() == pytest.approx((0.6, 0.3)) and ran[2:] == ["maskrnn_tf.evaluate"]
    # Edited by hand (or scored with --all_frames): the same.
    csv_path.write_text("Sequence,J-Mean,F-Mean\nbear_1,0.900,0.400\ncows_1,0.400,0.200\n")
    assert score().mean() == pytest.approx((0.6, 0.3)) and ran[3:] == ["maskrnn_tf.evaluate"]
    # The recorded digest is not part of how the folder was made: a resumed call still reuses it.
    assert score().mean() == pytest.approx((0.6, 0.3)) and len(ran) == 4


def test_a_call_stopped_as_its_segment_shuts_down_after_finishing_resumes_with_that_folder(monkeypatch, tmp_path):
    """Ctrl-C after segment put its finished folder in place but before it exited: the driver stopped without its
    record of the folder, and the rerun its message promised refused the folder ("no record of how it was made")."""
    driver, model, ran = _stand_in_driver(monkeypatch, tmp_path, {"bear_1": 0.8})
    folder = str(tmp_path / "select" / "none")
    score = lambda: driver._segment_and_score("none", ["--finetune=none"], "train", ["bear"], model,  # noqa: E731
                                              folder)
    stand_in = driver.run_command

    def interrupted_after_segment(args, **kwargs):
        stand_in(args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(driver, "run_command", interrupted_after_segment)
    with pytest.raises(KeyboardInterrupt):
        score()
    monkeypatch.setattr(driver, "run_command", stand_in)
    assert score().mean() == pytest.approx((0.8, 0.4)) and ran == ["maskrnn_tf.segment", "maskrnn_tf.evaluate"]
    # Stopped while segmenting (no finished folder): nothing is recorded, the rerun segments.
    other = str(tmp_path / "select" / "other")

    def interrupted_during_segment(args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(driver, "run_command", interrupted_during_segment)
    with pytest.raises(KeyboardInterrupt):
        driver._segment_and_score("other", ["--finetune=none"], "train", ["bear"], model, other)
    assert not os.path.exists(other)


def test_the_record_and_the_tables_are_replaced_together(monkeypatch, tmp_path):
    """selection.json and selection.md were two writes: a kill between them left choices that disagree with the
    tables beside them. Every write puts both in place together (renamed once both are written)."""
    from maskrnn_tf.io import atomic_file

    out = tmp_path / "out"
    driver, model, ran = _stand_in_driver(
        monkeypatch, tmp_path, {"none": {"bear_1": 0.5}, "s1": {"bear_1": 0.6}}, model=str(tmp_path / "model.keras"),
        **_BEAR_THEN_VAL, output=str(out), candidate=["none=--finetune=none", "s1=--finetune=static"])
    groups, group_write = [], atomic_file.atomic_write_group

    def recording(paths, write, suffixes):
        groups.append([os.path.basename(p) for p in paths])
        group_write(paths, write, suffixes)

    monkeypatch.setattr(atomic_file, "atomic_write_group", recording)
    assert driver.main([]) == 0
    assert groups and all(g == ["selection.json", "selection.md"] for g in groups), groups
    record = json.loads((out / "selection.json").read_text())
    assert record["chosen"] == {"none": "none", "static": "s1"}
    assert "| static | s1 |" in (out / "selection.md").read_text()


def test_a_call_stopped_while_reporting_leaves_its_own_record_beside_its_tables(monkeypatch, tmp_path):
    """selection.json is rewritten with selection.md after every reported run: a call stopped while reporting
    (here: a better static candidate added) does not leave an earlier call's choices beside its tables."""
    j_values = {"none": {"bear_1": 0.5}, "s1": {"bear_1": 0.6}, "s2": {"bear_1": 0.7}}
    out = tmp_path / "out"
    driver, model, ran = _stand_in_driver(
        monkeypatch, tmp_path, j_values, model=str(tmp_path / "model.keras"), **_BEAR_THEN_VAL, output=str(out),
        candidate=["none=--finetune=none", "s1=--finetune=static"])
    assert driver.main([]) == 0
    assert json.loads((out / "selection.json").read_text())["chosen"] == {"none": "none", "static": "s1"}
    driver.FLAGS.candidate.append("s2=--finetune=static --finetune_steps=9")
    stand_in = driver.run_command

    def stopped_on_s2_report(args, **kwargs):
        if f"--output={out / 'report' / 's2'}" in args:
            raise SystemExit(143)  # SIGTERM while segmenting
        return stand_in(args, **kwargs)

    monkeypatch.setattr(driver, "run_command", stopped_on_s2_report)
    with pytest.raises(SystemExit):
        driver.main([])
    assert "| static | s2 | - | - | 70.0 | 35.0 | - |" in (out / "selection.md").read_text()
    record = json.loads((out / "selection.json").read_text())
    assert record["chosen"] == {"none": "none", "static": "s2"} and list(record["report"]) == ["none"]
    assert record["report"]["none"]["objects"] == {"bear_1": [0.5, 0.25]}


def test_a_candidates_own_model_is_the_one_it_segments_with_and_a_changed_candidate_is_refused(
        monkeypatch, tmp_path, capsys):
    """A candidate's --model= replaces --model in its segment command (not added beside it) and is what
    selection.json and its folder's record name; a resumed call whose candidate changed its flags refuses that
    candidate's folder, naming the flag, instead of mixing its old scores in."""
    out = tmp_path / "out"
    other = tmp_path / "other.keras"
    other.write_bytes(b"other model")
    driver, model, ran = _stand_in_driver(
        monkeypatch, tmp_path, {"none": {"bear_1": 0.5}, "other": {"bear_1": 0.7}, "s1": {"bear_1": 0.6}},
        model=str(tmp_path / "model.keras"), **_BEAR_THEN_VAL, output=str(out),
        candidate=["none=--finetune=none", f"other=--model={other} --finetune=none",
                   "s1=--finetune=static --finetune_steps=1"])
    stand_in, segments = driver.run_command, {}

    def logged(args, **kwargs):
        if args[2] == "maskrnn_tf.segment":
            folder = next(a.split("=", 1)[1] for a in args if a.startswith("--output="))
            segments[os.path.relpath(folder, out)] = [a for a in args if a.startswith("--model=")]
        return stand_in(args, **kwargs)

    monkeypatch.setattr(driver, "run_command", logged)
    assert driver.main([]) == 0
    assert segments["select/other"] == [f"--model={other}"] and segments["select/none"] == [f"--model={model}"]
    assert segments["report/other"] == [f"--model={other}"] and "report/none" not in segments
    record = json.loads((out / "selection.json").read_text())
    assert record["chosen"] == {"none": "other", "static": "s1"}
    assert record["candidates"]["other"] == {"model": str(other), "segment_flags": ["--finetune=none"]}
    for part in ("select", "report"):
        assert json.loads((out / part / "other" / driver.RECORD).read_text())["model"] == str(other)
    # The same call again runs nothing; a candidate whose flags changed is refused by name, its folder kept.
    segments.clear()
    assert driver.main([]) == 0 and not segments
    kept = (out / "select" / "s1" / driver.RECORD).read_text()
    driver.FLAGS.candidate[-1] = "s1=--finetune=static --finetune_steps=2"
    with pytest.raises(app.UsageError, match=r"s1 was made with other settings .*--finetune_steps=2") as refused:
        driver.main([])
    assert refused.value.exitcode == 2
    assert not segments and (out / "select" / "s1" / driver.RECORD).read_text() == kept


def test_another_models_selection_in_the_output_folder_is_refused(monkeypatch, tmp_path, capsys):
    """A second call with another model (or split) and other candidate labels in the same --output replaced the
    first call's selection.md and selection.json; it is refused, naming what differs. The same settings with more
    candidates still resume the folder."""
    out = tmp_path / "out"
    driver, model, ran = _stand_in_driver(
        monkeypatch, tmp_path, {"bear_1": 0.5}, model=str(tmp_path / "model.keras"), **_BEAR_THEN_VAL,
        output=str(out),
        candidate=["none=--finetune=none"])
    assert driver.main([]) == 0
    first = (out / "selection.md").read_text(), (out / "selection.json").read_text()
    other = tmp_path / "other.keras"
    other.write_bytes(b"other model")
    driver.FLAGS.model, driver.FLAGS.candidate = str(other), ["none2=--finetune=none"]
    capsys.readouterr()
    assert driver.main([]) == 2
    err = capsys.readouterr().err
    assert "records the selection of another model" in err and str(other) in err and "another --output" in err
    assert ((out / "selection.md").read_text(), (out / "selection.json").read_text()) == first
    driver.FLAGS.model, driver.FLAGS.select_sequences = str(tmp_path / "model.keras"), ["cows"]
    assert driver.main([]) == 2 and "select_sequences (['bear'], not ['cows'])" in capsys.readouterr().err
    driver.FLAGS.select_sequences, driver.FLAGS.candidate = ["bear"], ["none=--finetune=none", "s=--finetune=static"]
    assert driver.main([]) == 0  # the same selection, one candidate more


def test_a_selection_md_that_no_selection_json_records_is_not_replaced(monkeypatch, tmp_path, capsys):
    """An --output folder holding someone's selection.md (no selection.json of this driver beside it) had it
    replaced by the driver's tables without a word."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "selection.md").write_text("my notes\n")
    driver, model, ran = _stand_in_driver(
        monkeypatch, tmp_path, {"bear_1": 0.5}, model=str(tmp_path / "model.keras"), **_BEAR_THEN_VAL,
        output=str(out),
        candidate=["none=--finetune=none"])
    assert driver.main([]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'selection.md'}" in err and "no selection.json" in err and "another --output" in err
    assert (out / "selection.md").read_text() == "my notes\n" and not ran
    assert sorted(os.listdir(out)) == ["selection.md"]


def test_a_selection_json_that_is_not_the_drivers_record_is_not_replaced(monkeypatch, tmp_path, capsys):
    """An --output folder holding the user's own selection.json (JSON without the driver's keys) had it replaced
    by the driver's record; it is refused by name, as one that cannot be read, and left as it was."""
    for own in ('{"threshold": 0.5}\n', "[1, 2]\n", "my notes\n"):
        out = tmp_path / f"out{len(own)}"
        out.mkdir()
        (out / "selection.json").write_text(own)
        driver, model, ran = _stand_in_driver(
            monkeypatch, tmp_path, {"bear_1": 0.5}, model=str(tmp_path / "model.keras"), **_BEAR_THEN_VAL,
            output=str(out), candidate=["none=--finetune=none"])
        capsys.readouterr()
        assert driver.main([]) == 2
        err = capsys.readouterr().err
        assert f"{out / 'selection.json'}" in err and "not an earlier call's" in err and "another --output" in err
        assert (out / "selection.json").read_text() == own and not ran
        assert sorted(os.listdir(out)) == ["selection.json"]


def test_the_repositorys_selection_flag_files_name_only_segment_flags():
    """Every `--candidate` of a `*_selection.flags` file parses, and each flag in it is one segment defines (a
    misspelt one would only fail after the candidates before it had run)."""
    import glob

    from absl import flags

    from maskrnn_tf import segment

    segment.define_flags()

    files = sorted(glob.glob(os.path.join(REPO, "*_selection.flags")))
    assert len(files) >= 2, files
    for path in files:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f if line.startswith("--candidate=")]
        candidates = parse_candidates([line[len("--candidate="):] for line in lines])
        assert candidates, path
        for candidate in candidates:
            for arg in candidate.segment_args:
                name = arg[2:].split("=", 1)[0]
                known = name in flags.FLAGS or (name.startswith("no") and name[2:] in flags.FLAGS)
                assert known, (os.path.basename(path), candidate.label, arg)


def test_every_report_of_the_reported_split_stays_recorded_and_shown(monkeypatch, tmp_path, capsys):
    """README: a later call may add candidates to the same --output. An added static candidate that won on the
    selection split was reported on val too, and the static choice reported before (its folder still on disk)
    dropped out of selection.json and selection.md: val seen twice, one report shown. Every report stays."""
    j_values = {"none": {"bear_1": 0.5}, "s50": {"bear_1": 0.6}, "s100": {"bear_1": 0.7}}
    out = tmp_path / "out"
    driver, model, ran = _stand_in_driver(
        monkeypatch, tmp_path, j_values, model=str(tmp_path / "model.keras"), **_BEAR_THEN_VAL, output=str(out),
        candidate=["none=--finetune=none", "s50=--finetune=static --finetune_steps=50"])
    assert driver.main([]) == 0
    assert "reported again" not in capsys.readouterr().err
    driver.FLAGS.candidate.append("s100=--finetune=static --finetune_steps=100")
    assert driver.main([]) == 0
    err = capsys.readouterr().err
    assert "warning: val reported again for mode static: s100" in err and "s50" in err and "report both" in err
    record = json.loads((out / "selection.json").read_text())
    assert record["chosen"] == {"none": "none", "static": "s100"}
    assert [(r["candidate"], r["mode"], r["chosen"], r["J-Mean"], r["F-Mean"]) for r in record["reports"]] == [
        ("none", "none", True, 0.5, 0.25), ("s50", "static", False, 0.6, 0.3), ("s100", "static", True, 0.7, 0.35)]
    table = (out / "selection.md").read_text()
    lines = table.splitlines()
    assert "| static | s100 | 70.0 | 35.0 | 70.0 | 35.0 | - |" in lines
    assert "| static | s50 (reported earlier) | 60.0 | 30.0 | 60.0 | 30.0 | - |" in lines
    per_object = lines[lines.index("### Per object, reported split (val)"):]
    assert any("s50 (reported earlier) J" in line for line in per_object)
    # A resumed call runs nothing again, warns of nothing new and keeps both reports.
    count = len(ran)
    assert driver.main([]) == 0 and len(ran) == count and "reported again" not in capsys.readouterr().err
    assert (out / "selection.md").read_text() == table
    # An output whose selection.json predates the list of reports (report/s50 on disk, unmentioned): shown again.
    del record["reports"]
    (out / "selection.json").write_text(json.dumps(record))
    assert driver.main([]) == 0 and len(ran) == count
    assert "| static | s50 (reported earlier) | 60.0 | 30.0 | 60.0 | 30.0 | - |" in (out / "selection.md").read_text()
    reports = json.loads((out / "selection.json").read_text())["reports"]
    assert sorted((r["candidate"], r["chosen"]) for r in reports) == [("none", True), ("s100", True), ("s50", False)]


def test_a_candidate_made_again_keeps_its_earlier_report_of_the_reported_split(monkeypatch, tmp_path, capsys):
    """A candidate changed after its report is refused until its folders are deleted (the error says so); made
    again, its new report replaced the earlier one in selection.json and selection.md, though val was seen with
    both. The earlier one stays, renamed, and the call warns as for an added candidate."""
    out = tmp_path / "out"
    j_values = {"none": {"bear_1": 0.5}, "s1": {"bear_1": 0.6}}
    driver, model, ran = _stand_in_driver(
        monkeypatch, tmp_path, j_values, model=str(tmp_path / "model.keras"), **_BEAR_THEN_VAL, output=str(out),
        candidate=["none=--finetune=none", "s1=--finetune=static --finetune_steps=50"])
    assert driver.main([]) == 0
    driver.FLAGS.candidate[1] = "s1=--finetune=static --finetune_steps=100"
    with pytest.raises(app.UsageError, match="delete it"):
        driver.main([])
    for part in ("select", "report"):
        shutil.rmtree(out / part / "s1")
    j_values["s1"] = {"bear_1": 0.7}
    capsys.readouterr()
    assert driver.main([]) == 0
    err = capsys.readouterr().err
    assert "warning: val reported again for mode static: s1" in err and "after s1's earlier report" in err
    reports = json.loads((out / "selection.json").read_text())["reports"]
    assert [(r["candidate"], r["chosen"], r["J-Mean"]) for r in reports] == [
        ("none", True, 0.5), ("s1 #1", False, 0.6), ("s1", True, 0.7)]
    lines = (out / "selection.md").read_text().splitlines()
    assert "| static | s1 | 70.0 | 35.0 | 70.0 | 35.0 | - |" in lines
    # Its selection numbers went with its deleted folder.
    assert "| static | s1 #1 (reported earlier) | 60.0 | 30.0 | - | - | - |" in lines, lines
    # Resumed: nothing run again, both reports kept as they were.
    count, table = len(ran), (out / "selection.md").read_text()
    assert driver.main([]) == 0 and len(ran) == count and (out / "selection.md").read_text() == table
    # Reports recorded by an earlier version (without the means; other fields than the scores differing) are
    # their folders' reports, not made again.
    record = json.loads((out / "selection.json").read_text())
    for entry in record["reports"]:
        entry["run"].pop("means")
        if entry["candidate"] != "s1 #1":  # the others are read from their folders
            entry["run"]["segment_seconds"] = {"bear": 1.0}
    (out / "selection.json").write_text(json.dumps(record))
    assert driver.main([]) == 0 and len(ran) == count and (out / "selection.md").read_text() == table
    # Its report folder alone deleted, made again with the same scores: one report, so no warning of two.
    shutil.rmtree(out / "report" / "s1")
    capsys.readouterr()
    assert driver.main([]) == 0 and ran[count:] == ["maskrnn_tf.segment", "maskrnn_tf.evaluate"]
    assert "reported again" not in capsys.readouterr().err
    assert (out / "selection.md").read_text() == table


def test_a_selection_split_overlapping_the_reported_one_is_refused(monkeypatch, tmp_path, capsys):
    """Choosing on sequences that are also reported is no held-out selection: the same split with all of it
    reported, or with sequences in both lists, is refused naming the flags; other sequences of one split are not."""
    for reported in (None, ["cows", "bear"]):
        out = tmp_path / "out"
        driver, model, ran = _stand_in_driver(
            monkeypatch, tmp_path, {"bear_1": 0.5}, model=str(tmp_path / "model.keras"), select_split="val",
            select_sequences=["bear"], report_split="val", report_sequences=reported, floor=False, output=str(out),
            candidate=["none=--finetune=none"])
        assert driver.main([]) == 2
        err = capsys.readouterr().err
        for name in ("--select_split", "--report_split", "--select_sequences", "--report_sequences", "bear"):
            assert name in err, (reported, err)
        assert not ran and not out.exists()
    driver.FLAGS.report_sequences = ["cows"]
    assert driver.main([]) == 0


def test_a_selection_overlapping_the_reported_sequences_of_another_split_is_refused(monkeypatch, tmp_path, capsys,
                                                                                   shared_data):
    """The check compared split names only: chosen on trainval's blackswan and car-shadow, the candidates were then
    reported on val, which holds both (and a selection on train reported on trainval the same)."""
    davis = os.path.join(shared_data, "DAVIS-2016")
    cases = [("trainval", ["blackswan", "car-shadow"], "val", None, "blackswan, car-shadow"),
             ("train", ["dog-agility", "car-turn"], "trainval", None, "car-turn, dog-agility"),
             ("trainval", ["libby"], "val", ["blackswan", "libby"], "libby")]
    for select_split, select, report_split, reported, shared in cases:
        out = tmp_path / "out"
        driver, model, ran = _stand_in_driver(
            monkeypatch, tmp_path, {"bear_1": 0.5}, model=str(tmp_path / "model.keras"), select_split=select_split,
            select_sequences=select, report_split=report_split, report_sequences=reported, floor=False,
            output=str(out), candidate=["none=--finetune=none"])
        driver.FLAGS.davis_root = davis
        assert driver.main([]) == 2, (select_split, report_split)
        err = capsys.readouterr().err
        assert f"the reported sequences ({report_split}) include {shared}" in err, err
        assert not ran and not out.exists()
    # Held out across splits: runs.
    driver.FLAGS.select_split, driver.FLAGS.select_sequences = "train", ["dog-agility"]
    driver.FLAGS.report_split, driver.FLAGS.report_sequences = "val", None
    assert driver.main([]) == 0


# The four train sequences davis16_cpu_prior.flags holds out of training (README).
_HELD = ["dog-agility", "car-turn", "mallard-water", "motocross-bumps"]


def _fake_run(folder, val_sequences, dataset="davis16", init_checkpoint=None):
    """A run folder (or best/) with a config.json holding `val_sequences` out (started from `init_checkpoint`,
    another run's weights, when given) and a stand-in model.keras."""
    folder.mkdir(parents=True)
    config = {"data": {"dataset": dataset, "val_sequences": val_sequences}, "init_checkpoint": init_checkpoint}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.keras").write_bytes(b"model")
    return str(folder)


def test_a_run_trained_on_its_train_split_less_what_it_held_out():
    davis = {"data": {"dataset": "davis16", "val_sequences": ["car-turn"]}}
    train = ["bus", "car-turn", "dog-agility"]
    assert trained_on(davis, ["car-turn", "bus", "libby"], train) == ["bus"]  # libby: not a train sequence
    # The train split unread, or a config that names no dataset: only what the run held out is held out.
    assert trained_on(davis, ["car-turn", "bus", "libby"], None) == ["bus", "libby"]
    assert trained_on({"data": {"val_sequences": []}}, ["bus"], train) == ["bus"]
    assert trained_on({}, ["bus"], train) == ["bus"]
    # Procedural videos only: no DAVIS sequence was trained on.
    assert trained_on({"data": {"dataset": "synthetic_vos", "val_sequences": []}}, ["bus"], train) == []


def test_a_candidates_model_that_trained_on_the_selection_sequences_is_refused(monkeypatch, tmp_path, capsys,
                                                                              shared_data):
    """The selection sequences come from --model's run; a candidate's own --model= (or an --ensemble_models member)
    from a run that trained on them was scored on them all the same, and could be chosen on its training data."""
    run_a = _fake_run(tmp_path / "runA" / "best", _HELD)
    run_b = _fake_run(tmp_path / "runB", [])
    run_c = _fake_run(tmp_path / "runC", list(reversed(_HELD)))
    out = tmp_path / "out"
    cases = [([f"other_run=--model={run_b} --finetune=none"], [], "--candidate other_run"),
             ([f"ens=--finetune=none --ensemble_models={run_c},{run_b}"], [], "--candidate ens"),
             ([], [f"--ensemble_models={run_b}"], "--candidate none")]
    for extra, segment_flags, who in cases:
        driver, _, ran = _stand_in_driver(
            monkeypatch, tmp_path, {"dog-agility_1": 0.5}, model=run_a, select_split="train", select_sequences=None,
            report_split="val", report_sequences=None, floor=False, output=str(out),
            candidate=["none=--finetune=none", *extra])
        driver.FLAGS.davis_root, driver.FLAGS.segment_flag = os.path.join(shared_data, "DAVIS-2016"), segment_flags
        assert driver.main([]) == 2, who
        err = capsys.readouterr().err
        assert who in err and run_b in err and "car-turn, dog-agility, mallard-water, motocross-bumps" in err, err
        assert not ran and not out.exists()
    # An explicit --select_sequences that --model's own run trained on: the same.
    driver, _, ran = _stand_in_driver(
        monkeypatch, tmp_path, {"bus_1": 0.5}, model=run_b, select_split="train", select_sequences=["bus"],
        report_split="val", report_sequences=None, floor=False, output=str(out), candidate=["none=--finetune=none"])
    driver.FLAGS.davis_root = os.path.join(shared_data, "DAVIS-2016")
    assert driver.main([]) == 2
    err = capsys.readouterr().err
    assert "error: --model: " in err and run_b in err and "trained on selection sequences: bus" in err
    assert not ran and not out.exists()
    # Runs that held them out, one that trained on synthetic videos only, and a model without a run (warned:
    # unchecked) are taken.
    synthetic = _fake_run(tmp_path / "synthetic", [], dataset="synthetic_vos")
    bare = tmp_path / "bare.keras"
    bare.write_bytes(b"bare")
    driver, _, ran = _stand_in_driver(
        monkeypatch, tmp_path, {"dog-agility_1": 0.5}, model=run_a, select_split="train", select_sequences=None,
        report_split="val", report_sequences=None, floor=False, output=str(out),
        candidate=["none=--finetune=none", f"ens=--finetune=none --ensemble_models={run_c},{synthetic}",
                   f"bare=--model={bare} --finetune=none"])
    driver.FLAGS.davis_root = os.path.join(shared_data, "DAVIS-2016")
    assert driver.main([]) == 0
    err = capsys.readouterr().err
    assert "warning: --candidate bare" in err and str(bare) in err and "could not check" in err
    assert run_c not in err and synthetic not in err


def test_a_misspelt_segment_flag_is_refused_before_any_candidate_runs(monkeypatch, tmp_path, capsys):
    """A flag segment does not define (or a value its parser refuses) reached segment only when its candidate ran,
    after the candidates before it, and the driver then exited 1."""
    out = tmp_path / "out"
    cases = [(["typo=--finetune=static --finetune_stepz=50"], [], ["--candidate typo", "finetune_stepz"]),
             (["enum=--finetune=statc"], [], ["--candidate enum", "statc"]),
             ([], ["--max_sise=432"], ["--segment_flag", "max_sise"])]
    for extra, segment_flags, names in cases:
        driver, _, ran = _stand_in_driver(
            monkeypatch, tmp_path, {"bear_1": 0.5}, model=str(tmp_path / "model.keras"), **_BEAR_THEN_VAL,
            output=str(out), candidate=["none=--finetune=none", *extra])
        driver.FLAGS.segment_flag = segment_flags
        assert driver.main([]) == 2, names
        err = capsys.readouterr().err
        assert all(name in err for name in names), err
        assert not ran and not out.exists()


def test_the_driver_exits_2_on_a_misspelt_candidate_flag_without_segmenting(tmp_path, shared_data):
    model = tmp_path / "model.keras"
    model.write_bytes(b"model")
    cmd = [sys.executable, "-m", "maskrnn_tf.finetune_selection", f"--model={model}",
           f"--davis_root={os.path.join(shared_data, 'DAVIS-2016')}", "--select_sequences=dog-agility", "--nofloor",
           "--candidate=typo=--finetune=static --finetune_stepz=50", "--candidate=none=--finetune=none",
           f"--output={tmp_path / 'out'}"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "finetune_stepz" in done.stderr and "--candidate typo" in done.stderr, done.stderr
    assert "maskrnn_tf.segment" not in done.stdout and not (tmp_path / "out").exists()


def _refused_before_running(driver, ran, out, capsys) -> str:
    """main's stderr, after checking that it exited 2 with nothing run and nothing written."""
    assert driver.main([]) == 2
    err = capsys.readouterr().err
    assert not ran and not out.exists(), err
    return err


def _refused_cases(monkeypatch, tmp_path, capsys, first: str, cases) -> list:
    """For each (--segment_flag list, candidates, names) case, with candidate `first` before the case's: main
    refuses with nothing run and every name in its stderr. Returns the stderrs."""
    errs = []
    for segment_flags, candidates, names in cases:
        driver, _, ran = _stand_in_driver(
            monkeypatch, tmp_path, {"bear_1": 0.5}, model=str(tmp_path / "model.keras"),
            **dict(_BEAR_THEN_VAL, floor=True), output=str(tmp_path / "out"), candidate=[first, *candidates])
        driver.FLAGS.segment_flag = segment_flags
        errs.append(_refused_before_running(driver, ran, tmp_path / "out", capsys))
        assert all(name in errs[-1] for name in names), (names, errs[-1])
    return errs


def test_flags_segment_refuses_only_in_pairs_are_refused_before_any_candidate_runs(monkeypatch, tmp_path, capsys):
    """segment refuses --flo_dir without --flow=flo and --probs_format without --save_probs in its main, after its
    parser: the --only_check_args pre-check passed them, and the driver stopped (exit 1) when that candidate ran,
    after the candidates before it. Each flag's last value across --segment_flag and the candidate's own counts."""
    out = tmp_path / "out"
    cases = [([], ["f=--finetune=none --flo_dir=X"], ["--candidate f", "--flo_dir", "--flow=flo", "--flow=dis"]),
             (["--flow=flo"], ["f=--finetune=none --flo_dir=X --flow=dis"], ["--candidate f", "--flow=dis"]),
             ([], ["p=--finetune=none --probs_format=png"], ["--candidate p", "--probs_format", "--save_probs"]),
             ([], ["p=--save_probs --probs_format=png --nosave_probs"], ["--candidate p", "--probs_format"]),
             # The floor segments with --segment_flag alone (and --method=flow_propagation).
             (["--flo_dir=X"], ["f=--flow=flo"], ["--segment_flag", "floor", "--flo_dir"])]
    for err in _refused_cases(monkeypatch, tmp_path, capsys, "none=--flow=flo --flo_dir=X", cases):
        assert err.rstrip().endswith(".") and "none" not in err.split("error: ", 1)[1].split(":", 1)[0], err
    # Paired across --segment_flag and the candidate's flags: taken.
    driver, _, ran = _stand_in_driver(
        monkeypatch, tmp_path, {"bear_1": 0.5}, model=str(tmp_path / "model.keras"), **_BEAR_THEN_VAL,
        output=str(out),
        candidate=["f=--finetune=none --flo_dir=X", "p=--finetune=none --probs_format=png --flo_dir=X"])
    driver.FLAGS.segment_flag = ["--flow=flo", "--save_probs"]
    assert driver.main([]) == 0 and ran


def test_commands_segment_refuses_as_a_whole_and_unreadable_splits_are_refused_before_any_runs(
        monkeypatch, tmp_path, capsys, shared_data):
    """Found only when a command ran: an ensemble member in --segment_flag, which the floor cannot take (after every
    candidate), --flow_cache_dir beside a candidate's --flow=flo, an unknown --flow, a misspelt --report_split (after
    every candidate). Each command is checked as it will run (segment --check_flags), the splits' lists read."""
    from maskrnn_tf import finetune_selection

    split_problem = finetune_selection._split_problem
    out = tmp_path / "out"
    member = tmp_path / "member.keras"
    member.write_bytes(b"member")
    cases = [([f"--ensemble_models={member}"], [], ["--segment_flag", "floor", "--ensemble_models"]),
             (["--flow_cache_dir=~/cache"], ["c=--flow=flo --flo_dir=X"], ["--candidate c", "--flow_cache_dir"]),
             (["--flow=raft"], [], ["--flow", "raft", "must be one of dis"])]
    _refused_cases(monkeypatch, tmp_path, capsys, "none=--finetune=none", cases)
    davis = os.path.join(shared_data, "DAVIS-2016")
    for report_split, report_sequences, names in (("vall", None, ["--report_split", "'vall'", "cannot be read"]),
                                                  ("val", ["blackswan", "blakswan"], ["--report_sequences",
                                                                                      "blakswan not in"])):
        driver, _, ran = _stand_in_driver(
            monkeypatch, tmp_path, {"bear_1": 0.5}, model=str(tmp_path / "model.keras"),
            **dict(_BEAR_THEN_VAL, select_sequences=["dog-agility"], report_split=report_split,
                   report_sequences=report_sequences), output=str(out), candidate=["none=--finetune=none"])
        monkeypatch.setattr(driver, "_split_problem", split_problem)
        driver.FLAGS.davis_root = davis
        err = _refused_before_running(driver, ran, out, capsys)
        assert all(name in err for name in names), (names, err)


def test_a_run_started_from_another_runs_weights_counts_what_that_run_trained_on(monkeypatch, tmp_path, capsys,
                                                                                 shared_data):
    """A run holding the selection sequences out but started (init_checkpoint) from a run that trained on them was
    taken: its weights had seen them. The starting run is followed (through chains) and named; one whose
    config.json cannot be read is warned of, as a model without config.json is."""
    rall = _fake_run(tmp_path / "rall", [])
    rinit = _fake_run(tmp_path / "rinit", ["dog-agility"], init_checkpoint=f"{rall}/checkpoints/ckpt-120")
    rchain = _fake_run(tmp_path / "rchain", ["dog-agility"], init_checkpoint=f"{rinit}/stage_a")
    rheld = _fake_run(tmp_path / "rheld", ["dog-agility", "bus"])
    rgood = _fake_run(tmp_path / "rgood", ["dog-agility"], init_checkpoint=f"{rheld}/checkpoints")
    rlost = _fake_run(tmp_path / "rlost", ["dog-agility"], init_checkpoint=str(tmp_path / "gone" / "ckpt-5"))
    out = tmp_path / "out"

    def driver_for(model):
        driver, _, ran = _stand_in_driver(
            monkeypatch, tmp_path, {"dog-agility_1": 0.5}, model=model, select_split="train", select_sequences=None,
            report_split="val", report_sequences=None, floor=False, output=str(out / os.path.basename(model)),
            candidate=["none=--finetune=none"])
        driver.FLAGS.davis_root = os.path.join(shared_data, "DAVIS-2016")
        return driver, ran

    for model in (rinit, rchain):
        driver, ran = driver_for(model)
        err = _refused_before_running(driver, ran, out, capsys)
        assert "error: --model: " in err and model in err and rall in err and "dog-agility" in err, err
        assert "init_checkpoint" in err and err.rstrip().endswith("."), err
    driver, ran = driver_for(rgood)
    assert driver.main([]) == 0 and "warning" not in capsys.readouterr().err
    driver, ran = driver_for(rlost)
    assert driver.main([]) == 0
    err = capsys.readouterr().err
    assert "warning: --model: " in err and str(tmp_path / "gone" / "ckpt-5") in err and "could not check" in err, err


def _fake_davis17(root, train, davis16_train):
    """A DAVIS-2017 tree as the official archive lays it out: ImageSets/2017/{train,val}.txt (frames and a
    first mask for each train sequence) and DAVIS-2016's splits by name in ImageSets/2016/ (when given)."""
    import numpy as np

    from maskrnn_tf.io import write_palette_png

    for name in train:
        (root / "JPEGImages" / "480p" / name).mkdir(parents=True)
        (root / "JPEGImages" / "480p" / name / "00000.jpg").write_bytes(b"jpg")
        (root / "Annotations" / "480p" / name).mkdir(parents=True)
        write_palette_png(root / "Annotations" / "480p" / name / "00000.png", np.ones((4, 4), np.uint8))
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "train.txt").write_text("\n".join(train) + "\n")
    (root / "ImageSets" / "2017" / "val.txt").write_text("")
    if davis16_train is not None:
        (root / "ImageSets" / "2016").mkdir(parents=True)
        (root / "ImageSets" / "2016" / "train.txt").write_text("\n".join(davis16_train) + "\n")
    return str(root)


def test_a_run_is_checked_against_the_train_split_of_its_own_dataset(monkeypatch, tmp_path, capsys, shared_data):
    """The check compared with the train split of --davis_root: a davis16 run used with a DAVIS-2017 root was
    refused for a 2017-only train sequence it never saw. The run's dataset gives the year; when --davis_root holds
    no train list of that year, --davis_root's own is used and the message says so."""
    run16 = _fake_run(tmp_path / "run16", ["dog-agility"])
    out = tmp_path / "out"
    davis17 = _fake_davis17(tmp_path / "DAVIS-2017", ["dog-agility", "bike-packing", "bus"], ["dog-agility", "bus"])
    driver, _, _ = _stand_in_driver(
        monkeypatch, tmp_path, {"dog-agility_1": 0.5}, model=run16, select_split="train",
        select_sequences=["dog-agility", "bike-packing"], report_split="val", report_sequences=None, floor=False,
        output=str(tmp_path / "taken"), candidate=["none=--finetune=none"])
    driver.FLAGS.davis_root = davis17
    assert driver.main([]) == 0, capsys.readouterr().err
    driver.FLAGS.output = str(out)
    # A sequence of DAVIS-2016's train split that the run did not hold out is still refused.
    driver.FLAGS.select_sequences = ["bike-packing", "bus"]
    err = _refused_before_running(driver, [], out, capsys)
    assert "trained on selection sequences: bus" in err and "bike-packing" not in err, err
    # No DAVIS-2016 list in the root: its own (2017) train list, as before, and the message says so.
    bare17 = _fake_davis17(tmp_path / "bare" / "DAVIS-2017", ["dog-agility", "bike-packing"], None)
    driver.FLAGS.davis_root, driver.FLAGS.select_sequences = bare17, ["dog-agility", "bike-packing"]
    err = _refused_before_running(driver, [], out, capsys)
    assert "trained on selection sequences: bike-packing" in err and "DAVIS-2016" in err, err
    assert "train split of --davis_root" in err, err
    # A davis17 run with the DAVIS-2016 root: the same fallback, named.
    run17 = _fake_run(tmp_path / "run17", ["dog-agility"], dataset="davis17")
    driver.FLAGS.model, driver.FLAGS.davis_root = run17, os.path.join(shared_data, "DAVIS-2016")
    driver.FLAGS.select_sequences = ["dog-agility", "bus"]
    err = _refused_before_running(driver, [], out, capsys)
    assert "trained on selection sequences: bus" in err and "DAVIS-2017" in err, err


def test_segments_errors_name_the_flag_at_fault_and_help_flags_are_refused(monkeypatch, tmp_path, capsys):
    """--only_check_args was appended after the candidate's flags: a trailing flag without its value took it as
    the value (the message named only_check_args; for a string flag segment ran its main and its usage text was
    printed as the problem); a help flag exited 1 without a message ("it exited with status 1 Fix ...")."""
    out = tmp_path / "out"
    for candidate, names in [("t=--finetune=static --finetune_steps", ["--candidate t", "finetune_steps"]),
                             ("s=--finetune=none --flo_dir", ["--candidate s", "flo_dir"])]:
        driver, _, ran = _stand_in_driver(
            monkeypatch, tmp_path, {"bear_1": 0.5}, model=str(tmp_path / "model.keras"), **_BEAR_THEN_VAL,
            output=str(out), candidate=["none=--finetune=none", candidate])
        err = _refused_before_running(driver, ran, out, capsys)
        assert all(name in err for name in names) and "only_check_args" not in err, err
        assert len(err.strip().splitlines()) == 1 and err.rstrip().endswith("."), err
    for flag in ("--helpshort", "--helpfull", "--help", "--only_check_args"):
        with pytest.raises(CandidateError, match=f"{flag} .*not a segment setting"):
            parse_candidate(f"h=--finetune=none {flag}")
        with pytest.raises(CandidateError, match=f"{flag} .*not a segment setting"):
            check_segment_flags([flag])
    driver, _, ran = _stand_in_driver(
        monkeypatch, tmp_path, {"bear_1": 0.5}, model=str(tmp_path / "model.keras"), **_BEAR_THEN_VAL,
        output=str(out), candidate=["h=--finetune=none --helpshort"])
    err = _refused_before_running(driver, ran, out, capsys)
    assert "--helpshort" in err and "exited with status" not in err and err.rstrip().endswith("."), err


def test_segments_refusal_is_read_as_its_error_lines_ending_with_a_full_stop():
    """The problem shown is segment's error line(s), never its usage text, ending as a sentence."""
    from maskrnn_tf.experiments.finetune_selection import segment_error_text

    assert segment_error_text("", 1) == "it exited with status 1 without a message."
    assert segment_error_text("error: Missing value for flag --x\nPass --helpshort or --helpfull to see help on "
                              "flags.\n", 2) == "Missing value for flag --x."
    usage = "Segments a video.\n\nflags:\n  --max_size: Process frames.\n\n--output is required.\n"
    assert segment_error_text(usage, 2) == "--output is required."
    assert segment_error_text("error: \n  first\n  second\nPass --helpshort", 2) == "first second."
    assert segment_error_text("error: Did you mean: x ?\n", 2) == "Did you mean: x ?"


def test_the_drivers_end_a_ctrl_c_in_one_line_with_exit_130(capsys):
    """finetune_selection and ablation stop their running command on Ctrl-C and passed the KeyboardInterrupt on as a
    traceback; their entry points end it with one line saying how to resume (exit 130, as a shell's Ctrl-C)."""
    import inspect

    from maskrnn_tf import ablation, demo, finetune_selection
    from maskrnn_tf.experiments.commands import exit_quietly_when_interrupted

    def interrupted(argv):
        raise KeyboardInterrupt

    assert exit_quietly_when_interrupted(interrupted, "finetune_selection")([]) == 130
    err = capsys.readouterr().err
    assert err.startswith("finetune_selection: interrupted; ") and "Rerun the same command to resume" in err
    assert err.count("\n") == 1
    assert exit_quietly_when_interrupted(lambda argv: 0, "ablation")([]) == 0
    for module in (finetune_selection, ablation, demo):
        name = module.__name__.rsplit(".", 1)[1]
        assert f'exit_quietly_when_interrupted(main, "{name}")' in inspect.getsource(module), name


def test_the_driver_reads_the_runs_configs_without_tensorflow(tmp_path):
    """The driver read every model's config.json through inference.model_loading, which imports TensorFlow: 600 MB
    held for the whole call beside the segment commands, and TensorFlow's start-up lines on every call."""
    import subprocess
    import sys

    run = tmp_path / "run"
    (run / "best").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"data": {"dataset": "davis2016",
                                                          "val_sequences": ["dog-agility", "car-turn"]}}))
    (run / "best" / "config.json").write_text((run / "config.json").read_text())
    script = (
        "import sys, types\n"
        "from maskrnn_tf import finetune_selection as d\n"
        "from maskrnn_tf.experiments.finetune_selection import parse_candidates\n"
        f"d.FLAGS = types.SimpleNamespace(select_sequences=None, segment_flag=[], davis_root={str(tmp_path)!r})\n"
        f"model = {str(run / 'best')!r}\n"
        "assert d._select_sequences(model) == ['dog-agility', 'car-turn'], d._select_sequences(model)\n"
        "d._trained_on_selection(model, parse_candidates(['none=--finetune=none']), ['dog-agility'])\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


def test_the_split_check_reads_the_list_as_segment_does_and_check_flags_is_the_drivers(tmp_path, monkeypatch):
    """The split check opened every listed sequence (a partial tree whose list names a sequence not unpacked was
    refused, though segment reads only the chosen ones) and ignored a --davis_year in --segment_flag (a DAVIS-2016
    tree beside a DAVIS-2017 one was read). --check_flags in a candidate made its command segment nothing."""
    import types

    from maskrnn_tf import finetune_selection as driver
    from maskrnn_tf.experiments.finetune_selection import CandidateError, check_segment_flags, parse_candidates

    davis17 = tmp_path / "both" / "DAVIS-2017"
    (davis17 / "ImageSets" / "2017").mkdir(parents=True)
    (davis17 / "ImageSets" / "2017" / "train.txt").write_text("a\nb\nmissing\n")
    for name in ("a", "b"):
        (davis17 / "JPEGImages" / "480p" / name).mkdir(parents=True)
    davis16 = tmp_path / "both" / "DAVIS-2016"
    (davis16 / "ImageSets" / "480p").mkdir(parents=True)
    (davis16 / "ImageSets" / "480p" / "train.txt").write_text(
        "/JPEGImages/480p/old/00000.jpg /Annotations/480p/old/00000.png\n")
    (davis16 / "JPEGImages" / "480p" / "old").mkdir(parents=True)
    monkeypatch.setattr(driver, "FLAGS", types.SimpleNamespace(davis_root=str(davis17), segment_flag=[]))
    assert driver._split_problem("train", ["a", "b"], "--select_sequences") == ""
    assert "c not in the 'train' split" in driver._split_problem("train", ["c"], "--select_sequences")
    monkeypatch.setattr(driver, "FLAGS", types.SimpleNamespace(davis_root=str(tmp_path / "both"),
                                                               segment_flag=["--davis_year=2017"]))
    assert driver._split_problem("train", ["a", "b"], "--select_sequences") == ""
    driver.FLAGS.segment_flag = ["--davis_year=2016"]
    assert driver._split_problem("train", ["old"], "--select_sequences") == ""
    for flag in ("--check_flags", "--nocheck_flags"):
        with pytest.raises(CandidateError, match="the driver's own check"):
            parse_candidates([f"b=--finetune=none {flag}"])
        with pytest.raises(CandidateError, match="the driver's own check"):
            check_segment_flags([flag])
