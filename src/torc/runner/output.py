"""A job's stdout and stderr: pipes that the runner drains into the job's log files, each file
created when its first byte arrives.

Creating two files per job costs more than starting the job on a busy disk, and much more on
the parallel file systems of HPC sites; most jobs of a big sweep print nothing on stderr, many
nothing at all. So a job that writes nothing to a stream leaves no file for it. Data moves with
splice(2) where there is one (no copy through Python), so a job flooding its stdout costs the
runner little. A file that cannot be created or written (disk full, directory gone) is recorded
as the stream's `error`, and the rest of that stream is read and dropped so the job never blocks
on a full pipe."""

from __future__ import annotations

import os
from pathlib import Path

_SPLICE = getattr(os, "splice", None)
_CHUNK = 1 << 20
_ROUNDS = 16  # chunks moved per readiness event, so one flooding job cannot starve the loop
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)


class Stream:
    def __init__(self, path: Path):
        self.path = path
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        self.file_fd: int | None = None
        self.error: str | None = None
        self.closed = False

    def discard(self) -> None:
        """Close both pipe ends (the job never started)."""
        self.closed = True
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass

    def _file(self) -> int | None:
        if self.file_fd is None and self.error is None:
            try:
                self.file_fd = os.open(self.path, _FILE_FLAGS, 0o644)
            except OSError as exc:
                self.error = f"{self.path}: {exc.strerror or exc}"
        return self.file_fd

    def pump(self, rounds: int = _ROUNDS) -> bool:
        """Move what the pipe holds to the file (at most `rounds` chunks); False at end of file."""
        for _ in range(rounds):
            target = self.file_fd
            try:
                if target is not None and _SPLICE is not None:
                    if _SPLICE(self.read_fd, target, _CHUNK) == 0:
                        return False
                    continue
                data = os.read(self.read_fd, _CHUNK)
            except BlockingIOError:
                return True
            except OSError as exc:  # the file cannot take more (e.g. disk full): drop the rest
                self._fail(exc)
                continue
            if not data:
                return False
            self.write(data)
        return True

    def write(self, data: bytes) -> None:
        fd = self._file()
        if fd is None:
            return
        try:
            while data:
                data = data[os.write(fd, data):]
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        if self.error is None:
            self.error = f"{self.path}: {exc.strerror or exc}"
        if self.file_fd is not None:
            os.close(self.file_fd)
            self.file_fd = None
        # without a file, pump() falls back to reading (and dropping) what the job writes

    def close(self) -> None:
        """Drain what is left and close; writers that outlive the job get EPIPE."""
        if self.closed:
            return
        self.closed = True
        self.pump(rounds=64)  # up to end of file, or what a writer that is still there wrote so far
        os.close(self.read_fd)
        if self.file_fd is not None:
            os.close(self.file_fd)
            self.file_fd = None


class JobOutput:
    """stdout and stderr of one job. Give `child_fds()` to the child, then `parent_started()`."""

    def __init__(self, stdout_path: Path, stderr_path: Path):
        self.stdout = Stream(stdout_path)
        try:
            self.stderr = Stream(stderr_path)
        except OSError:
            self.stdout.discard()
            raise

    @property
    def streams(self) -> tuple[Stream, Stream]:
        return self.stdout, self.stderr

    def child_fds(self) -> tuple[int, int]:
        return self.stdout.write_fd, self.stderr.write_fd

    def parent_started(self) -> None:
        """The child has its copies of the write ends; the runner must not keep them open, or the
        pipes would never reach end of file."""
        for stream in self.streams:
            os.close(stream.write_fd)

    def note(self, message: str) -> None:
        """A line from torc itself in the job's stderr file."""
        self.stderr.write(f"torc: {message}\n".encode())

    @property
    def errors(self) -> list[str]:
        return [s.error for s in self.streams if s.error]

    def close(self) -> None:
        for stream in self.streams:
            stream.close()

    def discard(self) -> None:
        for stream in self.streams:
            stream.discard()
