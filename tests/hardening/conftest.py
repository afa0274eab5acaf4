"""Real torc-server processes for the hardening tests.

`hardened_server` serves with a small request size limit (1 MiB) so the limit can be tested
without sending hundreds of megabytes. `backend_server` is what the backend-agnostic tests (load,
SQL injection over HTTP) use: a real server on each storage backend the project tests against.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.server_support import start_server
from torc.server.process import ServerProcess

LIMIT = 1024 * 1024

# A new backend (PostgreSQL) adds its name here and a branch in `backend_server`.
BACKENDS = ["sqlite"]


@pytest.fixture(scope="module")
def hardened_server(tmp_path_factory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("hardened")
    server = start_server(folder / "torc.db", folder / "server.log", "--max-request-bytes", str(LIMIT))
    yield server
    server.stop()
    # No request may have crashed a handler: an unhandled error is logged with its traceback.
    log = server.log.read_text()
    assert "unhandled error" not in log and "Traceback" not in log, log[-4000:]


@pytest.fixture(params=BACKENDS)
def backend_server(request, tmp_path) -> Iterator[ServerProcess]:
    server = start_server(tmp_path / "torc.db", tmp_path / "server.log")
    yield server
    server.stop()
    log = server.log.read_text()
    assert "unhandled error" not in log, log[-4000:]


def raw_request(url: str, head: str, body: bytes = b"", timeout: float = 20) -> tuple[int, dict[str, str], bytes]:
    """Send bytes exactly as given (no client-side checks) and read the whole response."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n\r\n" + body)
        return read_response(sock)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if "content-length" in headers:
        want = int(headers["content-length"])
        while len(body) < want:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    elif headers.get("transfer-encoding") == "chunked":
        while not re.search(rb"(^|\r\n)0\r\n\r\n$", body):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        out, rest = b"", body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        body = out
    return status, headers, body
