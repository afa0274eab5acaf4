"""Conventions shared by every command: output, paging, updates, confirmation, JSON options."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import click

from torc.cli.output import emit
from torc.cli.session import Session

pass_session = click.pass_obj
Record = dict[str, Any]


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


def confirm(session: Session, message: str, no_prompts: bool) -> None:
    """Ask before a destructive action unless --no-prompts (or JSON output for scripts)."""
    if no_prompts or session.fmt == "json":
        return
    click.confirm(message, abort=True)


def note(message: str) -> None:
    """A human message: always on stderr, so stdout stays pure JSON with -f json."""
    click.echo(message, err=True)


def _cell(value: Any) -> Any:
    return json.dumps(value, separators=(",", ":")) if isinstance(value, dict | list) else value


def show_record(session: Session, record: Record, title: str | None = None) -> None:
    """One record: the object with -f json, a field/value table otherwise."""
    if session.fmt == "json":
        emit("json", record)
        return
    rows = [{"field": key, "value": _cell(value)} for key, value in record.items()]
    emit(session.fmt, rows, ["field", "value"], title)


def show_rows(session: Session, records: list[Record], columns: list[str], title: str,
              table_row: Callable[[Record], Record] | None = None) -> None:
    """Many records: the full list with -f json; the chosen columns (cells made readable) otherwise."""
    if session.fmt == "json":
        emit("json", records)
        return
    rows = [table_row(r) if table_row else r for r in records]
    emit(session.fmt, [{k: _cell(v) for k, v in r.items()} for r in rows], columns, title)


def done(session: Session, message: str, data: Record) -> None:
    """The outcome of an action: `data` as JSON, or a sentence."""
    if session.fmt == "json":
        emit("json", data)
    else:
        click.echo(message)


def fetch_records(session: Session, path: str, limit: int, offset: int, sort_by: str | None,
                  reverse_sort: bool, **filters: Any) -> list[Record]:
    """Up to `limit` records of a paged listing, following pages."""
    client = session.client()
    items: list[Record] = []
    while len(items) < limit:
        page = client.get(path, offset=offset + len(items), limit=min(limit - len(items), 10_000),
                          sort_by=sort_by, reverse_sort=reverse_sort or None, **filters)
        items += page["items"]
        if not page["has_more"] or not page["items"]:
            break
    return items


def update_record(session: Session, path: str, changes: Record, drop: Iterable[str] = ()) -> Record:
    """GET the record, apply the changes that were given, PUT it back."""
    given = {k: v for k, v in changes.items() if v is not None}
    if not given:
        raise click.UsageError("nothing to update: give at least one option to change")
    client = session.client()
    record = client.get(path)
    for key in drop:
        record.pop(key, None)
    return client.put(path, {**record, **given})


def delete_all(session: Session, path: str, workflow_id: int, what: str, no_prompts: bool) -> None:
    count = session.client().get(path, workflow_id=workflow_id, limit=1)["total_count"]
    confirm(session, f"Delete all {count} {what} of workflow {workflow_id}?", no_prompts)
    result = session.client().delete(path, workflow_id=workflow_id)
    deleted = result.get("deleted_count", result.get("count", 0))
    done(session, f"Deleted {deleted} {what} of workflow {workflow_id}.",
         {"workflow_id": workflow_id, "deleted_count": deleted})


def data_option(help: str, required: bool = False, want_object: bool = False) -> Callable:
    """-d/--data: a JSON value (or object), checked before anything is sent; bad JSON is a usage error."""

    def parse(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return None
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not valid JSON ({exc.msg} at position {exc.pos}): {value!r}") from None
        if want_object and not isinstance(parsed, dict):
            raise click.BadParameter(f"must be a JSON object such as '{{\"key\": 1}}', not {value!r}")
        return parsed

    return click.option("-d", "--data", callback=parse, required=required, help=help)




def list_records(session: Session, path: str, columns: list[str], title: str, limit: int, offset: int,
                 sort_by: str | None, reverse_sort: bool, **filters: Any) -> None:
    """Fetch a paged listing and print it."""
    show_rows(session, fetch_records(session, path, limit, offset, sort_by, reverse_sort, **filters), columns, title)
