"""The TUI's pure parts: filters, sorting, workflow state, log tails, action command lines."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from torc.cli.main import main
from torc.tui import actions
from torc.tui.logs import attempt_logs, tail_file
from torc.tui.query import (
    filter_jobs,
    filter_workflows,
    next_sort_key,
    parse_query,
    sort_jobs,
    workflow_state,
)
from torc.tui.screens.workflow import counts_line

WORKFLOWS = [{"id": 1, "name": "sweep-a", "user": "alice", "state": "running"},
             {"id": 2, "name": "sweep-b", "user": "bob", "state": "failed"},
             {"id": 3, "name": "etl", "user": "alice", "state": "completed"}]
JOBS = [{"id": 3, "name": "train", "status": "failed", "command": "python train.py"},
        {"id": 1, "name": "prep", "status": "completed", "command": "bash prep.sh"},
        {"id": 2, "name": "eval", "status": "ready", "command": "python eval.py --train-run 3"}]


def test_parse_query():
    q = parse_query("User:Alice  sweep status:failed")
    assert q.terms == {"user": "alice", "status": "failed"} and q.words == ("sweep",)
    assert parse_query("a: :b").words == ("a:", ":b")


@pytest.mark.parametrize(("text", "ids"), [
    ("", [1, 2, 3]), ("user:alice", [1, 3]), ("sweep", [1, 2]), ("status:failed", [2]),
    ("user:ali", []), ("name:eT", [3]), ("sweep user:bob", [2]),
])
def test_filter_workflows(text, ids):
    assert [w["id"] for w in filter_workflows(WORKFLOWS, parse_query(text))] == ids


@pytest.mark.parametrize(("text", "ids"), [
    ("status:failed", [3]), ("python", [3, 2]), ("train", [3, 2]), ("name:train", [3]), ("status:fail", []),
])
def test_filter_jobs(text, ids):
    assert [j["id"] for j in filter_jobs(JOBS, parse_query(text))] == ids


def test_sort_jobs():
    assert [j["id"] for j in sort_jobs(JOBS, "id")] == [1, 2, 3]
    assert [j["name"] for j in sort_jobs(JOBS, "name")] == ["eval", "prep", "train"]
    assert [j["status"] for j in sort_jobs(JOBS, "status", reverse=True)] == ["ready", "failed", "completed"]
    assert next_sort_key("status") == "id"
    with pytest.raises(ValueError, match="cannot sort jobs by 'command'"):
        sort_jobs(JOBS, "command")


@pytest.mark.parametrize(("status", "counts", "state"), [
    ({"is_archived": True, "is_canceled": True}, {"completed": 1}, "archived"),
    ({"is_canceled": True}, {"completed": 1}, "canceled"),
    ({}, {}, "empty"),
    ({}, {"uninitialized": 2}, "uninitialized"),
    ({}, {"running": 1, "failed": 1}, "running"),
    ({}, {"blocked": 1, "completed": 1, "uninitialized": 1}, "ready"),
    ({}, {"uninitialized": 1, "completed": 2}, "uninitialized"),
    ({}, {"completed": 1, "terminated": 1}, "failed"),
    ({}, {"completed": 2, "disabled": 1, "failed": 0}, "completed"),
])
def test_workflow_state(status, counts, state):
    assert workflow_state(status, counts) == state


def test_counts_line():
    assert counts_line({"failed": 1, "completed": 2, "ready": 0}) == "total 3 | completed 2 | failed 1"


def test_tail_file(tmp_path):
    assert tail_file(tmp_path / "missing") is None
    log = tmp_path / "x.o"
    log.write_text("".join(f"line {i}\n" for i in range(1000)))
    assert tail_file(log, max_lines=2) == "line 998\nline 999"
    tail = tail_file(log, max_lines=1000, max_bytes=100)
    assert tail.splitlines()[-1] == "line 999" and all(x.startswith("line ") for x in tail.splitlines())


def test_attempt_logs_use_the_runner_naming(tmp_path):
    (tmp_path / "job_stdio").mkdir()
    (tmp_path / "job_stdio" / "job_wf4_j7_r2_a3.o").write_text("out\n")
    out, err = attempt_logs(tmp_path, 4, 7, 2, 3)
    assert (out.stream, out.text) == ("stdout", "out")
    assert (err.stream, err.text, err.path.name) == ("stderr", None, "job_wf4_j7_r2_a3.e")


def test_action_commands(tmp_path):
    url = "http://h:1/torc-service/v1"
    base = [sys.executable, "-m", "torc.cli.main", "--url", url]
    assert actions.command(url, "run_local", 5, tmp_path) == [*base, "run", "5", "-o", str(tmp_path), "--no-progress"]
    assert actions.command(url, "submit", 5, tmp_path) == [*base, "submit", "5", "-o", str(tmp_path)]
    assert actions.command(url, "recover", 5, tmp_path)[5:8] == ["recover", "5", "--no-run"]
    with pytest.raises(ValueError):
        actions.command(url, "cancel", 5, tmp_path)
    assert actions.log_path(tmp_path, "submit", 5) == tmp_path / "tui" / "submit_wf5.log"
    assert set(actions.ACTIONS) == {"initialize", "run_local", "submit", "cancel", "reset_failed", "recover"}


def test_launch_writes_to_the_log(tmp_path):
    log = tmp_path / "tui" / "x.log"
    process = actions.launch([sys.executable, "-c", "print('hi from the child')"], log)
    assert process.wait(timeout=30) == 0
    assert log.read_text() == "hi from the child\n"


def test_cli_database_needs_standalone(tmp_path):
    result = CliRunner().invoke(main, ["tui", "--database", str(tmp_path / "x.db")])
    assert result.exit_code == 2 and "needs --standalone" in result.output


def test_cli_reports_an_unreachable_server():
    result = CliRunner().invoke(main, ["--url", "http://127.0.0.1:9/torc-service/v1", "tui"])
    assert result.exit_code == 1 and "cannot reach the torc server" in result.output


def test_cli_standalone_starts_an_embedded_server(tmp_path, monkeypatch):
    seen = {}

    def fake_run(app):  # the app itself is driven by test_app.py; here only its wiring
        with app.data.lock:
            seen["ping"] = app.data.client.ping()
        seen["label"], seen["output_dir"] = app.server_label, app.data.output_dir

    monkeypatch.setattr("torc.tui.TorcApp.run", fake_run)
    database = tmp_path / "db" / "tui.db"
    result = CliRunner().invoke(main, ["tui", "--standalone", "--database", str(database),
                                       "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert seen["ping"] and f"(embedded, {database})" in seen["label"]
    assert seen["output_dir"] == (tmp_path / "out").resolve()
    assert database.exists()


def test_tui_reaches_the_server_only_through_the_client():
    code = ("import sys, torc.cli.tui_cmd, torc.tui.app, torc.tui.screens.job, torc.tui.screens.workflow, "
            "torc.slurm.submit; print(sorted(m for m in sys.modules if m.split('.')[:2] in "
            "(['torc', 'storage'], ['torc', 'service'], ['torc', 'server'])))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
