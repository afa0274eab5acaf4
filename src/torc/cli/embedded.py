"""An embedded torc-server: a child process on a free port and a local SQLite file, for users
who have no server running."""

from __future__ import annotations

from pathlib import Path

from torc.client import TorcClient
from torc.core.errors import TorcError
from torc.server.process import ServerProcess, spawn_server


class EmbeddedServer:
    def __init__(self, database: Path, log_path: Path | None = None):
        self.database = Path(database)
        self.log_path = log_path or self.database.with_suffix(".server.log")
        self.server: ServerProcess | None = None
        self.url = ""

    def __enter__(self) -> EmbeddedServer:
        self.server = spawn_server(self.database, self.log_path, "--completion-check-interval-secs", "5",
                                   "--log-level", "warning")
        self.url = self.server.url
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.stop()


def server_reachable(url: str) -> bool:
    try:
        with TorcClient(url, timeout=2) as client:
            client.ping()
        return True
    except TorcError:
        return False
