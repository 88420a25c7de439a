"""Every benchmark option is checked when the command line is parsed: a bad value stops with exit 2 naming the option,
before a model is built, a server started or a file written (it crashed after that work, or timed less than asked)."""
import importlib
import os
import subprocess
import sys

import pytest

import bench.__main__ as bench_main

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")  # as tests/conftest.py finds it
DAVIS16 = os.path.join(SHARED_DATA, "DAVIS-2016")
MISSING = "{tmp}/no-such-folder"  # under the test's tmp_path: a check that let it through must not create it there


@pytest.mark.slow
@pytest.mark.parametrize("argv, flag", [
    (["iterator_teardown", "--trials", "0"], "--trials"),
    (["serving", "--width", "0.125", "--height", "64", "--frame_width", "96", "--objects", "1", "--frames", "1"],
     "--frames"),
], ids=["iterator_teardown --trials 0", "serving --frames 1"])
def test_the_reported_commands_stop_with_exit_2_and_create_nothing(tmp_path, argv, flag):
    """`iterator_teardown --trials 0` ended in a ValueError (the mean of no trials) and `serving --frames 1` exported
    a model and started a server before a StatisticsError (no median of no frames), both exit 1."""
    temp, rows = tmp_path / "tmp", tmp_path / "rows.json"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", "bench", *argv, "--json", str(rows)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"argument {flag}" in proc.stderr
    assert list(temp.iterdir()) == [] and not rows.exists()  # no export, no server's files, no rows


BAD_ARGUMENTS = [
    # serving: --frames is split into two alternated halves, so it is even and at least 2.
    (["serving", "--frames", "0"], "--frames"),
    (["serving", "--frames", "7"], "--frames"),
    (["serving", "--width", "0"], "--width"),
    (["serving", "--height", "16"], "--height"),
    (["serving", "--frame_width", "16"], "--frame_width"),
    (["serving", "--objects", "0"], "--objects"),
    (["iterator_teardown", "--seconds", "0"], "--seconds"),
    (["iterator_teardown", "--size", "8"], "--size"),
    (["pipeline", "--clips", "0"], "--clips"),
    (["pipeline", "--clip_length", "1"], "--clip_length"),
    (["pipeline", "--backend", "flo"], "--backend"),
    (["pipeline", "--cache_dir", "{tmp}/a-file"], "--cache_dir"),
    (["pipeline", "--davis_root", MISSING], "--davis_root"),
    (["pipeline", "--davis_root", DAVIS16, "--sequences", "blackswan,no-such-sequence"], "--sequences"),
    (["segment", "--frames", "1"], "--frames"),
    (["segment", "--repeats", "0"], "--repeats"),
    (["segment", "--model_width", "nan"], "--model_width"),
    (["segment", "--fc_units", "0"], "--fc_units"),
    (["segment", "--flow", "dis-slow"], "--flow"),
    (["segment", "--davis_root", MISSING], "--davis_root"),
    (["segment", "--davis_root", DAVIS16, "--sequence", "no-such-sequence"], "--sequence"),
    (["finetune", "--precision", "float64"], "--precision"),
    (["finetune", "--crops", "0,-1"], "--crops"),
    (["finetune", "--crops", "0,x"], "--crops"),
    (["finetune", "--max_size", "16"], "--max_size"),
    (["finetune", "--clip_length", "1"], "--clip_length"),
    (["finetune", "--model_width", "0"], "--model_width"),
    (["finetune", "--fc_units", "0"], "--fc_units"),
    (["finetune", "--dream_flows", "exact,flo"], "--dream_flows"),
    (["finetune", "--davis_root", DAVIS16, "--sequence", "no-such-sequence"], "--sequence"),
    (["evaluate", "--davis_root", MISSING], "--davis_root"),
    (["evaluate", "--davis_root", DAVIS16, "--split", "no-such-split"], "--split"),
    (["grey_blends", "--maps", "0"], "--maps"),
    (["grey_blends", "--seed", "-1"], "--seed"),
    (["grey_blends", "--davis17_root", "{tmp}"], "--davis17_root"),  # no tennis annotations there
    (["dream_motion", "--every", "0"], "--every"),
    (["dream_motion", "--speeds", "1,0"], "--speeds"),
    (["dream_motion", "--clip_length", "1"], "--clip_length"),
    (["dream_motion", "--flow_cache_dir", "{tmp}/a-file/flow"], "--flow_cache_dir"),
    (["dream_motion", "--davis_root", MISSING], "--davis_root"),
    (["dream_motion", "--davis_root", DAVIS16, "--flow_cache_dir", "{tmp}/flow", "--exclude", "no-such-sequence"],
     "--exclude"),  # (a --flow_cache_dir here: the parse ends, and the default one is not looked at)
    (["train_step", "--jit", "yes"], "--jit"),
    (["model_step", "--height", "16"], "--height"),
    (["model_step", "--json", "{tmp}/a-file/rows.json"], "--json"),  # a file where a folder would be made
    (["model_step", "--json", "{tmp}"], "--json"),
]


@pytest.mark.parametrize("argv, flag", BAD_ARGUMENTS,
                         ids=[" ".join(argv).replace(SHARED_DATA, "") for argv, _ in BAD_ARGUMENTS])
def test_a_bad_option_stops_with_exit_2_naming_it_before_the_benchmark_runs(monkeypatch, capsys, tmp_path, argv,
                                                                            flag):
    """Checked through the parser (the benchmark's run is replaced: nothing is measured either way)."""
    (tmp_path / "a-file").write_text("")
    ran = []
    monkeypatch.setattr(importlib.import_module(f"bench.{argv[0]}"), "run", lambda args: ran.append(args) or [])
    with pytest.raises(SystemExit) as stop:
        bench_main.main([arg.replace("{tmp}", str(tmp_path)) for arg in argv])
    assert stop.value.code == 2 and not ran
    assert flag in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]  # nothing created


@pytest.mark.parametrize("argv", [
    ["serving", "--frames", "2"],
    ["segment", "--davis_root", DAVIS16, "--frames", "2", "--flow", "dis-fast"],
    ["finetune", "--davis_root", DAVIS16, "--precision", "float32", "--crops", "0,160", "--max_size", "0",
     "--dream_flows", "exact,dis"],
    ["pipeline", "--davis_root", DAVIS16, "--sequences", "blackswan", "--clip_length", "2", "--cache_dir",
     "{tmp}/cache"],
    ["evaluate", "--davis_root", DAVIS16, "--split", "val"],
    ["grey_blends", "--davis17_root", os.path.join(SHARED_DATA, "DAVIS-2017-sample"), "--seed", "0"],
    ["dream_motion", "--davis_root", DAVIS16, "--flow_cache_dir", "{tmp}/flow"],
    ["dream_motion", "--davis_root", DAVIS16, "--flow_cache_dir", "{tmp}", "--exclude", "", "--speeds", "0.5,3"],
    ["train_step", "--jit", "false,true"],
    ["model_step", "--json", "{tmp}/new/rows.json"],  # its folder is made when it is written
])
def test_good_options_reach_the_benchmark(monkeypatch, tmp_path, argv):
    """The checks refuse only what cannot run: these reach run()."""
    ran = []
    monkeypatch.setattr(importlib.import_module(f"bench.{argv[0]}"), "run", lambda args: ran.append(args) or [])
    assert bench_main.main([arg.replace("{tmp}", str(tmp_path)) for arg in argv]) == 0 and len(ran) == 1
