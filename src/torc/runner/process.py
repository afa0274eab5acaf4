"""One job's process: spawned in its own session under bash, with stdout/stderr files, and
stopped politely (SIGTERM, then SIGKILL after a grace period) or at once."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO


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


@dataclass
class JobProcess:
    job: dict[str, Any]
    process: subprocess.Popen
    stdout_path: Path
    stderr_path: Path
    started: float  # time.monotonic()
    deadline: float | None  # time.monotonic() when the runtime limit is reached
    cpus: int = 0
    memory: int = 0
    gpus: int = 0
    stop_reason: str | None = None  # why torc stopped it: "runtime limit", "memory limit", "interrupted", ...
    kill_at: float | None = None  # when SIGKILL follows an earlier SIGTERM
    files: list[BinaryIO] = field(default_factory=list)

    @classmethod
    def spawn(cls, job: dict[str, Any], command: str, env: dict[str, str], stdout_path: Path, stderr_path: Path,
              deadline: float | None, cpus: int, memory: int, gpus: int) -> JobProcess:
        stdout = open(stdout_path, "wb")
        stderr = open(stderr_path, "wb")
        try:
            process = subprocess.Popen(["bash", "-c", command], stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                                       env=env, start_new_session=True)
        except BaseException:
            stdout.close()
            stderr.close()
            raise
        return cls(job, process, stdout_path, stderr_path, time.monotonic(), deadline, cpus, memory, gpus,
                   files=[stdout, stderr])

    @property
    def pid(self) -> int:
        return self.process.pid

    def poll(self) -> int | None:
        return self.process.poll()

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.process.pid, sig)  # the whole process group: children too
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
        if self.kill_at is not None and now >= self.kill_at and self.poll() is None:
            self._signal(signal.SIGKILL)

    def finish(self) -> None:
        """After exit: kill leftovers of the group (children that outlived the job) and close files."""
        self._signal(signal.SIGKILL)
        for f in self.files:
            f.close()

    def note(self, message: str) -> None:
        with open(self.stderr_path, "a") as err:
            err.write(f"torc: {message}\n")
