"""`torc slurm parse-logs` on the real single-node Slurm: a cancelled allocation's Slurm output
names the torc job that ran in it."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.slurm.test_submit import (
    START,
    _long_job_spec,
    cancel_all,
    client,  # noqa: F401 - fixture
    slurm_ids,
    squeue_ids,
    statuses,
    submit,
    torc,
    wait_for,
)

pytestmark = pytest.mark.timeout(START + 120)


def test_parse_logs_names_the_job_of_a_cancelled_allocation(slurm, server, client, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    workflow_id = None
    try:
        workflow_id = submit(server, _long_job_spec(tmp_path, "parse_me", "00:10:00"), out)
        wait_for(lambda: statuses(client, workflow_id)["long"] == "running", START, "the job to run")
        ids = slurm_ids(client, workflow_id)
        subprocess.run(["scancel", *ids], check=True, timeout=30)
        wait_for(lambda: not set(ids) & squeue_ids(), 60, "the allocation to end")
        log = out / f"slurm_output_wf{workflow_id}_sl{ids[0]}.e"
        wait_for(lambda: log.exists() and "CANCELLED AT" in log.read_text(), 30, "Slurm's cancel message")
        report = json.loads(torc(server, "-f", "json", "slurm", "parse-logs", str(workflow_id), "-o", str(out),
                                 "--errors-only").stdout)
        assert report["files_scanned"] >= 1
        cancelled = [f for f in report["findings"] if f["kind"] == "cancelled"]
        assert cancelled, report
        assert cancelled[0]["slurm_job_id"] == ids[0]
        assert cancelled[0]["job_names"] == ["long"]
        assert cancelled[0]["scheduled_compute_node_id"] is not None
        assert all(f["severity"] == "error" for f in report["findings"])
        table = torc(server, "slurm", "parse-logs", str(workflow_id), "-o", str(out), env={"COLUMNS": "300"}).stdout
        assert "cancelled" in table and "long" in table
    finally:
        cancel_all(client, workflow_id)
