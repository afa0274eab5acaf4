"""A real torc-server process on a free port, for tests that need real sockets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from torc.client import TorcClient


@dataclass
class LiveServer:
    process: subprocess.Popen
    url: str
    database: Path
    log: Path

    def client(self) -> TorcClient:
        return TorcClient(self.url)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


def start_server(database: Path, log: Path, *extra: str) -> LiveServer:
    cmd = [sys.executable, "-m", "torc.server.cli", "run", "--port", "0", "--database", str(database),
           "--completion-check-interval-secs", "0.5", *extra]
    out = open(log, "w")
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=out, text=True, env={**os.environ})
    line = process.stdout.readline().strip()
    if not line.startswith("TORC_SERVER_PORT="):
        process.kill()
        raise RuntimeError(f"torc-server did not report its port: {line!r}; log: {log.read_text()}")
    port = int(line.split("=", 1)[1])
    server = LiveServer(process, f"http://127.0.0.1:{port}/torc-service/v1", database, log)
    deadline = time.monotonic() + 20
    while True:
        try:
            with server.client() as c:
                c.ping()
            return server
        except Exception:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError(f"torc-server did not answer; log: {log.read_text()}") from None
            time.sleep(0.05)


@pytest.fixture
def live_server(tmp_path) -> Iterator[LiveServer]:
    server = start_server(tmp_path / "torc.db", tmp_path / "server.log", "--host", "127.0.0.1")
    yield server
    server.stop()
