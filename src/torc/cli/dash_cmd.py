"""`torc dash`: the web dashboard against a torc-server (--url) or an embedded one (--database)."""

from __future__ import annotations

from pathlib import Path

import click

from torc.cli.common import pass_session
from torc.cli.session import Session
from torc.client import DEFAULT_URL


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("-p", "--port", default=8090, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on; 0 picks a free port and prints TORC_DASH_PORT=<n> first.")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("torc_output"),
              show_default=True,
              help="The runners' output directory: job logs (job_stdio/) and monitoring data are read from it, "
                   "and runs started from the dashboard write to it.")
@pass_session
def dash(session: Session, host: str, port: int, output_dir: Path) -> None:
    """Serve the web dashboard: workflows, jobs, logs, DAG, events, resource plots and actions.

    \b
    The dashboard talks to --url's torc-server (or an embedded one with --database) through its
    REST API; the browser talks only to the dashboard. torc-server also serves it at `/`.
    """
    import uvicorn

    from torc.cli.embedded import server_reachable
    from torc.dashboard import DashboardConfig, create_dashboard

    if session.database is not None:
        api_url = session.client().url  # starts the embedded server for as long as the dashboard runs
    else:
        api_url = (session.url or session.config().client.api_url or DEFAULT_URL).rstrip("/")
        if not server_reachable(api_url):
            click.secho(f"warning: no torc-server answers at {api_url}; pages will show the error until it does",
                        fg="yellow", err=True)
    from torc.server.cli import bind_socket

    sock = bind_socket(host, port)
    actual = sock.getsockname()[1]
    if port == 0:
        click.echo(f"TORC_DASH_PORT={actual}")
    click.echo(f"torc dashboard on http://{host}:{actual}/ (API {api_url}, output dir {output_dir})")
    app = create_dashboard(DashboardConfig(api_url=api_url, output_dir=output_dir))
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
