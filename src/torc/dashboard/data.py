"""What the dashboard pages show, fetched through the REST client and shaped for the templates.

Nothing here renders HTML. Job tables are paged on the server (offset/limit), so a workflow of
100k jobs costs one page per view; only the DAG, the progress chart and the utilization check
read whole listings, and each of them lives on its own page or JSON endpoint.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from torc.client import TorcClient
from torc.core.graph import collapse_names
from torc.core.status import JobStatus
from torc.reports import check_resource_utilization, stdio_paths

STATUSES = [s.wire for s in JobStatus]
PAGE_SIZES = (25, 50, 100, 500)
DEFAULT_PAGE_SIZE = 50
LOG_TAIL_BYTES = 256 * 1024
MAX_DAG_GROUPS = 300
_NUMBER = re.compile(r"\d+")
# Colour rank of a group in the DAG: the most urgent status among its jobs wins.
_URGENCY = ["failed", "terminated", "pending_failed", "canceled", "running", "pending", "ready", "blocked",
            "uninitialized", "disabled", "completed"]


# ---- workflows and jobs ------------------------------------------------------------------------


def list_workflows(client: TorcClient, archived: str, user: str | None, offset: int,
                   limit: int) -> dict[str, Any]:
    """archived: 'no' (default), 'only' or 'all'."""
    is_archived = {"no": False, "only": True}.get(archived)
    return client.get("workflows", offset=offset, limit=limit, is_archived=is_archived, user=user or None,
                      sort_by="id", reverse_sort=True)


@dataclass
class JobPage:
    items: list[dict[str, Any]]
    offset: int
    limit: int
    total: int

    @property
    def has_prev(self) -> bool:
        return self.offset > 0

    @property
    def has_next(self) -> bool:
        return self.offset + len(self.items) < self.total

    @property
    def last_offset(self) -> int:
        return max(0, (self.total - 1) // self.limit * self.limit)


def job_page(client: TorcClient, workflow_id: int, status: str | None, name: str | None, offset: int,
             limit: int) -> JobPage:
    """One page of jobs. The status filter runs in the server; the API has no name filter, so a name
    filter scans the listing in large pages (still never more than one page held per request)."""
    status = status or None
    if not name:
        page = client.get("jobs", workflow_id=workflow_id, status=status, offset=offset, limit=limit,
                          sort_by="id")
        return JobPage(page["items"], offset, limit, page["total_count"])
    needle = name.lower()
    items: list[dict[str, Any]] = []
    total = 0
    for job in client.iter_items("jobs", workflow_id=workflow_id, status=status, sort_by="id"):
        if needle in job["name"].lower():
            if offset <= total < offset + limit:
                items.append(job)
            total += 1
    return JobPage(items, offset, limit, total)


def job_counts(client: TorcClient, workflow_id: int) -> dict[str, Any]:
    return client.get(f"workflows/{workflow_id}/job_counts")


def progress_series(client: TorcClient, workflow_id: int) -> dict[str, Any]:
    """Cumulative finished jobs over time, per result status, from the current results' completion times."""
    times: dict[str, list[str]] = defaultdict(list)
    for result in client.iter_items("results", workflow_id=workflow_id):
        stamp = result.get("completion_time")
        if stamp:
            times[_status(result.get("status"))].append(stamp)
    series = []
    for status, stamps in sorted(times.items()):
        stamps.sort(key=_sort_key)
        series.append({"status": status, "x": stamps, "y": list(range(1, len(stamps) + 1))})
    return {"workflow_id": workflow_id, "series": series}


def _status(value: Any) -> str:
    if isinstance(value, int):
        return JobStatus(value).wire
    return str(value or "unknown")


def _sort_key(stamp: str) -> str:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).isoformat()
    except ValueError:
        return stamp


# ---- job detail and logs ------------------------------------------------------------------------


@dataclass
class LogFile:
    label: str
    path: Path
    text: str | None  # None: the file does not exist (the job wrote nothing to that stream)
    truncated: bool = False


def read_log(label: str, path: Path, limit: int = LOG_TAIL_BYTES) -> LogFile:
    """The last `limit` bytes of a log file; a missing file means the stream printed nothing."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            if size > limit:
                f.seek(size - limit)
            data = f.read(limit)
    except FileNotFoundError:
        return LogFile(label, path, None)
    except OSError as exc:
        return LogFile(label, path, f"(cannot read {path}: {exc.strerror or exc})")
    return LogFile(label, path, data.decode("utf-8", errors="replace"), size > limit)


@dataclass
class Attempt:
    result: dict[str, Any]
    logs: list[LogFile] = field(default_factory=list)


def job_attempts(client: TorcClient, workflow_id: int, job_id: int, output_dir: Path) -> list[Attempt]:
    """Every result of the job (all runs, newest first) with its stdout/stderr files."""
    results = list(client.iter_items("results", workflow_id=workflow_id, job_id=job_id, all_runs=True))
    results.sort(key=lambda r: (r.get("run_id") or 0, r.get("attempt_id") or 0), reverse=True)
    attempts = []
    for result in results:
        stdout, stderr = stdio_paths(output_dir, workflow_id, job_id, int(result.get("run_id") or 0),
                                     int(result.get("attempt_id") or 1))
        attempts.append(Attempt({**result, "status": _status(result.get("status"))},
                                [read_log("stdout", stdout), read_log("stderr", stderr)]))
    return attempts


# ---- DAG --------------------------------------------------------------------------------------


@dataclass
class DagNode:
    key: str
    label: str
    count: int
    statuses: dict[str, int]
    job_id: int | None  # the job, for a group of one
    layer: int = 0
    row: int = 0

    @property
    def color_status(self) -> str:
        return min(self.statuses, key=lambda s: _URGENCY.index(s) if s in _URGENCY else len(_URGENCY))


@dataclass
class Dag:
    nodes: list[DagNode]
    edges: list[tuple[str, str]]
    job_count: int
    too_large: bool = False


def group_key(name: str) -> str:
    """Jobs whose names differ only in their numbers share a key: work_1, work_2 -> work_#."""
    return _NUMBER.sub("#", name)


def job_blockers(client: TorcClient, workflow_id: int) -> tuple[dict[int, dict[str, Any]], dict[int, set[int]]]:
    """(jobs by id, job id -> ids it waits for) from explicit, file and user-data dependencies."""
    jobs = {j["id"]: j for j in client.iter_items("jobs", workflow_id=workflow_id)}
    blockers: dict[int, set[int]] = {i: set() for i in jobs}
    for dep in client.iter_items(f"workflows/{workflow_id}/job_dependencies"):
        if dep["job_id"] in blockers:
            blockers[dep["job_id"]].add(dep["depends_on_job_id"])
    for listing in ("job_file_relationships", "job_user_data_relationships"):
        for rel in client.iter_items(f"workflows/{workflow_id}/{listing}"):
            producer, consumer = rel.get("producer_job_id"), rel.get("consumer_job_id")
            if producer and consumer in blockers and producer != consumer:
                blockers[consumer].add(producer)
    return jobs, blockers


def build_dag(jobs: dict[int, dict[str, Any]], blockers: dict[int, set[int]], group: bool = True) -> Dag:
    """The job graph with parameterized jobs collapsed into one node each (when `group`), laid out in
    layers: a node sits one layer right of its deepest blocker (edges inside a cycle of groups are
    ignored for the layout)."""
    key_of = {i: group_key(j["name"]) if group else str(i) for i, j in jobs.items()}
    members: dict[str, list[int]] = defaultdict(list)
    for job_id, key in key_of.items():
        members[key].append(job_id)
    if len(members) > MAX_DAG_GROUPS:
        return Dag([], [], len(jobs), too_large=True)
    edges = sorted({(key_of[b], key_of[j]) for j, bs in blockers.items() for b in bs
                    if b in key_of and key_of[b] != key_of[j]})
    nodes: dict[str, DagNode] = {}
    for key, ids in members.items():
        statuses: dict[str, int] = defaultdict(int)
        for i in ids:
            statuses[_status(jobs[i]["status"])] += 1
        label = collapse_names([jobs[i]["name"] for i in ids], limit=1)[0] if len(ids) > 1 else jobs[ids[0]]["name"]
        nodes[key] = DagNode(key, label, len(ids), dict(statuses), ids[0] if len(ids) == 1 else None)
    _layout(nodes, edges)
    ordered = sorted(nodes.values(), key=lambda n: (n.layer, n.row))
    return Dag(ordered, edges, len(jobs))


def _layout(nodes: dict[str, DagNode], edges: list[tuple[str, str]]) -> None:
    parents: dict[str, list[str]] = defaultdict(list)
    for src, dst in edges:
        parents[dst].append(src)
    depth: dict[str, int] = {}
    visiting: set[str] = set()

    def layer(key: str) -> int:
        if key in depth:
            return depth[key]
        visiting.add(key)
        value = 0
        for parent in parents[key]:
            if parent not in visiting:
                value = max(value, layer(parent) + 1)
        visiting.discard(key)
        depth[key] = value
        return value

    rows: dict[int, int] = defaultdict(int)
    for key in nodes:  # iterative order keeps recursion shallow for typical specs
        node = nodes[key]
        node.layer = layer(key)
        node.row = rows[node.layer]
        rows[node.layer] += 1


# ---- resources --------------------------------------------------------------------------------


def utilization(client: TorcClient, workflow_id: int) -> dict[str, Any]:
    """`torc reports check-resource-utilization --all --include-failed` of the current results."""
    results = list(client.iter_items("results", workflow_id=workflow_id))
    jobs = list(client.iter_items("jobs", workflow_id=workflow_id))
    requirements = list(client.iter_items("resource_requirements", workflow_id=workflow_id))
    return check_resource_utilization(jobs, results, requirements, include_all=True, include_failed=True)


def resource_databases(output_dir: Path, workflow_id: int) -> list[Path]:
    """The runner's time-series monitoring databases of this workflow (every host and run)."""
    folder = output_dir / "resource_utilization"
    return sorted(folder.glob(f"resource_metrics_*_{workflow_id}_*.db")) if folder.is_dir() else []


def resource_figures(paths: list[Path]) -> list[dict[str, Any]]:
    """Plotly figures (as JSON text) of `torc plot-resources`: CPU and memory of all jobs and the summary."""
    from torc.plots import cpu_figure, load_series, memory_figure, select_jobs, summary_figure

    series, _ = select_jobs(load_series(paths), None)
    if not series:
        return []
    return [{"id": f"plot-{name}", "json": fig.to_json()} for name, fig in
            (("cpu", cpu_figure(series)), ("memory", memory_figure(series)), ("summary", summary_figure(series)))]
