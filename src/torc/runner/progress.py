"""What a person sees while `torc run` works: a live panel on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from rich.console import Console
from rich.live import Live
from rich.table import Table

SHOWN = ("ready", "blocked", "pending", "running", "completed", "failed", "canceled", "terminated", "pending_failed")


class Progress:
    """Counts by status across the workflow, this runner's throughput and elapsed time."""

    def __init__(self, workflow_id: int, counts: Callable[[], dict[str, int]], enabled: bool | None = None,
                 console: Console | None = None):
        self.workflow_id = workflow_id
        self.counts = counts
        self.console = console or Console(stderr=False)
        self.enabled = sys.stdout.isatty() if enabled is None else enabled
        self.started = time.monotonic()
        self.finished_here = 0
        self.running_here = 0
        self.last: dict[str, int] = {}
        self._live: Live | None = None
        self._next_refresh = 0.0

    def __enter__(self) -> Progress:
        if self.enabled:
            self._live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self.refresh(force=True)
            self._live.__exit__(None, None, None)
            self._live = None

    def say(self, message: str) -> None:
        """A log line that scrolls above the live panel."""
        if self._live is not None:
            self._live.console.print(message, highlight=False, markup=False)
        else:
            print(message, flush=True)

    def update(self, running_here: int, finished_here: int) -> None:
        self.running_here, self.finished_here = running_here, finished_here
        self.refresh()

    def refresh(self, force: bool = False) -> None:
        if self._live is None:
            return
        now = time.monotonic()
        if not force and now < self._next_refresh:
            return
        self._next_refresh = now + 0.5
        try:
            self.last = self.counts()
        except Exception:  # a progress display never stops the run
            pass
        self._live.update(self._render())

    def _render(self) -> Table:
        elapsed = time.monotonic() - self.started
        rate = self.finished_here / elapsed if elapsed > 0 else 0.0
        table = Table(title=f"workflow {self.workflow_id}", show_header=True, header_style="bold", box=None)
        for status in SHOWN:
            table.add_column(status, justify="right")
        table.add_column("this runner", justify="right")
        table.add_column("elapsed", justify="right")
        table.add_row(*(str(self.last.get(s, 0)) for s in SHOWN),
                      f"{self.running_here} running, {self.finished_here} done, {rate:.1f} jobs/s",
                      _clock(elapsed))
        return table


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
