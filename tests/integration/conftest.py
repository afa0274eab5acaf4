"""A real torc-server process on a free port, for tests that need real sockets (the module-scoped
`server` fixture is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server_support import start_server
from torc.client import TorcClient
from torc.server.process import ServerProcess

LiveServer = ServerProcess


@pytest.fixture
def live_server(tmp_path) -> Iterator[ServerProcess]:
    server = start_server(tmp_path / "torc.db", tmp_path / "server.log")
    yield server
    server.stop()


@pytest.fixture
def client(server) -> Iterator[TorcClient]:
    """A client of the module's shared `server`."""
    with server.client() as c:
        yield c
