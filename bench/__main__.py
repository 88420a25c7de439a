"""One entry point for every benchmark: `python -m bench NAME [options] [--json FILE]` (options may come first).

Each benchmark is a module `bench/<name>.py` with `add_arguments(parser)` and `run(args) -> list[dict]`;
every dict is one table row (same keys in every row). Ratios are measured side by side in one run. Options are
checked while parsed (bench/_arg_types.py), and a module's optional `check_arguments(args) -> problem or None`
checks what one option alone cannot say (a sequence the DAVIS folder lacks): a bad one stops before any work.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import sys
from typing import Dict, List, Optional

from bench._arg_types import output_file
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


class _RaisingParser(argparse.ArgumentParser):
    """A parser that raises ValueError instead of printing its usage and exiting."""

    def error(self, message: str):  # type: ignore[override]
        raise ValueError(message)


def _benchmark_name(argv: List[str], names: List[str]) -> Optional[str]:
    """The benchmark `argv` names wherever it stands among the options (None: none named): the main options parsed
    alone give it, or, when a benchmark's own options came before it, the first word that is a benchmark."""
    first = _RaisingParser(add_help=False)
    first.add_argument("name", nargs="?")
    first.add_argument("--json", default=None)
    try:
        known, _ = first.parse_known_args(argv)
        if known.name in names:
            return known.name
    except ValueError:  # the full parser says what is wrong, with the benchmark's options known
        pass
    return next((word for word in argv if word in names), None)


def main(argv: List[str]) -> int:
    names = available()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("name", choices=names, help="which benchmark")
    parser.add_argument("--json", type=output_file, default=None,
                        help="also write the rows as JSON to this file (its folders are made)")
    name = _benchmark_name(argv, names)
    if name:
        host_memory.pool_cpu_tensor_memory()  # before TensorFlow starts: CPU tensors from one reused pool
        _console.import_tensorflow_quietly()  # before the benchmark module imports TensorFlow
    module = importlib.import_module(f"bench.{name}") if name else None
    if module is not None:
        module.add_arguments(parser)
    args = parser.parse_args(argv)  # without a benchmark's name (or with an unknown one) it stops, listing them
    if args.name != name:  # the name found first was an option's value; the benchmark's options were not added
        parser.error(f"put the benchmark's name first: python -m bench {args.name} [options]")
    check = getattr(module, "check_arguments", None)
    problem = check(args) if check else None
    if problem:  # a usage error like a bad value, before anything is built or measured
        parser.error(problem)
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
