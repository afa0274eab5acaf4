"""Entry point of the `torc` command."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="torc", prog_name="torc")
def main() -> None:
    """torc: run and manage workflows of many jobs."""
