"""Starting `torc-server run` as a child process on a free port and waiting until it answers.

Used by the embedded server of `torc run`, by tests that need real sockets and by bench/.
Imports nothing heavy, so clients can use it without loading the server stack.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from torc.client import TorcClient
from torc.core.errors import TorcError


@dataclass
class ServerProcess:
    process: subprocess.Popen
    url: str
    database: Path
    log: Path

    def client(self, **kwargs) -> TorcClient:
        return TorcClient(self.url, **kwargs)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        """Signal the server and wait; kill it if it does not stop in time. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def spawn_server(database: Path, log: Path, *extra: str, host: str = "127.0.0.1",
                 timeout: float = 30.0, ca_cert: str | None = None) -> ServerProcess:
    """Run torc-server on `database` (stderr to `log`) and return once it answers /ping (https when
    `extra` has --tls-cert; `ca_cert` then verifies it)."""
    database, log = Path(database), Path(log)
    database.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "torc.server.cli", "run", "--host", host, "--port", "0",
           "--database", str(database), *extra]
    with open(log, "a") as err:
        process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env={**os.environ})
    line = process.stdout.readline().strip()
    if not line.startswith("TORC_SERVER_PORT="):
        process.kill()
        process.wait()
        raise TorcError(f"torc-server did not start ({line or 'no output'}); see {log}:\n{log.read_text()[-2000:]}")
    scheme = "https" if "--tls-cert" in extra else "http"
    server = ServerProcess(process, f"{scheme}://{host}:{line.split('=', 1)[1]}/torc-service/v1", database, log)
    deadline = time.monotonic() + timeout
    with server.client(timeout=5, ca_cert=ca_cert) as client:
        while True:
            try:
                client.ping()
                return server
            except TorcError:
                if time.monotonic() > deadline or process.poll() is not None:
                    server.stop(signal.SIGKILL)
                    raise TorcError(f"torc-server did not answer; see {log}:\n{log.read_text()[-2000:]}") from None
                time.sleep(0.05)
