"""Job statuses: stored as integers 0..10, sent on the wire as lowercase strings.

Who sets each status:
    uninitialized  server, on create and on reset
    blocked        server (initialize), while some blocker is not done
    ready          server (initialize / unblocking / retry): claimable by any runner
    pending        server, when a runner claims the job
    running        runner, via start_job
    completed      runner, via complete_job (exit code 0)                      done
    failed         runner, via complete_job (non-zero exit)                     done
    canceled       server (cancel cascade, workflow cancel) or runner           done
    terminated     runner: killed at its runtime limit or allocation end         done
    disabled       user, via update_job; never runs, blocks dependents forever
    pending_failed runner, when use_pending_failed is set and no handler matched;
                   waits for a retry-or-fail decision and keeps the workflow open
"""

from __future__ import annotations

from enum import IntEnum

from torc.core.errors import InvalidInputError


class JobStatus(IntEnum):
    UNINITIALIZED = 0
    BLOCKED = 1
    READY = 2
    PENDING = 3
    RUNNING = 4
    COMPLETED = 5
    FAILED = 6
    CANCELED = 7
    TERMINATED = 8
    DISABLED = 9
    PENDING_FAILED = 10

    @property
    def wire(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | int) -> JobStatus:
        """Accept the wire string (any case) or the integer code."""
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return cls(value)
            except ValueError:
                pass
        elif isinstance(value, str):
            key = value.strip().upper()
            if key in cls.__members__:
                return cls[key]
            if key.isdigit() and int(key) in cls._value2member_map_:
                return cls(int(key))
        allowed = ", ".join(s.wire for s in cls)
        raise InvalidInputError(f"invalid job status {value!r}; expected one of: {allowed}")


S = JobStatus

# A blocker in one of these states no longer holds its dependents back.
DONE = frozenset({S.COMPLETED, S.FAILED, S.CANCELED, S.TERMINATED})
# A done blocker in one of these states cancels dependents that ask for it.
FAILED_LIKE = frozenset({S.FAILED, S.CANCELED, S.TERMINATED})
# Statuses complete_job accepts.
TERMINAL = DONE | {S.PENDING_FAILED}
# Statuses that count as finished for workflow completion.
FINISHED = DONE | {S.DISABLED}
# A runner holds the job.
ACTIVE = frozenset({S.PENDING, S.RUNNING})
# Statuses reset by "reset failed only".
RESETTABLE_FAILURES = frozenset({S.FAILED, S.CANCELED, S.TERMINATED, S.PENDING_FAILED})

# complete_job: which statuses a job may be completed from.
COMPLETABLE_FROM = frozenset({S.BLOCKED, S.READY, S.PENDING, S.RUNNING, S.PENDING_FAILED})

# manage_status_change: legal (from -> to) moves for the non-terminal statuses.
# Moves into a done status go through complete_job instead.
_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    S.UNINITIALIZED: frozenset({S.UNINITIALIZED, S.BLOCKED, S.READY, S.DISABLED}),
    S.BLOCKED: frozenset({S.UNINITIALIZED, S.BLOCKED, S.READY, S.DISABLED}),
    S.READY: frozenset({S.UNINITIALIZED, S.BLOCKED, S.READY, S.PENDING, S.DISABLED}),
    S.PENDING: frozenset({S.UNINITIALIZED, S.READY, S.PENDING, S.RUNNING}),
    S.RUNNING: frozenset({S.UNINITIALIZED, S.READY, S.RUNNING}),
    S.COMPLETED: frozenset({S.UNINITIALIZED, S.COMPLETED}),
    S.FAILED: frozenset({S.UNINITIALIZED, S.READY, S.FAILED}),
    S.CANCELED: frozenset({S.UNINITIALIZED, S.READY, S.CANCELED}),
    S.TERMINATED: frozenset({S.UNINITIALIZED, S.READY, S.TERMINATED}),
    S.DISABLED: frozenset({S.UNINITIALIZED, S.DISABLED}),
    S.PENDING_FAILED: frozenset({S.UNINITIALIZED, S.READY, S.PENDING_FAILED}),
}


def check_status_change(job_id: int, current: JobStatus, new: JobStatus) -> None:
    """Raise InvalidInputError naming the job unless current -> new is a legal manual change."""
    if new in DONE:
        raise InvalidInputError(
            f"job {job_id}: cannot set status {new.wire} with manage_status_change; use complete_job"
        )
    if new not in _TRANSITIONS[current]:
        raise InvalidInputError(f"job {job_id}: illegal status change {current.wire} -> {new.wire}")


def check_completion(job_id: int, current: JobStatus, new: JobStatus) -> None:
    """Raise unless complete_job may move the job from current to the terminal status new."""
    if new not in TERMINAL:
        allowed = ", ".join(sorted(s.wire for s in TERMINAL))
        raise InvalidInputError(f"job {job_id}: {new.wire} is not a completion status; expected one of {allowed}")
    if current not in COMPLETABLE_FROM:
        raise InvalidInputError(f"job {job_id}: cannot complete a job whose status is {current.wire}")
