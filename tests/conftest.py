"""Shared test fixtures: paths to the real data beside the repository."""
import os

import pytest

SHARED_DATA = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))


@pytest.fixture(scope="session")
def shared_data() -> str:
    """Root of ../shared/data (real DAVIS-2016, DAVIS-2017 sample, SegTrack v2 sample)."""
    if not os.path.isdir(SHARED_DATA):
        pytest.fail(f"{SHARED_DATA} is missing: CI clones the project with ../shared beside it.")
    return SHARED_DATA
