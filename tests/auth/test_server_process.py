"""Authentication, access control and TLS through real torc-server processes, with the `torc` CLI
and its runner as child processes (as users run them)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.auth.conftest import PASSWORDS
from tests.server_support import start_server
from torc.client import TorcClient
from torc.client.http import ServerUnreachable
from torc.core.errors import ForbiddenError, UnauthorizedError
from torc.server import htpasswd
from torc.server.process import ServerProcess, spawn_server

SPEC = """
name: auth_demo
jobs:
  - name: first
    command: echo first
  - name: second
    command: echo second
    depends_on: [first]
"""


@pytest.fixture(scope="module")
def secured(tmp_path_factory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("secured")
    auth = folder / "htpasswd"
    auth.write_text("".join(f"{u}:{htpasswd.hash_password(p, cost=4)}\n" for u, p in PASSWORDS.items()))
    server = start_server(folder / "torc.db", folder / "server.log", "--auth-file", str(auth), "--require-auth",
                          "--enforce-access-control", "--admin-user", "root")
    yield server
    server.stop()


def torc(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TORC_")}
    return subprocess.run([sys.executable, "-m", "torc.cli.main", *args], capture_output=True, text=True,
                          env={**clean, **(env or {})}, cwd=cwd, timeout=timeout)


def test_cli_password_flag_and_env(secured):
    url = secured.url
    refused = torc("--url", url, "workflows", "list")
    assert refused.returncode == 1 and "authentication required" in refused.stderr
    wrong = torc("--url", url, "--user", "alice", "--password", "bad", "workflows", "list")
    assert wrong.returncode == 1 and "invalid user name or password" in wrong.stderr
    made = torc("--url", url, "-f", "json", "--user", "alice", "--password", "alice-pw", "workflows", "new",
                "-n", "mine")
    assert made.returncode == 0, made.stderr
    wf = json.loads(made.stdout)["id"]
    listed = torc("--url", url, "-f", "json", "workflows", "list",
                  env={"TORC_USER": "alice", "TORC_PASSWORD": "alice-pw"})
    assert listed.returncode == 0, listed.stderr
    assert [w["id"] for w in json.loads(listed.stdout)] == [wf]
    assert json.loads(listed.stdout)[0]["user"] == "alice"  # owner = authenticated user, not $USER
    other = torc("--url", url, "-f", "json", "workflows", "get", str(wf),
                 env={"TORC_USER": "bob", "TORC_PASSWORD": "bob-pw"})
    assert other.returncode == 1 and "no access to workflow" in other.stderr


def test_torc_run_authenticates_its_runner(secured, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    env = {"TORC_USER": "carol", "TORC_PASSWORD": "carol-pw"}
    done = torc("--url", secured.url, "run", str(spec), "-o", str(tmp_path / "out"), "-p", "0.2",
                env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    with TorcClient(secured.url, auth=("carol", "carol-pw")) as client:
        (wf,) = [w for w in client.get("workflows")["items"] if w["name"] == "auth_demo"]
        assert wf["user"] == "carol"
        jobs = client.get("jobs", workflow_id=wf["id"])["items"]
        assert sorted(j["status"] for j in jobs) == ["completed", "completed"]
    with TorcClient(secured.url, auth=("bob", "bob-pw")) as bob, pytest.raises(ForbiddenError):
        bob.get(f"workflows/{wf['id']}")


def test_client_errors_name_the_problem(secured):
    with TorcClient(secured.url) as anonymous, pytest.raises(UnauthorizedError, match="authentication required"):
        anonymous.get("workflows")
    with TorcClient(secured.url) as anonymous:
        assert anonymous.ping() == {"status": "ok"}  # health checks stay open


def test_event_stream_only_for_accessible_workflows(secured):
    with TorcClient(secured.url, auth=("alice", "alice-pw")) as alice:
        wf = alice.create_workflow("streamed")["id"]
        alice.post("bulk_jobs", {"jobs": [{"workflow_id": wf, "name": "a", "command": "true"}]})
    url = f"{secured.url}/workflows/{wf}/events/stream"
    assert httpx.get(url, auth=("bob", "bob-pw"), timeout=10).status_code == 403
    assert httpx.get(url, timeout=10).status_code == 401
    frames: list[str] = []
    connected = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", url, auth=("alice", "alice-pw"), timeout=20) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith(": connected"):
                    connected.set()
                elif line.startswith("event: "):
                    frames.append(line[7:])
                    return

    listener = threading.Thread(target=listen)
    listener.start()
    assert connected.wait(10)
    with TorcClient(secured.url, auth=("alice", "alice-pw")) as alice:
        alice.post(f"workflows/{wf}/initialize_jobs")
        alice.post(f"workflows/{wf}/claim_next_jobs")
    listener.join(15)
    assert frames == ["workflow_started"]


# ---- TLS ---------------------------------------------------------------------------------------


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "torc test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls_with_and_without_the_ca_certificate(tmp_path):
    pytest.importorskip("cryptography")
    cert, key = _self_signed(tmp_path)
    server = spawn_server(tmp_path / "torc.db", tmp_path / "server.log", "--tls-cert", str(cert), "--tls-key",
                          str(key), ca_cert=str(cert))
    try:
        assert server.url.startswith("https://127.0.0.1:")
        with TorcClient(server.url, ca_cert=str(cert)) as client:
            assert client.ping() == {"status": "ok"}
            assert client.create_workflow("over-tls")["id"] >= 1
        with TorcClient(server.url) as untrusted, pytest.raises(ServerUnreachable) as error:
            untrusted.ping()
        assert "cannot verify the TLS certificate" in error.value.message
        assert "TORC_CA_CERT" in error.value.message
        # the CLI: --ca-cert and TORC_CA_CERT
        ok = torc("--url", server.url, "--ca-cert", str(cert), "-f", "json", "workflows", "list")
        assert ok.returncode == 0, ok.stderr
        assert [w["name"] for w in json.loads(ok.stdout)] == ["over-tls"]
        ok = torc("--url", server.url, "ping", env={"TORC_CA_CERT": str(cert)})
        assert ok.returncode == 0, ok.stderr
        bad = torc("--url", server.url, "workflows", "list")
        assert bad.returncode == 1 and "--ca-cert" in bad.stderr
    finally:
        server.stop()


def test_access_groups_commands(secured):
    from click.testing import CliRunner

    from torc.cli.main import main

    def cli(user: str, *args: str):
        result = CliRunner().invoke(main, ["--url", secured.url, "-f", "json", *args],
                                    env={"TORC_USER": user, "TORC_PASSWORD": PASSWORDS[user]})
        return result.exit_code, (json.loads(result.stdout) if result.exit_code == 0 and result.stdout else
                                  result.output)

    code, group = cli("root", "access-groups", "create", "cli-team", "-d", "from the CLI")
    assert code == 0, group
    gid = str(group["id"])
    code, message = cli("alice", "access-groups", "create", "mine")
    assert code == 1 and "only administrators" in message
    assert cli("root", "access-groups", "add-user", gid, "alice", "--role", "admin")[0] == 0
    assert cli("alice", "access-groups", "add-user", gid, "carol")[0] == 0  # a group admin may
    code, members = cli("alice", "access-groups", "list-members", gid)
    assert [(m["user_name"], m["role"]) for m in members] == [("alice", "admin"), ("carol", "member")]
    code, wf = cli("alice", "workflows", "new", "-n", "shared-by-cli")
    assert code == 0, wf
    assert cli("carol", "workflows", "get", str(wf["id"]))[0] == 1
    assert cli("alice", "access-groups", "add-workflow", str(wf["id"]), gid)[0] == 0
    code, shown = cli("carol", "workflows", "get", str(wf["id"]))
    assert code == 0 and shown["name"] == "shared-by-cli"
    code, groups = cli("carol", "access-groups", "list-workflow-groups", str(wf["id"]))
    assert [g["name"] for g in groups] == ["cli-team"]
    assert [g["name"] for g in cli("carol", "access-groups", "list")[1]] == ["cli-team"]
    assert cli("carol", "access-groups", "check", str(wf["id"]), "carol")[1]["has_access"] is True
    assert cli("alice", "access-groups", "remove-workflow", str(wf["id"]), gid)[0] == 0
    assert cli("carol", "workflows", "get", str(wf["id"]))[0] == 1
    assert cli("alice", "access-groups", "remove-user", gid, "carol")[0] == 0
    assert cli("carol", "access-groups", "get", gid)[0] == 1
    assert cli("root", "access-groups", "delete", gid)[0] == 0
