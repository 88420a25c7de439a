"""One entry point for every benchmark: `python -m bench NAME [options] [--json FILE]`.

Each benchmark is a module `bench/<name>.py` with `add_arguments(parser)` and `run(args) -> list[dict]`;
every dict is one table row (same keys in every row). Ratios are measured side by side in one run.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import sys
from typing import Dict, List

from maskrnn_tf import _console, host_memory


def available() -> List[str]:
    """Names of the benchmark modules beside this file."""
    here = os.path.dirname(__file__)
    return sorted(m.name for m in pkgutil.iter_modules([here]) if not m.name.startswith("_"))


def format_table(rows: List[Dict]) -> str:
    """Plain-text table of rows (floats with 4 significant digits)."""
    if not rows:
        return "(no rows)"
    keys = list(rows[0].keys())

    def cell(v) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    cells = [[cell(r.get(k, "")) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    lines = [" | ".join(k.ljust(w) for k, w in zip(keys, widths)), "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def main(argv: List[str]) -> int:
    names = available()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("name", choices=names, help="which benchmark")
    parser.add_argument("--json", default=None, help="also write the rows as JSON to this file")
    name = argv[0] if argv and argv[0] in names else None
    if name:
        host_memory.pool_cpu_tensor_memory()  # before TensorFlow starts: CPU tensors from one reused pool
        _console.import_tensorflow_quietly()  # before the benchmark module imports TensorFlow
    module = importlib.import_module(f"bench.{name}") if name else None
    if module is not None:
        module.add_arguments(parser)
    args = parser.parse_args(argv)
    rows = module.run(args)
    print(format_table(rows))
    if args.json:  # whole or absent, never a half-written file where an earlier one was
        from maskrnn_tf.io.atomic_file import atomic_write

        def write(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(rows, f, indent=2)

        atomic_write(args.json, write, ".json")
    return 0


if __name__ == "__main__":
    _console.quiet_startup()
    sys.exit(main(sys.argv[1:]))
