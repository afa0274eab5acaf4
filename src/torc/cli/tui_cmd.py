"""`torc tui`: the terminal UI, on the configured server or (--standalone) an embedded one."""

from __future__ import annotations

from pathlib import Path

import click

from torc.cli.session import Session


@click.command()
@click.option("--standalone", is_flag=True,
              help="Start an embedded server on a SQLite file (--database) for the TUI; it stops when the TUI quits.")
@click.option("--database", "standalone_database", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The embedded server's database with --standalone [default: OUTPUT_DIR/torc.db].")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where runs started here write job logs, and where job logs are read from "
                   "[config client.run; torc_output].")
@click.option("--refresh", type=click.FloatRange(min=0.2), default=5.0, show_default=True,
              help="Seconds between automatic refreshes.")
@click.pass_obj
def tui(session: Session, standalone: bool, standalone_database: Path | None, output_dir: Path | None,
        refresh: float) -> None:
    """Browse and control workflows in a terminal UI (press ? inside for the keys)."""
    from torc.tui import TorcApp, TuiData

    output_dir = (output_dir or Path(session.config().client.run.output_dir)).resolve()
    if standalone_database is not None and not standalone:
        raise click.UsageError("--database after `tui` needs --standalone (or use `torc --database FILE tui`)")
    if standalone:
        database = standalone_database or session.database or output_dir / "torc.db"
        database.parent.mkdir(parents=True, exist_ok=True)
        session.database = database
        click.echo(f"Starting an embedded torc server on {database} ...", err=True)
    client = session.client()
    client.ping()  # a clean error now rather than an empty screen
    label = f"{client.url} (embedded, {session.database})" if session.database is not None else client.url
    TorcApp(TuiData(client, output_dir), server_label=label, refresh_seconds=refresh).run()
