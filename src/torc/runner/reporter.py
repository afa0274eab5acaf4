"""Telling the server what the runner did, from a background thread and in batches.

The runner's loop hands over job starts, output-file modification times and job results and goes
straight back to reaping and spawning; this thread sends them in that order, many jobs per request
(`start_jobs`, `complete_jobs`). A retry (a failure handler's, see torc.runner.failures)
is a result too: it goes in order, after the job's start, with the failed attempt's result. A batch is sent once its oldest item is `delay` seconds old, at
once when the loop asks (`flush`), and the next batch is gathered while one is in flight, so a
busy runner makes a few requests per batch of jobs instead of three per job.

A result is never lost: what could not be sent stays queued (and is counted by `unsent`) until the
server takes it or the runner gives up on the server."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from torc.core.errors import InvalidInputError, TorcError

log = logging.getLogger("torc.runner")


class Reporter:
    def __init__(self, client: Any, workflow_id: int, run_id: int, compute_node_id: int,
                 on_sent: Callable[[], None], delay: float = 0.05):
        self.client = client  # a PatientClient: retries while the server is unreachable
        self.workflow_id, self.run_id, self.compute_node_id = workflow_id, run_id, compute_node_id
        self.on_sent = on_sent  # called (from this thread) after every batch, e.g. to wake the loop
        self.delay = delay
        self.rejected: set[int] = set()  # jobs whose start the server refused (canceled or reset meanwhile)
        self.results_sent = 0  # how many results the server has taken: the loop watches it change
        self.refused_retries: list[tuple[int, str]] = []  # (job id, why): retries the server refused
        self.error: TorcError | None = None  # why the last batch could not be sent
        self._cond = threading.Condition()
        self._starts: list[int] = []
        self._files: list[dict[str, Any]] = []
        self._results: list[dict[str, Any]] = []
        self._oldest: float | None = None  # when the oldest queued item arrived
        self._urgent = False
        self._in_flight = 0  # items of the batch being sent
        self._closing = False
        self._failures = 0  # batches that could not be sent: flush() stops waiting on one
        self._thread = threading.Thread(target=self._run, name="torc-reporter", daemon=True)
        self._thread.start()

    # ---- the loop's side --------------------------------------------------------------------

    def started(self, job_id: int) -> None:
        self._add(self._starts, job_id)

    def file_modified(self, record: dict[str, Any]) -> None:
        """A file record with its new st_mtime, to PUT before the producing job's result."""
        self._add(self._files, record)

    def finished(self, item: dict[str, Any]) -> None:
        """{job_id, status, result} as `complete_jobs` takes it."""
        self._add(self._results, item)

    def retry(self, item: dict[str, Any], max_retries: int) -> None:
        """Send the job back to ready for another attempt ({job_id, status, result} of the failed
        attempt, whose result the server keeps). If the server refuses, the attempt is recorded
        as failed instead and the refusal is listed in `refused_retries`."""
        self._add(self._results, {**item, "max_retries": max_retries})

    def take_refused_retries(self) -> list[tuple[int, str]]:
        with self._cond:
            refused, self.refused_retries = self.refused_retries, []
        return refused

    def _add(self, queue: list, item: Any) -> None:
        with self._cond:
            queue.append(item)
            if self._oldest is None:
                self._oldest = time.monotonic()
                self._cond.notify_all()

    def unsent(self) -> int:
        """Results not yet taken by the server (queued or in flight)."""
        with self._cond:
            return len(self._results) + self._in_flight

    def idle(self) -> bool:
        with self._cond:
            return not self._queued() and not self._in_flight

    def flush(self, timeout: float | None = None) -> bool:
        """Send what is queued now and wait until the server has it, or the last attempt failed
        (see `error`), or timeout. True when nothing is left to send."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._urgent = True
            self._cond.notify_all()
            failures = self._failures
            while (self._queued() or self._in_flight) and self._failures == failures:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._cond.wait(remaining)
            return not self._queued() and not self._in_flight

    def close(self, timeout: float | None = None) -> bool:
        """Flush and stop the thread; True when everything was sent."""
        sent = self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        return sent

    # ---- the thread -------------------------------------------------------------------------

    def _queued(self) -> bool:
        return bool(self._starts or self._files or self._results)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closing:
                        return
                    if self._queued():
                        due = self._oldest + self.delay if self._oldest is not None else 0.0
                        wait = due - time.monotonic()
                        if self._urgent or wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._urgent = False
                        self._cond.wait()
                starts, files, results = self._starts, self._files, self._results
                self._starts, self._files, self._results = [], [], []
                self._oldest, self._urgent = None, False
                self._in_flight = len(results)
            try:
                batch = self._send(starts, files, results)
                failed = False
            except Exception as exc:
                if isinstance(exc, TorcError):  # unreachable for too long, or given up on (Ctrl-C)
                    self.error = exc
                else:  # a bug must not silently stop reporting
                    log.exception("reporting job results failed")
                failed = True
                with self._cond:  # back to the front of the queue, in order
                    self._starts[:0], self._files[:0], self._results[:0] = starts, files, results
                    self._oldest = self._oldest or time.monotonic()
            with self._cond:
                self._in_flight = 0
                if failed:
                    self._failures += 1
                else:
                    self.error = None
                    self.results_sent += batch
                self._cond.notify_all()
            self.on_sent()
            if failed:
                time.sleep(0.2)  # do not spin; PatientClient already waited for the server

    def _send(self, starts: list[int], files: list[dict[str, Any]], results: list[dict[str, Any]]) -> int:
        """Empties each list as its part is sent, so a failure puts back only what is left.
        Returns how many results were sent (those of jobs taken back are dropped)."""
        if starts:
            self._start(starts)
            starts.clear()
        while files:
            record = files[0]
            try:
                self.client.put(f"files/{record['id']}", record)
            except InvalidInputError as exc:  # e.g. the file record was deleted: not worth a result
                log.warning("modification time of %s not recorded: %s", record.get("path"), exc.message)
            files.pop(0)  # sent: a later failure must not send it again
        results[:] = [item for item in results if item["job_id"] not in self.rejected]
        sent = len(results)
        while results:  # runs of completions in one request each, retries one by one, in order
            if "max_retries" in results[0]:
                self._retry(results[0])
                results.pop(0)
                continue
            count = next((i for i, item in enumerate(results) if "max_retries" in item), len(results))
            self._complete(results[:count])
            del results[:count]
        return sent

    def _start(self, job_ids: list[int]) -> None:
        try:  # one request marks them all running
            self.client.post(f"workflows/{self.workflow_id}/start_jobs", {
                "run_id": self.run_id, "compute_node_id": self.compute_node_id, "job_ids": job_ids})
            return
        except InvalidInputError:  # all or nothing: e.g. one was canceled meanwhile; one by one
            pass
        for job_id in job_ids:
            try:
                self.client.put(f"jobs/{job_id}/start_job/{self.run_id}/{self.compute_node_id}")
            except InvalidInputError as exc:
                log.warning("job %s may not run here any more: %s", job_id, exc.message)
                self.rejected.add(job_id)

    def _complete(self, results: list[dict[str, Any]]) -> None:
        try:
            self.client.post(f"workflows/{self.workflow_id}/complete_jobs", {"run_id": self.run_id, "jobs": results})
            return
        except InvalidInputError:  # e.g. one job was completed meanwhile (workflow canceled): one by one
            pass
        for item in results:
            try:
                self.client.post(f"jobs/{item['job_id']}/complete_job/{item['status']}/{self.run_id}", item["result"])
            except InvalidInputError as exc:
                log.warning("result of job %s not recorded: %s", item["job_id"], exc.message)

    def _retry(self, item: dict[str, Any]) -> None:
        job_id = item["job_id"]
        try:
            self.client.post(f"jobs/{job_id}/retry/{self.run_id}", item["result"], max_retries=item["max_retries"])
            return
        except InvalidInputError as exc:  # e.g. canceled or reset meanwhile: record the attempt as failed
            log.warning("job %s was not retried: %s", job_id, exc.message)
            with self._cond:
                self.refused_retries.append((job_id, exc.message))
        try:
            self.client.post(f"jobs/{job_id}/complete_job/failed/{self.run_id}", item["result"])
        except InvalidInputError as exc:
            log.warning("result of job %s not recorded: %s", job_id, exc.message)
