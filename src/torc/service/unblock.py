"""Releasing dependents when their blockers finish, inside the caller's transaction.

A blocked job becomes eligible when every blocker is done (completed, failed, canceled,
terminated). It is then canceled if it has cancel_on_blocking_job_failure and some blocker
failed, was canceled or terminated; otherwise it becomes ready. Cancellation cascades.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torc.core.status import JobStatus
from torc.service.relationships import in_clause
from torc.storage import queries as q
from torc.storage.base import Connection

_CHUNK = 500


@dataclass
class Released:
    ready: list[int] = field(default_factory=list)
    canceled: list[int] = field(default_factory=list)


def _has_failed_blocker(conn: Connection, job_id: int) -> bool:
    return conn.fetchone(q.HAS_FAILED_BLOCKER, (job_id,)) is not None


def _split(conn: Connection, candidates: dict[int, int]) -> tuple[list[int], list[int]]:
    """Eligible jobs -> (ready, canceled): canceled when flagged and some blocker failed."""
    ready, canceled = [], []
    for job_id, flag in candidates.items():
        (canceled if flag and _has_failed_blocker(conn, job_id) else ready).append(job_id)
    return ready, canceled


def _apply(conn: Connection, candidates: dict[int, int], released: Released) -> list[int]:
    """Set eligible jobs ready or canceled; return the canceled ones (their dependents are next)."""
    ready, canceled = _split(conn, candidates)
    for start in range(0, len(ready), _CHUNK):
        conn.execute(f"UPDATE job SET status = {int(JobStatus.READY)} WHERE id IN {in_clause(ready[start:start + _CHUNK])}")
    for start in range(0, len(canceled), _CHUNK):
        conn.execute(
            f"UPDATE job SET status = {int(JobStatus.CANCELED)}, unblocking_processed = 1"
            f" WHERE id IN {in_clause(canceled[start:start + _CHUNK])}"
        )
    released.ready.extend(ready)
    released.canceled.extend(canceled)
    return canceled


def release_waiting(conn: Connection) -> dict[int, Released]:
    """Release every blocked job that waits for nobody, per workflow (the safety net)."""
    by_workflow: dict[int, dict[int, int]] = {}
    for row in conn.iterate(q.RELEASABLE):
        by_workflow.setdefault(row["workflow_id"], {})[row["id"]] = row["flag"]
    out = {}
    for workflow_id, candidates in by_workflow.items():
        released = Released()
        canceled = _apply(conn, candidates, released)
        if canceled:
            more = release_dependents(conn, canceled)
            released.ready += more.ready
            released.canceled += more.canceled
        out[workflow_id] = released
    return out


def release_dependents(conn: Connection, finished_ids: list[int]) -> Released:
    """Move blocked dependents of the finished jobs to ready or canceled, cascading cancels."""
    released = Released()
    frontier = list(finished_ids)
    while frontier:
        candidates: dict[int, int] = {}
        for start in range(0, len(frontier), _CHUNK):
            chunk = frontier[start : start + _CHUNK]
            for row in conn.iterate(q.RELEASABLE_DEPENDENTS.format(ids=in_clause(chunk))):
                candidates[row["job_id"]] = row["flag"]
        frontier = _apply(conn, candidates, released)
    for start in range(0, len(finished_ids), _CHUNK):
        conn.execute(
            f"UPDATE job SET unblocking_processed = 1 WHERE id IN {in_clause(finished_ids[start:start + _CHUNK])}"
        )
    return released
