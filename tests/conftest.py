"""Shared fixtures: a real store (SQLite in a temp dir, or PostgreSQL in a schema of its own), the app
in-process, and a client."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.server_support import start_server
from torc.client import TorcClient
from torc.server.app import API_PREFIX, ServerConfig, create_app
from torc.server.process import ServerProcess
from torc.service.context import Context
from torc.storage.base import Store
from torc.storage.sqlite import SqliteStore


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("TORC_") or key == "DATABASE_URL":
            monkeypatch.delenv(key, raising=False)


# ---- storage backends ------------------------------------------------------------------------
# Tests under tests/api and tests/storage run against every backend (the Store contract: one test
# suite for every adapter); elsewhere `store` is SQLite. PostgreSQL comes from TORC_TEST_POSTGRES_URL
# (read at import, before the per-test environment is cleared), by default the throwaway cluster that
# scripts/postgres-up.sh starts; when none answers, the postgres cases skip and say why. Each
# postgres test gets a schema of its own, dropped at teardown.

POSTGRES_URL = os.environ.get("TORC_TEST_POSTGRES_URL") or "postgresql://postgres@localhost:5433/postgres"
BACKENDS = ("sqlite", "postgres")
_ALL_BACKEND_DIRS = ("api", "storage")
_postgres_problem: list[str] = []


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    parts = metafunc.definition.path.relative_to(metafunc.config.rootpath).parts
    explicit = any(m.name == "parametrize" and "backend" in str(m.args[0]) for m in metafunc.definition.iter_markers())
    if not explicit and len(parts) > 2 and parts[0] == "tests" and parts[1] in _ALL_BACKEND_DIRS:
        metafunc.parametrize("backend", BACKENDS, indirect=True)


def postgres_or_skip() -> str:
    """The test server's URL, or skip the test naming the reason."""
    if not _postgres_problem:
        try:
            import psycopg

            psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
            _postgres_problem.append("")
        except Exception as exc:  # noqa: BLE001 - any failure means: no PostgreSQL here
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            _postgres_problem.append(f"no PostgreSQL at {POSTGRES_URL} ({first}); run scripts/postgres-up.sh "
                                     "or set TORC_TEST_POSTGRES_URL")
    if _postgres_problem[0]:
        pytest.skip(_postgres_problem[0])
    return POSTGRES_URL


@contextlib.contextmanager
def postgres_schema(prefix: str = "torc_test") -> Iterator[str]:
    """A fresh, empty schema; yields a URL whose search_path puts new tables there."""
    import psycopg

    url = postgres_or_skip()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@contextlib.contextmanager
def open_test_store(backend: str, folder: Path) -> Iterator[Store]:
    if backend == "sqlite":
        s: Store = SqliteStore(folder / "torc.db")
        try:
            yield s
        finally:
            s.close()
        return
    from torc.storage.postgres import PostgresStore

    with postgres_schema() as url:
        s = PostgresStore(url, max_size=4)
        try:
            yield s
        finally:
            s.close()


@pytest.fixture
def backend(request) -> str:
    """Which Store adapter the test runs on ("sqlite" unless parametrized)."""
    return getattr(request, "param", "sqlite")


@pytest.fixture
def store(backend, tmp_path) -> Iterator[Store]:
    with open_test_store(backend, tmp_path) as s:
        yield s


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
            "SELECT * FROM (SELECT j.id, j.unfinished_blockers, (SELECT COUNT(*) FROM job_depends_on d JOIN job b"
            " ON b.id = d.depends_on_job_id WHERE d.job_id = j.id AND b.status NOT IN (5, 6, 7, 8)) AS actual"
            " FROM job j) c WHERE c.unfinished_blockers != c.actual"
        )
        assert not miscounted, f"unfinished_blockers out of date: {miscounted}"


@pytest.fixture(autouse=True)
def _invariants(request):
    """Check workflow invariants at teardown of every test that used the store."""
    used = request.getfixturevalue("store") if "store" in request.fixturenames else None
    yield
    if used is not None:
        check_invariants(used)
