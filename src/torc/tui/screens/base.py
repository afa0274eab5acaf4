"""What the TUI's screens share: loading data in a worker thread, and the workflow actions.

A screen loads on mount, on `r`, after an action, and every `refresh_seconds` while it is on top.
Loading never runs on the UI loop; one load at a time, and a reload asked for meanwhile runs after it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static

from torc.core.errors import TorcError
from torc.tui import actions
from torc.tui.screens.confirm import ConfirmScreen

if TYPE_CHECKING:
    from torc.tui.app import TorcApp

log = logging.getLogger("torc.tui")


class DataScreen(Screen):
    """A screen whose content comes from `fetch()` (in a thread) and is drawn by `show()` (on the loop)."""

    DEFAULT_CSS = """
    DataScreen #message { height: auto; padding: 0 1; color: $text-warning; }
    """
    BINDINGS = [Binding("r", "reload", "Refresh"), Binding("escape", "back", "Back")]

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0  # finished loads, for tests and for the first-load cursor placement
        self._loading = False
        self._again = False

    @property
    def torc(self) -> TorcApp:
        return self.app  # type: ignore[return-value]

    def fetch(self) -> Any:
        raise NotImplementedError

    def show(self, data: Any) -> None:
        raise NotImplementedError

    def on_mount(self) -> None:
        self.reload()
        self.set_interval(self.torc.refresh_seconds, self._tick)

    def _tick(self) -> None:
        if self.app.screen is self:
            self.reload()

    def action_reload(self) -> None:
        self.reload()

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:  # the default screen lies under the workflow list
            self.app.pop_screen()

    def reload(self) -> None:
        if self._loading:
            self._again = True
            return
        self._loading = True
        self.run_worker(self._load, thread=True, group="load", exit_on_error=False)

    def _load(self) -> None:
        try:
            data = self.fetch()
        except TorcError as exc:
            self.from_thread(self._done, None, f"error: {exc.message}")
        except Exception as exc:  # noqa: BLE001 - the UI shows what went wrong instead of dying
            log.exception("loading failed")
            self.from_thread(self._done, None, f"error: {exc}")
        else:
            self.from_thread(self._done, data, None)

    def _done(self, data: Any, error: str | None) -> None:
        self._loading = False
        if not self.is_mounted:  # closed while it loaded
            return
        if error is not None:
            self.say(error)
        else:
            self.show(data)
            self.loads += 1
        if self._again:
            self._again = False
            self.reload()

    def from_thread(self, func: Callable[..., Any], *args: Any) -> None:
        """Run `func` on the UI loop; dropped when the app has already closed."""
        try:
            self.app.call_from_thread(func, *args)
        except RuntimeError:
            pass

    def say(self, message: str) -> None:
        """One line at the bottom: the outcome of the last action, or an error."""
        for widget in self.query("#message").results(Static):
            widget.update(message)


ACTION_BINDINGS = [
    Binding("i", "workflow_action('initialize')", "Init"),
    Binding("x", "workflow_action('run_local')", "Run"),
    Binding("s", "workflow_action('submit')", "Submit"),
    Binding("C", "workflow_action('cancel')", "Cancel"),
    Binding("R", "workflow_action('reset_failed')", "Reset failed"),
    Binding("y", "workflow_action('recover')", "Recover"),
]
QUICK = {"initialize": actions.initialize, "cancel": actions.cancel, "reset_failed": actions.reset_failed}


class WorkflowActionsScreen(DataScreen):
    """A DataScreen with the workflow actions; `selected_workflow_id()` says on which workflow."""

    def selected_workflow_id(self) -> int | None:
        raise NotImplementedError

    def action_workflow_action(self, name: str) -> None:
        workflow_id = self.selected_workflow_id()
        if workflow_id is None:
            self.say("no workflow selected")
            return
        action = actions.ACTIONS[name]

        def answered(yes: bool | None) -> None:
            if yes:
                self.say(f"{action.title}: workflow {workflow_id} ...")
                self.run_worker(partial(self._perform, name, workflow_id), thread=True, group="action",
                                exit_on_error=False)
            else:
                self.say(f"{action.title}: not done")

        self.app.push_screen(ConfirmScreen(action.title, action.question.format(id=workflow_id)), answered)

    def _perform(self, name: str, workflow_id: int) -> None:
        data = self.torc.data
        try:
            if name in QUICK:
                with data.lock:
                    message = QUICK[name](data.client, workflow_id)
            else:
                argv = actions.command(data.url, name, workflow_id, data.output_dir)
                log_file = actions.log_path(data.output_dir, name, workflow_id)
                process = actions.launch(argv, log_file)
                self.torc.processes.append(process)
                message = f"started `torc {' '.join(argv[5:7])}` (pid {process.pid}); log: {log_file}"
        except TorcError as exc:
            message = f"{actions.ACTIONS[name].title} failed: {exc.message}"
        except OSError as exc:
            message = f"{actions.ACTIONS[name].title} failed: {exc}"
        self.from_thread(self._performed, message)

    def _performed(self, message: str) -> None:
        self.say(message)
        self.reload()
