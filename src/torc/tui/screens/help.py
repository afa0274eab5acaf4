"""The key bindings, on `?`."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

# (where, keys, what): the one list of keys, shown here and kept in step with docs/tui.md
KEYS = [
    ("everywhere", "?", "this help"),
    ("everywhere", "q", "quit"),
    ("everywhere", "escape", "back to the previous screen"),
    ("everywhere", "r", "refresh now (screens also refresh by themselves)"),
    ("lists", "up/down, enter", "move, open the workflow or job"),
    ("lists", "/", "filter: words, user:NAME, status:STATE, name:TEXT (enter returns to the table)"),
    ("jobs", "o / O", "sort by the next column (id, name, status) / reverse the order"),
    ("job", "enter on a tree node", "open that upstream or downstream job"),
    ("workflow", "i", "initialize (reset all jobs, start a new run)"),
    ("workflow", "x", "run locally: `torc run ID` in the background, output in OUTPUT_DIR/tui/"),
    ("workflow", "s", "submit to Slurm: `torc submit ID` in the background"),
    ("workflow", "C", "cancel the workflow"),
    ("workflow", "R", "reset failed, canceled and terminated jobs and their downstream"),
    ("workflow", "y", "recover: `torc recover ID --no-run` (more memory/time for OOM/timeout jobs)"),
]


def keys_table() -> Table:
    table = Table(title="torc tui keys", expand=True)
    for column in ("where", "keys", "what"):
        table.add_column(column)
    for row in KEYS:
        table.add_row(*row)
    return table


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 100; height: 80%; border: thick $accent; background: $surface; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(keys_table(), id="keys")
            yield Static("Workflow actions ask for confirmation first (y / n). Press escape to close.")

    def action_close(self) -> None:
        self.dismiss(None)
