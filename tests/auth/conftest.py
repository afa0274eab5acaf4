"""Shared fixtures of the authentication and access-control tests: an htpasswd file with four users
(bcrypt cost 4, so the tests stay fast) and in-process apps configured like `torc-server run`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.conftest import open_test_store
from torc.server import htpasswd
from torc.server.app import API_PREFIX, ServerConfig, create_app
from torc.server.auth import AuthSettings

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "root": "root-pw"}
ADMINS = ("root",)


def basic(user: str, password: str | None = None) -> tuple[str, str]:
    return user, PASSWORDS[user] if password is None else password


@pytest.fixture
def auth_file(tmp_path: Path) -> Path:
    path = tmp_path / "htpasswd"
    path.write_text("# torc users\n\n" + "".join(
        f"{user}:{htpasswd.hash_password(password, cost=4)}\n" for user, password in PASSWORDS.items()))
    return path


AppFactory = Callable[..., TestClient]


@pytest.fixture
def make_client(backend: str, tmp_path: Path) -> Iterator[AppFactory]:
    """make_client(**AuthSettings fields) -> a TestClient of a fresh app on its own database
    (SQLite, or PostgreSQL where a test module parametrizes `backend`)."""
    with contextlib.ExitStack() as stack:
        count = [0]

        def make(**auth) -> TestClient:
            count[0] += 1
            folder = tmp_path / f"db{count[0]}"
            folder.mkdir()
            store = stack.enter_context(open_test_store(backend, folder))
            app = create_app(ServerConfig(completion_check_interval_secs=0.2, auth=AuthSettings(**auth)),
                             store=store)
            client = TestClient(app, base_url=f"http://testserver{API_PREFIX}/", raise_server_exceptions=False)
            return stack.enter_context(client)

        yield make
