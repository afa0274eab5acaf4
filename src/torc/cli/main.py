"""Entry point of the `torc` command: global options and the command tree."""

from __future__ import annotations

from pathlib import Path

import click

from torc.cli import inspect_cmds, run_cmd
from torc.cli.session import Session, TorcGroup
from torc.client import DEFAULT_URL


@click.group(cls=TorcGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="torc", prog_name="torc")
@click.option("--url", envvar="TORC_API_URL", default=None,
              help=f"torc-server API URL [env TORC_API_URL; default {DEFAULT_URL}].")
@click.option("--database", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Use an embedded server on this SQLite file instead of --url (e.g. torc_output/torc.db).")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="Output format; json is for scripts.")
@click.pass_context
def main(ctx: click.Context, url: str | None, database: Path | None, fmt: str) -> None:
    """torc: run and manage workflows of many jobs.

    \b
    Quick start (no server needed):
      torc run examples/demo_pipeline.yaml
    """
    session = Session(url=url, database=database, fmt=fmt)
    ctx.obj = session
    ctx.call_on_close(session.stack.close)


main.add_command(run_cmd.run)
for _command in inspect_cmds.COMMANDS:
    main.add_command(_command)

if __name__ == "__main__":  # pragma: no cover
    main()
