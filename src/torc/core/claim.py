"""Which ready jobs fit a runner's free resources: a pure greedy packer.

The storage layer yields candidate jobs already filtered to those that fit individually and
ordered by the workflow's sort method; this module decides which of them to take together.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

GIB = 1024**3

SORT_METHODS = ("gpus_runtime_memory", "gpus_memory_runtime", "none")


@dataclass(frozen=True, slots=True)
class Offer:
    """Free resources a runner offers. time_limit_s None means unlimited."""

    num_cpus: int
    memory_bytes: int
    num_gpus: int
    num_nodes: int
    time_limit_s: float | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    job_id: int
    num_cpus: int
    memory_bytes: int
    num_gpus: int
    num_nodes: int
    runtime_s: float


def fits_alone(c: Candidate, offer: Offer) -> bool:
    return (
        c.num_cpus <= offer.num_cpus
        and c.memory_bytes <= offer.memory_bytes
        and c.num_gpus <= offer.num_gpus
        and c.num_nodes <= offer.num_nodes
        and (offer.time_limit_s is None or c.runtime_s <= offer.time_limit_s)
    )


def pack(candidates: Iterable[Candidate], offer: Offer, limit: int, budget: Offer | None = None) -> list[int]:
    """Walk candidates in order, taking each one whose resources still fit; skip the rest.
    Each job must fit `offer`; together they must fit `budget` (default: the offer).

    Multi-node jobs consume whole nodes of the offer; single-node jobs share the offer's
    CPUs, memory and GPUs (on a multi-node offer those are per-node figures, as in torc).
    """
    total = budget or offer
    cpus, mem, gpus, nodes_used = total.num_cpus, total.memory_bytes, total.num_gpus, 0
    chosen: list[int] = []
    for c in candidates:
        if len(chosen) >= limit:
            break
        if not fits_alone(c, offer):
            continue
        if c.num_cpus > cpus or c.memory_bytes > mem or c.num_gpus > gpus:
            continue
        if c.num_nodes > 1:
            if nodes_used + c.num_nodes > total.num_nodes:
                continue
            nodes_used += c.num_nodes
        cpus -= c.num_cpus
        mem -= c.memory_bytes
        gpus -= c.num_gpus
        chosen.append(c.job_id)
    return chosen
