"""Failure handlers, as the local runner applies them (see docs/failure-handling.md).

A failure handler is a list of rules. When a job with a handler fails, the runner picks a rule
(`pick_rule`): the first whose `exit_codes` holds the return code, else the first with
`match_all_exit_codes`. `max_retries` counts retries, so a rule with max_retries 2 lets a job run
at most 3 times. Before a retry the rule's `recovery_script`, if any, runs (`Recoveries`: a small
thread pool, so the runner's loop never waits for a script); when it fails, the job is not retried.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("torc.runner")

DEFAULT_MAX_RETRIES = 3  # a rule that does not say (the spec's default too)
RECOVERY_WORKERS = 4  # recovery scripts running at once; more wait their turn
RECOVERY_TIMEOUT = 600.0  # seconds a recovery script may run before it is killed (and counts as failed)


@dataclass(frozen=True)
class Rule:
    exit_codes: tuple[int, ...] = ()
    match_all_exit_codes: bool = False
    max_retries: int = DEFAULT_MAX_RETRIES
    recovery_script: str | None = None

    def describe(self) -> str:
        if self.exit_codes:
            return "exit codes " + ", ".join(map(str, self.exit_codes))
        return "any exit code" if self.match_all_exit_codes else "no exit code"


@dataclass(frozen=True)
class Handler:
    id: int
    name: str
    rules: tuple[Rule, ...]
    problem: str | None = None  # why its rules could not be read (then it has none)


def parse_handler(record: dict[str, Any]) -> Handler:
    """A failure handler record from the server (`rules` is a JSON string) -> Handler. Rules that
    cannot be read leave the handler without rules, with the reason in `problem`."""
    raw = record.get("rules")
    try:
        items = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(items, list):
            raise ValueError("rules must be a JSON list")
        rules = []
        for item in items:
            if not isinstance(item, dict):
                raise ValueError(f"a rule must be an object, found {item!r}")
            max_retries = item.get("max_retries")
            rules.append(Rule(
                exit_codes=tuple(int(code) for code in item.get("exit_codes") or ()),
                match_all_exit_codes=bool(item.get("match_all_exit_codes", False)),
                max_retries=DEFAULT_MAX_RETRIES if max_retries is None else max(0, int(max_retries)),
                recovery_script=item.get("recovery_script") or None,
            ))
    except (TypeError, ValueError) as exc:
        return Handler(record["id"], record.get("name") or "", (), f"unreadable rules: {exc}")
    return Handler(record["id"], record.get("name") or "", tuple(rules))


def codes_for(return_code: int) -> tuple[int, ...]:
    """The exit codes a return code matches: a job killed by signal N (return code -N) also
    matches 128+N, the code a shell reports for it (137 for SIGKILL, 143 for SIGTERM)."""
    return (return_code, 128 - return_code) if return_code < 0 else (return_code,)


def pick_rule(handler: Handler, return_code: int) -> Rule | None:
    """The first rule whose exit_codes hold the code, else the first match_all rule, else None."""
    codes = codes_for(return_code)
    for rule in handler.rules:
        if any(code in rule.exit_codes for code in codes):
            return rule
    for rule in handler.rules:
        if rule.match_all_exit_codes:
            return rule
    return None


# ---- recovery scripts ---------------------------------------------------------------------


@dataclass
class Recovery:
    """One recovery script to run before a retry, and (once run) how it went."""
    job: dict[str, Any]
    item: dict[str, Any]  # the failed attempt as complete_jobs takes it: {job_id, status, result}
    handler: Handler
    rule: Rule
    env: dict[str, str]
    cwd: Path
    log_path: Path
    # outcome
    returncode: int | None = None  # the script's exit status (-N: killed by signal N)
    error: str | None = None  # why it did not run, or timed out / was stopped
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and self.returncode == 0

    def failure(self) -> str:
        """Why the recovery did not succeed, in words."""
        if self.error:
            return self.error
        return f"exited with code {self.returncode}"


class Recoveries:
    """Runs recovery scripts in a few threads. `submit` returns at once; `take_done` hands back
    the finished ones (the loop is woken through `wake` when one finishes); `stop` kills running
    scripts and marks the queued ones as not run."""

    def __init__(self, wake: Callable[[], None], workers: int = RECOVERY_WORKERS,
                 timeout: float = RECOVERY_TIMEOUT):
        self.wake = wake
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="torc-recovery")
        self._lock = threading.Lock()
        self._pending = 0
        self._done: list[Recovery] = []
        self._procs: dict[int, subprocess.Popen] = {}  # job id -> running script
        self._stopping = False

    @property
    def pending(self) -> int:
        """Submitted and not yet taken back with take_done."""
        with self._lock:
            return self._pending

    def submit(self, recovery: Recovery) -> None:
        with self._lock:
            self._pending += 1
        self._pool.submit(self._run, recovery)

    def take_done(self) -> list[Recovery]:
        with self._lock:
            done, self._done = self._done, []
            self._pending -= len(done)
        return done

    def stop(self) -> None:
        """Kill the scripts that run (their whole process group) and skip the queued ones."""
        with self._lock:
            self._stopping = True
            procs = list(self._procs.values())
        for proc in procs:
            _kill_group(proc.pid)

    def close(self) -> None:
        self.stop()
        self._pool.shutdown(wait=True)

    def _run(self, recovery: Recovery) -> None:
        try:
            self._execute(recovery)
        except Exception as exc:  # a bug must not leave the job waiting forever
            log.exception("recovery script of job %s", recovery.job.get("id"))
            recovery.error = f"could not be run: {exc}"
        with self._lock:
            self._done.append(recovery)
        self.wake()

    def _execute(self, recovery: Recovery) -> None:
        with self._lock:
            if self._stopping:
                recovery.error = "was not run: the runner was stopping"
                return
        script = recovery.rule.recovery_script or ""
        recovery.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = datetime.now(UTC)
        with open(recovery.log_path, "ab") as out:
            out.write(f"torc: {started.isoformat(timespec='seconds')} recovery script for job "
                      f"{recovery.job['name']} (id {recovery.job['id']}, attempt {recovery.job.get('attempt_id', 1)}, "
                      f"return code {recovery.item['result']['return_code']}): {script}\n".encode())
            out.flush()
            try:
                proc = subprocess.Popen(["bash", "-c", script], cwd=recovery.cwd, env=recovery.env, stdout=out,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            except OSError as exc:
                recovery.error = f"could not be started: {exc}"
                out.write(f"torc: {recovery.error}\n".encode())
                return
            with self._lock:
                self._procs[recovery.job["id"]] = proc
                stopping = self._stopping
            if stopping:
                _kill_group(proc.pid)
            try:
                recovery.returncode = proc.wait(self.timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid)
                recovery.returncode = proc.wait()
                recovery.error = f"timed out after {self.timeout:g} s (killed)"
            finally:
                with self._lock:
                    self._procs.pop(recovery.job["id"], None)
                    stopping = self._stopping
                _kill_group(proc.pid)  # whatever it left running in its group
            if stopping and recovery.error is None and recovery.returncode != 0:
                recovery.error = "was stopped: the runner was stopping"
            recovery.seconds = (datetime.now(UTC) - started).total_seconds()
            out.write(f"torc: recovery script {'succeeded' if recovery.ok else recovery.failure()} "
                      f"after {recovery.seconds:.1f} s\n".encode())


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
