"""A real torc-server process on a free port, for tests that need real sockets (the runner, Slurm
allocations, remote workers). The module-scoped `server` fixture in tests/conftest.py uses it."""

from __future__ import annotations

from pathlib import Path

from torc.server.process import ServerProcess, spawn_server


def start_server(database: Path, log: Path, *extra: str) -> ServerProcess:
    """`torc-server run` on a free port of 127.0.0.1 that checks for completed workflows every 0.5 s."""
    return spawn_server(database, log, "--completion-check-interval-secs", "0.5", *extra)
