"""Plots of time-series resource monitoring databases (`torc plot-resources`).

A database is what `ResourceMonitor(time_series_db=...)` writes: `job_resource_samples` (job_id,
timestamp, cpu_percent, memory_bytes, num_processes) and `job_metadata` (job_id, job_name).
Several databases are merged by job ID. For the selected jobs this writes, as torc names them:

    <prefix>_job_<id>.html       one per job: CPU %, memory and process count over time since
                                 the job's first sample (three stacked panels, shared x axis)
    <prefix>_cpu_all_jobs.html   CPU % of every job over wall-clock time
    <prefix>_memory_all_jobs.html  memory of every job over wall-clock time
    <prefix>_summary.html        peak vs average CPU % and memory per job (grouped bars)

(unlike torc, the two all-jobs files are written for a single job too, so the set is predictable).

Offline HTML: each file refers to `plotly.min.js` next to it (plotly's `include_plotlyjs=
"directory"`) and that bundle, from the installed plotly package, is written into the output
directory (again when it differs from the installed version). Nothing is loaded from a CDN, and
the plots are a few KB each instead of ~4.5 MB; keep `plotly.min.js` with the HTML files when
moving them. `fmt="json"` writes each figure's plotly JSON (`<name>.json`) instead.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.request import pathname2url

from torc.core.errors import TorcError

GIB = 1024**3
MIB = 1024**2
PLOTLY_BUNDLE = "plotly.min.js"
FORMATS = ("html", "json")


class ResourceDbError(TorcError):
    """A resource database that cannot be plotted: missing, not torc's, or without the samples."""


@dataclass
class JobSeries:
    job_id: int
    name: str | None = None
    timestamps: list[float] = field(default_factory=list)
    cpu_percent: list[float] = field(default_factory=list)
    memory_bytes: list[int] = field(default_factory=list)
    num_processes: list[int] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"Job {self.job_id} ({self.name})" if self.name else f"Job {self.job_id}"

    @property
    def peak_cpu(self) -> float:
        return max(self.cpu_percent, default=0.0)

    @property
    def avg_cpu(self) -> float:
        return sum(self.cpu_percent) / len(self.cpu_percent) if self.cpu_percent else 0.0

    @property
    def peak_memory(self) -> int:
        return max(self.memory_bytes, default=0)

    @property
    def avg_memory(self) -> float:
        return sum(self.memory_bytes) / len(self.memory_bytes) if self.memory_bytes else 0.0

    @property
    def duration(self) -> float:
        return self.timestamps[-1] - self.timestamps[0] if self.timestamps else 0.0


# ---- reading ---------------------------------------------------------------------------------


def _connect_read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{pathname2url(str(path.resolve()))}?mode=ro", uri=True)


def read_resource_db(path: Path) -> tuple[dict[int, str], list[tuple[int, float, float, int, int]]]:
    """(job names, samples as (job_id, timestamp, cpu_percent, memory_bytes, num_processes))."""
    if not path.exists():
        raise ResourceDbError(f"no such file: {path}")
    if path.is_dir():
        raise ResourceDbError(f"{path} is a directory, not a resource monitoring database")
    not_ours = f"{path} is not a torc resource monitoring database"
    try:
        db = _connect_read_only(path)
    except sqlite3.Error as exc:
        raise ResourceDbError(f"cannot open {path}: {exc}") from exc
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "job_resource_samples" not in tables:
            raise ResourceDbError(f"{not_ours} (it has no job_resource_samples table)")
        names: dict[int, str] = {}
        if "job_metadata" in tables:
            names = {int(job_id): name for job_id, name in db.execute("SELECT job_id, job_name FROM job_metadata")
                     if job_id is not None and name is not None}
        samples = db.execute(
            "SELECT job_id, timestamp, cpu_percent, memory_bytes, num_processes FROM job_resource_samples "
            "ORDER BY job_id, timestamp").fetchall()
    except sqlite3.DatabaseError as exc:
        raise ResourceDbError(f"{not_ours} ({exc})") from exc
    finally:
        db.close()
    return names, samples


def load_series(paths: Iterable[Path]) -> dict[int, JobSeries]:
    """Every job's samples from all databases, merged by job ID and ordered by time."""
    jobs: dict[int, JobSeries] = {}
    for path in paths:
        names, samples = read_resource_db(Path(path))
        for job_id, timestamp, cpu, memory, processes in samples:
            s = jobs.setdefault(int(job_id), JobSeries(int(job_id)))
            s.timestamps.append(float(timestamp))
            s.cpu_percent.append(float(cpu or 0.0))
            s.memory_bytes.append(int(memory or 0))
            s.num_processes.append(int(processes or 0))
        for job_id, name in names.items():
            if job_id in jobs:
                jobs[job_id].name = name
    for s in jobs.values():
        order = sorted(range(len(s.timestamps)), key=s.timestamps.__getitem__)
        if order != list(range(len(order))):
            s.timestamps = [s.timestamps[i] for i in order]
            s.cpu_percent = [s.cpu_percent[i] for i in order]
            s.memory_bytes = [s.memory_bytes[i] for i in order]
            s.num_processes = [s.num_processes[i] for i in order]
    return jobs


def select_jobs(jobs: dict[int, JobSeries], job_ids: Sequence[int] | None) -> tuple[list[JobSeries], list[int]]:
    """(the series to plot, ordered by job ID; requested IDs that have no samples)."""
    if not job_ids:
        return [jobs[j] for j in sorted(jobs)], []
    wanted = sorted(set(job_ids))
    return [jobs[j] for j in wanted if j in jobs], [j for j in wanted if j not in jobs]


# ---- figures ---------------------------------------------------------------------------------


def _memory_unit(series: Sequence[JobSeries]) -> tuple[str, float]:
    peak = max((s.peak_memory for s in series), default=0)
    return ("GiB", GIB) if peak >= GIB else ("MiB", MIB)


def _times(s: JobSeries) -> list[datetime]:
    return [datetime.fromtimestamp(t) for t in s.timestamps]


def job_figure(s: JobSeries):
    from plotly.subplots import make_subplots

    unit, scale = _memory_unit([s])
    start = s.timestamps[0] if s.timestamps else 0.0
    elapsed = [t - start for t in s.timestamps]
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=("CPU %", f"Memory ({unit})", "Processes"))
    fig.add_scatter(x=elapsed, y=s.cpu_percent, name="CPU %", mode="lines+markers", row=1, col=1)
    fig.add_scatter(x=elapsed, y=[m / scale for m in s.memory_bytes], name=f"Memory ({unit})",
                    mode="lines+markers", row=2, col=1)
    fig.add_scatter(x=elapsed, y=s.num_processes, name="Processes", mode="lines+markers", line_shape="hv",
                    row=3, col=1)
    fig.update_yaxes(title_text="CPU %", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text=unit, rangemode="tozero", row=2, col=1)
    fig.update_yaxes(title_text="count", rangemode="tozero", row=3, col=1)
    fig.update_xaxes(title_text="Time since first sample (s)", row=3, col=1)
    fig.update_layout(
        title_text=(f"{s.label} resource usage<br><sub>Peak: {s.peak_cpu:.1f}% CPU, "
                    f"{s.peak_memory / scale:.2f} {unit} | Avg: {s.avg_cpu:.1f}% CPU, "
                    f"{s.avg_memory / scale:.2f} {unit} | {len(s.timestamps)} samples over {s.duration:.1f} s</sub>"),
        height=800, showlegend=False,
    )
    return fig


def cpu_figure(series: Sequence[JobSeries]):
    import plotly.graph_objects as go

    fig = go.Figure()
    for s in series:
        fig.add_scatter(x=_times(s), y=s.cpu_percent, name=s.label, mode="lines")
    fig.update_layout(title_text="CPU usage - all jobs", xaxis_title="Time", yaxis_title="CPU %",
                      yaxis_rangemode="tozero", hovermode="x unified")
    return fig


def memory_figure(series: Sequence[JobSeries]):
    import plotly.graph_objects as go

    unit, scale = _memory_unit(series)
    fig = go.Figure()
    for s in series:
        fig.add_scatter(x=_times(s), y=[m / scale for m in s.memory_bytes], name=s.label, mode="lines")
    fig.update_layout(title_text="Memory usage - all jobs", xaxis_title="Time", yaxis_title=f"Memory ({unit})",
                      yaxis_rangemode="tozero", hovermode="x unified")
    return fig


def summary_figure(series: Sequence[JobSeries]):
    from plotly.subplots import make_subplots

    unit, scale = _memory_unit(series)
    x = [str(s.job_id) for s in series]
    names = [s.label for s in series]
    hover = "%{customdata}<br>%{y:.2f}<extra>%{fullData.name}</extra>"
    fig = make_subplots(rows=2, cols=1, vertical_spacing=0.15,
                        subplot_titles=("CPU % (peak vs average)", f"Memory in {unit} (peak vs average)"))
    fig.add_bar(x=x, y=[s.peak_cpu for s in series], name="Peak CPU %", customdata=names,
                hovertemplate=hover, row=1, col=1)
    fig.add_bar(x=x, y=[s.avg_cpu for s in series], name="Avg CPU %", customdata=names,
                hovertemplate=hover, row=1, col=1)
    fig.add_bar(x=x, y=[s.peak_memory / scale for s in series], name=f"Peak memory ({unit})", customdata=names,
                hovertemplate=hover, row=2, col=1)
    fig.add_bar(x=x, y=[s.avg_memory / scale for s in series], name=f"Avg memory ({unit})", customdata=names,
                hovertemplate=hover, row=2, col=1)
    fig.update_xaxes(type="category", title_text="Job ID")
    fig.update_yaxes(title_text="CPU %", row=1, col=1)
    fig.update_yaxes(title_text=unit, row=2, col=1)
    fig.update_layout(title_text="Resource usage summary - all jobs", barmode="group", height=800)
    return fig


# ---- writing ---------------------------------------------------------------------------------


def _ensure_plotly_bundle(output_dir: Path) -> Path | None:
    """Write plotly.min.js next to the HTML files unless an identical copy is there; its path if written."""
    from plotly.offline import get_plotlyjs

    bundle = get_plotlyjs().encode("utf-8")
    path = output_dir / PLOTLY_BUNDLE
    try:
        if path.stat().st_size == len(bundle) and path.read_bytes() == bundle:
            return None
    except OSError:
        pass
    path.write_bytes(bundle)
    return path


def _write_figure(fig, path: Path, fmt: str) -> None:
    if fmt == "json":
        path.write_text(fig.to_json(), encoding="utf-8")
    else:
        path.write_text(fig.to_html(include_plotlyjs="directory", full_html=True), encoding="utf-8")


def write_plots(series: Sequence[JobSeries], output_dir: Path, prefix: str = "resource_plot",
                fmt: str = "html") -> list[Path]:
    """Write the per-job, all-jobs and summary plots; the paths written, in order."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    output_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if fmt == "html":
        bundle = _ensure_plotly_bundle(output_dir)
        if bundle is not None:
            written.append(bundle)
    figures = [(f"{prefix}_job_{s.job_id}", job_figure(s)) for s in series]
    figures += [(f"{prefix}_cpu_all_jobs", cpu_figure(series)), (f"{prefix}_memory_all_jobs", memory_figure(series)),
                (f"{prefix}_summary", summary_figure(series))]
    for stem, fig in figures:
        path = output_dir / f"{stem}.{fmt}"
        _write_figure(fig, path, fmt)
        written.append(path)
    return written
