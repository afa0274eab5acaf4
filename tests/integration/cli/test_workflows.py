"""`torc workflows ...` through click's CliRunner against one real torc-server process shared by the
module: create (and dry runs), the record commands, initialize/reinitialize with change detection,
status and resets, execution plans, actions, export/import and orphan detection."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import claim_all, make_jobs, make_workflow, run_job, statuses
from tests.integration.cli.support import (
    Invoke,
    assert_error,
    assert_usage_error,
    ok,
    table,
)
from torc.client import TorcClient
from torc.client.from_spec import current_user
from torc.core.graph import collapse_names

EXAMPLES = Path(__file__).resolve().parents[2] / "data" / "examples"


def all_workflow_ids(cli: Invoke) -> list[int]:
    return [w["id"] for w in ok(cli, "workflows", "list", "--include-archived")]


def create(cli: Invoke, spec: Path | str, *flags: str) -> int:
    return ok(cli, "workflows", "create", spec, *flags)["workflow_id"]


def wait_for(check, timeout: float = 10) -> None:
    """Until check() is true (the server unblocks dependents in the background)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def torc_run(cli: Invoke, wf: int, out: Path) -> str:
    """`torc run <id>` against the test server; every job must succeed."""
    result = cli("run", wf, "-o", out, "-p", "0.1", fmt="table")
    assert result.exit_code == 0, result.output
    return result.stdout


# ---- create -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("example", "jobs", "stages"), [
    ("diamond_workflow.yaml", 4, 3),
    ("diamond_workflow.kdl", 4, 3),
    ("sample_workflow.json5", 3, 3),
    ("hyperparameter_sweep.yaml", 21, 3),
])
def test_create_from_example_specs(cli, api, example, jobs, stages):
    report = ok(cli, "workflows", "create", EXAMPLES / example, "--dry-run")
    assert report["valid"] and report["errors"] == []
    summary = report["summary"]
    assert (summary["job_count"], summary["stages"]) == (jobs, stages)
    before = all_workflow_ids(cli)
    wf = create(cli, EXAMPLES / example)
    assert all_workflow_ids(cli) == [*before, wf]
    assert [j["name"] for j in api.iter_items("jobs", workflow_id=wf)] == summary["job_names"]
    assert ok(cli, "workflows", "get", wf)["name"] == summary["workflow_name"]
    assert ok(cli, "workflows", "status", wf)["job_counts"] == {"uninitialized": jobs}


def test_create_table_mode_and_resource_monitoring_switch(cli, tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text("name: sweep\njobs:\n  - name: work_{i}\n    command: echo {i}\n    parameters:\n"
                    "      i: '1:5'\n  - name: final\n    command: echo done\n    depends_on_regexes: ['^work_']\n")
    result = cli("workflows", "create", spec, "--dry-run", fmt="table")
    assert result.exit_code == 0, result.output
    assert "is valid" in result.stdout and "job count: 6" in result.stdout
    assert "job names: work_{1..5} (5 jobs), final" in result.stdout and "stages: 2" in result.stdout

    result = cli("workflows", "create", spec, fmt="table")
    assert result.exit_code == 0, result.output
    wf = int(result.stdout.split()[2])
    assert result.stdout.strip() == f"Created workflow {wf} from {spec}"
    monitor = json.loads(ok(cli, "workflows", "get", wf)["resource_monitor_config"])
    assert monitor["enabled"] is True
    quiet = create(cli, spec, "--no-resource-monitoring")
    assert ok(cli, "workflows", "get", quiet).get("resource_monitor_config") is None


BAD_SPEC = """\
name: broken
jobs:
  - name: a
    command: echo ${files.input.nowhere}
    depends_on: [missing_job]
  - name: a
    command: echo again
  - name: c
    resource_requirements: huge
"""
BAD_PROBLEMS = [
    "job 'c' (jobs[2]): missing required field 'command'",
    "job 'a': duplicate name",
    "job 'a': depends_on refers to undefined job 'missing_job'",
    "job 'a': ${files.input.nowhere} refers to an undefined file",
]


def test_invalid_spec_reports_every_problem_and_creates_nothing(cli, tmp_path):
    spec = tmp_path / "broken.yaml"
    spec.write_text(BAD_SPEC)
    before = all_workflow_ids(cli)

    result = cli("workflows", "create", spec, "--dry-run")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["valid"] is False and report["summary"] is None
    assert sorted(report["errors"]) == sorted(BAD_PROBLEMS)

    result = cli("workflows", "create", spec, "--dry-run", fmt="table")
    assert result.exit_code == 1
    assert f"{spec} is not valid; 4 problem(s):" in result.stdout
    for problem in BAD_PROBLEMS:
        assert f"  - {problem}\n" in result.stdout

    result = cli("workflows", "create", spec)
    assert result.exit_code == 1 and result.stdout == ""
    assert "4 problem(s)" in result.stderr
    for problem in BAD_PROBLEMS:
        assert problem in result.stderr
    spec.write_text("name: [broken\n")
    result = cli("workflows", "create", spec)
    assert result.exit_code == 1 and "invalid YAML at line 2" in result.stderr
    assert all_workflow_ids(cli) == before
    assert_usage_error(cli("workflows", "create", tmp_path / "absent.yaml"), "does not exist")


# ---- records: new, list, get, update, archive, delete --------------------------------------------


def test_new_list_get_update_archive_delete(cli):
    made = ok(cli, "workflows", "new", "-n", "blank", "-d", "empty workflow")
    wf = made["id"]
    assert (made["name"], made["description"], made["user"]) == ("blank", "empty workflow", current_user())
    assert ok(cli, "workflows", "get", wf) == made
    assert "empty workflow" in table(cli, "workflows", "get", wf)

    updated = ok(cli, "workflows", "update", wf, "-n", "renamed", "-d", "new text", "--owner-user", "alice")
    assert updated == {**made, "name": "renamed", "description": "new text", "user": "alice"}
    assert_usage_error(cli("workflows", "update", wf), "nothing to update")
    assert [w["id"] for w in ok(cli, "workflows", "list", "--user", "alice")] == [wf]
    assert ok(cli, "workflows", "list", "--user", "nobody-here") == []
    assert "renamed" in table(cli, "workflows", "list", "--user", "alice")

    archived = ok(cli, "workflows", "archive", "true", wf)
    assert [(s["id"], s["is_archived"]) for s in archived] == [(wf, True)]
    assert wf not in [w["id"] for w in ok(cli, "workflows", "list")]
    assert [w["id"] for w in ok(cli, "workflows", "list", "--archived-only")] == [wf]
    assert wf in all_workflow_ids(cli)
    assert ok(cli, "workflows", "status", wf)["is_archived"] is True
    ok(cli, "workflows", "archive", "false", wf)
    assert wf in [w["id"] for w in ok(cli, "workflows", "list")]
    assert ok(cli, "workflows", "list", "--archived-only") == []

    other = ok(cli, "workflows", "new", "-n", "second")["id"]
    result = cli("workflows", "delete", wf, fmt="table", input="n\n")
    assert result.exit_code == 1 and f"Delete {wf} (renamed)?" in result.output and "Aborted" in result.output
    assert ok(cli, "workflows", "get", wf)["id"] == wf
    result = cli("workflows", "delete", wf, fmt="table", input="y\n")
    assert result.exit_code == 0 and "renamed" in result.stdout
    assert_error(cli("workflows", "get", wf), "not found")
    assert [w["id"] for w in ok(cli, "workflows", "delete", other, "--no-prompts")] == [other]
    assert_error(cli("workflows", "delete", other, "--no-prompts"), "not found")
    assert_error(cli("workflows", "status", other), "not found")


# ---- initialize ---------------------------------------------------------------------------------


def pipeline_spec(tmp_path: Path) -> Path:
    """raw -> gen -> mid -> use -> final -> last -> end; conf reads user data cfg; after_conf waits for
    conf; free stands alone."""
    d = tmp_path / "data"
    d.mkdir(exist_ok=True)
    spec = tmp_path / "pipeline.yaml"
    spec.write_text(f"""\
name: pipeline
jobs:
  - name: gen
    command: "cat ${{files.input.raw}} > ${{files.output.mid}}"
  - name: use
    command: "cat ${{files.input.mid}} > ${{files.output.final}}"
  - name: last
    command: "cat ${{files.input.final}} > ${{files.output.end}}"
  - name: conf
    command: "echo ${{user_data.input.cfg}}"
  - name: after_conf
    command: "echo after"
    depends_on: [conf]
  - name: free
    command: "echo free"
files:
  - {{name: raw, path: {d}/raw.txt}}
  - {{name: mid, path: {d}/mid.txt}}
  - {{name: final, path: {d}/final.txt}}
  - {{name: end, path: {d}/end.txt}}
user_data:
  - name: cfg
    data: {{"alpha": 1}}
""")
    return spec


def test_initialize_checks_inputs_and_bumps_run_id(cli, tmp_path):
    wf = create(cli, pipeline_spec(tmp_path))
    raw, end = tmp_path / "data" / "raw.txt", tmp_path / "data" / "end.txt"
    assert ok(cli, "workflows", "initialize", wf, "--dry-run") == {
        "missing_inputs": [str(raw)], "missing_user_data": [], "existing_outputs": []}
    assert_error(cli("workflows", "initialize", wf), str(raw), "--force")
    assert ok(cli, "workflows", "status", wf)["run_id"] == 0
    assert ok(cli, "workflows", "status", wf)["job_counts"] == {"uninitialized": 6}

    forced = ok(cli, "workflows", "initialize", wf, "--force")
    assert forced == {"workflow_id": wf, "job_counts": {"blocked": 3, "ready": 3}}
    assert ok(cli, "workflows", "status", wf)["run_id"] == 1

    raw.write_text("one\n")
    end.write_text("stale\n")
    assert ok(cli, "workflows", "initialize", wf, "--dry-run") == {
        "missing_inputs": [], "missing_user_data": [], "existing_outputs": [str(end)]}
    assert ok(cli, "workflows", "status", wf)["run_id"] == 1  # a dry run changes nothing

    result = cli("workflows", "initialize", wf, fmt="table", input="n\n")  # it has been initialized before
    assert result.exit_code == 1 and "Aborted" in result.output
    assert ok(cli, "workflows", "status", wf)["run_id"] == 1
    result = cli("workflows", "initialize", wf, fmt="table", input="y\n")
    assert result.exit_code == 0, result.output
    assert f"output file already exists and will be overwritten by its job: {end}" in result.stderr
    assert f"Workflow {wf}: 3 blocked, 3 ready" in result.stdout
    assert ok(cli, "workflows", "status", wf)["run_id"] == 2
    result = cli("workflows", "initialize", wf, "--no-prompts", fmt="table")
    assert result.exit_code == 0 and ok(cli, "workflows", "status", wf)["run_id"] == 3

    ok(cli, "workflows", "archive", "true", wf)
    assert_error(cli("workflows", "initialize", wf, "--no-prompts"), "archived")
    assert_error(cli("workflows", "reinitialize", wf), "archived")
    ok(cli, "workflows", "archive", "false", wf)
    assert_error(cli("workflows", "initialize", 987654), "not found")


def test_initialize_refuses_missing_user_data(cli, api):
    wf = make_workflow(api, "needs-data")
    (job,) = make_jobs(api, wf, [{"name": "reader"}])
    ok(cli, "user-data", "create", wf, "-n", "settings", "--consumer-job-id", job["id"])
    assert ok(cli, "workflows", "initialize", wf, "--dry-run")["missing_user_data"] == ["settings"]
    out = table(cli, "workflows", "initialize", wf, "--dry-run")
    assert "missing_user_data" in out and "settings" in out
    assert_error(cli("workflows", "initialize", wf), "user data", "settings")
    assert statuses(api, wf) == {"reader": "uninitialized"}
    settings = ok(cli, "user-data", "list", wf)[0]
    ok(cli, "user-data", "update", settings["id"], "-d", '{"level": 3}')
    assert ok(cli, "workflows", "initialize", wf)["job_counts"] == {"ready": 1}


# ---- reinitialize after real runs ---------------------------------------------------------------


def bump_mtime(path: Path) -> None:
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 5))


def reinitialize(cli: Invoke, api: TorcClient, wf: int, expected: list[str]) -> dict[str, Any]:
    """A dry run must name exactly `expected` (job names) and change nothing; the real run must then
    send exactly those jobs back (ready or blocked) and start a new run."""
    run_id, states = ok(cli, "workflows", "status", wf)["run_id"], ok(cli, "jobs", "list", wf)
    preview = ok(cli, "workflows", "reinitialize", wf, "--dry-run")
    assert [line.split(":")[0] for line in preview["rerun"]] == expected, preview
    assert ok(cli, "workflows", "status", wf)["run_id"] == run_id
    assert ok(cli, "jobs", "list", wf) == states
    plan = ok(cli, "workflows", "reinitialize", wf)
    assert plan == preview
    assert ok(cli, "workflows", "status", wf)["run_id"] == run_id + 1
    again = {name for name, status in statuses(api, wf).items() if status != "completed"}
    assert again == set(expected)
    return plan


def test_reinitialize_reruns_exactly_what_changed(cli, api, tmp_path):
    spec = pipeline_spec(tmp_path)
    d, out = tmp_path / "data", tmp_path / "out"
    (d / "raw.txt").write_text("first\n")
    wf = create(cli, spec)
    ok(cli, "workflows", "initialize", wf)
    assert "6 completed, 0 failed" in torc_run(cli, wf, out)
    done = dict.fromkeys(["gen", "use", "last", "conf", "after_conf", "free"], "completed")
    assert statuses(api, wf) == done
    assert (d / "end.txt").read_text() == "first\n"

    # nothing changed: nothing reruns, but it is a new run
    assert reinitialize(cli, api, wf, []) == {
        "changed_files": [], "missing_outputs": [], "changed_jobs": [], "rerun": [], "missing_inputs": []}
    result = cli("workflows", "reinitialize", wf, fmt="table")
    assert result.exit_code == 0 and "Nothing changed; no job needs to rerun." in result.stdout
    assert f"Workflow {wf}: 6 completed" in result.stdout
    assert ok(cli, "workflows", "status", wf)["run_id"] == 3

    # a touched input file: its consumer and everything downstream rerun
    (d / "raw.txt").write_text("second\n")
    bump_mtime(d / "raw.txt")
    result = cli("workflows", "reinitialize", wf, "--dry-run", fmt="table")
    assert result.stdout.splitlines() == [f"would rerun: gen: input {d / 'raw.txt'} changed",
                                          "would rerun: use: downstream of gen",
                                          "would rerun: last: downstream of use"]
    plan = reinitialize(cli, api, wf, ["gen", "use", "last"])
    assert plan["changed_files"] == [str(d / "raw.txt")] and plan["missing_outputs"] == []
    assert statuses(api, wf) == {**done, "gen": "ready", "use": "blocked", "last": "blocked"}
    assert "3 completed, 0 failed" in torc_run(cli, wf, out)
    assert (d / "end.txt").read_text() == "second\n"

    # a deleted output: its producer reruns (and the consumer of the vanished file)
    (d / "final.txt").unlink()
    plan = reinitialize(cli, api, wf, ["use", "last"])
    assert plan["missing_outputs"] == [str(d / "final.txt")]
    assert plan["rerun"] == [f"use: output {d / 'final.txt'} is missing", f"last: input {d / 'final.txt'} changed"]
    assert statuses(api, wf) == {**done, "use": "ready", "last": "blocked"}
    assert "2 completed, 0 failed" in torc_run(cli, wf, out)
    assert (d / "final.txt").exists()

    # changed user data: its consumer reruns, then its dependents
    cfg = ok(cli, "user-data", "list", wf, "--name", "cfg")[0]
    ok(cli, "user-data", "update", cfg["id"], "-d", '{"alpha": 2}')
    plan = reinitialize(cli, api, wf, ["conf", "after_conf"])
    assert plan["changed_jobs"] == ["conf"] and plan["changed_files"] == []
    assert statuses(api, wf) == {**done, "conf": "ready", "after_conf": "blocked"}
    assert "2 completed, 0 failed" in torc_run(cli, wf, out)

    reinitialize(cli, api, wf, [])
    assert ok(cli, "workflows", "is-complete", wf)["is_complete"] is True

    # a fresh initialize reruns everything, so a missing output of a completed job does not block it
    (d / "end.txt").unlink()
    check = ok(cli, "workflows", "initialize", wf, "--dry-run")
    assert check["missing_inputs"] == [] and str(d / "mid.txt") in check["existing_outputs"]
    assert ok(cli, "workflows", "initialize", wf)["job_counts"] == {"blocked": 3, "ready": 3}
    assert "6 completed, 0 failed" in torc_run(cli, wf, out)
    assert (d / "end.txt").read_text() == "second\n"

    # a required input that is gone: refused unless --force
    (d / "raw.txt").unlink()
    preview = ok(cli, "workflows", "reinitialize", wf, "--dry-run")
    assert preview["missing_inputs"] == [str(d / "raw.txt")]
    assert [line.split(":")[0] for line in preview["rerun"]] == ["gen", "use", "last"]
    assert_error(cli("workflows", "reinitialize", wf), str(d / "raw.txt"), "--force")
    assert statuses(api, wf) == done
    ok(cli, "workflows", "reinitialize", wf, "--force")
    assert statuses(api, wf) == {**done, "gen": "ready", "use": "blocked", "last": "blocked"}


def test_reinitialize_clears_a_cancel_and_refuses_while_jobs_run(cli, api):
    wf = make_workflow(api, "reinit-cancel")
    make_jobs(api, wf, [{"name": "a"}, {"name": "b"}])
    ok(cli, "workflows", "initialize", wf)
    run_id = api.run_id(wf)
    a, b = claim_all(api, wf)
    run_job(api, a, run_id)
    api.put(f"jobs/{b['id']}/start_job/{run_id}/0")
    assert_error(cli("workflows", "reinitialize", wf), "running")
    ok(cli, "workflows", "cancel", wf)
    assert statuses(api, wf) == {"a": "completed", "b": "canceled"}
    ok(cli, "workflows", "reinitialize", wf)
    assert ok(cli, "workflows", "status", wf)["is_canceled"] is False
    # the canceled job is not rerun by reinitialize (torc: use reset-status --failed-only)
    assert statuses(api, wf) == {"a": "completed", "b": "canceled"}
    ok(cli, "workflows", "reset-status", wf, "--failed-only", "-r")
    assert statuses(api, wf) == {"a": "completed", "b": "ready"}
    assert [j["name"] for j in claim_all(api, wf)] == ["b"]


# ---- status, reset-status, cancel, is-complete -----------------------------------------------------


def run_chain_with_failure(cli: Invoke, api: TorcClient) -> int:
    """a -> b -> c and d; a fails (rc 2) so b and c are canceled; d completes. Driven through the API."""
    wf = make_workflow(api, "chain")
    a, = make_jobs(api, wf, [{"name": "a"}])
    b, = make_jobs(api, wf, [{"name": "b", "depends_on_job_ids": [a["id"]]}])
    make_jobs(api, wf, [{"name": "c", "depends_on_job_ids": [b["id"]]}, {"name": "d"}])
    ok(cli, "workflows", "initialize", wf)
    run_id = api.run_id(wf)
    jobs = {j["name"]: j for j in claim_all(api, wf)}
    assert sorted(jobs) == ["a", "d"]
    run_job(api, jobs["a"], run_id, return_code=2)
    run_job(api, jobs["d"], run_id)
    wait_for(lambda: statuses(api, wf)["c"] == "canceled")
    return wf


def test_status_is_complete_and_reset_status(cli, api):
    wf = run_chain_with_failure(cli, api)
    status = ok(cli, "workflows", "status", wf)
    assert (status["id"], status["run_id"], status["is_canceled"], status["is_archived"]) == (wf, 1, False, False)
    assert status["job_counts"] == {"canceled": 2, "completed": 1, "failed": 1}
    out = table(cli, "workflows", "status", wf)
    assert "jobs canceled" in out and "jobs failed" in out and "run_id" in out
    assert ok(cli, "workflows", "is-complete", wf) == {
        "is_complete": True, "is_canceled": False, "needs_to_run_completion_script": False}
    assert "is_complete" in table(cli, "workflows", "is-complete", wf)

    result = cli("workflows", "reset-status", wf, "--failed-only", fmt="table", input="n\n")
    assert result.exit_code == 1 and "Aborted" in result.output
    assert ok(cli, "workflows", "status", wf)["job_counts"]["failed"] == 1

    reset = ok(cli, "workflows", "reset-status", wf, "--failed-only", "-r")
    assert (reset["reset_type"], reset["updated_count"], reset["run_id"]) == ("failed_only", 3, 2)
    assert reset["job_counts"] == {"blocked": 2, "completed": 1, "ready": 1}
    assert statuses(api, wf) == {"a": "ready", "b": "blocked", "c": "blocked", "d": "completed"}
    assert ok(cli, "workflows", "is-complete", wf)["is_complete"] is False
    run_id = api.run_id(wf)
    (a,) = claim_all(api, wf)
    run_job(api, a, run_id)
    wait_for(lambda: statuses(api, wf)["b"] == "ready")

    result = cli("workflows", "reset-status", wf, fmt="table", input="y\n")
    assert result.exit_code == 0 and "all" in result.stdout
    assert statuses(api, wf) == dict.fromkeys("abcd", "uninitialized")
    assert ok(cli, "workflows", "status", wf)["run_id"] == 2  # a plain reset is no new run
    assert ok(cli, "workflows", "reset-status", wf, "--no-prompts", "-r")["job_counts"] == {
        "blocked": 2, "ready": 2}


def test_cancel(cli, api):
    wf = make_workflow(api, "cancel-me")
    make_jobs(api, wf, [{"name": "a"}, {"name": "b"}, {"name": "c"}])
    ok(cli, "workflows", "initialize", wf)
    run_id = api.run_id(wf)
    a, b = claim_all(api, wf, limit=2)
    api.put(f"jobs/{a['id']}/start_job/{run_id}/0")
    status = ok(cli, "workflows", "cancel", wf)
    assert (status["id"], status["is_canceled"]) == (wf, True)
    assert statuses(api, wf) == {"a": "canceled", "b": "canceled", "c": "ready"}
    assert ok(cli, "workflows", "is-complete", wf)["is_canceled"] is True
    assert claim_all(api, wf) == []
    ok(cli, "workflows", "initialize", wf)  # a new run clears the cancel
    assert ok(cli, "workflows", "status", wf)["is_canceled"] is False
    assert len(claim_all(api, wf)) == 3
    assert_error(cli("workflows", "cancel", 987654), "not found")


# ---- execution plans, actions --------------------------------------------------------------------


def test_execution_plan_for_specs_and_workflows(cli, tmp_path):
    diamond = [{"stage": 1, "jobs": ["preprocess"]}, {"stage": 2, "jobs": ["work1", "work2"]},
               {"stage": 3, "jobs": ["postprocess"]}]
    assert ok(cli, "workflows", "execution-plan", EXAMPLES / "diamond_workflow.yaml") == diamond
    assert ok(cli, "workflows", "execution-plan", EXAMPLES / "diamond_workflow.kdl") == diamond
    wf = create(cli, EXAMPLES / "diamond_workflow.yaml")
    assert ok(cli, "workflows", "execution-plan", wf) == diamond  # file edges, before initialize
    ok(cli, "workflows", "initialize", wf, "--force")
    assert ok(cli, "workflows", "execution-plan", wf) == diamond
    out = table(cli, "workflows", "execution-plan", wf)
    assert "Stage 1 (Workflow start): 1 job(s)\n    preprocess\n" in out
    assert "Stage 3 (After stage 2 completes): 1 job(s)\n    postprocess\n" in out

    sweep = ok(cli, "workflows", "execution-plan", EXAMPLES / "hyperparameter_sweep.yaml")
    assert [len(s["jobs"]) for s in sweep] == [2, 18, 1]
    assert "train_lr0.0010_bs32_optsgd" in sweep[1]["jobs"]
    out = table(cli, "workflows", "execution-plan", EXAMPLES / "hyperparameter_sweep.yaml")
    assert "Stage 2 (After stage 1 completes): 18 job(s)" in out
    assert "    train_lr{0.0001..0.0100}_bs{16..64}_optadam (9 jobs)\n" in out
    assert "    train_lr{0.0001..0.0100}_bs{16..64}_optsgd (9 jobs)\n" in out
    assert "train_lr0.0010" not in out

    spec = tmp_path / "fan.yaml"
    spec.write_text("name: fan\njobs:\n  - name: prep\n    command: 'true'\n  - name: work_{i:03d}\n"
                    "    command: 'true'\n    depends_on: [prep]\n    parameters:\n      i: '1:12'\n"
                    "  - name: total\n    command: 'true'\n    depends_on_regexes: ['^work_']\n")
    out = table(cli, "workflows", "execution-plan", spec)
    assert out.splitlines() == ["Stage 1 (Workflow start): 1 job(s)", "    prep",
                                "Stage 2 (After stage 1 completes): 12 job(s)", "    work_{001..012} (12 jobs)",
                                "Stage 3 (After stage 2 completes): 1 job(s)", "    total"]
    assert_error(cli("workflows", "execution-plan", "no-such-spec.yaml"), "neither a spec file nor a workflow id")
    assert_error(cli("workflows", "execution-plan", 987654), "not found")


def test_collapse_names_keeps_constant_numbers_and_ranges_the_varying_ones():
    assert collapse_names(["stage2_work_1", "stage2_work_2", "stage2_work_3", "final"]) == [
        "stage2_work_{1..3} (3 jobs)", "final"]
    assert collapse_names(["job_007", "job_010", "job_008"]) == ["job_{007..010} (3 jobs)"]
    assert collapse_names(["a_1_1", "a_1_2", "a_2_1", "a_2_2", "lone#1"]) == ["a_{1..2}_{1..2} (4 jobs)", "lone#1"]
    assert collapse_names([f"g{i}_x" if i % 2 else f"h_{i}" for i in range(1, 5)] + ["p", "q", "r", "s", "t"],
                          limit=3) == ["g{1..3}_x (2 jobs)", "h_{2..4} (2 jobs)", "p", "... and 4 more groups"]


def test_list_actions(cli):
    wf = create(cli, EXAMPLES / "workflow_actions_simple.yaml")
    actions = ok(cli, "workflows", "list-actions", wf)
    assert [(a["trigger_type"], a["action_type"], a["executed"]) for a in actions] == [
        ("on_workflow_start", "run_commands", False), ("on_workflow_complete", "run_commands", False)]
    assert actions[0]["action_config"]["commands"][1] == "mkdir -p output temp"
    out = table(cli, "workflows", "list-actions", wf)
    assert "on_workflow_complete" in out and "required_triggers" in out
    assert ok(cli, "workflows", "list-actions", ok(cli, "workflows", "new", "-n", "none")["id"]) == []


# ---- export / import ------------------------------------------------------------------------------


def rich_spec(tmp_path: Path) -> Path:
    d = tmp_path / "rich"
    d.mkdir()
    (d / "seed.txt").write_text("seed\n")
    spec = tmp_path / "rich.yaml"
    spec.write_text(f"""\
name: rich
description: everything that export must carry
resource_requirements:
  - {{name: small, num_cpus: 1, memory: 100m, runtime: PT5M}}
failure_handlers:
  - name: retry_ten
    rules: [{{exit_codes: [10], max_retries: 1}}]
files:
  - {{name: seed, path: {d}/seed.txt}}
  - {{name: doubled, path: {d}/doubled.txt}}
user_data:
  - name: params
    data: {{"n": 3}}
jobs:
  - name: make
    command: "cat ${{files.input.seed}} ${{files.input.seed}} > ${{files.output.doubled}}"
    resource_requirements: small
    failure_handler: retry_ten
  - name: show
    command: "echo ${{user_data.input.params}} && wc -l ${{files.input.doubled}}"
  - name: final
    command: "echo final"
    depends_on: [show]
actions:
  - trigger_type: on_jobs_complete
    action_type: run_commands
    jobs: [make]
    commands: ["echo made"]
""")
    return spec


def describe(api: TorcClient, wf: int) -> dict[str, Any]:
    """A workflow's content with every id replaced by a name, for comparing copies."""
    files = {f["id"]: f for f in api.iter_items("files", workflow_id=wf)}
    data = {u["id"]: u for u in api.iter_items("user_data", workflow_id=wf)}
    rrs = {r["id"]: r for r in api.iter_items("resource_requirements", workflow_id=wf)}
    handlers = {h["id"]: h for h in api.iter_items(f"workflows/{wf}/failure_handlers")}
    schedulers = {s["id"]: s for s in api.iter_items("slurm_schedulers", workflow_id=wf)}
    jobs = {j["id"]: j for j in api.iter_items("jobs", workflow_id=wf, include_relationships=True)}

    def config(action: dict[str, Any]) -> dict[str, Any]:
        found = action["action_config"]
        if "scheduler_id" in found:
            found = {**found, "scheduler_id": schedulers[found["scheduler_id"]]["name"]}
        return found

    return {
        "jobs": {j["name"]: {
            "command": j["command"],
            "depends_on": sorted(jobs[i]["name"] for i in j.get("depends_on_job_ids") or []),
            "input_files": sorted(files[i]["name"] for i in j.get("input_file_ids") or []),
            "output_files": sorted(files[i]["name"] for i in j.get("output_file_ids") or []),
            "input_user_data": sorted(data[i]["name"] for i in j.get("input_user_data_ids") or []),
            "resource_requirements": rrs[j["resource_requirements_id"]]["name"],
            "failure_handler": handlers[j["failure_handler_id"]]["name"] if j.get("failure_handler_id") else None,
            "scheduler": schedulers[j["scheduler_id"]]["name"] if j.get("scheduler_id") else None,
        } for j in jobs.values()},
        "files": sorted((f["name"], f["path"]) for f in files.values()),
        "user_data": sorted((u["name"], json.dumps(u.get("data"))) for u in data.values()),
        "resource_requirements": sorted((r["name"], r["num_cpus"], r["memory"], r["runtime"]) for r in rrs.values()),
        "failure_handlers": sorted((h["name"], h["rules"]) for h in handlers.values()),
        "slurm_schedulers": sorted(json.dumps({**s, "id": None, "workflow_id": None}, sort_keys=True)
                                   for s in schedulers.values()),
        "actions": [(a["trigger_type"], a["action_type"], config(a),
                     sorted(jobs[i]["name"] for i in a.get("job_ids") or []))
                    for a in api.get(f"workflows/{wf}/actions")],
    }


def ids_of(api: TorcClient, wf: int) -> set[tuple[str, int]]:
    return {("job", j["id"]) for j in api.iter_items("jobs", workflow_id=wf)} | {
        ("file", f["id"]) for f in api.iter_items("files", workflow_id=wf)} | {
        ("user_data", u["id"]) for u in api.iter_items("user_data", workflow_id=wf)}


def test_export_import_round_trip(cli, api, tmp_path):
    wf = create(cli, rich_spec(tmp_path))
    ok(cli, "workflows", "initialize", wf)
    assert "3 completed, 0 failed" in torc_run(cli, wf, tmp_path / "out")
    original = describe(api, wf)
    assert original["jobs"]["show"]["depends_on"] == ["make"]  # derived from the file
    assert original["jobs"]["make"]["failure_handler"] == "retry_ten"
    assert original["actions"][0][3] == ["make"]

    export_file = tmp_path / "export.json"
    result = cli("workflows", "export", wf, "-o", export_file, "--include-results", "--include-events",
                 fmt="table")
    assert result.exit_code == 0 and f"Exported workflow {wf} (3 jobs) to {export_file}" in result.stderr
    doc = json.loads(export_file.read_text())
    assert doc["export_version"] == "1.0" and doc["workflow"]["id"] == wf
    assert {"files", "user_data", "resource_requirements", "slurm_schedulers", "local_schedulers", "jobs",
            "workflow_actions", "results", "events"} <= set(doc)
    assert len(doc["results"]) == 3 and doc["events"]
    plain = ok(cli, "workflows", "export", wf)  # to stdout, without results and events
    assert "results" not in plain and "events" not in plain and len(plain["jobs"]) == 3

    imported = ok(cli, "workflows", "import", export_file, "--name", "rich-copy")["workflow_id"]
    assert imported != wf
    assert ok(cli, "workflows", "get", imported)["name"] == "rich-copy"
    assert describe(api, imported) == original
    assert not ids_of(api, imported) & ids_of(api, wf)
    assert statuses(api, imported) == dict.fromkeys(["make", "show", "final"], "uninitialized")
    assert len(list(api.iter_items("results", workflow_id=imported, all_runs=True))) == 3
    assert len(list(api.iter_items("events", workflow_id=imported))) >= len(doc["events"])

    result = cli("workflows", "import", "-", "--skip-results", "--skip-events", fmt="table",
                 input=export_file.read_text())
    assert result.exit_code == 0, result.output
    second = int(result.stdout.split()[2].rstrip(";"))
    assert f"torc workflows initialize {second}" in result.stdout
    assert ok(cli, "workflows", "get", second)["name"] == "rich"
    assert describe(api, second) == original
    assert list(api.iter_items("results", workflow_id=second, all_runs=True)) == []
    assert list(api.iter_items("events", workflow_id=second)) == []

    ok(cli, "workflows", "initialize", imported)
    assert "3 completed, 0 failed" in torc_run(cli, imported, tmp_path / "out2")
    assert ok(cli, "workflows", "is-complete", imported)["is_complete"] is True


@pytest.mark.parametrize("example", ["sample_workflow.yaml", "workflow_actions_ml_training.yaml",
                                     "slurm_staged_pipeline.yaml", "failure_handler_demo.yaml"])
def test_export_import_keeps_examples_intact(cli, api, example):
    wf = create(cli, EXAMPLES / example)
    exported = cli("workflows", "export", wf)
    assert exported.exit_code == 0, exported.output
    imported = cli("workflows", "import", "-", input=exported.stdout)  # from stdin
    assert imported.exit_code == 0, imported.output
    copy = json.loads(imported.stdout)["workflow_id"]
    assert describe(api, copy) == describe(api, wf)
    assert not ids_of(api, copy) & ids_of(api, wf)


def test_import_rejects_bad_documents(cli, tmp_path):
    before = all_workflow_ids(cli)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert_error(cli("workflows", "import", bad), "not valid JSON")
    bad.write_text(json.dumps({"export_version": "9.9", "workflow": {"name": "x"}}))
    assert_error(cli("workflows", "import", bad), "export_version")
    cyclic = {"export_version": "1.0", "workflow": {"name": "cyc", "user": "me"}, "jobs": [
        {"id": 1, "name": "a", "command": "true", "depends_on_job_ids": [2]},
        {"id": 2, "name": "b", "command": "true", "depends_on_job_ids": [1]}]}
    bad.write_text(json.dumps(cyclic))
    assert_error(cli("workflows", "import", bad), "cycle")
    assert all_workflow_ids(cli) == before  # a failed import leaves nothing behind


# ---- sync-status (orphaned jobs) -------------------------------------------------------------------


def register_node(api: TorcClient, wf: int, pid: int) -> dict[str, Any]:
    return api.post("compute_nodes", {
        "workflow_id": wf, "hostname": socket.gethostname(), "pid": pid,
        "start_time": datetime.now(UTC).isoformat(),  # a runner with no heartbeat yet is judged by its start
        "num_cpus": 1, "memory_gb": 1, "num_gpus": 0, "num_nodes": 1, "compute_node_type": "local",
        "is_active": True})


def test_sync_status_fails_jobs_of_dead_runners(cli, api):
    wf = make_workflow(api, "orphans")
    make_jobs(api, wf, [{"name": "lost"}, {"name": "alive"}, {"name": "waiting"}])
    ok(cli, "workflows", "initialize", wf)
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead, live = register_node(api, wf, gone.pid), register_node(api, wf, os.getpid())
    run_id = api.run_id(wf)
    jobs = {j["name"]: j for j in claim_all(api, wf, limit=2)}
    api.put(f"jobs/{jobs['lost']['id']}/start_job/{run_id}/{dead['id']}")
    api.put(f"jobs/{jobs['alive']['id']}/start_job/{run_id}/{live['id']}")

    listed = ok(cli, "workflows", "sync-status", wf, "--dry-run")
    assert [(o["name"], o["status"], o["compute_node_id"]) for o in listed] == [("lost", "running", dead["id"])]
    assert statuses(api, wf) == {"lost": "running", "alive": "running", "waiting": "ready"}
    assert api.get(f"compute_nodes/{dead['id']}")["is_active"] is True

    result = cli("workflows", "sync-status", wf, fmt="table")
    assert result.exit_code == 0, result.output
    assert "lost" in result.stdout and "Failed 1 orphaned job(s)" in result.stderr
    assert statuses(api, wf) == {"lost": "failed", "alive": "running", "waiting": "ready"}
    (res,) = api.iter_items("results", workflow_id=wf)
    assert (res["job_id"], res["return_code"], res["status"]) == (jobs["lost"]["id"], -128, "failed")
    assert api.get(f"compute_nodes/{dead['id']}")["is_active"] is False
    assert api.get(f"compute_nodes/{live['id']}")["is_active"] is True
    assert ok(cli, "workflows", "sync-status", wf) == []
    assert "No orphaned jobs found." in table(cli, "workflows", "sync-status", wf, "--dry-run")


def test_sync_status_gives_back_jobs_a_dead_runner_claimed_but_never_started(cli, api):
    wf = make_workflow(api, "claimed-ahead")
    make_jobs(api, wf, [{"name": f"j{i}"} for i in range(3)])
    ok(cli, "workflows", "initialize", wf)
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = register_node(api, wf, gone.pid)
    claimed = api.post(f"workflows/{wf}/claim_next_jobs", limit=2, compute_node_id=dead["id"])["jobs"]
    api.put(f"jobs/{claimed[0]['id']}/start_job/{api.run_id(wf)}/{dead['id']}")
    listed = ok(cli, "workflows", "sync-status", wf)
    assert sorted((o["name"], o["status"]) for o in listed) == sorted(
        [(claimed[0]["name"], "running"), (claimed[1]["name"], "pending")])
    states = statuses(api, wf)
    assert states[claimed[0]["name"]] == "failed" and states[claimed[1]["name"]] == "ready"
