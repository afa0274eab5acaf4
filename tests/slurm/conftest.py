"""A real single-node Slurm on localhost (scripts/slurm-up.sh, started by scripts/test.sh when
running as root on Debian). Without one, every test here is skipped with the reason."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def slurm_state() -> str | None:
    """None when a Slurm node is idle or busy here, else why the Slurm tests cannot run."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no Slurm commands on PATH: run scripts/slurm-up.sh as root on Debian (scripts/test.sh does)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sinfo failed: {exc}"
    states = out.stdout.split()
    if out.returncode != 0 or not any(s.rstrip("*~#") in ("idle", "mixed", "allocated") for s in states):
        return f"Slurm is not up (sinfo: {out.stdout.strip() or out.stderr.strip()}): run scripts/slurm-up.sh"
    return None


def sacct_works() -> bool:
    out = subprocess.run(["sacct", "-X", "-n", "-S", "now-1minutes"], capture_output=True, text=True, timeout=20)
    return out.returncode == 0


@pytest.fixture(scope="session")
def slurm() -> None:
    reason = slurm_state()
    if reason:
        pytest.skip(reason)
