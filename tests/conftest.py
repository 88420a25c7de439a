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


@pytest.fixture
def no_autograph(monkeypatch):
    """The functions autograph converted during the test (appended as they are; the test asserts none was).

    Tracing is most of a training's, a video's and a test's start-up on a CPU, and autograph's conversion of the
    traced Python added a sixth to a tiny training's 20 s: the project's tf.functions and tf.data map functions run
    unconverted (they have no tensor-dependent Python control flow). Autograph falls back to running a function it
    fails to convert unconverted, so the converter records instead of failing."""
    from tensorflow.python.autograph.impl import api

    converted = []
    convert = api._convert_actual

    def recording(entity, program_ctx):
        converted.append(getattr(entity, "__qualname__", repr(entity)))
        return convert(entity, program_ctx)

    monkeypatch.setattr(api, "_convert_actual", recording)
    return converted
