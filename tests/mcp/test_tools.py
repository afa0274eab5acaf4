"""TorcTools (what the MCP tools do) called directly: classification rules and the paths the
stdio tests do not reach (submit without Slurm actions, recovery with nothing to do, run errors)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import torc
from torc.mcp.tools import TorcTools, classify_failure


@pytest.fixture
def tools(server, tmp_path) -> Iterator[TorcTools]:
    with server.client() as client:
        yield TorcTools(client, tmp_path / "out")


def _result(rc: int, minutes: float = 0.01, peak: int | None = None) -> dict:
    return {"job_id": 1, "run_id": 1, "attempt_id": 1, "status": "pending_failed", "return_code": rc,
            "exec_time_minutes": minutes, "peak_memory_bytes": peak}


@pytest.mark.parametrize(("rc", "minutes", "peak", "decision", "words"), [
    (3, 0.01, None, "fail", "the command itself failed"),
    (1, 0.01, None, "fail", "return code 1"),
    (-9, 0.01, None, "retry", "SIGKILL"),
    (0 - 128, 0.01, None, "retry", "runner went away"),
    (-15, 0.01, None, "retry", "signal"),
    (1, 0.01, 2 * 2**30, "retry", "recover_workflow to raise its memory"),
    (-15, 0.95, None, "retry", "raise its runtime"),
])
def test_classify_failure(rc: int, minutes: float, peak: int | None, decision: str, words: str) -> None:
    rr = {"id": 1, "name": "rr", "memory": "1g", "runtime": "PT1M", "num_cpus": 1}
    got, why = classify_failure({"id": 1, "name": "j"}, _result(rc, minutes, peak), rr)
    assert got == decision and words in why, why


def test_classify_without_a_result_retries() -> None:
    assert classify_failure({"id": 1, "name": "j"}, None, None)[0] == "retry"


def test_submit_without_slurm_actions_is_refused_with_the_reason(tools) -> None:
    workflow_id = tools.create_workflow("name: no_slurm\njobs:\n  - {name: a, command: 'true'}\n")["workflow_id"]
    with pytest.raises(torc.TorcError, match="no pending on_workflow_start schedule_nodes action"):
        tools.submit_workflow(workflow_id)


def test_recover_with_nothing_to_recover(tools) -> None:
    workflow_id = tools.create_workflow("name: fine\njobs:\n  - {name: a, command: 'true'}\n")["workflow_id"]
    torc.run_workflow(workflow_id, client=tools.client, output_dir=tools.output_dir, poll_interval=0.1,
                      idle_timeout=5)
    out = tools.recover_workflow(workflow_id)
    assert out["applied"] is False and out["retry_job_ids"] == [] and "nothing to recover" in out["notes"]


def test_create_workflow_formats_and_logs_before_a_run(tools) -> None:
    created = tools.create_workflow('{"name": "as_json", "jobs": [{"name": "a", "command": "true"}]}', format="json",
                                    initialize=False)
    assert created["initialized"] is False and created["job_counts"] == {"uninitialized": 1}
    job_id = tools.list_jobs(created["workflow_id"])["jobs"][0]["id"]
    assert "not run yet" in tools.get_job_logs(job_id)["note"]
    assert "never ran" in tools.explain_job_failure(job_id)["diagnosis"]
    with pytest.raises(torc.NotFoundError):
        tools.run_workflow(987654)
