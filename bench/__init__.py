"""maskrnn-tf benchmarks: `python -m bench NAME [--json out.json]` prints one table per benchmark."""
