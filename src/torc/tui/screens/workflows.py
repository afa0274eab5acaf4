"""The first screen: every (unarchived) workflow on the server, filterable by user, name and state."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Input, Static

from torc.tui.query import filter_workflows, parse_query
from torc.tui.screens.base import ACTION_BINDINGS, WorkflowActionsScreen
from torc.tui.screens.tables import fill_table

COLUMNS = ("id", "name", "user", "state", "jobs", "completed", "failed", "description")


class WorkflowsScreen(WorkflowActionsScreen):
    BINDINGS = [Binding("slash", "focus_filter", "Filter"), *ACTION_BINDINGS]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []
        self.shown: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="/ filter: words in the name, user:NAME, status:STATE", id="filter")
        yield DataTable(id="workflows", cursor_type="row", zebra_stripes=True)
        yield Static("", id="message")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        table.focus()
        super().on_mount()

    def fetch(self) -> list[dict[str, Any]]:
        return self.torc.data.workflows()

    def show(self, data: list[dict[str, Any]]) -> None:
        self.rows = data
        self._fill_rows()

    def _fill_rows(self) -> None:
        self.shown = filter_workflows(self.rows, parse_query(self.query_one("#filter", Input).value))
        cells = [(str(r["id"]), r["name"], r.get("user") or "", r["state"], str(r["total"]), str(r["completed"]),
                  str(r["failed"]), r.get("description") or "") for r in self.shown]
        fill_table(self.query_one(DataTable), [str(r["id"]) for r in self.shown], cells)
        self.sub_title = f"{self.torc.server_label} | {len(self.shown)} of {len(self.rows)} workflows"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return action != "back"  # the first screen: nothing to go back to (and no Back in the footer)

    def selected_workflow_id(self) -> int | None:
        table = self.query_one(DataTable)
        if not self.shown or table.cursor_row >= len(self.shown):
            return None
        return int(self.shown[table.cursor_row]["id"])

    def on_input_changed(self, event: Input.Changed) -> None:
        self._fill_rows()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one(DataTable).focus()

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        from torc.tui.screens.workflow import WorkflowScreen

        self.app.push_screen(WorkflowScreen(int(str(event.row_key.value))))
