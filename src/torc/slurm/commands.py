"""Thin wrappers over Slurm's commands (sbatch, squeue, scancel, sacct, scontrol).

Every call goes through `run_slurm`: a Slurm controller that is busy or down ("Socket timed out",
"Unable to contact slurm controller", ...) is retried with back-off for `retry_seconds` (default
120, `TORC_SLURM_RETRY_SECONDS`) before a SlurmError that says so; any other failure is a
SlurmError at once, naming the command and carrying Slurm's own message.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from torc.core.errors import TorcError

log = logging.getLogger("torc.slurm")

TRANSIENT = (
    "socket timed out", "unable to contact slurm controller", "slurm controller is down",
    "temporarily unable", "resource temporarily unavailable", "zero bytes were transmitted",
    "connection refused", "slurm_persist_conn_open", "communication connection failure",
)
FINAL_STATES = ("BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
                "PREEMPTED", "TIMEOUT", "REVOKED")


class SlurmError(TorcError):
    """A Slurm command failed; the message names the command and quotes Slurm."""


def retry_seconds() -> float:
    try:
        return float(os.environ.get("TORC_SLURM_RETRY_SECONDS", "120"))
    except ValueError:
        return 120.0


def _transient(text: str) -> bool:
    low = text.lower()
    return any(t in low for t in TRANSIENT)


def run_slurm(args: list[str], *, retry_for: float | None = None, timeout: float = 60.0,
              check: bool = True, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a Slurm command; retry while the controller is busy or down."""
    retry_for = retry_seconds() if retry_for is None else retry_for
    deadline = time.monotonic() + retry_for
    delay = 1.0
    while True:
        try:
            proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=cwd,
                                  stdin=subprocess.DEVNULL, env=env)
        except FileNotFoundError:
            raise SlurmError(f"Slurm: {args[0]} not found on PATH; is this a Slurm cluster?") from None
        except subprocess.TimeoutExpired:
            message = f"{args[0]} did not answer within {timeout:.0f} s"
            proc = subprocess.CompletedProcess(args, 1, "", f"Socket timed out ({message})")
        if proc.returncode == 0 or not check:
            return proc
        message = (proc.stderr.strip() or proc.stdout.strip() or f"exit status {proc.returncode}")
        if _transient(message) and time.monotonic() + delay <= deadline:
            log.warning("Slurm is busy or down (%s: %s); retrying in %.0f s", args[0], message, delay)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
            continue
        if _transient(message):
            raise SlurmError(f"Slurm scheduler unreachable: {args[0]} kept failing for {retry_for:.0f} s: {message}")
        raise SlurmError(f"Slurm {args[0]} failed: {message}")


def sbatch(script: Path, cwd: Path | None = None, extra_env: dict[str, str] | None = None) -> str:
    """Submit a batch script; return the Slurm job id. A refused request is a SlurmError naming
    the scheduler and quoting sbatch. extra_env: variables the allocation inherits (sbatch's default
    --export=ALL passes the submitting environment on), e.g. the runner's TORC_PASSWORD, which so
    never appears in the script file."""
    # Submitted from inside an allocation (a staged pipeline's next stage), the new job must not
    # inherit this allocation's SLURM_* variables (sbatch passes the environment on).
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("SLURM_") and k != "SLURM_CONF") and k != "TORC_SCHEDULED_COMPUTE_NODE_ID"}
    env.update(extra_env or {})
    try:
        proc = run_slurm(["sbatch", "--parsable", str(script)], cwd=cwd, env=env)
    except SlurmError as exc:
        raise SlurmError(f"the Slurm scheduler refused the allocation request ({script.name}): "
                         f"{exc.message.removeprefix('Slurm sbatch failed: ')}") from None
    job_id = proc.stdout.strip().split(";")[0]
    if not job_id.isdigit():
        raise SlurmError(f"Slurm sbatch gave no job id for {script.name}: {proc.stdout.strip()!r}")
    return job_id


def scancel(job_ids: list[str]) -> None:
    if job_ids:
        run_slurm(["scancel", *job_ids])


def squeue_states(job_ids: list[str] | None = None, retry_for: float | None = None) -> dict[str, str]:
    """Slurm job id -> state (PENDING, RUNNING, ...) of the jobs Slurm still lists (all when None)."""
    proc = run_slurm(["squeue", "-h", "-o", "%i|%T"], retry_for=retry_for)
    states = {}
    for line in proc.stdout.splitlines():
        job_id, _, state = line.strip().partition("|")
        if job_id and (job_ids is None or job_id in job_ids):
            states[job_id] = state
    return states


def show_job(job_id: str) -> dict[str, str]:
    """`scontrol show job ID` as key -> value."""
    proc = run_slurm(["scontrol", "show", "job", "-o", job_id])
    fields: dict[str, str] = {}
    for token in re.findall(r"(\w[\w:/]*)=(\S*)", proc.stdout):
        fields.setdefault(token[0], token[1])
    return fields


def job_end_time(job_id: str) -> float | None:
    """When the allocation's wall time runs out (epoch seconds), or None (no limit / unknown).
    scontrol prints local time."""
    end = show_job(job_id).get("EndTime", "")
    try:
        return datetime.strptime(end, "%Y-%m-%dT%H:%M:%S").astimezone().timestamp()
    except ValueError:
        return None


@dataclass
class Accounting:
    """One allocation as sacct sees it."""

    job_id: str
    state: str
    exit_code: str
    elapsed: str
    max_rss: str | None
    nodes: str
    submit: str
    start: str
    end: str

    @property
    def finished(self) -> bool:
        return self.state.split()[0] in FINAL_STATES


SACCT_FIELDS = "JobID,State,ExitCode,Elapsed,MaxRSS,NodeList,Submit,Start,End"


def _rss_kib(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)([KMGT]?)", text.strip())
    if not match:
        return 0.0
    return float(match[1]) * {"": 1 / 1024, "K": 1, "M": 1024, "G": 1024**2, "T": 1024**3}[match[2]]


def sacct(job_id: str) -> Accounting | None:
    """The allocation's state, exit code, elapsed time, nodes and times, and the largest MaxRSS of
    its steps; None when sacct does not know the job (yet)."""
    proc = run_slurm(["sacct", "-j", job_id, "-n", "-P", f"--format={SACCT_FIELDS}"])
    head = None
    rss: list[str] = []
    for line in proc.stdout.splitlines():
        parts = line.split("|")
        if len(parts) != 9:
            continue
        if parts[0] == job_id:
            head = parts
        if parts[4]:
            rss.append(parts[4])
    if head is None:
        return None
    return Accounting(job_id, head[1], head[2], head[3], max(rss, key=_rss_kib) if rss else None, head[5],
                      head[6], head[7], head[8])
