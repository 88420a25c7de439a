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
