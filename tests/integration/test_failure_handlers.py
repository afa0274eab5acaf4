"""Failure handlers and pending_failed, end to end: a real torc-server, `torc run` as a subprocess,
real job processes and recovery scripts (see docs/failure-handling.md).

Decisions checked here: max_retries counts retries (max_retries N: at most N+1 attempts), every
attempt keeps its own result row, a recovery script runs before its retry with the job's
environment, and a failing recovery script means no retry."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from tests.integration.runner_support import FAST, create, explain, jobs_by_name, run, torc
from torc.client import TorcClient
from torc.runner.failures import Handler, Recoveries, Recovery, Rule, codes_for, parse_handler, pick_rule

# ---- helpers (the shared ones are in runner_support.py) --------------------------------------


def rows_by_name(client: TorcClient, workflow_id: int) -> dict[str, list[dict[str, Any]]]:
    """Every result row (all attempts, all runs) per job name, oldest first."""
    names = {j["id"]: j["name"] for j in client.iter_items("jobs", workflow_id=workflow_id)}
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in names.values()}
    for r in client.iter_items("results", workflow_id=workflow_id, all_runs=True):
        out[names[r["job_id"]]].append(r)
    for rows in out.values():
        rows.sort(key=lambda r: (r["run_id"], r["attempt_id"], r["id"]))
    return out


def summary(rows: list[dict[str, Any]]) -> list[tuple[int, str, int]]:
    return [(r["attempt_id"], r["status"], r["return_code"]) for r in rows]


def handler(name: str, *rules: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "rules": list(rules)}


# ---- rule matching (no server) -----------------------------------------------------------------


def test_pick_rule_prefers_exit_codes_over_match_all():
    h = Handler(1, "h", (Rule(match_all_exit_codes=True, max_retries=1), Rule(exit_codes=(10, 11), max_retries=2)))
    assert pick_rule(h, 11).max_retries == 2
    assert pick_rule(h, 3).max_retries == 1
    assert pick_rule(Handler(1, "h", (Rule(exit_codes=(10,)),)), 3) is None
    # a job killed by SIGKILL (-9) matches 137, the code a shell reports for it
    assert codes_for(-9) == (-9, 137)
    assert pick_rule(Handler(1, "h", (Rule(exit_codes=(137,)),)), -9) is not None


def test_parse_handler_reads_server_records():
    record = {"id": 4, "name": "h", "rules": json.dumps([{"exit_codes": [10], "recovery_script": "fix.sh"},
                                                         {"match_all_exit_codes": True, "max_retries": 0}])}
    h = parse_handler(record)
    assert h.rules == (Rule((10,), False, 3, "fix.sh"), Rule((), True, 0, None))
    broken = parse_handler({"id": 5, "name": "b", "rules": "not json"})
    assert broken.rules == () and "unreadable rules" in broken.problem


def test_recovery_script_timeout_counts_as_failure(tmp_path):
    done = threading.Event()
    recoveries = Recoveries(done.set, timeout=0.5)
    job = {"id": 1, "name": "j", "attempt_id": 1}
    item = {"job_id": 1, "status": "failed", "result": {"return_code": 10}}
    rule = Rule((10,), False, 1, "echo started; sleep 30")
    recoveries.submit(Recovery(job, item, Handler(1, "h", (rule,)), rule, dict(os.environ), tmp_path,
                               tmp_path / "r.log"))
    assert done.wait(10)
    (recovery,) = recoveries.take_done()
    recoveries.close()
    assert not recovery.ok and recovery.failure() == "timed out after 0.5 s (killed)"
    assert "started" in (tmp_path / "r.log").read_text()
    assert recoveries.pending == 0


# ---- retries -----------------------------------------------------------------------------------


def test_exit_code_rule_retries_exactly_max_retries(server, client, tmp_path):
    spec = {"name": "retry_exact", "failure_handlers": [handler("h", {"exit_codes": [10], "max_retries": 2})],
            "jobs": [{"name": "always_fails", "command": "echo attempt $TORC_ATTEMPT_ID; exit 10",
                      "failure_handler": "h"},
                     {"name": "after", "command": "echo after", "depends_on": ["always_fails"]}]}
    wf = create(client, spec, tmp_path)
    proc = run(server.url, wf, cwd=tmp_path)
    assert proc.returncode == 1, explain(proc)
    jobs = jobs_by_name(client, wf)
    assert jobs["always_fails"]["status"] == "failed" and jobs["always_fails"]["attempt_id"] == 3
    assert jobs["after"]["status"] == "canceled"
    rows = rows_by_name(client, wf)
    assert summary(rows["always_fails"]) == [(1, "failed", 10), (2, "failed", 10), (3, "failed", 10)]
    assert len({r["run_id"] for r in rows["always_fails"]}) == 1
    assert rows["after"] == []
    job_id = jobs["always_fails"]["id"]
    for attempt in (1, 2, 3):  # every attempt has its own log files
        (out,) = (tmp_path / "out" / "job_stdio").glob(f"job_wf{wf}_j{job_id}_r*_a{attempt}.o")
        assert out.read_text() == f"attempt {attempt}\n"
    assert "retry 1 of 2" in proc.stdout and "retry 2 of 2" in proc.stdout, explain(proc)
    assert "no retry left after 3 attempt(s)" in proc.stdout, explain(proc)
    assert client.get(f"workflows/{wf}/is_complete")["is_complete"]


def test_job_succeeding_on_second_attempt_completes_and_dependents_run(server, client, tmp_path):
    counter = tmp_path / "count"
    flaky = f'n=$(( $(cat {counter} 2>/dev/null || echo 0) + 1 )); echo $n > {counter}; [ $n -ge 2 ] || exit 1'
    spec = {"name": "second_time_lucky", "failure_handlers": [handler("h", {"exit_codes": [1], "max_retries": 3})],
            "jobs": [{"name": "flaky", "command": flaky, "failure_handler": "h"},
                     {"name": "next", "command": "echo next", "depends_on": ["flaky"]}]}
    wf = create(client, spec, tmp_path)
    proc = run(server.url, wf, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    jobs = jobs_by_name(client, wf)
    assert {n: j["status"] for n, j in jobs.items()} == {"flaky": "completed", "next": "completed"}
    assert jobs["flaky"]["attempt_id"] == 2
    rows = rows_by_name(client, wf)
    assert summary(rows["flaky"]) == [(1, "failed", 1), (2, "completed", 0)]
    assert summary(rows["next"]) == [(1, "completed", 0)]
    # the current result is the last attempt's
    current = {r["job_id"]: r for r in client.iter_items("results", workflow_id=wf)}
    assert current[jobs["flaky"]["id"]]["attempt_id"] == 2
    assert counter.read_text().strip() == "2"


def test_match_all_exit_codes_and_first_matching_rule_wins(server, client, tmp_path):
    rules = [{"exit_codes": [10], "max_retries": 0}, {"match_all_exit_codes": True, "max_retries": 1}]
    spec = {"name": "match_all", "failure_handlers": [handler("h", *rules)],
            "jobs": [{"name": "any_code", "command": "exit 7", "failure_handler": "h"},
                     {"name": "code_10", "command": "exit 10", "failure_handler": "h"}]}
    wf = create(client, spec, tmp_path)
    proc = run(server.url, wf, cwd=tmp_path)
    assert proc.returncode == 1, explain(proc)
    rows = rows_by_name(client, wf)
    assert summary(rows["any_code"]) == [(1, "failed", 7), (2, "failed", 7)]  # match_all: one retry
    assert summary(rows["code_10"]) == [(1, "failed", 10)]  # its own rule (no retries) comes first
    assert {n: j["status"] for n, j in jobs_by_name(client, wf).items()} == {"any_code": "failed",
                                                                             "code_10": "failed"}


def test_exit_code_no_rule_covers_fails_without_retry(server, client, tmp_path):
    spec = {"name": "no_rule", "failure_handlers": [handler("h", {"exit_codes": [10], "max_retries": 3})],
            "jobs": [{"name": "bad", "command": "exit 3", "failure_handler": "h"},
                     {"name": "after", "command": "echo after", "depends_on": ["bad"]}]}
    wf = create(client, spec, tmp_path)
    proc = run(server.url, wf, cwd=tmp_path)
    assert proc.returncode == 1, explain(proc)
    jobs = jobs_by_name(client, wf)
    assert jobs["bad"]["status"] == "failed" and jobs["bad"]["attempt_id"] == 1
    assert jobs["after"]["status"] == "canceled"
    assert summary(rows_by_name(client, wf)["bad"]) == [(1, "failed", 3)]


# ---- recovery scripts --------------------------------------------------------------------------


def test_recovery_script_runs_with_the_jobs_env_before_the_retry(server, client, tmp_path):
    recovery = "env | grep ^TORC_ | sort > recovery_$TORC_JOB_NAME.env; touch fixed; echo recovered"
    spec = {"name": "recovery_env",
            "failure_handlers": [handler("fix", {"exit_codes": [10], "max_retries": 2, "recovery_script": recovery})],
            "jobs": [{"name": "needs_fix", "command": 'test -f "$TORC_OUTPUT_DIR/fixed" || exit 10',
                      "failure_handler": "fix"}]}
    wf = create(client, spec, tmp_path)
    proc = run(server.url, wf, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    job = jobs_by_name(client, wf)["needs_fix"]
    assert job["status"] == "completed" and job["attempt_id"] == 2
    assert summary(rows_by_name(client, wf)["needs_fix"]) == [(1, "failed", 10), (2, "completed", 0)]
    out = tmp_path / "out"
    env = dict(line.split("=", 1) for line in (out / "recovery_needs_fix.env").read_text().splitlines())
    assert env["TORC_JOB_ID"] == str(job["id"])
    assert env["TORC_JOB_NAME"] == "needs_fix"
    assert env["TORC_WORKFLOW_ID"] == str(wf)
    assert env["TORC_ATTEMPT_ID"] == "1"  # the attempt that failed
    assert env["TORC_RETURN_CODE"] == "10"
    assert env["TORC_FAILURE_HANDLER_NAME"] == "fix"
    assert env["TORC_MAX_RETRIES"] == "2" and env["TORC_RETRY"] == "1"
    assert env["TORC_OUTPUT_DIR"] == str(out)
    (log,) = (out / "job_stdio").glob(f"job_wf{wf}_j{job['id']}_r*_a1.recovery.log")
    assert "recovered" in log.read_text() and "recovery script succeeded" in log.read_text()
    (err,) = (out / "job_stdio").glob(f"job_wf{wf}_j{job['id']}_r*_a1.e")
    assert "retry 1 of 2" in err.read_text()


def test_failing_recovery_script_means_no_retry(server, client, tmp_path):
    spec = {"name": "recovery_fails",
            "failure_handlers": [handler("fix", {"exit_codes": [10], "max_retries": 3,
                                                 "recovery_script": "echo cannot fix this >&2; exit 3"})],
            "jobs": [{"name": "unfixable", "command": "exit 10", "failure_handler": "fix"},
                     {"name": "after", "command": "echo after", "depends_on": ["unfixable"]}]}
    wf = create(client, spec, tmp_path)
    proc = run(server.url, wf, cwd=tmp_path)
    assert proc.returncode == 1, explain(proc)
    jobs = jobs_by_name(client, wf)
    assert jobs["unfixable"]["status"] == "failed" and jobs["unfixable"]["attempt_id"] == 1
    assert jobs["after"]["status"] == "canceled"
    assert summary(rows_by_name(client, wf)["unfixable"]) == [(1, "failed", 10)]
    message = f"job unfixable (id {jobs['unfixable']['id']}): recovery script"
    assert message in proc.stdout and "exited with code 3; the job is not retried" in proc.stdout, explain(proc)
    stdio = tmp_path / "out" / "job_stdio"
    (log,) = stdio.glob("*.recovery.log")
    assert "cannot fix this" in log.read_text()
    (err,) = stdio.glob(f"job_wf{wf}_j{jobs['unfixable']['id']}_r*_a1.e")
    assert "exited with code 3; the job is not retried" in err.read_text()


# ---- pending_failed ----------------------------------------------------------------------------


def pending_failed_workflow(client: TorcClient, folder: Path) -> int:
    marker = folder / "marker"
    spec = {"name": "pending", "use_pending_failed": True,
            "failure_handlers": [handler("h", {"exit_codes": [10], "max_retries": 1})],
            "jobs": [{"name": "undecided", "command": f"test -f {marker} || exit 5", "failure_handler": "h"},
                     {"name": "after", "command": "echo after", "depends_on": ["undecided"]},
                     {"name": "other", "command": "echo other"}]}
    return create(client, spec, folder)


def test_pending_failed_then_resolve_retry_runs_it_again(server, client, tmp_path):
    wf = pending_failed_workflow(client, tmp_path)
    started = time.monotonic()
    proc = run(server.url, wf, cwd=tmp_path)
    assert time.monotonic() - started < 15, explain(proc)  # it stops at once, not after the idle timeout
    assert proc.returncode == 1, explain(proc)
    assert "wait for a decision" in proc.stdout, explain(proc)
    jobs = jobs_by_name(client, wf)
    assert {n: j["status"] for n, j in jobs.items()} == {"undecided": "pending_failed", "after": "blocked",
                                                         "other": "completed"}
    assert not client.get(f"workflows/{wf}/is_complete")["is_complete"]
    assert summary(rows_by_name(client, wf)["undecided"]) == [(1, "pending_failed", 5)]

    listed = torc(server.url, "-f", "json", "jobs", "pending-failed", str(wf), cwd=tmp_path)
    assert listed.returncode == 0, explain(listed)
    (row,) = json.loads(listed.stdout)
    assert row["name"] == "undecided" and row["return_code"] == 5 and row["attempt_id"] == 1

    # a job that is not pending_failed: a clear error, and nothing changes
    wrong = torc(server.url, "jobs", "resolve", str(wf), "--retry", str(jobs["undecided"]["id"]),
                 str(jobs["after"]["id"]), cwd=tmp_path)
    assert wrong.returncode != 0
    assert f"job {jobs['after']['id']} (after) is blocked, not pending_failed" in wrong.stdout + wrong.stderr
    assert jobs_by_name(client, wf)["undecided"]["status"] == "pending_failed"
    usage = torc(server.url, "jobs", "resolve", str(wf), str(jobs["undecided"]["id"]), cwd=tmp_path)
    assert usage.returncode == 2 and "--retry or --fail" in usage.stderr

    (tmp_path / "marker").write_text("fixed\n")
    resolved = torc(server.url, "jobs", "resolve", str(wf), "--retry", str(jobs["undecided"]["id"]), cwd=tmp_path)
    assert resolved.returncode == 0, explain(resolved)
    job = jobs_by_name(client, wf)["undecided"]
    assert job["status"] == "ready" and job["attempt_id"] == 2

    again = run(server.url, wf, cwd=tmp_path)
    assert again.returncode == 0, explain(again)
    jobs = jobs_by_name(client, wf)
    assert {n: j["status"] for n, j in jobs.items()} == {"undecided": "completed", "after": "completed",
                                                         "other": "completed"}
    assert summary(rows_by_name(client, wf)["undecided"]) == [(1, "pending_failed", 5), (2, "completed", 0)]
    assert client.get(f"workflows/{wf}/is_complete")["is_complete"]


def test_resolve_fail_cancels_dependents(server, client, tmp_path):
    wf = pending_failed_workflow(client, tmp_path)
    proc = run(server.url, wf, cwd=tmp_path)
    assert proc.returncode == 1, explain(proc)
    assert jobs_by_name(client, wf)["undecided"]["status"] == "pending_failed"
    limited = torc(server.url, "jobs", "resolve", str(wf), "--retry", "--all", "--max-retries", "0", cwd=tmp_path)
    assert limited.returncode != 0 and "already had 0 retries" in limited.stdout + limited.stderr, explain(limited)
    assert jobs_by_name(client, wf)["undecided"]["status"] == "pending_failed"
    resolved = torc(server.url, "-f", "json", "jobs", "resolve", str(wf), "--fail", "--all", cwd=tmp_path)
    assert resolved.returncode == 0, explain(resolved)
    assert [j["status"] for j in json.loads(resolved.stdout)["jobs"]] == ["failed"]
    jobs = jobs_by_name(client, wf)
    assert {n: j["status"] for n, j in jobs.items()} == {"undecided": "failed", "after": "canceled",
                                                         "other": "completed"}
    assert client.get(f"workflows/{wf}/is_complete")["is_complete"]
    current = {r["job_id"]: r for r in client.iter_items("results", workflow_id=wf)}
    assert current[jobs["undecided"]["id"]]["status"] == "failed"
    assert current[jobs["undecided"]["id"]]["return_code"] == 5
    nothing = torc(server.url, "jobs", "resolve", str(wf), "--retry", "--all", cwd=tmp_path)
    assert nothing.returncode == 0 and "No pending_failed jobs" in nothing.stdout, explain(nothing)


def test_rule_with_retries_left_is_not_pending_failed_but_exhausted_rule_is_failed(server, client, tmp_path):
    """use_pending_failed only applies where no rule covers the code: a rule whose retries are
    used up leaves the job failed."""
    spec = {"name": "exhausted", "use_pending_failed": True,
            "failure_handlers": [handler("h", {"exit_codes": [10], "max_retries": 1})],
            "jobs": [{"name": "j", "command": "exit 10", "failure_handler": "h"}]}
    wf = create(client, spec, tmp_path)
    proc = run(server.url, wf, cwd=tmp_path)
    assert proc.returncode == 1, explain(proc)
    assert jobs_by_name(client, wf)["j"]["status"] == "failed"
    assert summary(rows_by_name(client, wf)["j"]) == [(1, "failed", 10), (2, "failed", 10)]


# ---- bad input ---------------------------------------------------------------------------------


def test_rule_without_exit_codes_is_a_spec_error(server, tmp_path):
    spec = {"name": "bad_rule", "failure_handlers": [handler("h", {"max_retries": 2})],
            "jobs": [{"name": "j", "command": "true", "failure_handler": "h"}]}
    path = tmp_path / "bad_rule.json"
    path.write_text(json.dumps(spec))
    proc = torc(server.url, "run", str(path), "-o", str(tmp_path / "out"), *FAST, cwd=tmp_path)
    assert proc.returncode != 0
    assert "failure_handler 'h': rule 1 matches no exit code" in proc.stdout + proc.stderr, explain(proc)
