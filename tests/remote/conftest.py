"""Remote-worker tests against a real sshd on 127.0.0.1 (scripts/sshd-up.sh, started by
scripts/test.sh when running as root on Debian). Without one, the tests that need it are skipped
with the reason; the parsing tests always run."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD_DIR = Path("/tmp/torc-sshd")
TORC = str(Path(sys.executable).parent / "torc")


@dataclass
class Sshd:
    port: int
    config: str

    @property
    def ssh_args(self) -> list[str]:
        """The CLI options that reach it: the private client config (key, known_hosts)."""
        return ["--ssh-config", self.config, "--connect-timeout", "5"]

    def worker(self, host: str = "127.0.0.1") -> str:
        return f"{host}:{self.port}"


def sshd_state() -> Sshd | str:
    """The test sshd, or why the SSH tests cannot run."""
    port_file, config = SSHD_DIR / "port", SSHD_DIR / "ssh_config"
    if not port_file.is_file() or not config.is_file():
        return f"no test sshd ({SSHD_DIR} missing): run scripts/sshd-up.sh as root on Debian (scripts/test.sh does)"
    port = int(port_file.read_text().strip())
    try:
        proc = subprocess.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
                               "-p", str(port), "127.0.0.1", "true"], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"ssh to the test sshd failed: {exc}"
    if proc.returncode != 0:
        return (f"the test sshd on 127.0.0.1:{port} does not answer ({proc.stderr.strip()}): "
                "run scripts/sshd-up.sh")
    return Sshd(port, str(config))


@pytest.fixture(scope="session")
def sshd() -> Sshd:
    state = sshd_state()
    if isinstance(state, str):
        pytest.skip(state)
    return state
