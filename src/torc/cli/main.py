"""Entry point of the `torc` command: global options and the command tree."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from torc.cli import (
    access_cmds,
    config_cmds,
    dash_cmd,
    hpc_cmds,
    inspect_cmds,
    mcp_cmd,
    plot_cmds,
    recover_cmds,
    remote_cmds,
    report_cmds,
    resource_cmds,
    run_cmd,
    slurm_cmds,
    submit_cmds,
    tui_cmd,
    workflow_cmds,
)
from torc.cli.session import Session, TorcGroup
from torc.client import DEFAULT_URL

LOG_LEVELS = ("error", "warn", "info", "debug", "trace")


@click.group(cls=TorcGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="torc", prog_name="torc")
@click.option("--url", envvar="TORC_API_URL", default=None,
              help=f"torc-server API URL [env TORC_API_URL; config client.api_url; default {DEFAULT_URL}].")
@click.option("--database", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Use an embedded server on this SQLite file instead of --url (e.g. torc_output/torc.db).")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default=None,
              help="Output format; json is for scripts [config client.format; default table].")
@click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False), default=None,
              envvar="TORC_LOG_LEVEL", help="Logging detail on stderr [default warn].")
@click.option("--user", envvar="TORC_USER", default=None,
              help="User name for the server's authentication [env TORC_USER; default $USER].")
@click.option("--password", envvar="TORC_PASSWORD", default=None, show_envvar=False,
              help="Password for the server's authentication [env TORC_PASSWORD]; prefer the env "
                   "variable or --prompt-password (a flag is visible in the process list).")
@click.option("--prompt-password", is_flag=True, help="Ask for the password (not echoed).")
@click.option("--ca-cert", envvar="TORC_CA_CERT", default=None, type=click.Path(exists=True, dir_okay=False),
              help="PEM CA certificate that verifies an https:// server [env TORC_CA_CERT].")
@click.pass_context
def main(ctx: click.Context, url: str | None, database: Path | None, fmt: str | None, log_level: str | None,
         user: str | None, password: str | None, prompt_password: bool, ca_cert: str | None) -> None:
    """torc: run and manage workflows of many jobs.

    \b
    Quick start (no server needed):
      torc run examples/demo_pipeline.yaml
    """
    overrides = {"client.format": fmt, "client.api_url": url, "client.log_level": log_level}
    session = Session(url=url, database=database, fmt=fmt or "table", config_overrides=overrides)
    if fmt is None and ctx.invoked_subcommand != "config" and _has_config_files():
        session.fmt = session.config().client.format
    level = {"warn": "warning", "trace": "debug"}.get(log_level or "warn", log_level or "warn")
    logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if prompt_password:
        password = click.prompt(f"Password for {user or _login_name()}", hide_input=True, err=True)
    if password:
        session.auth = (user or _login_name(), password)
    session.ca_cert = ca_cert
    session.export_credentials()
    ctx.obj = session
    ctx.call_on_close(session.stack.close)


def _login_name() -> str:
    return os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"


def _has_config_files() -> bool:
    """Reading the config costs a few file checks; skip it when no layer can change the format."""
    from torc.config import config_paths

    return any(layer.exists for layer in config_paths()) or any(k.startswith("TORC_CLIENT__") for k in os.environ)


@main.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completions(shell: str) -> None:
    """Print a shell completion script, e.g. `eval "$(torc completions bash)"`."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    click.echo(cls(main, {}, "torc", "_TORC_COMPLETE").source())


workflow_cmds.workflows.add_command(run_cmd.run, "run")  # `torc workflows run ID`, as in torc
for _command in (run_cmd.run, recover_cmds.recover, recover_cmds.watch, inspect_cmds.ping,
                 workflow_cmds.workflows, config_cmds.config,
                 report_cmds.reports, plot_cmds.plot_resources, *resource_cmds.GROUPS,
                 hpc_cmds.hpc, slurm_cmds.slurm):
    main.add_command(_command)
main.add_command(remote_cmds.remote)
main.add_command(access_cmds.access_groups)
main.add_command(dash_cmd.dash)
main.add_command(mcp_cmd.mcp)
main.add_command(tui_cmd.tui)
for _command in submit_cmds.COMMANDS:  # torc submit, submit-slurm, slurm-job-runner
    main.add_command(_command)
for _command in submit_cmds.SLURM_COMMANDS:  # torc slurm schedule-nodes, slurm sacct
    slurm_cmds.slurm.add_command(_command)

if __name__ == "__main__":  # pragma: no cover
    main()
