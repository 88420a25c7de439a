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


# The longest tests (from `--durations`; refresh the lists as they change), each list at the head of one of the two
# halves that `--dist worksteal` deals out before any stealing: both workers start on long work, no long test is
# left for the end (stealing takes from a queue's end), and tests that share a `built_once` run folder sit in one
# list, its builder first, so that no worker waits for the other's build.
_FIRST = (
    ("tests/training/test_cli.py::test_mirrored_two_cpus_equals_one_device",  # one_device_run and two_replica_run
     "tests/training/test_cli.py::test_a_run_made_on_two_replicas_resumes_on_one",
     "tests/training/test_cli.py::test_multi_worker_two_processes_equal_one_device",
     "tests/training/test_cli.py::test_sigterm_to_one_worker_stops_every_worker_after_the_same_step",
     "tests/cli/test_cli_wiring_segment.py::"
     "test_colour_prior_networks_segment_as_an_ensemble_each_with_tables_at_its_own_band"),
    ("tests/experiments/test_ablation.py::test_driver_end_to_end_on_a_tiny_synthetic_tree",
     "tests/experiments/test_finetune_selection.py::"
     "test_the_driver_chooses_on_the_selection_split_and_reports_each_choice_once",
     "tests/training/test_cli.py::test_short_run_writes_config_checkpoints_events_and_learns",  # reference_run
     "tests/training/test_cli.py::test_resume_inside_stage_b_equals_uninterrupted",
     "tests/training/test_cli.py::test_sigkill_then_resume_equals_uninterrupted",
     "tests/training/test_cli.py::"
     "test_a_run_started_from_the_end_of_another_runs_stage_a_trains_stage_b_as_that_run_does",
     "tests/training/test_cli_wiring_train.py::test_sigint_saves_a_checkpoint_and_the_same_command_resumes",
     "tests/training/test_steps.py::test_recompute_gives_the_same_gradients_and_update"),
)


@pytest.hookimpl(trylast=True)  # after -k, -m and --deselect have dropped tests: the halves are of what runs
def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    """Puts each list of `_FIRST` at the head of one worker's half (every worker orders the same collection the same
    way, as xdist requires); a run of some of the tests only keeps the lists' order among those it has."""
    rank = {name: (head, i) for head, names in enumerate(_FIRST) for i, name in enumerate(names)}
    heads: tuple = ([], [])
    rest = []
    for item in items:
        where = rank.get(item.nodeid.split("[", 1)[0])
        (heads[where[0]] if where else rest).append(item)
    if not (heads[0] or heads[1]):
        return
    for head in heads:
        head.sort(key=lambda item: rank[item.nodeid.split("[", 1)[0]][1])  # stable: parameters keep their order
    cut = max(len(items) // 2 - len(heads[0]), 0)  # worksteal sends the first worker items[:len(items) // 2]
    items[:] = heads[0] + rest[:cut] + heads[1] + rest[cut:]
