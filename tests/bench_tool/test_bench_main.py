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


def test_bench_finetune_gives_static_finetuning_no_budget(monkeypatch):
    """segment --finetune_budget stops recurrent finetuning only; static finetuning runs all its --finetune_steps.
    The static row said how many updates fit in the budget, as if it held them."""
    import argparse

    import numpy as np

    from bench import finetune as bench_finetune

    clock = [0.0]

    def static(model, frame, ids, objects, config):
        clock[0] += 5.0 + 1.0 * config.steps  # 5 s of tracing per call, 1 s per update

    class Recurrent:
        def __init__(self, model, objects, config):
            self.config = config

        def run(self, frame, ids, objects):
            steps = self.config.steps
            return types.SimpleNamespace(step_seconds=[20.0] + [4.0] * (steps - 1), steps=steps, window=None,
                                         dream_seconds=1.0 * min(self.config.num_clips, steps))

    monkeypatch.setattr(bench_finetune, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    monkeypatch.setattr(bench_finetune, "finetune", static)
    monkeypatch.setattr(bench_finetune, "RecurrentFinetuner", Recurrent)
    monkeypatch.setattr(bench_finetune, "_first_frame",
                        lambda args: (np.zeros((24, 40, 3), np.uint8), np.zeros((24, 40), np.uint8)))
    monkeypatch.setattr(bench_finetune, "MaskRNN", lambda config: "model")
    monkeypatch.setattr(bench_finetune, "rebuild_with_precision", lambda model, precision: model)
    monkeypatch.setattr(bench_finetune, "resolve_precision", lambda precision: "float32")
    parser = argparse.ArgumentParser()
    bench_finetune.add_arguments(parser)
    static_row, recurrent_row = bench_finetune.run(parser.parse_args(["--updates", "2", "--budget", "30"]))
    assert list(static_row) == list(recurrent_row)  # one table: the same keys in every row
    assert static_row["update_s"] == 1.0 and static_row["first_call_s"] == 6.0
    assert static_row["budget_s"] == static_row["fit_first_video"] == static_row["fit_later_videos"] == "-"
    assert "no budget" in static_row["note"] and "~205 s" in static_row["note"]  # 6 + 199 x 1 s: 200 updates
    assert recurrent_row["budget_s"] == 30.0 and recurrent_row["note"] == ""
    assert recurrent_row["fit_first_video"] == recurrent_row["fit_later_videos"] == 6  # 30 s // (4 s + 1 s)


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
        seen.append(env)
        out = json.dumps({"clip_s": 7.0, "frame_s": 1.0, "policy": "float32", "peak_rss_mb": 100.0})
        return subprocess.CompletedProcess(cmd, 0, stdout=out + "\n", stderr="")

    monkeypatch.setattr(train_step.subprocess, "run", child)
    parser = argparse.ArgumentParser()
    train_step.add_arguments(parser)
    rows = train_step.run(parser.parse_args(["--sizes", "32x32", "--precisions", "float32", "--recompute", "false",
                                             "--cpu_allocator", "bfc,malloc"]))
    assert [row["cpu_allocator"] for row in rows] == ["bfc", "malloc"] and len(seen) == 2
    assert all(env["CUDA_VISIBLE_DEVICES"] == "" and env["OMP_NUM_THREADS"] == "2" for env in seen)
