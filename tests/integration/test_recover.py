"""`torc recover` and `torc watch` end to end: a real torc-server, `torc run` / `torc recover` /
`torc watch` as subprocesses, real job processes that run out of memory or time."""

from __future__ import annotations

import json
import subprocess
from functools import partial
from pathlib import Path
from typing import Any

from tests.integration import runner_support
from tests.integration.runner_support import FAST, PY, TORC, clean_env, create, explain, jobs_by_name, rr
from torc.client import TorcClient, recovery

# these tests give `torc` more time than the default 60 s (runs that go out of memory or time)
torc = partial(runner_support.torc, timeout=90)
run = partial(runner_support.run, timeout=90)

MONITOR = {"enabled": True, "granularity": "summary", "sample_interval_seconds": 1}
# ~300 MiB for 3 s; allocated after 0.3 s so that the first sample (50 ms) never catches it half-way
HOG = f"{PY} -c 'import time; time.sleep(0.3); b = bytearray(300 * 2**20); time.sleep(3)'"


# ---- helpers (the shared ones are in runner_support.py) --------------------------------------


def recover(url: str, workflow_id: int, *args: str, cwd: Path, fmt: str | None = None,
            timeout: float = 90) -> subprocess.CompletedProcess:
    head = ["-f", fmt] if fmt else []
    return torc(url, *head, "recover", str(workflow_id), "-o", str(cwd / "out"), *FAST, *args, cwd=cwd,
                timeout=timeout)


def statuses(client: TorcClient, workflow_id: int) -> dict[str, str]:
    return {name: j["status"] for name, j in jobs_by_name(client, workflow_id).items()}


def requirements(client: TorcClient, workflow_id: int) -> dict[str, dict[str, Any]]:
    """The workflow's resource requirements by name (but the `default` one every workflow has)."""
    return {r["name"]: r for r in client.iter_items("resource_requirements", workflow_id=workflow_id)
            if r["name"] != "default"}


def rr_of(client: TorcClient, workflow_id: int, job_name: str) -> dict[str, Any]:
    job = jobs_by_name(client, workflow_id)[job_name]
    return client.get(f"resource_requirements/{job['resource_requirements_id']}")


def snapshot(client: TorcClient, workflow_id: int) -> Any:
    """Everything recover may change: jobs, requirements, the run id."""
    jobs = sorted((j["id"], j["status"], j["resource_requirements_id"], j.get("attempt_id"))
                  for j in client.iter_items("jobs", workflow_id=workflow_id))
    reqs = sorted(tuple(sorted(r.items())) for r in client.iter_items("resource_requirements", workflow_id=workflow_id))
    return jobs, reqs, client.run_id(workflow_id)


def oom_workflow(client: TorcClient, folder: Path, name: str) -> int:
    return create(client, {"name": name, "resource_monitor": MONITOR,
                           "resource_requirements": [rr("small", memory="100m")],
                           "jobs": [{"name": "hog", "command": HOG, "resource_requirements": "small"},
                                    {"name": "after", "command": "echo after", "depends_on": ["hog"],
                                     "resource_requirements": "small"}]}, folder)


def failed_by_unknown(client: TorcClient, folder: Path, name: str, marker: Path) -> int:
    """`flaky` fails (exit 3) until `marker` exists; `ok` completes."""
    cmd = f"test -e {marker} || exit 3"
    return create(client, {"name": name, "resource_requirements": [rr("small")],
                           "jobs": [{"name": "flaky", "command": cmd, "resource_requirements": "small"},
                                    {"name": "ok", "command": "true", "resource_requirements": "small"}]}, folder)


# ---- out of memory -------------------------------------------------------------------------


def test_oom_job_gets_more_memory_and_completes(client, server, tmp_path):
    wf = oom_workflow(client, tmp_path, "rec_oom")
    proc = run(server.url, wf, "--enforce-memory-limits", cwd=tmp_path)
    assert proc.returncode == 1, explain(proc)
    assert statuses(client, wf) == {"hog": "failed", "after": "canceled"}

    # x4: the kill happens at the first sample above 100 MiB, which on a busy machine can catch the
    # 300-MiB allocation half-way; any such sample times 4 is more than the hog needs
    proc = recover(server.url, wf, "--enforce-memory-limits", "--memory-multiplier", "4", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert "oom" in proc.stdout and "small_recovered_1" in proc.stdout
    assert statuses(client, wf) == {"hog": "completed", "after": "completed"}
    new = rr_of(client, wf, "hog")
    assert new["name"] == "small_recovered_1"
    assert int(new["memory"].rstrip("m")) > 100 * 4  # the observed peak (over the limit) times 4
    assert new["runtime"] == "PT1H" and new["num_cpus"] == 1
    assert requirements(client, wf)["small"]["memory"] == "100m"  # the old record is untouched
    assert rr_of(client, wf, "after")["name"] == "small"  # the job that did not fail keeps it


def test_two_jobs_share_a_requirement_only_the_failed_one_moves(client, server, tmp_path):
    wf = create(client, {"name": "rec_shared", "resource_monitor": MONITOR,
                         "resource_requirements": [rr("shared", memory="100m")],
                         "jobs": [{"name": "hog", "command": HOG, "resource_requirements": "shared"},
                                  {"name": "light", "command": "true", "resource_requirements": "shared"}]},
                tmp_path)
    run(server.url, wf, "--enforce-memory-limits", cwd=tmp_path)
    assert statuses(client, wf) == {"hog": "failed", "light": "completed"}
    before = requirements(client, wf)["shared"]

    proc = recover(server.url, wf, "--enforce-memory-limits", "--memory-multiplier", "2", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert statuses(client, wf) == {"hog": "completed", "light": "completed"}
    reqs = requirements(client, wf)
    assert reqs["shared"] == before
    assert set(reqs) == {"shared", "shared_recovered_1"}
    assert rr_of(client, wf, "hog")["id"] == reqs["shared_recovered_1"]["id"]
    assert rr_of(client, wf, "light")["id"] == before["id"]
    assert int(reqs["shared_recovered_1"]["memory"].rstrip("m")) >= 600


def test_jobs_sharing_a_requirement_and_the_same_change_share_one_new_record(client, server, tmp_path):
    wf = create(client, {"name": "rec_timeout_pair", "resource_requirements": [rr("short", runtime="PT1S")],
                         "jobs": [{"name": f"slow{i}", "command": "sleep 3", "resource_requirements": "short"}
                                  for i in (1, 2)]}, tmp_path)
    run(server.url, wf, "--num-cpus", "2", cwd=tmp_path)
    assert statuses(client, wf) == {"slow1": "terminated", "slow2": "terminated"}
    proc = recover(server.url, wf, "--runtime-multiplier", "5", "--num-cpus", "2", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    reqs = requirements(client, wf)
    assert set(reqs) == {"short", "short_recovered_1"}
    assert reqs["short_recovered_1"]["runtime"] == "PT5S"
    assert {rr_of(client, wf, n)["name"] for n in ("slow1", "slow2")} == {"short_recovered_1"}
    assert statuses(client, wf) == {"slow1": "completed", "slow2": "completed"}


# ---- out of time ---------------------------------------------------------------------------


def test_timeout_job_gets_more_time_and_completes(client, server, tmp_path):
    wf = create(client, {"name": "rec_timeout", "resource_requirements": [rr("short", runtime="PT2S")],
                         "jobs": [{"name": "sleeper", "command": "sleep 4", "resource_requirements": "short"}]},
                tmp_path)
    proc = run(server.url, wf, cwd=tmp_path)
    assert proc.returncode == 1, explain(proc)
    assert statuses(client, wf) == {"sleeper": "terminated"}

    dry = recover(server.url, wf, "--runtime-multiplier", "3", "--dry-run", cwd=tmp_path, fmt="json")
    assert dry.returncode == 0, explain(dry)
    plan = json.loads(dry.stdout)
    (job,) = plan["jobs"]
    assert job["cause"] == "timeout" and job["action"] == "retry"
    assert job["old_runtime"] == "PT2S" and job["new_runtime"] == "PT6S"
    assert "runtime limit" in job["evidence"][0]

    proc = recover(server.url, wf, "--runtime-multiplier", "3", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert statuses(client, wf) == {"sleeper": "completed"}
    assert rr_of(client, wf, "sleeper")["runtime"] == "PT6S"
    assert requirements(client, wf)["short"]["runtime"] == "PT2S"


# ---- dry run, unknown failures, hooks ------------------------------------------------------


def test_dry_run_changes_nothing(client, server, tmp_path):
    wf = oom_workflow(client, tmp_path, "rec_dry")
    run(server.url, wf, "--enforce-memory-limits", cwd=tmp_path)
    before = snapshot(client, wf)
    proc = recover(server.url, wf, "--dry-run", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert "dry run" in proc.stdout and "hog" in proc.stdout and "100m->" in proc.stdout
    proc = recover(server.url, wf, "--dry-run", cwd=tmp_path, fmt="json")
    plan = json.loads(proc.stdout)
    assert plan["applied"] is False
    (job,) = plan["jobs"]
    assert job["job_name"] == "hog" and job["cause"] == "oom" and job["old_memory"] == "100m"
    assert "memory limit" in job["evidence"][0]
    assert plan["new_resource_requirements"][0]["name"] == "small_recovered_1"
    assert snapshot(client, wf) == before


def test_unknown_failures_are_skipped_unless_retry_unknown(client, server, tmp_path):
    marker = tmp_path / "fixed"
    wf = failed_by_unknown(client, tmp_path, "rec_unknown", marker)
    run(server.url, wf, cwd=tmp_path)
    assert statuses(client, wf) == {"flaky": "failed", "ok": "completed"}
    before = snapshot(client, wf)

    proc = recover(server.url, wf, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert "unknown" in proc.stdout and "Nothing to recover" in proc.stderr
    assert snapshot(client, wf) == before

    marker.touch()
    proc = recover(server.url, wf, "--retry-unknown", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert statuses(client, wf) == {"flaky": "completed", "ok": "completed"}
    assert set(requirements(client, wf)) == {"small"}  # retried with unchanged resources


def test_recovery_hook_runs_before_the_retry(client, server, tmp_path):
    marker = tmp_path / "fixed"
    wf = failed_by_unknown(client, tmp_path, "rec_hook", marker)
    run(server.url, wf, cwd=tmp_path)
    hook = tmp_path / "hook.sh"
    hook.write_text(f'#!/bin/bash\necho "$1 $TORC_WORKFLOW_ID" > {tmp_path}/hook_args\ntouch {marker}\n')
    hook.chmod(0o755)
    proc = recover(server.url, wf, "--recovery-hook", str(hook), cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert (tmp_path / "hook_args").read_text().split() == [str(wf), str(wf)]
    assert statuses(client, wf) == {"flaky": "completed", "ok": "completed"}


def test_failing_hook_is_a_clear_error_and_changes_nothing(client, server, tmp_path):
    wf = oom_workflow(client, tmp_path, "rec_bad_hook")
    run(server.url, wf, "--enforce-memory-limits", cwd=tmp_path)
    before = snapshot(client, wf)
    proc = recover(server.url, wf, "--recovery-hook", "false", cwd=tmp_path)
    assert proc.returncode == 1, explain(proc)
    assert "recovery hook" in proc.stderr and "failed with exit code 1" in proc.stderr
    assert "nothing was changed" in proc.stderr and "Traceback" not in proc.stderr
    assert snapshot(client, wf) == before


# ---- bad input -----------------------------------------------------------------------------


def test_bad_input_is_a_clear_error(client, server, tmp_path):
    proc = recover(server.url, 999999, cwd=tmp_path)
    assert proc.returncode == 1 and "999999" in proc.stderr and "Traceback" not in proc.stderr, explain(proc)
    never = create(client, {"name": "rec_never", "jobs": [{"name": "a", "command": "true"}]}, tmp_path,
                   initialize=False)
    proc = recover(server.url, never, cwd=tmp_path)
    assert proc.returncode == 1 and "never run" in proc.stderr, explain(proc)
    for option in ("--memory-multiplier", "--runtime-multiplier"):
        for value in ("1", "0.5"):
            proc = recover(server.url, never, option, value, cwd=tmp_path)
            assert proc.returncode == 2 and option in proc.stderr, explain(proc)
    proc = torc(server.url, "watch", "999999", "-p", "0.1", cwd=tmp_path)
    assert proc.returncode == 1 and "999999" in proc.stderr and "Traceback" not in proc.stderr, explain(proc)


def test_nothing_to_recover_exits_zero(client, server, tmp_path):
    wf = create(client, {"name": "rec_fine", "jobs": [{"name": "a", "command": "true"}]}, tmp_path)
    assert run(server.url, wf, cwd=tmp_path).returncode == 0
    proc = recover(server.url, wf, cwd=tmp_path)
    assert proc.returncode == 0 and "Nothing to recover" in proc.stderr, explain(proc)


def test_refuses_while_a_runner_is_active(client, server, tmp_path):
    wf = create(client, {"name": "rec_busy", "jobs": [{"name": "a", "command": "sleep 30"}]}, tmp_path)
    node = client.post("compute_nodes", {"workflow_id": wf, "hostname": "elsewhere", "pid": 1, "is_active": True,
                                         "start_time": "2030-01-01T00:00:00+00:00", "num_cpus": 1,
                                         "memory_gb": 1.0, "num_gpus": 0, "num_nodes": 1, "time_limit": None,
                                         "scheduler_config_id": None, "compute_node_type": "local",
                                         "last_heartbeat": None})
    try:
        before = snapshot(client, wf)
        proc = recover(server.url, wf, cwd=tmp_path)
        assert proc.returncode == 1 and "still running" in proc.stderr, explain(proc)
        assert snapshot(client, wf) == before
    finally:
        client.put(f"compute_nodes/{node['id']}", {**node, "is_active": False})


# ---- watch ---------------------------------------------------------------------------------


def test_watch_reports_failures_and_exits_1(client, server, tmp_path):
    wf = failed_by_unknown(client, tmp_path, "watch_fail", tmp_path / "never")
    run(server.url, wf, cwd=tmp_path)
    proc = torc(server.url, "watch", str(wf), "-p", "0.1", cwd=tmp_path)
    assert proc.returncode == 1, explain(proc)
    assert "flaky" in proc.stdout and "1 failed" in proc.stderr


def test_watch_complete_without_failures_exits_0(client, server, tmp_path):
    wf = create(client, {"name": "watch_ok", "jobs": [{"name": "a", "command": "true"}]}, tmp_path)
    run(server.url, wf, cwd=tmp_path)
    proc = torc(server.url, "-f", "json", "watch", str(wf), "-p", "0.1", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert json.loads(proc.stdout)["outcome"] == "complete"


def test_watch_recover_ends_with_the_workflow_complete(client, server, tmp_path):
    wf = oom_workflow(client, tmp_path, "watch_recover")
    proc = subprocess.Popen([*TORC, "--url", server.url, "run", str(wf), "-o", str(tmp_path / "out"), *FAST,
                             "--enforce-memory-limits"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=clean_env())
    try:
        watched = torc(server.url, "watch", str(wf), "-p", "0.2", "--recover", "--max-retries", "2",
                       "-o", str(tmp_path / "out"), "--no-progress", "--idle-timeout", "20",
                       "--enforce-memory-limits", cwd=tmp_path, timeout=120)
    finally:
        proc.wait(timeout=60)
    assert watched.returncode == 0, explain(watched)
    assert "Recovery round 1" in watched.stderr
    assert "is complete" in watched.stdout
    assert statuses(client, wf) == {"hog": "completed", "after": "completed"}
    assert rr_of(client, wf, "hog")["name"] == "small_recovered_1"


# ---- the diagnosis alone (no server) -------------------------------------------------------


def _diagnose(status: str, rc: int, minutes: float, peak: int | None = None, memory: str = "100m",
              runtime: str = "PT10S", log: str | None = None, folder: Path | None = None) -> recovery.JobDiagnosis:
    job = {"id": 7, "name": "j", "status": status, "resource_requirements_id": 3}
    result = {"job_id": 7, "run_id": 2, "attempt_id": 1, "status": status, "return_code": rc,
              "exec_time_minutes": minutes, "peak_memory_bytes": peak}
    rr_ = {"id": 3, "name": "r", "memory": memory, "runtime": runtime}
    if log is not None and folder is not None:
        (folder / "job_stdio").mkdir(exist_ok=True)
        (folder / "job_stdio" / "job_wf1_j7_r2_a1.e").write_text(log)
    return recovery.diagnose_job(job, result, rr_, 1, folder)


def test_diagnosis_rules(tmp_path):
    mib = 2**20
    note = "torc: killed: memory use 180 MiB exceeded the job's limit of 100 MiB\n"
    d = _diagnose("failed", -9, 0.01, log=note, folder=tmp_path)
    assert d.causes == ["oom"] and d.observed_memory_bytes == 180 * mib
    assert _diagnose("failed", 1, 0.01, peak=97 * mib).causes == ["oom"]  # a sampled peak at the limit
    assert _diagnose("failed", 1, 0.01, peak=50 * mib).causes == ["unknown"]
    assert _diagnose("failed", 137, 0.01).causes == ["oom"]  # the kernel's OOM killer
    assert _diagnose("failed", 152, 0.01).causes == ["timeout"]  # SIGXCPU
    assert _diagnose("failed", -24, 0.01, runtime="PT1H").causes == ["timeout"]
    assert _diagnose("terminated", -15, 10 / 60).causes == ["timeout"]  # ran its whole runtime
    assert _diagnose("failed", 1, 9.5 / 60).causes == ["timeout"]  # over 90% of it
    interrupted = _diagnose("terminated", -9, 0.01)  # Ctrl-C twice, early: not a memory kill
    assert interrupted.causes == ["unknown"] and "interrupted" in interrupted.evidence[0]
    assert _diagnose("failed", -128, 0.0).causes == ["unknown"]  # runner gone
    both = _diagnose("failed", -9, 9.8 / 60, peak=150 * mib)
    assert both.causes == ["oom", "timeout"]


def test_names_and_sizes_of_new_requirements():
    taken = {"small", "small_recovered_1"}
    assert recovery._new_name("small", taken) == "small_recovered_2"
    assert recovery._new_name("small_recovered_2", taken) == "small_recovered_3"
    assert recovery._new_name("other", taken) == "other_recovered_1"
    assert recovery._memory_text(int(1.5 * 100 * 2**20)) == "150m"
    assert recovery._memory_text(2 * 2**30) == "2g"
    assert recovery._memory_text(1) == "1m"
