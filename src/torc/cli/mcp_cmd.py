"""`torc mcp`: serve torc's MCP tools to AI assistants (stdio by default, or streamable HTTP)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from torc.cli.session import Session


@click.command()
@click.option("--url", default=None,
              help="torc-server API URL (the same as torc's global --url) [env TORC_API_URL].")
@click.option("--transport", type=click.Choice(["stdio", "http"]), default="stdio", show_default=True,
              help="stdio: the assistant starts `torc mcp` itself; http: a streamable-HTTP endpoint at /mcp.")
@click.option("--host", default="127.0.0.1", show_default=True, help="With --transport http: address to listen on.")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8765, show_default=True,
              help="With --transport http: port to listen on.")
@click.option("--read-only", is_flag=True,
              help="Only the tools that change nothing (mutating tools are not even listed).")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("torc_output"),
              envvar="TORC_OUTPUT_DIR", show_default=True,
              help="The runners' output directory: job logs are read from it, `run_workflow` writes to it "
                   "[env TORC_OUTPUT_DIR].")
@click.option("--password", envvar="TORC_PASSWORD", default=None,
              help="Password for the server's basic auth [env TORC_PASSWORD]; the user is TORC_USER or $USER.")
@click.pass_obj
def mcp(session: Session, url: str | None, transport: str, host: str, port: int, read_only: bool, output_dir: Path,
        password: str | None) -> None:
    """Run an MCP server exposing torc's tools to AI assistants (Claude Code, VS Code, ...).

    \b
    Register it with Claude Code:
      claude mcp add torc -- torc mcp --url http://localhost:8080/torc-service/v1
    The server is reached through --url / TORC_API_URL (or --database).
    """
    from torc.client.api import auth_from_env
    from torc.client.http import TorcClient
    from torc.mcp.server import build_server
    from torc.mcp.tools import TorcTools

    if url is not None:
        session.url = url
    base = session.client()  # --url, config, or an embedded server for --database
    client = session.stack.enter_context(TorcClient(base.url, auth=auth_from_env(password=password)))
    # stdout carries the protocol on stdio: logs go to stderr only
    logging.getLogger("mcp").setLevel(logging.WARNING)
    server = build_server(TorcTools(client, output_dir), read_only=read_only)
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=host, port=port)
