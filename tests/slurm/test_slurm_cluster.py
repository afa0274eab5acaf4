"""The test cluster itself: what the Slurm tests rely on."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.slurm.conftest import sacct_works


def _sacct_state(job_id: str) -> str:
    out = subprocess.run(["sacct", "-j", job_id, "-X", "-n", "-P", "--format=State,ExitCode"], capture_output=True,
                         text=True, timeout=20)
    return out.stdout.strip()


def test_a_batch_job_runs_and_its_exit_code_is_recorded(slurm, tmp_path):
    out = subprocess.run(["sbatch", "--parsable", "-o", str(tmp_path / "%j.out"), "--wrap", "echo hi-slurm; exit 3"],
                         capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip().split(";")[0]
    deadline = time.monotonic() + 60
    while subprocess.run(["squeue", "-h", "-j", job_id], capture_output=True, text=True).stdout.strip():
        assert time.monotonic() < deadline, "the job did not finish within 60 s"
        time.sleep(0.5)
    assert "hi-slurm" in (tmp_path / f"{job_id}.out").read_text().splitlines()  # (slurmstepd may warn first)
    if not sacct_works():
        pytest.skip("sacct needs slurmdbd (scripts/slurm-up.sh --with-dbd)")
    deadline = time.monotonic() + 30
    while not _sacct_state(job_id):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert _sacct_state(job_id) == "FAILED|3:0"
