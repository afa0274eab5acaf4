"""Waiting for job processes, their output and wake-ups, in one place, without a thread per child.

On Linux every child gets a pidfd (readable once the child exits) and one selector waits on all
of them plus a wake-up pipe; elsewhere (or where pidfd_open is refused) a small thread per child
blocks in wait4. Either way the child is reaped with wait4, so each job's CPU time (its own and
that of the processes it waited for) comes with its exit status at no extra cost, also for jobs
too short for the resource monitor to sample.

`wake()` only writes a byte to a non-blocking pipe: safe from other threads and from signal
handlers (which must not take locks the interrupted code may hold).

The same selector drains the jobs' output pipes into their log files (torc.runner.output) as data
arrives; a child's pipes leave the selector when it exits, and the runner closes them after
taking what is left."""

from __future__ import annotations

import os
import selectors
import threading
from typing import Protocol


class Watched(Protocol):
    """What the watcher needs of a job process (torc.runner.process.JobProcess)."""

    @property
    def pid(self) -> int: ...

    def reaped(self, returncode: int, cpu_seconds: float | None) -> None: ...


class Drained(Protocol):
    """An output pipe (torc.runner.output.Stream)."""

    read_fd: int
    closed: bool

    def pump(self) -> bool: ...


class ChildWatcher:
    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._use_pidfd = hasattr(os, "pidfd_open")
        self._lock = threading.Lock()
        self._exited: list[Watched] = []  # reaped by fallback threads, not yet returned by wait()
        self._streams: dict[int, tuple[Drained, ...]] = {}  # child pid -> its output pipes

    def close(self) -> None:
        for key in list(self._selector.get_map().values()):
            if key.data is not None and not hasattr(key.data, "pump"):  # pidfds are ours; pipes are not
                os.close(key.fd)
        self._selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)

    def wake(self) -> None:
        try:
            os.write(self._wake_write, b"\0")
        except (BlockingIOError, OSError):  # the pipe is full: a wake-up is pending anyway
            pass

    def watch(self, child: Watched, streams: tuple[Drained, ...] = ()) -> None:
        """Report the child when it exits; meanwhile move what it writes to `streams`."""
        for stream in streams:
            self._selector.register(stream.read_fd, selectors.EVENT_READ, stream)
        self._streams[child.pid] = streams
        if self._use_pidfd:
            try:
                fd = os.pidfd_open(child.pid)
            except OSError:  # e.g. a seccomp filter or an old kernel: threads from now on
                self._use_pidfd = False
            else:
                self._selector.register(fd, selectors.EVENT_READ, child)
                return
        threading.Thread(target=self._wait_in_thread, args=(child,), daemon=True).start()

    def wait(self, timeout: float | None) -> list[Watched]:
        """Children that exited (reaped, with their usage recorded), after waiting up to timeout
        seconds for one to exit or a wake-up; [] on a timeout or a plain wake-up."""
        exited: list[Watched] = []
        for key, _ in self._selector.select(timeout):
            data = key.data
            if data is None:
                self._drain()
            elif hasattr(data, "pump"):
                if not data.closed and not data.pump():  # end of file: nothing more to wait for
                    self._forget(data)
            else:
                self._selector.unregister(key.fd)
                os.close(key.fd)
                _reap(data, os.WNOHANG)
                exited.append(data)
        with self._lock:
            exited += self._exited
            self._exited = []
        for child in exited:
            for stream in self._streams.pop(child.pid, ()):
                self._forget(stream)
        return exited

    def _forget(self, stream: Drained) -> None:
        try:
            self._selector.unregister(stream.read_fd)
        except (KeyError, ValueError):  # already gone (end of file came first)
            pass

    def _drain(self) -> None:
        try:
            while os.read(self._wake_read, 4096):
                pass
        except BlockingIOError:
            pass

    def _wait_in_thread(self, child: Watched) -> None:
        _reap(child, 0)
        with self._lock:
            self._exited.append(child)
        self.wake()


def _reap(child: Watched, flags: int) -> None:
    try:
        pid, status, usage = os.wait4(child.pid, flags)
    except ChildProcessError:  # someone else reaped it (a stray os.wait): the status is lost
        child.reaped(-1, None)
        return
    if pid == 0:  # a pidfd said it exited, so this should not happen; wait for real
        pid, status, usage = os.wait4(child.pid, 0)
    child.reaped(os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime)

