"""`torc reports` against one real torc-server process: a workflow run with `torc run`
(one job fails, one writes stdout), and results with peak values created through the API."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from tests.helpers import claim_all, make_jobs, make_workflow
from torc.client import TorcClient

GIB = 1024**3
MIB = 1024**2

SPEC = """\
name: report_demo
resource_requirements:
  - name: small
    num_cpus: 1
    memory: 100m
    runtime: PT1M
jobs:
  - name: hello
    command: echo hello-report
    resource_requirements: small
  - name: broken
    command: 'echo bad-news >&2; exit 3'
    resource_requirements: small
  - name: after
    command: echo never
    resource_requirements: small
    depends_on: [broken]
"""


def ok(cli, *args: Any) -> Any:
    result = cli(*args)
    assert result.exit_code == 0, (args, result.output)
    return json.loads(result.stdout)


def table(cli, *args: Any) -> Result:
    result = cli(*args, fmt="table")
    assert result.exit_code == 0, (args, result.output)
    return result


# ---- a workflow run by `torc run` ---------------------------------------------------------------


@pytest.fixture(scope="module")
def ran(server, cli, tmp_path_factory) -> tuple[int, Path]:
    tmp = tmp_path_factory.mktemp("run")
    spec = tmp / "report_demo.yaml"
    spec.write_text(SPEC)
    out = tmp / "out"
    result = cli("run", spec, "-o", out, "--num-cpus", 2, "--memory-gb", 2, "-p", 0.1, fmt="table")
    assert result.exit_code == 1, result.output  # one job failed
    workflow_id = int(re.search(r"Created workflow (\d+)", result.output).group(1))
    return workflow_id, out


def test_summary_counts(cli, ran):
    wf, _ = ran
    summary = ok(cli, "reports", "summary", wf)
    assert summary["workflow_id"] == wf and summary["workflow_name"] == "report_demo"
    assert summary["is_complete"] is True
    assert len(summary["status_counts"]) == 11
    assert summary["status_counts"]["completed"] == 1
    assert summary["status_counts"]["failed"] == 1
    assert summary["status_counts"]["canceled"] == 1
    assert sum(summary["status_counts"].values()) == summary["total_jobs"] == 3
    assert summary["failed_jobs"] == ["broken"] and summary["terminated_jobs"] == []
    assert summary["num_runs"] == 1 and summary["num_attempts"] == 2 and summary["jobs_with_results"] == 2
    assert summary["total_exec_time_minutes"] > 0
    assert summary["first_completion_time"] <= summary["last_completion_time"]
    out = table(cli, "reports", "summary", wf).stdout
    assert "jobs pending_failed" in out and "broken" in out


def test_results_resolve_log_paths(cli, ran):
    wf, out = ran
    report = ok(cli, "reports", "results", wf, "-o", out)
    assert report["workflow_id"] == wf and report["total_results"] == 2 and report["all_runs"] is False
    rows = {r["job_name"]: r for r in report["results"]}
    assert set(rows) == {"hello", "broken"}  # the canceled job never ran
    hello, broken = rows["hello"], rows["broken"]
    assert (hello["status"], hello["return_code"]) == ("completed", 0)
    assert (broken["status"], broken["return_code"]) == ("failed", 3)
    assert hello["exists"] and broken["exists"]
    assert Path(hello["job_stdout"]).read_text().strip() == "hello-report"
    assert Path(broken["job_stderr"]).read_text().strip() == "bad-news"
    expected = out / "job_stdio" / f"job_wf{wf}_j{hello['job_id']}_r{hello['run_id']}_a1.o"
    assert Path(hello["job_stdout"]) == expected
    assert hello["hostname"] and hello["compute_node_type"] == "local"
    assert hello["exec_time_minutes"] >= 0 and hello["completion_time"]

    only = ok(cli, "reports", "results", wf, "-o", out, "-j", broken["job_id"])
    assert [r["job_name"] for r in only["results"]] == ["broken"]
    assert ok(cli, "reports", "results", wf, "-o", out, "--all-runs")["total_results"] == 2

    missing = cli("reports", "results", wf, "-o", out / "nowhere")
    assert missing.exit_code == 0
    assert not any(r["exists"] or r["job_stdout"] for r in json.loads(missing.stdout)["results"])
    assert "No job log files found" in missing.stderr

    shown = table(cli, "reports", "results", wf, "-o", out).stdout
    assert "hello" in shown and "broken" in shown and "job_stdio" in shown


def test_check_after_run_without_monitoring_checks_runtime_only(cli, ran):
    wf, _ = ran
    report = ok(cli, "reports", "check-resource-utilization", wf, "--include-failed")
    assert report["total_results"] == 2 and report["violations"] == [], json.dumps(report["violations"])
    (failed,) = report["failed_jobs"]
    assert failed["job_name"] == "broken" and failed["return_code"] == 3
    assert not failed["likely_oom"] and not failed["likely_timeout"]
    result = table(cli, "reports", "check-resource-utilization", wf)
    assert "stayed within their resource requirements" in result.stdout


# ---- results with peak values created through the API -------------------------------------------


def complete(api: TorcClient, job: dict[str, Any], run_id: int, status: str, rc: int, minutes: float,
             peak_mem: int | None = None, peak_cpu: float | None = None) -> None:
    api.put(f"jobs/{job['id']}/start_job/{run_id}/0")
    body = {"job_id": job["id"], "workflow_id": job["workflow_id"], "run_id": run_id, "compute_node_id": 0,
            "return_code": rc, "exec_time_minutes": minutes, "completion_time": "2026-01-01T00:00:00.000Z",
            "status": status, "peak_memory_bytes": peak_mem, "peak_cpu_percent": peak_cpu,
            "avg_memory_bytes": peak_mem, "avg_cpu_percent": peak_cpu}
    api.post(f"jobs/{job['id']}/complete_job/{status}/{run_id}", body)


@pytest.fixture(scope="module")
def measured(api) -> int:
    wf = make_workflow(api, "measured")
    rr = api.post("resource_requirements", {"workflow_id": wf, "name": "std", "num_cpus": 1, "memory": "1g",
                                            "runtime": "PT10M"})
    names = ["hog", "spin", "slow", "idle", "oom", "timeout"]
    make_jobs(api, wf, [{"name": n, "resource_requirements_id": rr["id"], "cancel_on_blocking_job_failure": False}
                        for n in names])
    api.post(f"workflows/{wf}/initialize_jobs")
    run_id = api.run_id(wf)
    jobs = {j["name"]: j for j in claim_all(api, wf)}
    complete(api, jobs["hog"], run_id, "completed", 0, 6.0, peak_mem=int(1.5 * GIB), peak_cpu=80.0)
    complete(api, jobs["spin"], run_id, "completed", 0, 6.0, peak_mem=600 * MIB, peak_cpu=250.0)
    complete(api, jobs["slow"], run_id, "completed", 0, 15.0)
    complete(api, jobs["idle"], run_id, "completed", 0, 1.0, peak_mem=100 * MIB, peak_cpu=10.0)
    complete(api, jobs["oom"], run_id, "failed", 137, 1.0, peak_mem=900 * MIB, peak_cpu=90.0)
    complete(api, jobs["timeout"], run_id, "terminated", -15, 9.7)
    return wf


def test_violations(cli, measured):
    report = ok(cli, "reports", "check-resource-utilization", measured)
    assert report["workflow_id"] == measured and report["run_id"] is None
    assert report["total_results"] == 6 and report["results_without_peak_data"] == 2
    found = {(v["job_name"], v["resource_type"]): v for v in report["violations"]}
    assert set(found) == {("hog", "memory"), ("spin", "cpu"), ("slow", "runtime")}
    assert found[("hog", "memory")]["specified"] == GIB
    assert found[("hog", "memory")]["peak_used"] == 1.5 * GIB
    assert found[("hog", "memory")]["over_utilization"] == "+50.0%"
    assert found[("spin", "cpu")]["over_utilization"] == "+150.0%"
    assert found[("slow", "runtime")]["over_utilization"] == "+50.0%"
    assert report["over_utilization_count"] == 3
    assert "under_utilized" not in report and "failed_jobs" not in report

    result = table(cli, "reports", "check-resource-utilization", measured)
    assert "Found 3 resource over-utilization violation(s)" in result.stdout
    assert "1.5 GiB" in result.stdout and "1.0 GiB" in result.stdout and "+50.0%" in result.stdout
    assert "15.0 min" in result.stdout and "CPU" in result.stdout
    assert "2 of 6 results have no peak memory or CPU data" in result.stderr


def test_under_use_and_failed_jobs(cli, measured):
    report = ok(cli, "reports", "check-resource-utilization", measured, "--all", "--include-failed")
    under = {(u["job_name"], u["resource_type"]) for u in report["under_utilized"]}
    assert {("idle", "memory"), ("idle", "cpu"), ("idle", "runtime")} <= under
    assert not any(name in {"oom", "timeout"} for name, _ in under)  # failures are diagnosed, not "under-used"
    failed = {f["job_name"]: f for f in report["failed_jobs"]}
    assert set(failed) == {"oom", "timeout"}
    assert failed["oom"]["likely_oom"] and not failed["oom"]["likely_timeout"]
    assert "SIGKILL" in failed["oom"]["oom_reason"]
    assert failed["oom"]["peak_memory_bytes"] == 900 * MIB and failed["oom"]["memory"] == "1g"
    assert failed["timeout"]["likely_timeout"] and not failed["timeout"]["likely_oom"]
    assert failed["timeout"]["runtime"] == "PT10M" and failed["timeout"]["exec_time_minutes"] == 9.7
    assert (report["likely_oom_count"], report["likely_timeout_count"]) == (1, 1)

    out = table(cli, "reports", "check-resource-utilization", measured, "-a", "--include-failed").stdout
    assert "under-utilized" in out and "OOM" in out and "timeout" in out


def test_run_filter(cli, api, measured):
    run_id = api.run_id(measured)
    report = ok(cli, "reports", "check-resource-utilization", measured, "-r", run_id)
    assert report["run_id"] == run_id and report["total_results"] == 6 and report["over_utilization_count"] == 3
    assert ok(cli, "reports", "check-resource-utilization", measured, "-r", 999)["total_results"] == 0


def test_unknown_workflow_is_a_clean_error(cli):
    for args in (("summary", 99999), ("results", 99999), ("check-resource-utilization", 99999)):
        result = cli("reports", *args)
        assert result.exit_code == 1, result.output
        assert result.stdout == "" and "Error:" in result.stderr
