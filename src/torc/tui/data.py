"""What the TUI shows, fetched from the server through TorcClient (never storage or service).

Every function here blocks on HTTP: the screens call them from thread workers, never on the UI loop.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torc.client import TorcClient
from torc.tui.logs import LogTail, attempt_logs
from torc.tui.query import workflow_state

Record = dict[str, Any]


@dataclass
class WorkflowOverview:
    workflow: Record
    status: Record
    counts: dict[str, int]
    state: str
    jobs: list[Record]


@dataclass
class Dependencies:
    upstream: dict[int, list[int]]  # job id -> ids of the jobs it waits for
    downstream: dict[int, list[int]]  # job id -> ids of the jobs that wait for it
    names: dict[int, str]
    statuses: dict[int, str]


@dataclass
class JobDetail:
    job: Record
    requirements: Record | None
    results: list[Record]  # every attempt of every run, oldest first
    logs: list[LogTail]  # stdout and stderr of the latest attempt
    dependencies: Dependencies
    run_id: int


class TuiData:
    """The TUI's window on the server: one client, used by one worker thread at a time."""

    def __init__(self, client: TorcClient, output_dir: Path):
        self.client = client
        self.output_dir = Path(output_dir)
        self.lock = threading.Lock()  # httpx.Client is not shared across threads

    @property
    def url(self) -> str:
        return self.client.url

    def workflows(self) -> list[Record]:
        """Unarchived workflows with their state and job totals, newest last."""
        with self.lock:
            rows = []
            for wf in self.client.iter_items("workflows", is_archived=False):
                status = self.client.get(f"workflows/{wf['id']}/status")
                counts = self.client.get(f"workflows/{wf['id']}/job_counts")["counts"]
                rows.append({**wf, "state": workflow_state(status, counts), "total": sum(counts.values()),
                             "completed": counts.get("completed", 0),
                             "failed": sum(counts.get(s, 0) for s in ("failed", "terminated", "pending_failed"))})
            return rows

    def overview(self, workflow_id: int) -> WorkflowOverview:
        with self.lock:
            workflow = self.client.get(f"workflows/{workflow_id}")
            status = self.client.get(f"workflows/{workflow_id}/status")
            counts = self.client.get(f"workflows/{workflow_id}/job_counts")["counts"]
            jobs = list(self.client.iter_items("jobs", workflow_id=workflow_id))
        return WorkflowOverview(workflow, status, counts, workflow_state(status, counts), jobs)

    def dependencies(self, workflow_id: int) -> Dependencies:
        with self.lock:
            return self._dependencies(workflow_id)

    def _dependencies(self, workflow_id: int) -> Dependencies:
        upstream: dict[int, list[int]] = {}
        downstream: dict[int, list[int]] = {}
        names: dict[int, str] = {}
        statuses: dict[int, str] = {}
        for job in self.client.iter_items("jobs", workflow_id=workflow_id):
            names[job["id"]] = job["name"]
            statuses[job["id"]] = job["status"]
        for edge in self.client.iter_items(f"workflows/{workflow_id}/job_dependencies"):
            upstream.setdefault(edge["job_id"], []).append(edge["depends_on_job_id"])
            downstream.setdefault(edge["depends_on_job_id"], []).append(edge["job_id"])
        for ids in (*upstream.values(), *downstream.values()):
            ids.sort()
        return Dependencies(upstream, downstream, names, statuses)

    def job_detail(self, workflow_id: int, job_id: int) -> JobDetail:
        with self.lock:
            job = self.client.get(f"jobs/{job_id}")
            requirements = None
            if job.get("resource_requirements_id") is not None:
                requirements = self.client.get(f"resource_requirements/{job['resource_requirements_id']}")
            results = [r for r in self.client.iter_items("results", workflow_id=workflow_id, job_id=job_id,
                                                         all_runs=True) if r["job_id"] == job_id]
            results.sort(key=lambda r: (r["run_id"], r["attempt_id"], r["id"]))
            run_id = self.client.run_id(workflow_id)
            dependencies = self._dependencies(workflow_id)
        if job["status"] in ("running", "pending") or not results:
            attempt = (run_id, int(job.get("attempt_id") or 1))
        else:
            attempt = (results[-1]["run_id"], results[-1]["attempt_id"])
        logs = attempt_logs(self.output_dir, workflow_id, job_id, *attempt)
        return JobDetail(job, requirements, results, logs, dependencies, run_id)
