"""Filtering and sorting of the TUI's tables: pure functions over the server's records.

A filter is what the user types above a table: `key:value` terms narrow one column (`user:alice`,
`status:failed`), every other word must appear in the record's name (or, for jobs, its command).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Record = Mapping[str, Any]

ACTIVE = ("pending", "running")
UNSUCCESSFUL = ("failed", "terminated", "canceled", "pending_failed")
WORKFLOW_STATES = ("empty", "uninitialized", "ready", "running", "failed", "completed", "canceled", "archived")
JOB_SORT_KEYS = ("id", "name", "status")


@dataclass(frozen=True)
class Query:
    terms: dict[str, str] = field(default_factory=dict)  # key -> value (lower case)
    words: tuple[str, ...] = ()


def parse_query(text: str) -> Query:
    """`user:alice status:failed sweep` -> terms {user: alice, status: failed}, words (sweep,)."""
    terms: dict[str, str] = {}
    words: list[str] = []
    for token in text.lower().split():
        key, sep, value = token.partition(":")
        if sep and key and value:
            terms[key] = value
        else:
            words.append(token)
    return Query(terms, tuple(words))


def workflow_state(status: Record, counts: Mapping[str, int]) -> str:
    """One word for where a workflow stands, from its status record and job counts."""
    if status.get("is_archived"):
        return "archived"
    if status.get("is_canceled"):
        return "canceled"
    total = sum(counts.values())
    if total == 0:
        return "empty"
    if counts.get("uninitialized", 0) == total:
        return "uninitialized"
    if any(counts.get(s, 0) for s in ACTIVE):
        return "running"
    if counts.get("ready", 0) or counts.get("blocked", 0):
        return "ready"
    if counts.get("uninitialized", 0):  # e.g. after a reset of the failed jobs: `torc run ID` goes on
        return "uninitialized"
    if any(counts.get(s, 0) for s in UNSUCCESSFUL):
        return "failed"
    return "completed"


def _matches(value: Any, wanted: str, exact: bool) -> bool:
    text = "" if value is None else str(value).lower()
    return text == wanted if exact else wanted in text


def filter_workflows(rows: Iterable[Record], query: Query) -> list[Record]:
    """Rows with `user`, `name`, `state`: `user:` and `status:` match exactly, `name:` and words by substring."""
    out = []
    for row in rows:
        if "user" in query.terms and not _matches(row.get("user"), query.terms["user"], exact=True):
            continue
        if "status" in query.terms and not _matches(row.get("state"), query.terms["status"], exact=True):
            continue
        if "name" in query.terms and not _matches(row.get("name"), query.terms["name"], exact=False):
            continue
        if not all(_matches(row.get("name"), w, exact=False) for w in query.words):
            continue
        out.append(row)
    return out


def filter_jobs(jobs: Iterable[Record], query: Query) -> list[Record]:
    """`status:` matches exactly, `name:` by substring; other words search the name and the command."""
    out = []
    for job in jobs:
        if "status" in query.terms and not _matches(job.get("status"), query.terms["status"], exact=True):
            continue
        if "name" in query.terms and not _matches(job.get("name"), query.terms["name"], exact=False):
            continue
        haystack = f"{job.get('name', '')} {job.get('command', '')}".lower()
        if not all(w in haystack for w in query.words):
            continue
        out.append(job)
    return out


def sort_jobs(jobs: Iterable[Record], key: str, reverse: bool = False) -> list[Record]:
    """Jobs ordered by id, name or status (then id, so the order is stable)."""
    if key not in JOB_SORT_KEYS:
        raise ValueError(f"cannot sort jobs by {key!r}; choose one of {', '.join(JOB_SORT_KEYS)}")
    return sorted(jobs, key=lambda j: (str(j.get(key, "")) if key != "id" else j["id"], j["id"]), reverse=reverse)


def next_sort_key(key: str) -> str:
    return JOB_SORT_KEYS[(JOB_SORT_KEYS.index(key) + 1) % len(JOB_SORT_KEYS)]
