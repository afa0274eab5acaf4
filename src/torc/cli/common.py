"""Conventions shared by every command: output, paging options, confirmation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click

from torc.cli.output import emit
from torc.cli.session import Session

pass_session = click.pass_obj


def paging_options(default_limit: int = 10_000) -> Callable:
    """--limit/--offset/--sort-by/--reverse-sort, passed on as keyword arguments."""

    def decorate(func: Callable) -> Callable:
        func = click.option("--reverse-sort", is_flag=True, help="Sort descending.")(func)
        func = click.option("--sort-by", default=None, help="Column to sort by.")(func)
        func = click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True,
                            help="Skip this many records.")(func)
        func = click.option("-l", "--limit", type=click.IntRange(min=1), default=default_limit, show_default=True,
                            help="Show at most this many records.")(func)
        return func

    return decorate


def list_records(session: Session, path: str, columns: Sequence[str], title: str, limit: int, offset: int,
                 sort_by: str | None, reverse_sort: bool, **filters: Any) -> None:
    """Fetch up to `limit` records from a paged listing (following pages) and print them."""
    client = session.client()
    items: list[dict[str, Any]] = []
    while len(items) < limit:
        page = client.get(path, offset=offset + len(items), limit=min(limit - len(items), 10_000),
                          sort_by=sort_by, reverse_sort=reverse_sort or None, **filters)
        items += page["items"]
        if not page["has_more"] or not page["items"]:
            break
    emit(session.fmt, items, columns, title)


def confirm(session: Session, message: str, no_prompts: bool) -> None:
    """Ask before a destructive action unless --no-prompts (or JSON output for scripts)."""
    if no_prompts or session.fmt == "json":
        return
    click.confirm(message, abort=True)


def json_option(name: str, help: str) -> Callable:
    """An option whose value is parsed as JSON, with a clear error."""
    import json

    def parse(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return None
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not valid JSON ({exc.msg} at position {exc.pos}): {value!r}") from None

    return click.option(name, callback=parse, help=help)
