"""Small commands that only read: server health."""

from __future__ import annotations

import click

from torc.cli.common import pass_session, show_record
from torc.cli.session import Session


@click.command()
@pass_session
def ping(session: Session) -> None:
    """Check that the server answers, and show its URL and version."""
    client = session.client()
    show_record(session, {**client.ping(), "url": client.url, "version": client.get("version")})
