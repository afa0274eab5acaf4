"""Shared fixtures: a real SQLite store in a temp dir, the app in-process, and a client."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from torc.client import TorcClient
from torc.server.app import API_PREFIX, ServerConfig, create_app
from torc.service.context import Context
from torc.storage.sqlite import SqliteStore


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("TORC_") or key == "DATABASE_URL":
            monkeypatch.delenv(key, raising=False)


@pytest.fixture
def store(tmp_path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "torc.db")
    yield s
    s.close()


@pytest.fixture
def app(store):
    return create_app(ServerConfig(completion_check_interval_secs=0.2), store=store)


@pytest.fixture
def http(app) -> Iterator[TestClient]:
    """Raw HTTP access for status-code and body assertions; server errors come back as 500s."""
    with TestClient(app, base_url=f"http://testserver{API_PREFIX}/", raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def api(http) -> Iterator[TorcClient]:
    """The torc client over the in-process app."""
    client = TorcClient("http://testserver" + API_PREFIX)
    client.http = http
    yield client


@pytest.fixture
def ctx(app, http) -> Context:
    """The running server's service context (for invariant checks)."""
    return app.state.ctx
