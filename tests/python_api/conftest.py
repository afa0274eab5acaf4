"""The `client` fixture (a TorcClient of the module's real server) for the Python API tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from torc.client import TorcClient


@pytest.fixture
def client(server) -> Iterator[TorcClient]:
    with server.client() as c:
        yield c
