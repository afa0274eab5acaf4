"""The workflow actions the TUI offers, each one call the CLI would make.

Quick ones (initialize, cancel, reset failed) are client calls, run in a worker thread. Long ones
(run locally, submit, recover) start a `torc` subprocess in its own session with its output in a log
file under the output directory, so the TUI stays responsive and the run survives a closed TUI
(as long as its server does).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from torc.background import launch_detached
from torc.client import TorcClient, manager

TORC = (sys.executable, "-m", "torc.cli.main")


@dataclass(frozen=True)
class Action:
    key: str  # the method of the screen that runs it: action_<key>
    title: str
    question: str  # asked in the confirmation dialog, with {id}


ACTIONS = {
    "initialize": Action("initialize", "Initialize", "Initialize workflow {id}? All its jobs are reset."),
    "run_local": Action("run_local", "Run locally", "Run workflow {id} on this machine (torc run)?"),
    "submit": Action("submit", "Submit", "Submit workflow {id} to Slurm (torc submit)?"),
    "cancel": Action("cancel", "Cancel", "Cancel workflow {id}? Its pending and running jobs are canceled."),
    "reset_failed": Action("reset_failed", "Reset failed",
                           "Reset the failed, canceled and terminated jobs of workflow {id} (and their downstream)?"),
    "recover": Action("recover", "Recover",
                      "Recover workflow {id}: give jobs that ran out of memory or time more, and reset them?"),
}


def initialize(client: TorcClient, workflow_id: int) -> str:
    manager.initialize(client, workflow_id)
    return f"workflow {workflow_id} initialized"


def cancel(client: TorcClient, workflow_id: int) -> str:
    """As `torc workflows cancel`: cancel on the server, then scancel its live Slurm allocations."""
    from torc.slurm.submit import cancel_workflow

    _, slurm_ids, problem = cancel_workflow(client, workflow_id)
    if problem:
        return f"workflow {workflow_id} canceled, but its Slurm allocations may not be: {problem}"
    return f"workflow {workflow_id} canceled" + (f" (Slurm jobs {', '.join(slurm_ids)})" if slurm_ids else "")


def reset_failed(client: TorcClient, workflow_id: int) -> str:
    """As `torc workflows reset-status --failed-only`: failed, canceled, terminated and pending_failed
    jobs and their downstream go back to uninitialized; `torc run ID` runs them again."""
    result = manager.reset_jobs(client, workflow_id, failed_only=True)
    return f"workflow {workflow_id}: {result.get('updated_count', 0)} job(s) reset"


def command(url: str, action: str, workflow_id: int, output_dir: Path) -> list[str]:
    """The `torc` command line of a long action."""
    base = [*TORC, "--url", url]
    if action == "run_local":
        return [*base, "run", str(workflow_id), "-o", str(output_dir), "--no-progress"]
    if action == "submit":
        return [*base, "submit", str(workflow_id), "-o", str(output_dir)]
    if action == "recover":
        return [*base, "recover", str(workflow_id), "--no-run", "-o", str(output_dir), "--no-progress"]
    raise ValueError(f"{action!r} is not a subprocess action")


def log_path(output_dir: Path, action: str, workflow_id: int) -> Path:
    return Path(output_dir) / "tui" / f"{action}_wf{workflow_id}.log"


def launch(argv: list[str], log: Path) -> subprocess.Popen:
    """Start a detached command, its stdout and stderr appended to `log`."""
    return launch_detached(argv, log)
