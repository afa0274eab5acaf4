"""Snapshots of the main screens (pytest-textual-snapshot). The module has its own fresh server, so
the ids are fixed; the data has no timestamps; refresh is slow so nothing moves while one is taken.
Update them with: pytest tests/tui/test_snapshots.py --snapshot-update"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.runner_support import create
from tests.tui.conftest import until
from torc.tui.screens.job import JobScreen
from torc.tui.screens.workflow import WorkflowScreen

SIZE = (120, 40)
PIPELINE = {"name": "snap-pipeline", "description": "three jobs", "jobs": [
    {"name": "prepare", "command": "python prepare.py --input data.csv"},
    {"name": "train", "command": "python train.py --epochs 10", "depends_on": ["prepare"],
     "resource_requirements": "big"},
    {"name": "report", "command": "python report.py", "depends_on": ["train"]},
], "resource_requirements": [{"name": "big", "num_cpus": 4, "memory": "8g", "runtime": "PT2H"}]}
DRAFT = {"name": "snap-draft", "description": "not started yet", "jobs": [
    {"name": f"sweep_{i}", "command": f"echo {i}"} for i in range(3)]}


@pytest.fixture(scope="module")
def workflows(server, tmp_path_factory) -> tuple[int, int]:
    folder = tmp_path_factory.mktemp("specs")
    with pytest.MonkeyPatch.context() as mp, server.client() as client:
        mp.setenv("USER", "tester")
        return create(client, PIPELINE, folder), create(client, DRAFT, folder, initialize=False)


@pytest.fixture
def app(make_app, workflows):
    # a relative output dir: the job screen shows log paths, which must not depend on tmp_path
    return make_app(output_dir=Path("torc_output"), refresh_seconds=600)


async def loaded(pilot) -> None:
    screen = pilot.app.screen
    await until(pilot, lambda: screen.loads > 0, what="the screen to load")
    await pilot.pause()


def test_workflows_screen(snap_compare, app, workflows):
    assert snap_compare(app, terminal_size=SIZE, run_before=loaded)


def test_workflow_screen(snap_compare, app, workflows):
    async def open_it(pilot) -> None:
        await pilot.app.push_screen(WorkflowScreen(workflows[0]))
        await loaded(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=open_it)


def test_job_screen(snap_compare, app, workflows):
    async def open_it(pilot) -> None:
        await pilot.app.push_screen(JobScreen(workflows[0], 2))  # train: between prepare and report
        await loaded(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=open_it)


def test_help_screen(snap_compare, app, workflows):
    async def help_on_top(pilot) -> None:
        await loaded(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=help_on_top)


def test_confirm_dialog(snap_compare, app, workflows):
    async def ask(pilot) -> None:
        await loaded(pilot)
        await pilot.press("C")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=ask)
