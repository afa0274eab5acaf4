"""Pure graph helpers over job names: execution stages and compact names for display."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping

from torc.core.errors import InvalidInputError


def stages(blockers: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Jobs grouped by when they can start: stage k waits only for jobs of earlier stages.
    Order inside a stage follows the input order. Raises on a cycle."""
    waits = {job: set(b) for job, b in blockers.items()}
    dependents: dict[str, list[str]] = defaultdict(list)
    for job, bs in waits.items():
        for b in bs:
            dependents[b].append(job)
    remaining = {job: len(bs) for job, bs in waits.items()}
    current = [job for job, n in remaining.items() if n == 0]
    out: list[list[str]] = []
    while current:
        out.append(current)
        nxt = []
        for job in current:
            for d in dependents[job]:
                remaining[d] -= 1
                if remaining[d] == 0:
                    nxt.append(d)
        order = {job: i for i, job in enumerate(blockers)}
        current = sorted(nxt, key=order.__getitem__)
    if sum(len(s) for s in out) != len(waits):
        stuck = sorted(job for job, n in remaining.items() if n > 0)
        raise InvalidInputError(f"dependency cycle among: {', '.join(stuck[:10])}")
    return out


_NUMBER = re.compile(r"\d+")


def collapse_names(names: Iterable[str], limit: int = 6) -> list[str]:
    """['work_1', 'work_2', 'work_3', 'final'] -> ['work_{1..3}', 'final']: parameterized jobs shown once."""
    groups: dict[str, list[tuple[int, str]]] = {}
    order: list[str] = []
    for name in names:
        numbers = _NUMBER.findall(name)
        key = _NUMBER.sub("#", name) if numbers else name
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append((int(numbers[-1]) if numbers else 0, name))
    out = []
    for key in order:
        members = groups[key]
        if len(members) == 1:
            out.append(members[0][1])
            continue
        values = sorted(v for v, _ in members)
        head, tail = key.rsplit("#", 1)  # the last number varies; earlier ones show as *
        out.append(f"{head.replace('#', '*')}{{{values[0]}..{values[-1]}}}{tail} ({len(members)} jobs)")
    if len(out) > limit:
        out = out[:limit] + [f"... and {len(out) - limit} more groups"]
    return out
