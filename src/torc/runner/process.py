"""One job's process: spawned in its own session under bash, with stdout/stderr files, and
stopped politely (SIGTERM, then SIGKILL after a grace period) or at once."""

from __future__ import annotations

import errno
import functools
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torc.runner.output import JobOutput


def build_command(job: dict[str, Any]) -> str:
    """The shell text for a job: an invocation script wraps the command. A one-line script is a
    prefix (`srun`, `env X=1`); a multi-line script runs first, in the same shell."""
    command = job["command"]
    script = job.get("invocation_script")
    if not script:
        return command
    return f"{script}\n{command}" if "\n" in script.strip() else f"{script} {command}"


def stdio_stem(workflow_id: int, job_id: int, run_id: int, attempt_id: int) -> str:
    return f"job_wf{workflow_id}_j{job_id}_r{run_id}_a{attempt_id}"


_SPAWN_SETSID = hasattr(os, "posix_spawn")  # turned off if this libc cannot start a session in posix_spawn
_DEFAULT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ", "SIGXFZ") if hasattr(signal, name))


def _spawn(command: str, env: dict[str, str], stdout: int, stderr: int) -> int:
    """Start `bash -c command` as the leader of a new session; returns its pid. posix_spawn
    costs the runner about half of what subprocess.Popen does (the runner reaps its children
    itself, so it needs nothing else of Popen). Signals Python ignores go back to their defaults."""
    global _SPAWN_SETSID
    if _SPAWN_SETSID:
        try:
            return os.posix_spawn(_bash(), ["bash", "-c", command], env, setsid=True, setsigdef=_DEFAULT_SIGNALS,
                                  file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                                                (os.POSIX_SPAWN_DUP2, stdout, 1), (os.POSIX_SPAWN_DUP2, stderr, 2)])
        except NotImplementedError:
            _SPAWN_SETSID = False
    process = subprocess.Popen(["bash", "-c", command], stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                               env=env, start_new_session=True)
    process.returncode = 0  # the runner reaps it (torc.runner.children); Popen must not
    return process.pid


@functools.cache
def _bash() -> str:
    path = shutil.which("bash")
    if path is None:
        raise FileNotFoundError(errno.ENOENT, "bash not found on PATH (torc runs every job with bash -c)", "bash")
    return path


@dataclass
class JobProcess:
    job: dict[str, Any]
    pid: int
    stdout_path: Path
    stderr_path: Path
    started: float  # time.monotonic()
    deadline: float | None  # time.monotonic() when the runtime limit is reached
    cpus: int = 0
    memory: int = 0
    gpus: int = 0
    stop_reason: str | None = None  # why torc stopped it: "runtime limit", "memory limit", "interrupted", ...
    kill_at: float | None = None  # when SIGKILL follows an earlier SIGTERM
    output: JobOutput | None = None
    # set when reaped (torc.runner.children): exit status, and wait4's CPU time for the job and
    # what it waited for
    returncode: int | None = None  # -N: killed by signal N
    ended: float | None = None  # time.monotonic()
    cpu_seconds: float | None = None

    @classmethod
    def spawn(cls, job: dict[str, Any], command: str, env: dict[str, str], stdout_path: Path, stderr_path: Path,
              deadline: float | None, cpus: int, memory: int, gpus: int) -> JobProcess:
        """Start the job; its output goes through pipes (torc.runner.output): the caller drains
        `output`'s streams. Raises OSError when it cannot start, e.g. the log folder is gone."""
        started = time.monotonic()  # before the fork: a job's CPU time cannot outgrow its wall time
        if not os.path.isdir(stdout_path.parent):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory (the job log folder)",
                                    str(stdout_path.parent))
        output = JobOutput(stdout_path, stderr_path)
        try:
            pid = _spawn(command, env, *output.child_fds())
        except BaseException:
            output.discard()
            raise
        output.parent_started()
        return cls(job, pid, stdout_path, stderr_path, started, deadline, cpus, memory, gpus, output=output)

    def reaped(self, returncode: int, cpu_seconds: float | None) -> None:
        self.returncode = returncode
        self.ended = time.monotonic()
        self.cpu_seconds = cpu_seconds

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)  # the whole process group: children too
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, reason: str, graceful: bool, grace_seconds: float) -> None:
        """SIGTERM then (after grace_seconds) SIGKILL when graceful, else SIGKILL now."""
        if self.stop_reason is None:
            self.stop_reason = reason
        if graceful and self.kill_at is None:
            self._signal(signal.SIGTERM)
            self.kill_at = time.monotonic() + grace_seconds
        else:
            self._signal(signal.SIGKILL)
            self.kill_at = time.monotonic()

    def escalate(self, now: float) -> None:
        """SIGKILL a job whose grace period after SIGTERM is over."""
        if self.kill_at is not None and now >= self.kill_at and self.returncode is None:
            self._signal(signal.SIGKILL)

    def finish(self) -> None:
        """After exit: kill leftovers of the group (children that outlived the job), then take
        the rest of the output and close it."""
        self._signal(signal.SIGKILL)
        if self.output is not None:
            self.output.close()

    def note(self, message: str) -> None:
        if self.output is not None and not self.output.stderr.closed:
            self.output.note(message)
            return
        append_note(self.stderr_path, message)


def append_note(stderr_path: Path, message: str) -> None:
    """A line from torc itself at the end of a job's stderr log (created if the job wrote none)."""
    with open(stderr_path, "a") as err:
        err.write(f"torc: {message}\n")
