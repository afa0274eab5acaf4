"""A real torc-server process on a free port, for tests that need real sockets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from torc.server.process import ServerProcess, spawn_server

LiveServer = ServerProcess


def start_server(database: Path, log: Path, *extra: str) -> ServerProcess:
    return spawn_server(database, log, "--completion-check-interval-secs", "0.5", *extra)


@pytest.fixture
def live_server(tmp_path) -> Iterator[ServerProcess]:
    server = start_server(tmp_path / "torc.db", tmp_path / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, request) -> Iterator[ServerProcess]:
    """One server shared by the tests of a module; each test makes its own workflows."""
    folder = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    server = start_server(folder / "torc.db", folder / "server.log")
    yield server
    server.stop()
