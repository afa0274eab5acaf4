"""One job's process: spawned in its own session under bash, with stdout/stderr files, and
stopped politely (SIGTERM, then SIGKILL after a grace period) or at once."""

from __future__ import annotations

import errno
import os
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
    output: JobOutput | None = None
    # set when reaped (torc.runner.children): wait4's figures for the job and what it waited for
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
        out, err = output.child_fds()
        try:
            process = subprocess.Popen(["bash", "-c", command], stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                       env=env, start_new_session=True)
        except BaseException:
            output.discard()
            raise
        output.parent_started()
        return cls(job, process, stdout_path, stderr_path, started, deadline, cpus, memory, gpus, output=output)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        """None until the child watcher reaped it."""
        return self.process.returncode

    def reaped(self, returncode: int, cpu_seconds: float | None) -> None:
        self.process.returncode = returncode  # Popen must not wait for it again
        self.ended = time.monotonic()
        self.cpu_seconds = cpu_seconds

    def returncode_if_reaped_elsewhere(self) -> int:
        rc = self.process.poll()
        return rc if rc is not None else -1

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
        with open(self.stderr_path, "a") as err:
            err.write(f"torc: {message}\n")
