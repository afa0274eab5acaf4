"""Shared fixtures: a real SQLite store in a temp dir, the app in-process, and a client."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.server_support import start_server
from torc.client import TorcClient
from torc.server.app import API_PREFIX, ServerConfig, create_app
from torc.server.process import ServerProcess
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


@pytest.fixture(scope="module")
def server(tmp_path_factory, request) -> Iterator[ServerProcess]:
    """A real torc-server process (tests/server_support.py) shared by the tests of a module; each test
    makes its own workflows."""
    folder = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    server = start_server(folder / "torc.db", folder / "server.log")
    yield server
    server.stop()


def check_invariants(store) -> None:
    """Properties that must hold for every workflow after any sequence of API calls."""
    with store.read() as conn:
        bad_ready = conn.fetchall(
            "SELECT j.id FROM job j JOIN job_depends_on d ON d.job_id = j.id JOIN job b ON b.id = d.depends_on_job_id"
            " WHERE j.status = 2 AND b.status NOT IN (5, 6, 7, 8)"
        )
        assert not bad_ready, f"ready jobs with unfinished blockers: {bad_ready}"
        stuck = conn.fetchall(
            "SELECT j.id FROM job j WHERE j.status = 1 AND NOT EXISTS (SELECT 1 FROM job_depends_on d"
            " JOIN job b ON b.id = d.depends_on_job_id WHERE d.job_id = j.id AND b.status NOT IN (5, 6, 7, 8))"
        )
        assert not stuck, f"blocked jobs whose blockers are all done: {stuck}"
        no_result = conn.fetchall(
            "SELECT j.id FROM job j WHERE j.status IN (5, 6, 8)"
            " AND NOT EXISTS (SELECT 1 FROM workflow_result r WHERE r.job_id = j.id)"
        )
        assert not no_result, f"finished jobs without a current result: {no_result}"
        miscounted = conn.fetchall(
            "SELECT j.id, j.unfinished_blockers, (SELECT COUNT(*) FROM job_depends_on d JOIN job b"
            " ON b.id = d.depends_on_job_id WHERE d.job_id = j.id AND b.status NOT IN (5, 6, 7, 8)) AS actual"
            " FROM job j WHERE j.unfinished_blockers != actual"
        )
        assert not miscounted, f"unfinished_blockers out of date: {miscounted}"


@pytest.fixture(autouse=True)
def _invariants(request):
    """Check workflow invariants at teardown of every test that used the store."""
    used = request.getfixturevalue("store") if "store" in request.fixturenames else None
    yield
    if used is not None:
        check_invariants(used)
