"""Releasing dependents when their blockers finish, inside the caller's transaction.

A blocked job becomes eligible when every blocker is done (completed, failed, canceled,
terminated). It is then canceled if it has cancel_on_blocking_job_failure and some blocker
failed, was canceled or terminated; otherwise it becomes ready. Cancellation cascades.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torc.core.status import DONE, FAILED_LIKE, JobStatus
from torc.service.relationships import in_clause
from torc.storage.base import Connection

_DONE = in_clause(sorted(DONE))
_FAILED = in_clause(sorted(FAILED_LIKE))
_CHUNK = 500


@dataclass
class Released:
    ready: list[int] = field(default_factory=list)
    canceled: list[int] = field(default_factory=list)


def _has_unfinished_blocker(conn: Connection, job_id: int) -> bool:
    # Scan blockers from the highest id down: runners finish jobs roughly in id order, so an
    # unfinished blocker of a large fan-in is usually found on the first row.
    return conn.fetchone(
        "SELECT 1 AS x FROM job_depends_on d JOIN job b ON b.id = d.depends_on_job_id"
        f" WHERE d.job_id = ? AND b.status NOT IN {_DONE} ORDER BY d.depends_on_job_id DESC LIMIT 1",
        (job_id,),
    ) is not None


def _has_failed_blocker(conn: Connection, job_id: int) -> bool:
    return conn.fetchone(
        "SELECT 1 AS x FROM job_depends_on d JOIN job b ON b.id = d.depends_on_job_id"
        f" WHERE d.job_id = ? AND b.status IN {_FAILED} LIMIT 1",
        (job_id,),
    ) is not None


def release_dependents(conn: Connection, finished_ids: list[int]) -> Released:
    """Move blocked dependents of the finished jobs to ready or canceled, cascading cancels."""
    released = Released()
    frontier = list(finished_ids)
    while frontier:
        candidates: dict[int, int] = {}
        for start in range(0, len(frontier), _CHUNK):
            chunk = frontier[start : start + _CHUNK]
            for row in conn.iterate(
                "SELECT DISTINCT d.job_id, j.cancel_on_blocking_job_failure AS flag FROM job_depends_on d"
                " JOIN job j ON j.id = d.job_id"
                f" WHERE d.depends_on_job_id IN {in_clause(chunk)} AND j.status = {int(JobStatus.BLOCKED)}",
            ):
                candidates[row["job_id"]] = row["flag"]
        ready, canceled = [], []
        for job_id, flag in candidates.items():
            if _has_unfinished_blocker(conn, job_id):
                continue
            if flag and _has_failed_blocker(conn, job_id):
                canceled.append(job_id)
            else:
                ready.append(job_id)
        for start in range(0, len(ready), _CHUNK):
            conn.execute(f"UPDATE job SET status = {int(JobStatus.READY)} WHERE id IN {in_clause(ready[start:start + _CHUNK])}")
        for start in range(0, len(canceled), _CHUNK):
            conn.execute(
                f"UPDATE job SET status = {int(JobStatus.CANCELED)}, unblocking_processed = 1"
                f" WHERE id IN {in_clause(canceled[start:start + _CHUNK])}"
            )
        released.ready.extend(ready)
        released.canceled.extend(canceled)
        frontier = canceled
    for start in range(0, len(finished_ids), _CHUNK):
        conn.execute(
            f"UPDATE job SET unblocking_processed = 1 WHERE id IN {in_clause(finished_ids[start:start + _CHUNK])}"
        )
    return released
