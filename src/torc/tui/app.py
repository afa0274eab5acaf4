"""The torc terminal UI: workflows -> one workflow's jobs -> one job, over the server's REST API."""

from __future__ import annotations

import subprocess

from textual.app import App
from textual.binding import Binding

from torc.tui.data import TuiData
from torc.tui.screens.help import HelpScreen
from torc.tui.screens.workflows import WorkflowsScreen


class TorcApp(App[None]):
    TITLE = "torc"
    BINDINGS = [Binding("q", "quit", "Quit"), Binding("question_mark", "help", "Help", key_display="?")]

    def __init__(self, data: TuiData, server_label: str | None = None, refresh_seconds: float = 5.0):
        """server_label: what the header says about the server (its URL by default)."""
        super().__init__()
        self.data = data
        self.server_label = server_label or data.url
        self.refresh_seconds = refresh_seconds
        self.processes: list[subprocess.Popen] = []  # runs, submissions and recoveries started here

    def on_mount(self) -> None:
        self.push_screen(WorkflowsScreen())

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())
