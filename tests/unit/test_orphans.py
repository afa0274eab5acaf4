"""When is a runner gone? (torc.client.manager._runner_gone)"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta

from torc.client.manager import STALE_AFTER_SECONDS, _runner_gone

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _node(**fields):
    base = {"is_active": True, "compute_node_type": "slurm", "hostname": "elsewhere", "pid": 1,
            "start_time": (NOW - timedelta(seconds=10)).isoformat()}
    return {**base, **fields}


def test_inactive_node_is_gone():
    assert _runner_gone(_node(is_active=False), NOW)


def test_recent_heartbeat_is_alive_and_an_old_one_is_gone():
    fresh = (NOW - timedelta(seconds=STALE_AFTER_SECONDS / 2)).isoformat().replace("+00:00", "Z")
    stale = (NOW - timedelta(seconds=STALE_AFTER_SECONDS + 1)).isoformat().replace("+00:00", "Z")
    assert not _runner_gone(_node(last_heartbeat=fresh), NOW)
    assert _runner_gone(_node(last_heartbeat=stale), NOW)


def test_no_heartbeat_falls_back_to_start_time():
    assert _runner_gone(_node(start_time=(NOW - timedelta(hours=1)).isoformat()), NOW)
    assert not _runner_gone(_node(start_time="not a time"), NOW)


def test_local_runner_on_this_host_is_judged_by_its_pid():
    me = _node(compute_node_type="local", hostname=socket.gethostname(), pid=os.getpid(),
               start_time=datetime.now(UTC).isoformat())
    assert not _runner_gone(me)
    dead = dict(me, pid=2**22 + 12345)  # above the default pid_max: no such process
    assert _runner_gone(dead)
