"""torc.slurm.logs: patterns in Slurm output text and their mapping to allocations and jobs."""

from __future__ import annotations

from torc.slurm.logs import classify, correlate, jobs_by_allocation, log_files, scan_files, scan_text

SAMPLE = """\
2026-11-22T00:00:01 Slurm job 42 (node 0, n1): 2 CPUs, 1.00 GiB, 0 GPUs, 1 node(s)
slurmstepd: error: Detected 1 oom-kill event(s) in StepId=42.batch. Some of your processes may have been killed \
by the cgroup out-of-memory handler.
slurmstepd: error: *** JOB 42 ON n1 CANCELLED AT 2026-11-22T00:01:00 DUE TO TIME LIMIT ***
slurmstepd: error: *** JOB 42 ON n1 CANCELLED AT 2026-11-22T00:01:00 ***
srun: error: Node failure on n3
srun: error: n1: task 0: Killed
JOB 42 state NODE_FAIL
/var/spool/slurm/job42/slurm_script: line 5: 1234 Terminated   sleep 300
2026-11-22T00:02:00 done: 1 completed, 0 failed, 1 terminated (interrupted)
"""


def test_classify_known_patterns():
    assert classify("Detected 1 oom-kill event(s)") == ("out_of_memory", "error")
    assert classify("State: OUT_OF_MEMORY") == ("out_of_memory", "error")
    assert classify("slurmstepd: error: Out Of Memory") == ("out_of_memory", "error")
    assert classify("*** JOB 1 ON n CANCELLED AT 2026-01-01T00:00:00 DUE TO TIME LIMIT ***") == ("time_limit", "error")
    assert classify("*** JOB 1 ON n CANCELLED AT 2026-01-01T00:00:00 ***") == ("cancelled", "error")
    assert classify("NODE_FAIL") == ("node_failure", "error")
    assert classify("srun: error: Unable to create step for job 7") == ("srun_error", "error")
    assert classify("line 5: 1234 Terminated sleep 300") == ("signal", "warning")
    assert classify("done: 1 completed, 0 failed, 1 terminated") is None
    assert classify("the runner stops before the allocation's time limit") is None


def test_scan_text_one_finding_per_matching_line():
    found = scan_text(SAMPLE, slurm_job_id="42", file="x.e")
    assert [f.kind for f in found] == ["out_of_memory", "time_limit", "cancelled", "node_failure", "srun_error",
                                       "node_failure", "signal"]
    assert found[1].line_number == 3 and found[1].slurm_job_id == "42" and found[1].file == "x.e"


def test_log_files_and_correlation(tmp_path):
    (tmp_path / "slurm_output_wf3_sl42.e").write_text(SAMPLE)
    (tmp_path / "slurm_output_wf3_sl42.o").write_text("hello\n")
    (tmp_path / "slurm_output_wf3_sl43.o").write_text("CANCELLED AT 2026\n")
    (tmp_path / "slurm_output_wf4_sl44.o").write_text("NODE_FAIL\n")  # another workflow
    (tmp_path / "job_runner_slurm_wf3_sl42_n0_pid1.log").write_text("NODE_FAIL\n")
    files = log_files(tmp_path, 3)
    assert [(j, p.name) for j, p in files] == [("42", "slurm_output_wf3_sl42.e"), ("42", "slurm_output_wf3_sl42.o"),
                                               ("43", "slurm_output_wf3_sl43.o")]
    findings = scan_files(files)
    scheduled = [{"id": 7, "scheduler_id": 42, "scheduler_type": "slurm"},
                 {"id": 8, "scheduler_id": 43, "scheduler_type": "slurm"}]
    compute = [{"id": 1, "compute_node_type": "slurm", "scheduler": {"slurm_job_id": "42"}},
               {"id": 2, "compute_node_type": "local", "scheduler": {}}]
    results = [{"job_id": 10, "compute_node_id": 1}, {"job_id": 10, "compute_node_id": 1},
               {"job_id": 11, "compute_node_id": 1}, {"job_id": 12, "compute_node_id": 2}]
    jobs = [{"id": 10, "name": "a"}, {"id": 11, "name": "b"}, {"id": 12, "name": "c"}]
    assert jobs_by_allocation(compute, results, jobs) == {"42": [{"id": 10, "name": "a"}, {"id": 11, "name": "b"}]}
    correlate(findings, scheduled, compute, results, jobs)
    by_job = {f.slurm_job_id: f for f in findings}
    assert by_job["42"].scheduled_compute_node_id == 7 and by_job["42"].job_names == ["a", "b"]
    assert by_job["43"].scheduled_compute_node_id == 8 and by_job["43"].job_ids == []
    assert by_job["43"].kind == "cancelled"


def test_log_files_of_a_missing_directory(tmp_path):
    assert log_files(tmp_path / "nope", 1) == []
