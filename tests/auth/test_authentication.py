"""Authentication modes of torc-server (no auth file, --auth-file, --require-auth), the 401 answer,
and the credential cache."""

from __future__ import annotations

import pytest

from tests.auth.conftest import basic
from torc.server.auth import Authenticator

REALM = 'Basic realm="Torc"'


def assert_401(response, *fragments: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == REALM
    message = response.json()["error"]["message"]
    for fragment in fragments:
        assert fragment in message, message


def test_require_auth_refuses_missing_and_bad_credentials(make_client, auth_file):
    client = make_client(auth_file=str(auth_file), require_auth=True)
    assert_401(client.get("workflows"), "authentication required", "TORC_PASSWORD")
    assert_401(client.get("workflows", auth=basic("alice", "wrong")), "invalid user name or password", "alice")
    assert_401(client.get("workflows", auth=basic("mallory", "x")), "invalid user name or password")
    assert_401(client.get("workflows", headers={"Authorization": "Bearer abc"}), "unsupported", "Basic")
    assert_401(client.get("workflows", headers={"Authorization": "Basic !!notbase64"}), "malformed")
    response = client.get("workflows", auth=basic("alice"))
    assert response.status_code == 200, response.text
    # health checks need no password
    assert client.get("ping").json() == {"status": "ok"}


def test_require_auth_covers_the_dashboard_and_event_stream(make_client, auth_file):
    client = make_client(auth_file=str(auth_file), require_auth=True)
    assert_401(client.get("http://testserver/"))
    assert_401(client.get("workflows/1/events/stream"))
    assert_401(client.get("openapi.json"))


def test_auth_file_without_require_auth(make_client, auth_file):
    client = make_client(auth_file=str(auth_file))
    assert client.get("workflows").status_code == 200  # no credentials: anonymous
    assert client.get("workflows", auth=basic("bob")).status_code == 200
    # Decision (docs/security.md): bad credentials are a 401 even without --require-auth
    assert_401(client.get("workflows", auth=basic("bob", "nope")), "invalid")


def test_no_auth_file_everyone_is_anonymous(make_client):
    client = make_client()
    assert client.get("workflows").status_code == 200
    assert client.get("workflows", auth=basic("bob", "anything")).status_code == 200  # ignored


def test_require_auth_without_auth_file_refuses_everything(make_client):
    client = make_client(require_auth=True)
    assert_401(client.get("workflows", auth=basic("alice")), "no auth file")


def test_malformed_auth_file_fails_at_start(tmp_path, make_client):
    bad = tmp_path / "bad"
    bad.write_text("alice:plaintext\n")
    with pytest.raises(Exception, match="line 1.*bcrypt"):
        make_client(auth_file=str(bad))


def test_credential_cache_skips_bcrypt_on_repeat(make_client, auth_file, monkeypatch):
    calls: list[str] = []
    original = Authenticator.check_password

    def counting(self, user, password):
        calls.append(user)
        return original(self, user, password)

    monkeypatch.setattr(Authenticator, "check_password", counting)
    client = make_client(auth_file=str(auth_file), require_auth=True, credential_cache_ttl_secs=60)
    for _ in range(3):
        assert client.get("workflows", auth=basic("alice")).status_code == 200
    assert calls == ["alice"]
    # a wrong password is never cached, and a cached good one does not let a bad one through
    for _ in range(2):
        assert client.get("workflows", auth=basic("alice", "bad")).status_code == 401
    assert calls == ["alice", "alice", "alice"]


def test_credential_cache_disabled_and_file_changes(make_client, auth_file, monkeypatch):
    from torc.server import htpasswd

    calls: list[str] = []
    original = Authenticator.check_password
    monkeypatch.setattr(Authenticator, "check_password",
                        lambda self, u, p: calls.append(u) or original(self, u, p))
    client = make_client(auth_file=str(auth_file), require_auth=True, credential_cache_ttl_secs=0)
    for _ in range(2):
        assert client.get("workflows", auth=basic("bob")).status_code == 200
    assert calls == ["bob", "bob"]
    # removing a user from the file takes effect without a restart
    import os
    import time

    htpasswd.remove_user(auth_file, "bob")
    os.utime(auth_file, (time.time() + 5, time.time() + 5))
    assert client.get("workflows", auth=basic("bob")).status_code == 401
