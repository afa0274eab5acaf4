"""An embedded torc-server: a child process on a free port and a local SQLite file, for users
who have no server running."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from torc.client import TorcClient
from torc.core.errors import TorcError


class EmbeddedServer:
    def __init__(self, database: Path, log_path: Path | None = None):
        self.database = Path(database)
        self.log_path = log_path or self.database.with_suffix(".server.log")
        self.process: subprocess.Popen | None = None
        self.url = ""

    def __enter__(self) -> EmbeddedServer:
        self.database.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "torc.server.cli", "run", "--host", "127.0.0.1", "--port", "0",
             "--database", str(self.database), "--completion-check-interval-secs", "5", "--log-level", "warning"],
            stdout=subprocess.PIPE, stderr=log, text=True,
        )
        log.close()
        line = self.process.stdout.readline().strip()
        if not line.startswith("TORC_SERVER_PORT="):
            self.process.kill()
            raise TorcError(f"the embedded torc-server did not start; see {self.log_path}")
        self.url = f"http://127.0.0.1:{line.split('=', 1)[1]}/torc-service/v1"
        deadline = time.monotonic() + 30
        with TorcClient(self.url, timeout=5) as client:
            while True:
                try:
                    client.ping()
                    return self
                except TorcError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        self.__exit__()
                        raise TorcError(f"the embedded torc-server did not answer; see {self.log_path}") from None
                    time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()


def server_reachable(url: str) -> bool:
    try:
        with TorcClient(url, timeout=2) as client:
            client.ping()
        return True
    except TorcError:
        return False
