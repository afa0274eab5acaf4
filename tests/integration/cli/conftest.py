"""Module-scoped fixtures for the CLI tests: a real server, an API client and the CLI runner."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.cli.support import Invoke, make_invoke, start
from torc.client import TorcClient
from torc.server.process import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory, request) -> Iterator[ServerProcess]:
    srv = start(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def api(server) -> Iterator[TorcClient]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def cli(server) -> Invoke:
    return make_invoke(server.url)
