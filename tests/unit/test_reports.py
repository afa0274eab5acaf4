"""torc.reports: summary, utilization checks, OOM/timeout diagnosis and result rows, on hand-made records."""

from __future__ import annotations

from typing import Any

import pytest

from torc.reports import (
    ALL_STATUSES,
    check_resource_utilization,
    diagnose_failure,
    format_bytes,
    format_minutes,
    format_seconds,
    latest_per_job,
    result_rows,
    summarize,
)

GIB = 1024**3
MIB = 1024**2


def job(id_: int, name: str, status: str = "completed", rr: int | None = 1) -> dict[str, Any]:
    return {"id": id_, "workflow_id": 1, "name": name, "command": "true", "status": status,
            "resource_requirements_id": rr, "attempt_id": 1}


def result(job_id: int, rc: int = 0, minutes: float = 1.0, status: str | None = None, run_id: int = 1,
           attempt_id: int = 1, peak_mem: int | None = None, peak_cpu: float | None = None,
           completion: str = "2026-01-01T00:00:00.000Z", id_: int | None = None) -> dict[str, Any]:
    return {"id": id_ or job_id * 100 + run_id * 10 + attempt_id, "job_id": job_id, "workflow_id": 1,
            "run_id": run_id, "attempt_id": attempt_id, "compute_node_id": 1, "return_code": rc,
            "exec_time_minutes": minutes, "completion_time": completion,
            "status": status or ("completed" if rc == 0 else "failed"),
            "peak_memory_bytes": peak_mem, "avg_memory_bytes": None, "peak_cpu_percent": peak_cpu,
            "avg_cpu_percent": None}


def rr(id_: int = 1, memory: str = "1g", runtime: str = "PT10M", num_cpus: int = 2) -> dict[str, Any]:
    return {"id": id_, "workflow_id": 1, "name": f"rr{id_}", "num_cpus": num_cpus, "num_gpus": 0, "num_nodes": 1,
            "memory": memory, "runtime": runtime}


# ---- formatting ----------------------------------------------------------------------------------


def test_human_formats():
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536 * MIB) == "1.5 GiB"
    assert format_bytes(200 * MIB) == "200.0 MiB"
    assert format_bytes(None) == ""
    assert format_seconds(0.5) == "0.50 s"
    assert format_seconds(12.34) == "12.3 s"
    assert format_seconds(150) == "2.5 min"
    assert format_seconds(7200) == "2.00 h"
    assert format_minutes(0.5) == "30.0 s"


# ---- summary -------------------------------------------------------------------------------------


def test_summary_counts_every_status_and_times():
    jobs = [job(1, "a"), job(2, "b", "failed"), job(3, "c", "terminated"), job(4, "d", "canceled"),
            job(5, "e", "disabled")]
    results = [
        result(1, minutes=2.0, completion="2026-01-01T00:02:00.000Z"),
        result(2, rc=1, minutes=1.0, attempt_id=1, completion="2026-01-01T00:01:00.000Z"),
        result(2, rc=1, minutes=3.0, attempt_id=2, completion="2026-01-01T00:05:00.000Z"),
        result(3, rc=-9, minutes=4.0, status="terminated", completion="2026-01-01T00:04:00.000Z"),
    ]
    s = summarize({"id": 1, "name": "wf", "user": "me"}, jobs, results)
    assert list(s["status_counts"]) == ALL_STATUSES
    assert s["status_counts"] == {"uninitialized": 0, "blocked": 0, "ready": 0, "pending": 0, "running": 0,
                                  "completed": 1, "failed": 1, "canceled": 1, "terminated": 1, "disabled": 1,
                                  "pending_failed": 0}
    assert s["is_complete"] is True
    assert s["total_jobs"] == 5
    assert s["failed_jobs"] == ["b"] and s["terminated_jobs"] == ["c"]
    # Exec-time statistics use each job's latest attempt: 2 + 3 + 4.
    assert s["total_exec_time_minutes"] == pytest.approx(9.0)
    assert s["mean_exec_time_minutes"] == pytest.approx(3.0)
    assert s["max_exec_time_minutes"] == pytest.approx(4.0)
    assert s["total_exec_time_all_attempts_minutes"] == pytest.approx(10.0)
    assert (s["num_runs"], s["num_attempts"], s["max_attempt_id"], s["jobs_with_results"]) == (1, 4, 2, 3)
    assert s["first_completion_time"] == "2026-01-01T00:01:00.000Z"
    assert s["last_completion_time"] == "2026-01-01T00:05:00.000Z"


def test_summary_of_incomplete_and_empty_workflows():
    s = summarize({"id": 2, "name": "w"}, [job(1, "a", "running"), job(2, "b", "ready")], [])
    assert s["is_complete"] is False
    assert s["status_counts"]["running"] == 1 and s["status_counts"]["ready"] == 1
    assert s["mean_exec_time_minutes"] is None and s["first_completion_time"] is None
    assert s["num_runs"] == 0 and s["total_exec_time_minutes"] == 0
    assert summarize({"id": 2}, [job(1, "a", "running")], [], is_canceled=True)["is_complete"] is True
    assert summarize({"id": 3}, [], [])["is_complete"] is True


def test_latest_per_job_prefers_later_runs_then_attempts():
    rows = [result(1, run_id=1, attempt_id=3), result(1, run_id=2, attempt_id=1), result(2, attempt_id=1),
            result(2, attempt_id=2)]
    latest = latest_per_job(rows)
    assert [(r["job_id"], r["run_id"], r["attempt_id"]) for r in latest] == [(1, 2, 1), (2, 1, 2)]


# ---- utilization ---------------------------------------------------------------------------------


def test_violations_for_memory_cpu_and_runtime():
    jobs = [job(1, "big")]
    results = [result(1, minutes=13.52, peak_mem=int(1.5 * GIB), peak_cpu=350.0)]
    report = check_resource_utilization(jobs, results, [rr(memory="1g", runtime="PT10M", num_cpus=2)])
    by_type = {v["resource_type"]: v for v in report["violations"]}
    assert set(by_type) == {"memory", "cpu", "runtime"}
    mem = by_type["memory"]
    assert (mem["job_id"], mem["job_name"], mem["specified"], mem["peak_used"]) == (1, "big", GIB, 1.5 * GIB)
    assert mem["over_utilization"] == "+50.0%"
    assert by_type["cpu"]["specified"] == 200 and by_type["cpu"]["over_utilization"] == "+75.0%"
    assert by_type["runtime"]["specified"] == 600 and by_type["runtime"]["over_utilization"] == "+35.2%"
    assert report["over_utilization_count"] == 3 and report["total_results"] == 1
    assert "under_utilized" not in report and "failed_jobs" not in report


def test_within_limits_and_under_use_only_with_include_all():
    jobs = [job(1, "small"), job(2, "fine")]
    results = [result(1, minutes=1.0, peak_mem=100 * MIB, peak_cpu=50.0),
               result(2, minutes=8.0, peak_mem=800 * MIB, peak_cpu=150.0)]
    requirements = {1: rr(memory="1g", runtime="PT10M", num_cpus=2)}
    assert check_resource_utilization(jobs, results, requirements)["violations"] == []
    report = check_resource_utilization(jobs, results, requirements, include_all=True)
    under = {(u["job_name"], u["resource_type"]): u for u in report["under_utilized"]}
    assert set(under) == {("small", "memory"), ("small", "cpu"), ("small", "runtime")}
    assert under[("small", "memory")]["utilization_percent"] == pytest.approx(9.8)
    assert under[("small", "cpu")]["over_utilization"] == "-75.0%"


def test_results_without_peak_data_still_get_the_runtime_check():
    report = check_resource_utilization([job(1, "slow")], [result(1, minutes=20.0)], [rr(runtime="PT10M")],
                                        include_all=True)
    assert [v["resource_type"] for v in report["violations"]] == ["runtime"]
    assert report["violations"][0]["over_utilization"] == "+100.0%"
    assert report["results_without_peak_data"] == 1
    assert report["under_utilized"] == []


def test_jobs_without_requirements_or_with_bad_values_are_not_flagged():
    jobs = [job(1, "none", rr=None), job(2, "odd", rr=2)]
    results = [result(1, minutes=99, peak_mem=99 * GIB), result(2, minutes=99, peak_mem=99 * GIB)]
    report = check_resource_utilization(jobs, results, [rr(2, memory="lots", runtime="forever", num_cpus=0)])
    assert report["violations"] == []


# ---- failure diagnosis ---------------------------------------------------------------------------


def failed(jobs, results, requirements):
    return check_resource_utilization(jobs, results, requirements, include_failed=True)


def test_oom_by_peak_memory():
    report = failed([job(1, "hog", "failed")], [result(1, rc=1, minutes=1.0, peak_mem=2 * GIB)], [rr(memory="1g")])
    (entry,) = report["failed_jobs"]
    assert entry["likely_oom"] is True and entry["likely_timeout"] is False
    assert "peak memory 2.0 GiB exceeded the requested 1.0 GiB" in entry["oom_reason"]
    assert entry["timeout_reason"] is None
    assert (entry["peak_memory_bytes"], entry["memory"], entry["memory_bytes"]) == (2 * GIB, "1g", GIB)
    assert (entry["exec_time_minutes"], entry["runtime"], entry["runtime_seconds"]) == (1.0, "PT10M", 600)
    assert entry["return_code"] == 1 and entry["status"] == "failed"
    assert report["likely_oom_count"] == 1 and report["likely_timeout_count"] == 0


@pytest.mark.parametrize("rc", [137, -9])
def test_oom_by_sigkill_early_in_the_runtime(rc):
    (entry,) = failed([job(1, "killed", "failed")], [result(1, rc=rc, minutes=2.0)], [rr(runtime="PT10M")])[
        "failed_jobs"]
    assert entry["likely_oom"] is True and entry["likely_timeout"] is False
    assert f"SIGKILL (return code {rc})" in entry["oom_reason"] and "20%" in entry["oom_reason"]
    assert entry["peak_memory_bytes"] is None


def test_sigkill_near_the_runtime_limit_is_a_timeout_not_oom():
    (entry,) = failed([job(1, "late", "terminated")], [result(1, rc=-9, minutes=9.8, status="terminated")],
                      [rr(runtime="PT10M")])["failed_jobs"]
    assert entry["likely_oom"] is False
    assert entry["likely_timeout"] is True and "98%" in entry["timeout_reason"]


def test_sigkill_with_no_runtime_is_oom():
    (entry,) = failed([job(1, "x", "failed", rr=None)], [result(1, rc=137)], [])["failed_jobs"]
    assert entry["likely_oom"] is True and "no runtime limit" in entry["oom_reason"]


def test_timeout_by_run_time():
    (entry,) = failed([job(1, "slow", "failed")], [result(1, rc=1, minutes=9.5, peak_mem=100 * MIB)],
                      [rr(runtime="PT10M")])["failed_jobs"]
    assert entry["likely_timeout"] is True and entry["likely_oom"] is False
    assert entry["runtime_fraction"] == pytest.approx(0.95)


@pytest.mark.parametrize("rc, minutes, expected", [(152, 8.5, True), (-15, 8.5, True), (-15, 2.0, False),
                                                   (152, 2.0, False), (143, 8.5, True)])
def test_timeout_by_signal_near_the_limit(rc, minutes, expected):
    entry = diagnose_failure(result(1, rc=rc, minutes=minutes, status="terminated"), job(1, "t"), rr(runtime="PT10M"))
    assert entry["likely_timeout"] is expected
    assert entry["likely_oom"] is False


def test_sigxcpu_without_runtime_is_a_timeout_but_sigterm_is_unknown():
    assert diagnose_failure(result(1, rc=152), job(1, "t", rr=None), None)["likely_timeout"] is True
    unknown = diagnose_failure(result(1, rc=-15), job(1, "t", rr=None), None)
    assert (unknown["likely_oom"], unknown["likely_timeout"]) == (False, False)


def test_plain_failure_is_unknown_and_completed_results_are_not_diagnosed():
    jobs = [job(1, "bad", "failed"), job(2, "good")]
    results = [result(1, rc=2, minutes=1.0, peak_mem=10 * MIB), result(2, minutes=1.0)]
    report = failed(jobs, results, [rr()])
    (entry,) = report["failed_jobs"]
    assert entry["job_name"] == "bad"
    assert (entry["likely_oom"], entry["oom_reason"], entry["likely_timeout"], entry["timeout_reason"]) == (
        False, None, False, None)


# ---- result rows ---------------------------------------------------------------------------------


def test_result_rows_resolve_existing_logs(tmp_path):
    stdio = tmp_path / "job_stdio"
    stdio.mkdir()
    (stdio / "job_wf7_j1_r1_a1.o").write_text("hello\n")
    (stdio / "job_wf7_j1_r1_a1.e").write_text("")
    (stdio / "job_wf7_j2_r1_a2.e").write_text("boom\n")
    (tmp_path / "job_runner_host1_wf7_r1.log").write_text("log\n")
    nodes = [{"id": 1, "hostname": "host1", "pid": 10, "compute_node_type": "local", "scheduler": None}]
    results = [result(2, rc=1, attempt_id=2), result(1), result(3)]
    rows = result_rows(results, [job(1, "a"), job(2, "b", "failed"), job(3, "c")], tmp_path, 7, nodes)
    by_job = {r["job_id"]: r for r in rows}
    assert [r["job_id"] for r in rows] == [1, 2, 3]
    assert by_job[1]["job_stdout"] == str(stdio / "job_wf7_j1_r1_a1.o")
    assert by_job[1]["job_stderr"] == str(stdio / "job_wf7_j1_r1_a1.e")
    assert by_job[1]["exists"] is True
    assert by_job[1]["job_runner_log"] == str(tmp_path / "job_runner_host1_wf7_r1.log")
    assert (by_job[1]["hostname"], by_job[1]["compute_node_type"]) == ("host1", "local")
    assert by_job[2]["job_stdout"] is None and by_job[2]["job_stderr"].endswith("job_wf7_j2_r1_a2.e")
    assert (by_job[2]["status"], by_job[2]["return_code"], by_job[2]["attempt_id"]) == ("failed", 1, 2)
    assert by_job[3]["exists"] is False and by_job[3]["job_stdout"] is None and by_job[3]["job_stderr"] is None
    assert by_job[3]["job_name"] == "c"


def test_result_rows_find_slurm_logs(tmp_path):
    (tmp_path / "slurm_output_wf3_sl555.o").write_text("")
    (tmp_path / "job_runner_slurm_wf3_sl555_n0_pid42.log").write_text("")
    nodes = [{"id": 1, "hostname": "n1", "pid": 42, "compute_node_type": "slurm",
              "scheduler": {"slurm_job_id": "555"}}]
    (row,) = result_rows([result(1)], [job(1, "a")], tmp_path, 3, nodes)
    assert row["slurm_job_id"] == "555"
    assert row["slurm_stdout"] == str(tmp_path / "slurm_output_wf3_sl555.o")
    assert row["slurm_stderr"] is None
    assert row["job_runner_log"] == str(tmp_path / "job_runner_slurm_wf3_sl555_n0_pid42.log")
