"""One job: its command, resource requirements, every attempt's result, the tail of its latest
stdout and stderr, and its dependency graph (upstream and downstream) as a tree."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Header, Static, Tree
from textual.widgets.tree import TreeNode

from torc.tui.data import Dependencies, JobDetail
from torc.tui.screens.base import DataScreen

MAX_TREE_NODES = 500  # a wide sweep would otherwise put thousands of nodes in the tree
NO_FILE = "(no file: nothing written yet, or written to another output directory)"
RR_FIELDS = ("name", "num_cpus", "num_gpus", "num_nodes", "memory", "runtime")


def _minutes(value: float | None) -> str:
    return "-" if value is None else f"{value * 60:.1f} s"


def detail_renderable(detail: JobDetail) -> Group:
    job = detail.job
    head = Text.assemble(("job ", "bold"), (f"{job['id']} ", "bold"), (job["name"], "bold cyan"),
                         f"  status {job['status']}  attempt {job.get('attempt_id') or '-'}  run {detail.run_id}")
    command = Text.assemble(("command: ", "bold"), job.get("command") or "")
    rr = detail.requirements
    requirements = Text.assemble(("resources: ", "bold"), "  ".join(
        f"{k} {rr.get(k)}" for k in RR_FIELDS if rr.get(k) is not None) if rr else "none")
    attempts = Table(title="attempts", title_justify="left", expand=True)
    for column in ("run", "attempt", "status", "return code", "exec time", "completed at"):
        attempts.add_column(column)
    for r in detail.results:
        attempts.add_row(str(r["run_id"]), str(r["attempt_id"]), str(r.get("status")), str(r.get("return_code")),
                         _minutes(r.get("exec_time_minutes")), str(r.get("completion_time") or "-"))
    if not detail.results:
        attempts.add_row("-", "-", "no results yet", "", "", "")
    parts: list = [head, command, requirements, attempts]
    for tail in detail.logs:
        parts.append(Text.assemble((f"{tail.stream}: ", "bold"), str(tail.path)))
        parts.append(Text(tail.text if tail.text is not None else NO_FILE,
                          style="dim" if tail.text is None else ""))
    return Group(*parts)


def _label(deps: Dependencies, job_id: int) -> str:
    return f"{deps.names.get(job_id, '?')} (#{job_id}, {deps.statuses.get(job_id, '?')})"


def fill_tree(tree: Tree, deps: Dependencies, job_id: int) -> None:
    """Root: the job; under it the jobs it waits for (recursively) and the jobs that wait for it."""
    tree.clear()
    tree.root.set_label(_label(deps, job_id))
    tree.root.data = job_id
    budget = [MAX_TREE_NODES]

    def grow(node: TreeNode, edges: dict[int, list[int]], current: int, path: frozenset[int]) -> None:
        for other in edges.get(current, []):
            if budget[0] <= 0:
                node.add_leaf("… (more)")
                return
            budget[0] -= 1
            if edges.get(other) and other not in path:
                child = node.add(_label(deps, other), data=other, expand=True)
                grow(child, edges, other, path | {other})
            else:
                node.add_leaf(_label(deps, other), data=other)

    for title, edges in (("upstream (waits for)", deps.upstream), ("downstream (waits for it)", deps.downstream)):
        branch = tree.root.add(title, expand=True)
        if not edges.get(job_id):
            branch.add_leaf("none")
        grow(branch, edges, job_id, frozenset({job_id}))
    tree.root.expand()


class JobScreen(DataScreen):
    DEFAULT_CSS = """
    JobScreen #detail-scroll { width: 2fr; }
    JobScreen #deps { width: 1fr; border-left: solid $accent; }
    """

    def __init__(self, workflow_id: int, job_id: int):
        super().__init__()
        self.workflow_id = workflow_id
        self.job_id = job_id
        self.detail: JobDetail | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with VerticalScroll(id="detail-scroll"):
                yield Static(f"job {self.job_id}: loading ...", id="detail")
            yield Tree("dependencies", id="deps")
        yield Static("", id="message")
        yield Footer()

    def fetch(self) -> JobDetail:
        return self.torc.data.job_detail(self.workflow_id, self.job_id)

    def show(self, data: JobDetail) -> None:
        self.detail = data
        self.query_one("#detail", Static).update(detail_renderable(data))
        fill_tree(self.query_one(Tree), data.dependencies, self.job_id)
        self.sub_title = f"{self.torc.server_label} | workflow {self.workflow_id}, job {self.job_id}"

    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        other = event.node.data
        if isinstance(other, int) and other != self.job_id:
            self.app.push_screen(JobScreen(self.workflow_id, other))
