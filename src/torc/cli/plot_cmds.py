"""`torc plot-resources`: interactive Plotly plots from time-series resource monitoring databases.

stdout gets the paths written, one per line (plotly.min.js too, when it was written); what was
loaded and any skipped job IDs go to stderr. Errors are one line and exit code 1.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from torc.cli.common import note
from torc.plots import FORMATS, ResourceDbError, load_series, select_jobs, write_plots


def _job_ids(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[int]:
    """`-j 3 -j 5` or `-j 3,5`."""
    ids: list[int] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                ids.append(int(part))
            except ValueError:
                raise click.BadParameter(f"{part!r} is not a job ID") from None
    return ids


def _prefix(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value or "/" in value or os.sep in value:
        raise click.BadParameter("must be a non-empty file name prefix without a path separator")
    return value


@click.command("plot-resources")
@click.argument("db_paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Directory for the plots (created if needed).")
@click.option("-j", "--job-ids", "job_ids", multiple=True, callback=_job_ids, metavar="ID[,ID...]",
              help="Plot only these job IDs (repeat the option or separate with commas).")
@click.option("-p", "--prefix", default="resource_plot", show_default=True, callback=_prefix,
              help="File name prefix of the plots.")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default="html", show_default=True,
              help="html: interactive pages (with plotly.min.js beside them, no CDN); json: Plotly figure JSON.")
def plot_resources(db_paths: tuple[Path, ...], output_dir: Path, job_ids: list[int], prefix: str, fmt: str) -> None:
    """Plot CPU, memory and process counts from resource monitoring databases.

    DB_PATHS are time-series databases written by the job runner with
    `resource_monitor: {granularity: time_series}`, e.g.
    torc_output/resource_utilization/resource_metrics_*.db. Writes one timeline per job
    (PREFIX_job_ID), CPU and memory of all jobs (PREFIX_cpu_all_jobs, PREFIX_memory_all_jobs)
    and a peak-vs-average summary (PREFIX_summary).

    \b
    The HTML files load plotly.min.js from their own directory, so they open offline; keep it
    with them when copying the plots elsewhere.
    """
    try:
        jobs = load_series(db_paths)
    except ResourceDbError as exc:
        raise click.ClickException(exc.message) from None
    sources = ", ".join(str(p) for p in db_paths)
    if not jobs:
        raise click.ClickException(f"no resource samples in {sources}")
    series, missing = select_jobs(jobs, job_ids)
    if not series:
        raise click.ClickException(f"no samples for job ID(s) {', '.join(map(str, missing))} in {sources}")
    if missing:
        note(f"No samples for job ID(s) {', '.join(map(str, missing))}; skipped.")
    note(f"Loaded {sum(len(s.timestamps) for s in series)} samples of {len(series)} job(s) from {sources}")
    try:
        written = write_plots(series, output_dir, prefix, fmt)
    except OSError as exc:
        raise click.ClickException(f"cannot write plots to {output_dir}: {exc}") from None
    for path in written:
        click.echo(str(path))
