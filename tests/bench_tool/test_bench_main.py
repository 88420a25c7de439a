"""`python -m bench NAME --json FILE`: the rows as a table and as JSON, the file whole or left as it was."""
import json
import sys
import types

import pytest

import bench.__main__ as bench_main


@pytest.fixture
def fake_benchmark(monkeypatch):
    """A benchmark module `bench.fake` whose rows the test chooses (no TensorFlow work)."""
    module = types.ModuleType("bench.fake")
    module.rows = [{"case": "a", "seconds": 1.5}, {"case": "b", "seconds": 0.25}]
    module.add_arguments = lambda parser: None
    module.run = lambda args: module.rows
    monkeypatch.setitem(sys.modules, "bench.fake", module)
    monkeypatch.setattr(bench_main, "available", lambda: ["fake"])
    monkeypatch.setattr(bench_main.host_memory, "pool_cpu_tensor_memory", lambda: None)
    monkeypatch.setattr(bench_main._console, "import_tensorflow_quietly", lambda: None)
    return module


def test_rows_are_printed_and_written_as_json(fake_benchmark, tmp_path, capsys):
    out = tmp_path / "rows.json"
    assert bench_main.main(["fake", f"--json={out}"]) == 0
    assert json.loads(out.read_text()) == fake_benchmark.rows
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["case", "|", "seconds"] and lines[2].split() == ["a", "|", "1.5"]


def test_a_failed_write_leaves_the_earlier_json_whole(fake_benchmark, tmp_path):
    out = tmp_path / "rows.json"
    out.write_text('{"earlier": true}')
    fake_benchmark.rows = [{"case": "a", "value": object()}]  # json.dump fails after writing part of the file
    with pytest.raises(TypeError):
        bench_main.main(["fake", f"--json={out}"])
    assert json.loads(out.read_text()) == {"earlier": True}
    assert [p.name for p in tmp_path.iterdir()] == ["rows.json"]


@pytest.mark.parametrize("argv", [["--json", "{out}", "fake"], ["--json={out}", "fake", "--repeats", "2"],
                                  ["--repeats", "2", "--json", "{out}", "fake"]])
def test_options_may_come_before_the_benchmark_name(fake_benchmark, tmp_path, argv):
    """`python -m bench --json FILE NAME` crashed with an AttributeError (the name was looked for at argv[0] only)."""
    out = tmp_path / "rows.json"
    fake_benchmark.add_arguments = lambda parser: parser.add_argument("--repeats", type=int, default=1)
    seen = []
    fake_benchmark.run = lambda args: seen.append(args.repeats) or fake_benchmark.rows
    assert bench_main.main([a.format(out=out) for a in argv]) == 0
    assert json.loads(out.read_text()) == fake_benchmark.rows
    assert seen == [2 if "--repeats" in argv else 1]


@pytest.mark.parametrize("argv", [["nosuch"], ["--json", "x.json", "nosuch"], ["--json", "x.json"], [], ["--json"]])
def test_a_missing_or_unknown_name_stops_with_the_list_of_benchmarks(fake_benchmark, capsys, argv):
    with pytest.raises(SystemExit) as stop:
        bench_main.main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "fake" in err and ("invalid choice" in err or "required: name" in err or "--json" in err)
    assert "usage: python -m bench" in err


def test_a_benchmark_name_given_as_an_options_value_is_not_taken_for_the_benchmark(fake_benchmark, monkeypatch,
                                                                                   capsys):
    """`--label fake other`: "fake" is --label's value and "other" the benchmark; the name is looked for before the
    benchmark's options are known, so it stops asking for the name first rather than run the wrong one."""
    fake_benchmark.add_arguments = lambda parser: parser.add_argument("--label")
    monkeypatch.setattr(bench_main, "available", lambda: ["fake", "other"])
    with pytest.raises(SystemExit) as stop:
        bench_main.main(["--label", "fake", "other"])
    assert stop.value.code == 2 and "python -m bench other" in capsys.readouterr().err


@pytest.mark.parametrize("argv, flag", [
    (["model_step", "--repeats", "0"], "--repeats"),
    (["model_step", "--objects", "0"], "--objects"),
    (["model_step", "--model_width", "-1"], "--model_width"),
    (["model_step", "--precisions", "float64"], "--precisions"),
    (["model_step", "--precisions", "float32,"], "--precisions"),
    (["train_step", "--sizes", "240"], "--sizes"),
    (["train_step", "--precisions", "fp16"], "--precisions"),
    (["train_step", "--repeats", "-1"], "--repeats"),
    (["train_step", "--cpu_allocator", "pool"], "--cpu_allocator"),
    (["train_step", "--cpu_allocator", "bfc,BFC"], "--cpu_allocator"),
    (["finetune", "--updates", "0"], "--updates"),
    (["finetune", "--budget", "0"], "--budget"),
])
def test_bad_arguments_stop_with_exit_2_before_any_measurement(monkeypatch, capsys, argv, flag):
    """argparse refuses them naming the flag (a table of nan rows, a ZeroDivisionError or a traceback after the
    first rows were measured were the alternatives)."""
    for name in argv[:1]:
        import importlib

        monkeypatch.setattr(importlib.import_module(f"bench.{name}"), "run",
                            lambda args: pytest.fail("the benchmark ran"))
    with pytest.raises(SystemExit) as stop:
        bench_main.main(argv)
    assert stop.value.code == 2
    assert flag in capsys.readouterr().err


def test_model_step_compares_with_a_vgg16_trunk_of_the_models_width():
    """The ratio's baseline is a VGG-16 of the width the model is built with, not always the full-width one."""
    import argparse

    from bench import model_step

    parser = argparse.ArgumentParser()
    model_step.add_arguments(parser)
    rows = model_step.run(parser.parse_args(["--height", "32", "--width", "48", "--model_width", "0.125",
                                             "--precisions", "float32", "--repeats", "1"]))
    assert rows[0]["width"] == 0.125
    assert model_step.baseline_trunk(0.125).output_shape[-1] == 64  # conv5_3 at 1/8 width (512 / 8)
    assert model_step.baseline_trunk(1.0).output_shape[-1] == 512


def test_every_listed_name_is_a_benchmark():
    """`python -m bench --help` offered arg_types (shared argparse types, no benchmark): choosing it failed with an
    AttributeError. Every name listed has the two functions a benchmark module provides."""
    import ast
    import os

    here = os.path.dirname(bench_main.__file__)
    for name in bench_main.available():
        with open(os.path.join(here, f"{name}.py"), encoding="utf-8") as f:
            defined = {node.name for node in ast.parse(f.read()).body if isinstance(node, ast.FunctionDef)}
        assert {"add_arguments", "run"} <= defined, name


def test_train_step_children_run_on_the_cpu_whatever_the_callers_cuda_visible_devices(monkeypatch):
    """The rows are CPU measurements (peak RSS is the CPU's): a caller's CUDA_VISIBLE_DEVICES=0 won over the
    child's "" and ran the step on a GPU. The caller's other settings still reach the child."""
    import argparse
    import subprocess

    from bench import train_step

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    seen = []

    def child(cmd, capture_output, text, env):
        seen.append((env, json.loads(cmd[-1])))
        out = json.dumps({"clip_s": 7.0, "frame_s": 1.0, "policy": "float32", "peak_rss_mb": 100.0})
        return subprocess.CompletedProcess(cmd, 0, stdout=out + "\n", stderr="")

    monkeypatch.setattr(train_step.subprocess, "run", child)
    parser = argparse.ArgumentParser()
    train_step.add_arguments(parser)
    rows = train_step.run(parser.parse_args(["--sizes", "32x32", "--precisions", "float32", "--recompute", "false",
                                             "--cpu_allocator", "bfc,malloc", "--frames", "4", "--repeats", "5"]))
    assert [row["cpu_allocator"] for row in rows] == ["bfc", "malloc"] and len(seen) == 2
    # The overhead: the child's clip time over T of its single-frame times; --repeats reaches the child.
    assert [spec["repeats"] for _, spec in seen] == [5, 5] and rows[0]["overhead"] == pytest.approx(7.0 / 4)
    seen = [env for env, _ in seen]
    assert all(env["CUDA_VISIBLE_DEVICES"] == "" and env["OMP_NUM_THREADS"] == "2" for env in seen)
