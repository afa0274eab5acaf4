"""Pure graph helpers over job names: execution stages and compact names for display."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from typing import TypeVar

from torc.core.errors import InvalidInputError

K = TypeVar("K", bound=Hashable)


def stages(blockers: Mapping[K, Iterable[K]]) -> list[list[K]]:
    """Jobs (names or ids) grouped by when they can start: stage k waits only for jobs of earlier
    stages. Order inside a stage follows the input order. Raises on a cycle."""
    waits = {job: set(b) for job, b in blockers.items()}
    dependents: dict[K, list[K]] = defaultdict(list)
    for job, bs in waits.items():
        for b in bs:
            dependents[b].append(job)
    remaining = {job: len(bs) for job, bs in waits.items()}
    current = [job for job, n in remaining.items() if n == 0]
    order = {job: i for i, job in enumerate(blockers)}
    out: list[list[K]] = []
    while current:
        out.append(current)
        nxt = []
        for job in current:
            for d in dependents[job]:
                remaining[d] -= 1
                if remaining[d] == 0:
                    nxt.append(d)
        current = sorted(nxt, key=order.__getitem__)
    if sum(len(s) for s in out) != len(waits):
        stuck = sorted(str(job) for job, n in remaining.items() if n > 0)
        raise InvalidInputError(f"dependency cycle among: {', '.join(stuck[:10])}")
    return out


_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def collapse_names(names: Iterable[str], limit: int = 6) -> list[str]:
    """['work_1', 'work_2', 'work_3', 'final'] -> ['work_{1..3} (3 jobs)', 'final']: parameterized jobs shown
    once. Names that differ only in their numbers form a group; each number that varies inside the group
    shows as {lowest..highest} (as written, so 0.0010 or 007 keep their form), the others as they are."""
    groups: dict[str, list[list[str]]] = {}
    for name in names:
        groups.setdefault(_NUMBER.sub("\0", name), []).append(_NUMBER.findall(name))
    out = []
    for key, members in groups.items():
        parts = key.split("\0")
        text = parts[0]
        for position, tail in enumerate(parts[1:]):
            values = sorted({m[position] for m in members}, key=lambda v: (float(v), v))
            text += values[0] if len(values) == 1 else f"{{{values[0]}..{values[-1]}}}"
            text += tail
        out.append(text if len(members) == 1 else f"{text} ({len(members)} jobs)")
    if len(out) > limit:
        out = out[:limit] + [f"... and {len(out) - limit} more groups"]
    return out
