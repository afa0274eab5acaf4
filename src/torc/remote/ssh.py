"""The system ssh and scp, non-interactive, and a bounded fan-out over many hosts.

Every call uses BatchMode=yes (key-based auth only; never a prompt), ConnectTimeout and
StrictHostKeyChecking=accept-new. Extra client settings come from --ssh-config (ssh -F) and
--ssh-option (ssh -o), or TORC_SSH_CONFIG / TORC_SSH_OPTIONS.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from torc.core.errors import TorcError
from torc.remote.workers import Worker

T = TypeVar("T")
DEFAULT_CONNECT_TIMEOUT = 10
DEFAULT_MAX_PARALLEL_SSH = 10


class SshError(TorcError):
    """ssh or scp failed: the host could not be reached, or the remote command failed."""


@dataclass
class SshSettings:
    config_file: str | None = None
    options: list[str] = field(default_factory=list)
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT

    @classmethod
    def from_env(cls, config_file: str | None = None, options: Sequence[str] = (),
                 connect_timeout: int | None = None) -> SshSettings:
        """Explicit values, else TORC_SSH_CONFIG, plus TORC_SSH_OPTIONS (space-separated Key=Value)."""
        env_opts = shlex.split(os.environ.get("TORC_SSH_OPTIONS", ""))
        return cls(config_file=config_file or os.environ.get("TORC_SSH_CONFIG") or None,
                   options=[*env_opts, *options],
                   connect_timeout=connect_timeout or DEFAULT_CONNECT_TIMEOUT)

    def common(self) -> list[str]:
        args = []
        if self.config_file:
            args += ["-F", self.config_file]
        # the first value given for an option wins in ssh: the user's -o options come first
        for opt in self.options:
            args += ["-o", opt]
        args += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout}",
                 "-o", "StrictHostKeyChecking=accept-new"]
        return args

    def ssh_command(self, worker: Worker, command: str) -> list[str]:
        port = ["-p", str(worker.port)] if worker.port else []
        return ["ssh", *self.common(), *port, "-T", "--", worker.destination, command]

    def scp_from_command(self, worker: Worker, remote_path: str, local_path: str) -> list[str]:
        port = ["-P", str(worker.port)] if worker.port else []
        # a relative remote path is taken from the remote home directory, as for ssh
        return ["scp", *self.common(), *port, "-q", "-p", f"{worker.scp_host}:{remote_path}", local_path]


def _failure(what: str, worker: Worker, proc: subprocess.CompletedProcess) -> SshError:
    err = (proc.stderr or "").strip().splitlines()
    detail = err[-1] if err else f"exit status {proc.returncode}"
    if proc.returncode == 255:
        return SshError(f"cannot connect to {worker}: {detail}")
    return SshError(f"{what} on {worker} failed (exit {proc.returncode}): {detail}")


def ssh_run(settings: SshSettings, worker: Worker, command: str, timeout: float | None = 120,
            check: bool = True, what: str = "remote command", stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run `command` through the remote user's shell; SshError when ssh fails (exit 255) or, with
    check, when the command exits non-zero. `stdin`: text fed to the remote command (secrets go here,
    never on the command line, which `ps` shows on both machines)."""
    feed = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
    try:
        proc = subprocess.run(settings.ssh_command(worker, command), capture_output=True, text=True,
                              timeout=timeout, **feed)
    except FileNotFoundError:
        raise SshError("the ssh command was not found on this machine (install openssh-client)") from None
    except subprocess.TimeoutExpired:
        raise SshError(f"{what} on {worker} did not finish within {timeout:.0f} s") from None
    if proc.returncode == 255 or (check and proc.returncode != 0):
        raise _failure(what, worker, proc)
    return proc


def scp_from(settings: SshSettings, worker: Worker, remote_path: str, local_path: str,
             timeout: float | None = 600) -> None:
    try:
        proc = subprocess.run(settings.scp_from_command(worker, remote_path, local_path), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise SshError("the scp command was not found on this machine (install openssh-client)") from None
    except subprocess.TimeoutExpired:
        raise SshError(f"copying {remote_path} from {worker} did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise _failure(f"scp of {remote_path}", worker, proc)


def fan_out(workers: Sequence[Worker], func: Callable[[Worker], T], max_parallel: int) -> list[T]:
    """func(worker) for every worker, at most max_parallel at once; results in the workers' order."""
    if not workers:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(workers))),
                            thread_name_prefix="torc-ssh") as pool:
        return list(pool.map(func, workers))
