"""One workflow: its state and job counts, and its jobs (filter by status, search, sort)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Input, Static

from torc.tui.data import WorkflowOverview
from torc.tui.query import filter_jobs, next_sort_key, parse_query, sort_jobs
from torc.tui.screens.base import ACTION_BINDINGS, WorkflowActionsScreen
from torc.tui.screens.tables import fill_table

COLUMNS = ("id", "name", "status", "attempt", "command")
COMMAND_WIDTH = 60
STATUS_ORDER = ("uninitialized", "blocked", "ready", "pending", "running", "completed", "failed", "canceled",
                "terminated", "disabled", "pending_failed")


def counts_line(counts: dict[str, int]) -> str:
    """`total 5 | completed 3 | failed 1 | ...`: every status with jobs, in lifecycle order."""
    parts = [f"{status} {counts[status]}" for status in STATUS_ORDER if counts.get(status)]
    parts += [f"{status} {n}" for status, n in sorted(counts.items()) if n and status not in STATUS_ORDER]
    return " | ".join([f"total {sum(counts.values())}", *parts])


class WorkflowScreen(WorkflowActionsScreen):
    DEFAULT_CSS = """
    WorkflowScreen #summary { height: auto; padding: 0 1; background: $boost; }
    """
    BINDINGS = [Binding("slash", "focus_filter", "Filter"), Binding("o", "sort", "Sort"),
                Binding("O", "reverse", "Reverse", show=False), *ACTION_BINDINGS]

    def __init__(self, workflow_id: int):
        super().__init__()
        self.workflow_id = workflow_id
        self.overview: WorkflowOverview | None = None
        self.sort_key = "id"
        self.reverse = False
        self.shown: list[dict] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"workflow {self.workflow_id}: loading ...", id="summary")
        yield Input(placeholder="/ filter jobs: words in name or command, status:STATUS, name:TEXT", id="filter")
        yield DataTable(id="jobs", cursor_type="row", zebra_stripes=True)
        yield Static("", id="message")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        table.focus()
        super().on_mount()

    def fetch(self) -> WorkflowOverview:
        return self.torc.data.overview(self.workflow_id)

    def show(self, data: WorkflowOverview) -> None:
        self.overview = data
        wf, status = data.workflow, data.status
        self.query_one("#summary", Static).update(
            f"[b]workflow {wf['id']}[/b] {wf['name']}  user {wf.get('user') or '-'}  state [b]{data.state}[/b]"
            f"  run {status.get('run_id')}\njobs: {counts_line(data.counts)}")
        self._fill_rows()

    def _fill_rows(self) -> None:
        if self.overview is None:
            return
        jobs = filter_jobs(self.overview.jobs, parse_query(self.query_one("#filter", Input).value))
        self.shown = sort_jobs(jobs, self.sort_key, self.reverse)
        cells = [(str(j["id"]), j["name"], j["status"], str(j.get("attempt_id") or ""),
                  _short(j.get("command") or "")) for j in self.shown]
        fill_table(self.query_one(DataTable), [str(j["id"]) for j in self.shown], cells)
        order = "descending" if self.reverse else "ascending"
        self.sub_title = (f"{self.torc.server_label} | {len(self.shown)} of {len(self.overview.jobs)} jobs,"
                          f" by {self.sort_key} ({order})")

    def selected_workflow_id(self) -> int | None:
        return self.workflow_id

    def on_input_changed(self, event: Input.Changed) -> None:
        self._fill_rows()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one(DataTable).focus()

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_sort(self) -> None:
        self.sort_key = next_sort_key(self.sort_key)
        self._fill_rows()

    def action_reverse(self) -> None:
        self.reverse = not self.reverse
        self._fill_rows()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        from torc.tui.screens.job import JobScreen

        self.app.push_screen(JobScreen(self.workflow_id, int(str(event.row_key.value))))


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= COMMAND_WIDTH else text[: COMMAND_WIDTH - 1] + "…"
