"""What the dashboard's buttons do. Quick changes go through the REST client; runs, Slurm submissions
and recoveries start `torc run|submit|recover ID` as detached processes writing a log file, exactly
as a user would from a shell, so the dashboard can stop without stopping them."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torc import background
from torc.client import TorcClient, manager
from torc.client.from_spec import create_workflow
from torc.spec.load import FORMATS, SpecError, parse_text, spec_from_data

# argv, log path -> process id
Launcher = Callable[[list[str], Path], int]
LAUNCHED = ("run", "submit", "recover")


def launch_detached(argv: list[str], log: Path) -> int:
    """Start argv in its own session (it outlives the dashboard), stdout and stderr to `log`."""
    return background.launch_detached(argv, log).pid


def launch_command(api_url: str, command: str, workflow_id: int, output_dir: Path,
                   launcher: Launcher = launch_detached) -> tuple[int, Path]:
    """`torc --url API run|submit|recover ID -o OUTPUT_DIR` in the background; (pid, log path)."""
    if command not in LAUNCHED:
        raise ValueError(f"unknown command {command!r}")
    argv = [sys.executable, "-m", "torc.cli.main", "--url", api_url, command, str(workflow_id),
            "-o", str(output_dir)]
    log = output_dir / "dashboard" / f"{command}_wf{workflow_id}_{time.strftime('%Y%m%d-%H%M%S')}.log"
    return launcher(argv, log), log


def cancel(client: TorcClient, workflow_id: int) -> str:
    """As `torc workflows cancel`: the workflow, its jobs and its live Slurm allocations."""
    from torc.slurm.submit import cancel_workflow

    _, slurm_ids, problem = cancel_workflow(client, workflow_id)
    if problem:
        return f"Canceled workflow {workflow_id}; its Slurm allocations may not be: {problem}"
    return f"Canceled workflow {workflow_id}" + (f" and Slurm job(s) {', '.join(slurm_ids)}" if slurm_ids else "")


def reset(client: TorcClient, workflow_id: int, failed_only: bool) -> str:
    """As `torc workflows reset-status [--failed-only]`."""
    manager.reset_jobs(client, workflow_id, failed_only)
    which = "failed jobs" if failed_only else "all jobs"
    return f"Reset {which} of workflow {workflow_id}; run it again with Run"


def archive(client: TorcClient, workflow_id: int, archived: bool) -> str:
    status = client.get(f"workflows/{workflow_id}/status")
    client.put(f"workflows/{workflow_id}/status", {**status, "is_archived": archived})
    return f"{'Archived' if archived else 'Unarchived'} workflow {workflow_id}"


def delete(client: TorcClient, workflow_id: int) -> str:
    record = client.delete(f"workflows/{workflow_id}")
    return f"Deleted workflow {workflow_id} ({record.get('name', '')})"


def spec_format(filename: str | None, chosen: str) -> str:
    """The spec format: the chosen one, else the uploaded file's extension, else YAML (JSON is YAML too)."""
    if chosen in FORMATS.values():
        return chosen
    if filename:
        suffix = Path(filename).suffix.lower()
        if suffix in FORMATS:
            return FORMATS[suffix]
    return "yaml"


def create_from_text(client: TorcClient, text: str, fmt: str, source: str, monitoring: bool = True) -> int:
    """Validate spec text as `torc workflows create` validates a file, then create the workflow.
    Raises SpecError with every problem (file, job, field, expected, found); nothing is created then."""
    if not text.strip():
        raise SpecError(source, ["the spec is empty"])
    data: Any = parse_text(text, fmt, source)
    spec, broken = spec_from_data(data, source)
    return create_workflow(client, spec, source, monitoring=monitoring, broken=broken)
