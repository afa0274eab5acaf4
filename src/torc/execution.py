"""Run workflows from Python and read back what happened.

- `run_workflow(spec_or_builder, ...)`: create (or resume) a workflow and run its jobs in this
  process with the local runner, as `torc run` does; with no server given it starts a private one
  on OUTPUT_DIR/torc.db for the duration of the call.
- `wait_for_completion(client, workflow_id, timeout)`: poll until a workflow is complete (jobs
  run elsewhere: another `torc run`, Slurm, remote workers).
- `job_logs`, `results_dataframe`, `jobs_dataframe`: results and logs as Python objects.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torc.client.http import TorcClient
from torc.core.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas

log = logging.getLogger("torc.execution")

UNSUCCESSFUL = ("failed", "canceled", "terminated", "pending_failed")


@dataclass
class WorkflowRun:
    """What `run_workflow` did: the workflow, how its jobs ended, and every current result."""

    workflow_id: int
    url: str
    output_dir: Path
    job_counts: dict[str, int]
    is_complete: bool
    jobs: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    database: Path | None = None  # the private server's SQLite file, when one was started

    @property
    def succeeded(self) -> bool:
        """Complete with every job completed."""
        return self.is_complete and not any(self.job_counts.get(s) for s in UNSUCCESSFUL)

    @property
    def job_statuses(self) -> dict[str, str]:
        """job name -> status."""
        return {job["name"]: job["status"] for job in self.jobs}

    def logs(self, job_name: str) -> dict[str, Any]:
        """The stdout and stderr of the named job's latest attempt (see job_logs)."""
        job = next((j for j in self.jobs if j["name"] == job_name), None)
        if job is None:
            raise InvalidInputError(f"workflow {self.workflow_id} has no job named {job_name!r}")
        result = _latest(r for r in self.results if r["job_id"] == job["id"])
        return _read_logs(self.output_dir, self.workflow_id, job["id"], result)


def _latest(results: Any) -> dict[str, Any] | None:
    rows = sorted(results, key=lambda r: (r.get("run_id") or 0, r.get("attempt_id") or 1, r.get("id") or 0))
    return rows[-1] if rows else None


def _client_for(target: Any) -> TorcClient:
    from torc.client.api import as_client

    return as_client(target)


@contextlib.contextmanager
def _using(target: Any) -> Iterator[TorcClient]:
    """The TorcClient for a TorcApi, TorcClient or URL; one made here from a URL is closed after."""
    raw = _client_for(target)
    try:
        yield raw
    finally:
        if isinstance(target, str):
            raw.close()


def wait_for_completion(client: Any, workflow_id: int, timeout: float | None = None,
                        poll_interval: float = 1.0) -> dict[str, int]:
    """Poll until the workflow is complete; returns its job counts by status. Raises TimeoutError
    after `timeout` seconds (None: wait for ever)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    with _using(client) as raw:
        while True:
            if raw.get(f"workflows/{workflow_id}/is_complete")["is_complete"]:
                return _counts(raw, workflow_id)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"workflow {workflow_id} did not complete within {timeout} s "
                                   f"(job counts: {_counts(raw, workflow_id)})")
            time.sleep(poll_interval)


def _counts(raw: TorcClient, workflow_id: int) -> dict[str, int]:
    return {k: v for k, v in raw.get(f"workflows/{workflow_id}/job_counts")["counts"].items() if v}


def _create(raw: TorcClient, workflow: Any, initialize: bool) -> int:
    """Create the workflow a builder, spec dict or spec file describes (or resume an id)."""
    from torc.builder import WorkflowBuilder, validate_spec
    from torc.client import manager
    from torc.client.from_spec import create_from_file, create_workflow

    if isinstance(workflow, int):
        if raw.get(f"workflows/{workflow}/is_uninitialized")["is_uninitialized"]:
            manager.initialize(raw, workflow)
        else:
            manager.prepare_resume(raw, workflow)
        return workflow
    if isinstance(workflow, WorkflowBuilder):
        workflow_id = workflow.create(raw)
    elif isinstance(workflow, dict):
        source = f"<spec {workflow.get('name')!r}>"
        spec, broken = validate_spec(workflow, source)
        workflow_id = create_workflow(raw, spec, source, broken=broken)
    elif isinstance(workflow, str | Path):
        workflow_id = create_from_file(raw, workflow)
    else:
        raise InvalidInputError(f"cannot run {type(workflow).__name__}: give a WorkflowBuilder, a spec dict, "
                                "a spec file path or a workflow id")
    if initialize:
        manager.initialize(raw, workflow_id)
    return workflow_id


def run_workflow(workflow: Any, *, client: Any = None, url: str | None = None,
                 output_dir: str | Path = "torc_output", num_cpus: int | None = None,
                 memory_gb: float | None = None, num_gpus: int | None = None,
                 max_parallel_jobs: int | None = None, poll_interval: float = 0.5,
                 idle_timeout: float | None = None, monitoring: bool = True) -> WorkflowRun:
    """Create and run a workflow on this machine until it is done, like `torc run`.

    `workflow` is a WorkflowBuilder, a spec dict, a spec file path, or the id of an existing
    workflow (resumed). The server is `client` (TorcClient or TorcApi) or `url`; with neither, a
    private torc-server runs on OUTPUT_DIR/torc.db during the call (inspect it later with
    `torc --database OUTPUT_DIR/torc.db ...`). Job logs go to OUTPUT_DIR/job_stdio.
    """
    from torc.runner.local import LocalRunner, RunnerOptions
    from torc.runner.resources import detect_cpus, detect_gpus, detect_memory_gb

    output_dir = Path(output_dir).resolve()
    (output_dir / "job_stdio").mkdir(parents=True, exist_ok=True)
    database = None
    with contextlib.ExitStack() as stack:
        if client is not None:
            raw = stack.enter_context(_using(client))
        else:
            if url is None:
                from torc.server.process import spawn_server

                database = output_dir / "torc.db"
                server = spawn_server(database, output_dir / "torc.server.log",
                                      "--completion-check-interval-secs", "1", "--log-level", "warning")
                stack.callback(server.stop)
                url = server.url
            raw = stack.enter_context(_using(url))
        workflow_id = _create(raw, workflow, initialize=True)
        options = RunnerOptions(
            output_dir=output_dir, num_cpus=num_cpus or detect_cpus(),
            memory_gb=memory_gb if memory_gb is not None else detect_memory_gb(),
            num_gpus=num_gpus if num_gpus is not None else detect_gpus(),
            max_parallel_jobs=max_parallel_jobs, poll_interval=poll_interval, idle_timeout=idle_timeout,
            server_retry_seconds=60.0,
        )
        runner = LocalRunner(raw, workflow_id, options, say=log.info)
        monitor = _monitor(raw, workflow_id, runner) if monitoring else None
        runner.monitor = monitor
        if monitor is not None:
            monitor.start()
        try:
            runner.run()
        finally:
            if monitor is not None:
                monitor.stop()
        return WorkflowRun(
            workflow_id=workflow_id, url=raw.url, output_dir=output_dir, job_counts=_counts(raw, workflow_id),
            is_complete=raw.get(f"workflows/{workflow_id}/is_complete")["is_complete"],
            jobs=list(raw.iter_items("jobs", workflow_id=workflow_id)),
            results=list(raw.iter_items("results", workflow_id=workflow_id)), database=database,
        )


def _monitor(raw: TorcClient, workflow_id: int, runner: Any) -> Any:
    """The summary resource monitor the workflow asks for (peak memory and CPU in each result)."""
    text = raw.get(f"workflows/{workflow_id}").get("resource_monitor_config")
    config = json.loads(text) if text else {"enabled": True, "sample_interval_seconds": 5}
    if not config.get("enabled"):
        return None
    from torc.runner.monitor import ResourceMonitor

    return ResourceMonitor(float(config.get("sample_interval_seconds") or 5), on_over_limit=runner.on_over_limit)


# ---- results and logs ------------------------------------------------------------------------


def _tail(path: Path, lines: int | None) -> str | None:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    if lines is None:
        return text
    return "".join(text.splitlines(keepends=True)[-lines:]) if lines > 0 else ""


def _read_logs(output_dir: Path | str, workflow_id: int, job_id: int, result: dict[str, Any] | None,
               tail: int | None = None) -> dict[str, Any]:
    from torc.reports import stdio_paths

    run_id = int((result or {}).get("run_id") or 1)
    attempt = int((result or {}).get("attempt_id") or 1)
    stdout, stderr = stdio_paths(output_dir, workflow_id, job_id, run_id, attempt)
    return {"job_id": job_id, "run_id": run_id, "attempt_id": attempt,
            "stdout_path": str(stdout), "stderr_path": str(stderr),
            "stdout": _tail(stdout, tail), "stderr": _tail(stderr, tail)}


def job_logs(client: Any, job_id: int, output_dir: str | Path = "torc_output",
             tail: int | None = None) -> dict[str, Any]:
    """The stdout and stderr (None where the file is missing; the last `tail` lines only when
    given) of a job's latest attempt, read from the runner's OUTPUT_DIR/job_stdio."""
    with _using(client) as raw:
        job = raw.get(f"jobs/{job_id}")
        result = _latest(r for r in raw.iter_items("results", workflow_id=job["workflow_id"], job_id=job_id,
                                                    all_runs=True))
    return _read_logs(output_dir, job["workflow_id"], job_id, result, tail)


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:  # pragma: no cover - pandas is an optional extra
        raise InvalidInputError("results_dataframe needs pandas: pip install pandas") from None
    return pandas


def results_dataframe(client: Any, workflow_id: int, all_runs: bool = False) -> pandas.DataFrame:
    """The workflow's results (current ones, or every run's) as a pandas DataFrame with a
    job_name column, one row per job attempt."""
    pd = _pandas()
    with _using(client) as raw:
        names = {j["id"]: j["name"] for j in raw.iter_items("jobs", workflow_id=workflow_id)}
        rows = [{"job_name": names.get(r["job_id"]), **r}
                for r in raw.iter_items("results", workflow_id=workflow_id, all_runs=all_runs or None)]
    columns = ["job_name", "job_id", "run_id", "attempt_id", "status", "return_code", "exec_time_minutes",
               "completion_time", "peak_memory_bytes", "peak_cpu_percent", "compute_node_id"]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    return frame[[c for c in columns if c in frame.columns] + [c for c in frame.columns if c not in columns]]


def jobs_dataframe(client: Any, workflow_id: int) -> pandas.DataFrame:
    """The workflow's jobs as a pandas DataFrame, one row per job."""
    pd = _pandas()
    with _using(client) as raw:
        return pd.DataFrame(list(raw.iter_items("jobs", workflow_id=workflow_id)))
