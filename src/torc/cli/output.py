"""Printing results: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table


def emit(fmt: str, data: Any, columns: Sequence[str] | None = None, title: str | None = None) -> None:
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
        return
    rows = data if isinstance(data, list) else [data]
    if not rows:
        click.echo(f"No {title or 'records'} found.")
        return
    columns = list(columns or rows[0].keys())
    table = Table(title=title, header_style="bold")
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    Console().print(table)
