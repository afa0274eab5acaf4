"""Pure domain logic: statuses, units and the claim packer."""

from __future__ import annotations

import pytest

from torc.core.claim import GIB, Candidate, Offer, pack
from torc.core.errors import InvalidInputError
from torc.core.status import JobStatus, check_completion, check_status_change
from torc.core.units import (
    format_duration,
    parse_duration_seconds,
    parse_memory_bytes,
    parse_walltime_seconds,
)


def test_status_wire_names_and_codes():
    assert [s.wire for s in JobStatus] == [
        "uninitialized", "blocked", "ready", "pending", "running", "completed", "failed", "canceled",
        "terminated", "disabled", "pending_failed",
    ]
    assert JobStatus.parse("Completed") is JobStatus.COMPLETED
    assert JobStatus.parse(10) is JobStatus.PENDING_FAILED
    with pytest.raises(InvalidInputError, match="invalid job status 'done'"):
        JobStatus.parse("done")
    with pytest.raises(InvalidInputError):
        JobStatus.parse(11)


def test_transition_table():
    check_status_change(1, JobStatus.READY, JobStatus.PENDING)
    check_status_change(1, JobStatus.COMPLETED, JobStatus.UNINITIALIZED)
    with pytest.raises(InvalidInputError, match="job 7: illegal status change disabled -> ready"):
        check_status_change(7, JobStatus.DISABLED, JobStatus.READY)
    with pytest.raises(InvalidInputError, match="use complete_job"):
        check_status_change(7, JobStatus.RUNNING, JobStatus.COMPLETED)
    check_completion(3, JobStatus.RUNNING, JobStatus.TERMINATED)
    with pytest.raises(InvalidInputError, match="not a completion status"):
        check_completion(3, JobStatus.RUNNING, JobStatus.READY)
    with pytest.raises(InvalidInputError, match="uninitialized"):
        check_completion(3, JobStatus.UNINITIALIZED, JobStatus.COMPLETED)


@pytest.mark.parametrize("text,expected", [
    ("1m", 1024**2), ("8g", 8 * GIB), ("8G", 8 * GIB), ("512", 512), ("2k", 2048), ("1t", 1024**4), ("4gb", 4 * GIB),
])
def test_memory(text, expected):
    assert parse_memory_bytes(text) == expected


@pytest.mark.parametrize("text", ["1.5g", "lots", "", "-1g", "8x"])
def test_bad_memory(text):
    with pytest.raises(InvalidInputError, match="invalid memory"):
        parse_memory_bytes(text)


@pytest.mark.parametrize("text,seconds", [
    ("P0DT1M", 60), ("PT30M", 1800), ("PT2H", 7200), ("P1DT12H", 129600), ("PT1.5S", 1.5), ("P1W", 604800),
])
def test_durations(text, seconds):
    assert parse_duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["PT", "P", "1h", "PT1H30", "P1DT"])
def test_bad_durations(text):
    with pytest.raises(InvalidInputError, match="ISO-8601"):
        parse_duration_seconds(text)


def test_format_duration_round_trips():
    for seconds in (0, 59, 60, 3600, 90061):
        assert parse_duration_seconds(format_duration(seconds)) == seconds


def test_walltime():
    assert parse_walltime_seconds("01:00:00") == 3600
    assert parse_walltime_seconds("2-00:30:00") == 2 * 86400 + 1800
    with pytest.raises(InvalidInputError):
        parse_walltime_seconds("1:xx")


def _c(i, cpus=1, mem=GIB, gpus=0, nodes=1, runtime=60.0):
    return Candidate(i, cpus, mem, gpus, nodes, runtime)


def test_pack_greedy_skips_and_continues():
    offer = Offer(num_cpus=4, memory_bytes=4 * GIB, num_gpus=1, num_nodes=1)
    cands = [_c(1, cpus=3), _c(2, cpus=2), _c(3, gpus=1), _c(4, gpus=1), _c(5)]
    assert pack(cands, offer, limit=10) == [1, 3]  # 2 does not fit after 1; 4 lacks a GPU; 5 lacks a CPU


def test_pack_limit_time_and_nodes():
    offer = Offer(num_cpus=100, memory_bytes=100 * GIB, num_gpus=0, num_nodes=4, time_limit_s=100)
    cands = [_c(1, runtime=200), _c(2, nodes=3), _c(3, nodes=2), _c(4), _c(5), _c(6)]
    assert pack(cands, offer, limit=3) == [2, 4, 5]
    assert pack([], offer, limit=3) == []
