"""`built_once`: a folder shared by the pytest-xdist workers is built by one of them, and a failed build is retried."""
import os

import pytest

from conftest import built_once


def test_builds_once_and_retries_a_failed_build(tmp_path_factory):
    calls = []

    def build(folder):
        calls.append(folder)
        with open(f"{folder}/out.txt", "w") as f:
            f.write("made")

    first = built_once(tmp_path_factory, "thing", build)
    assert built_once(tmp_path_factory, "thing", build) == first and len(calls) == 1
    assert open(f"{first}/out.txt").read() == "made"

    def failing(folder):
        with open(f"{folder}/partial.txt", "w") as f:
            f.write("half")
        raise RuntimeError("build failed")

    with pytest.raises(RuntimeError, match="build failed"):
        built_once(tmp_path_factory, "other", failing)
    again = built_once(tmp_path_factory, "other", build)  # retried from an empty folder
    assert len(calls) == 2 and sorted(os.listdir(again)) == [".built", "out.txt"]
