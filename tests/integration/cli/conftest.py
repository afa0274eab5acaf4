"""Module-scoped fixtures for the CLI tests: an API client and the CLI runner on the module's server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.cli.support import Invoke, make_invoke
from torc.client import TorcClient


@pytest.fixture(scope="module")
def api(server) -> Iterator[TorcClient]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def cli(server) -> Invoke:
    return make_invoke(server.url)
