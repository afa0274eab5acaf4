"""The TUI driven headless by Textual's pilot against a real torc server."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Static, Tree

from tests.integration.runner_support import create, run
from tests.tui.conftest import text_of, until
from torc.client import TorcClient, manager
from torc.tui.screens.confirm import ConfirmScreen
from torc.tui.screens.help import HelpScreen
from torc.tui.screens.job import NO_FILE, JobScreen
from torc.tui.screens.workflow import WorkflowScreen
from torc.tui.screens.workflows import WorkflowsScreen

pytestmark = pytest.mark.asyncio
SIZE = (120, 40)


def spec(name: str) -> dict:
    """a, then b and c that wait for a; c fails."""
    return {"name": name, "description": "tui test", "jobs": [
        {"name": "a", "command": "echo hello-a"},
        {"name": "b", "command": "echo hello-b; echo err-b >&2", "depends_on": ["a"]},
        {"name": "c", "command": "echo doomed; exit 3", "depends_on": ["a"]},
    ]}


def column(table: DataTable, index: int) -> list[str]:
    return [str(table.get_row_at(i)[index]) for i in range(table.row_count)]


def summary(screen: WorkflowScreen) -> str:
    return text_of(screen.query_one("#summary", Static).content)


async def open_workflow(app, pilot, workflow_id: int) -> WorkflowScreen:
    await app.push_screen(WorkflowScreen(workflow_id))
    screen = app.screen
    assert isinstance(screen, WorkflowScreen)
    await until(pilot, lambda: screen.loads > 0, what="the workflow to load")
    return screen


@pytest.fixture
def finished(client: TorcClient, tmp_path: Path) -> int:
    """A workflow run to the end by `torc run`: a and b completed, c failed (logs under tmp_path/out)."""
    workflow_id = create(client, spec(f"tui-ran-{tmp_path.name}"), tmp_path)
    proc = run(client.url, workflow_id, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # c fails
    return workflow_id


async def test_list_shows_workflows_and_filters(client, make_app, tmp_path, monkeypatch):
    monkeypatch.setenv("USER", "alice")
    create(client, spec("tui-list-alpha"), tmp_path, initialize=False)
    monkeypatch.setenv("USER", "bob")
    create(client, spec("tui-list-beta"), tmp_path)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, WorkflowsScreen)
        table = screen.query_one(DataTable)
        await until(pilot, lambda: {"tui-list-alpha", "tui-list-beta"} <= set(column(table, 1)), what="both rows")

        await pilot.press("slash")
        filter_input = screen.query_one("#filter", Input)
        assert filter_input.has_focus
        await pilot.press(*"tui-list")
        await pilot.pause()
        assert sorted(column(table, 1)) == ["tui-list-alpha", "tui-list-beta"]

        filter_input.value = "tui-list user:bob"
        await pilot.pause()
        assert column(table, 1) == ["tui-list-beta"]
        assert column(table, 3) == ["ready"]

        filter_input.value = "tui-list status:uninitialized"
        await pilot.pause()
        assert column(table, 1) == ["tui-list-alpha"]
        assert column(table, 2) == ["alice"]

        await pilot.press("enter")  # back to the table
        assert table.has_focus
        await pilot.press("enter")  # open the one row
        await until(pilot, lambda: isinstance(app.screen, WorkflowScreen), what="the workflow screen")
        assert app.screen.workflow_id == int(table.get_row_at(0)[0])


async def test_workflow_counts_and_job_table(client, make_app, tmp_path):
    workflow_id = create(client, spec(f"tui-jobs-{tmp_path.name}"), tmp_path)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_workflow(app, pilot, workflow_id)
        text = summary(screen)
        assert f"workflow {workflow_id}" in text and "state ready" in text
        assert "total 3 | blocked 2 | ready 1" in text
        table = screen.query_one(DataTable)
        assert column(table, 1) == ["a", "b", "c"]
        assert column(table, 2) == ["ready", "blocked", "blocked"]

        screen.query_one("#filter", Input).value = "status:blocked"
        await pilot.pause()
        assert column(table, 1) == ["b", "c"]
        screen.query_one("#filter", Input).value = "doomed"  # searches the command too
        await pilot.pause()
        assert column(table, 1) == ["c"]
        screen.query_one("#filter", Input).value = ""
        await pilot.pause()

        table.focus()
        await pilot.press("o", "o")  # id -> name -> status
        assert screen.sort_key == "status"
        assert column(table, 2) == ["blocked", "blocked", "ready"]
        await pilot.press("O")
        assert column(table, 2) == ["ready", "blocked", "blocked"]

        assert table.get_row_at(table.cursor_row)[1] == "c"  # the cursor followed its job through the filters
        table.move_cursor(row=0)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, JobScreen), what="the job screen")
        assert app.screen.job_id == int(column(table, 0)[0])


async def test_job_detail_attempts_logs_and_dependencies(client, make_app, tmp_path, finished):
    jobs = {j["name"]: j for j in client.iter_items("jobs", workflow_id=finished)}
    app = make_app(output_dir=tmp_path / "out")
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(JobScreen(finished, jobs["b"]["id"]))
        screen = app.screen
        await until(pilot, lambda: screen.loads > 0, what="the job to load")
        detail = text_of(screen.query_one("#detail", Static).content)
        assert "command: echo hello-b; echo err-b >&2" in detail
        assert "resources: name default" in detail
        assert "completed" in detail and "hello-b" in detail and "err-b" in detail
        assert f"job_wf{finished}_j{jobs['b']['id']}_r1_a1.o" in detail

        tree = screen.query_one(Tree)
        upstream, downstream = tree.root.children
        assert str(tree.root.label).startswith("b (#")
        assert [str(n.label) for n in upstream.children] == [f"a (#{jobs['a']['id']}, completed)"]
        assert [str(n.label) for n in downstream.children] == ["none"]

        await app.push_screen(JobScreen(finished, jobs["c"]["id"]))
        screen = app.screen
        await until(pilot, lambda: screen.loads > 0, what="job c to load")
        detail = text_of(screen.query_one("#detail", Static).content)
        assert "failed" in detail and "doomed" in detail
        assert NO_FILE in detail  # c wrote nothing on stderr

        await app.push_screen(JobScreen(finished, jobs["a"]["id"]))
        screen = app.screen
        await until(pilot, lambda: screen.loads > 0, what="job a to load")
        tree = screen.query_one(Tree)
        upstream, downstream = tree.root.children
        assert [str(n.label) for n in upstream.children] == ["none"]
        assert [n.data for n in downstream.children] == [jobs["b"]["id"], jobs["c"]["id"]]
        assert "failed" in str(downstream.children[1].label)

        tree.focus()
        tree.move_cursor(downstream.children[0])
        await pilot.press("enter")  # a tree node opens that job
        await until(pilot, lambda: getattr(app.screen, "job_id", None) == jobs["b"]["id"], what="job b's screen")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, what="back to job a")


async def test_job_attempts_of_every_run(client, make_app, tmp_path, finished):
    """After a rerun the job shows both attempts' results, and the latest attempt's logs."""
    manager.prepare_resume(client, finished)
    assert run(client.url, finished, cwd=tmp_path).returncode == 1
    job_c = next(j for j in client.iter_items("jobs", workflow_id=finished) if j["name"] == "c")
    app = make_app(output_dir=tmp_path / "out")
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(JobScreen(finished, job_c["id"]))
        screen = app.screen
        await until(pilot, lambda: screen.loads > 0, what="the job to load")
        assert [(r["run_id"], r["return_code"]) for r in screen.detail.results] == [(1, 3), (2, 3)]
        detail = text_of(screen.query_one("#detail", Static).content)
        assert f"_j{job_c['id']}_r2_a1.o" in detail


async def test_cancel_asks_first_then_cancels(client, make_app, tmp_path):
    workflow_id = create(client, spec(f"tui-cancel-{tmp_path.name}"), tmp_path)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_workflow(app, pilot, workflow_id)
        await pilot.press("C")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        assert str(workflow_id) in str(app.screen.query_one("#question").content)
        await pilot.press("n")
        await until(pilot, lambda: app.screen is screen, what="the dialog to close")
        assert "not done" in str(screen.query_one("#message", Static).content)
        assert client.get(f"workflows/{workflow_id}/status")["is_canceled"] is False

        await pilot.press("C")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: client.get(f"workflows/{workflow_id}/status")["is_canceled"],
                    what="the workflow to be canceled on the server")
        await until(pilot, lambda: "state canceled" in summary(screen), what="the screen to show it")
        assert "canceled" in str(screen.query_one("#message", Static).content)


async def test_reset_failed_resets_only_failed_jobs(client, make_app, finished):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_workflow(app, pilot, finished)
        assert "completed 2 | failed 1" in summary(screen)
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        await pilot.press("y")

        def statuses() -> dict[str, str]:
            return {j["name"]: j["status"] for j in client.iter_items("jobs", workflow_id=finished)}

        await until(pilot, lambda: statuses()["c"] == "uninitialized", what="c to be reset")
        assert statuses() == {"a": "completed", "b": "completed", "c": "uninitialized"}
        await until(pilot, lambda: "uninitialized 1" in summary(screen), what="the screen to show it")


async def test_initialize_action(client, make_app, tmp_path):
    workflow_id = create(client, spec(f"tui-init-{tmp_path.name}"), tmp_path, initialize=False)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_workflow(app, pilot, workflow_id)
        assert "state uninitialized" in summary(screen)
        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        await pilot.click("#yes")
        await until(pilot, lambda: not client.get(f"workflows/{workflow_id}/is_uninitialized")["is_uninitialized"],
                    what="the workflow to be initialized")
        await until(pilot, lambda: "ready 1" in summary(screen), what="the screen to show it")


async def test_run_locally_in_the_background(client, make_app, tmp_path):
    workflow_id = create(client, spec(f"tui-run-{tmp_path.name}"), tmp_path)
    app = make_app(output_dir=tmp_path / "out")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_workflow(app, pilot, workflow_id)
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: app.processes, what="the run to start")
        process = app.processes[0]
        try:
            await until(pilot, lambda: process.poll() is not None, timeout=60, what="the run to finish")
            await until(pilot, lambda: "completed 2 | failed 1" in summary(screen), what="the counts")
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
        log = tmp_path / "out" / "tui" / f"run_local_wf{workflow_id}.log"
        assert "job c" in log.read_text()
        assert str(log) in str(screen.query_one("#message", Static).content)


async def test_live_refresh_sees_another_clients_change(client, make_app, tmp_path):
    workflow_id = create(client, spec(f"tui-live-{tmp_path.name}"), tmp_path, initialize=False)
    app = make_app(refresh_seconds=0.2)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_workflow(app, pilot, workflow_id)
        assert "uninitialized 3" in summary(screen)
        manager.initialize(client, workflow_id)  # another client changes the workflow
        await until(pilot, lambda: "blocked 2 | ready 1" in summary(screen), what="the refresh")
        assert column(screen.query_one(DataTable), 2) == ["ready", "blocked", "blocked"]


async def test_help_on_question_mark(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="the help screen")
        keys = text_of(app.screen.query_one("#keys", Static).content)
        assert "reset failed" in keys and "cancel the workflow" in keys
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, WorkflowsScreen), what="the help to close")


async def test_recover_runs_torc_recover_in_the_background(client, make_app, tmp_path, finished):
    app = make_app(output_dir=tmp_path / "out")
    async with app.run_test(size=SIZE) as pilot:
        await open_workflow(app, pilot, finished)
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: app.processes, what="the recovery to start")
        process = app.processes[0]
        try:
            await until(pilot, lambda: process.poll() is not None, timeout=60, what="the recovery to finish")
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
    log = (tmp_path / "out" / "tui" / f"recover_wf{finished}.log").read_text()
    assert "recovery plan for workflow" in log and "Nothing to recover" in log  # c failed for no known cause
    assert {j["name"]: j["status"] for j in client.iter_items("jobs", workflow_id=finished)}["c"] == "failed"
