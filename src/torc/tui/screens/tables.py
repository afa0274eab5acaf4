"""Refilling a DataTable without losing the user's place."""

from __future__ import annotations

from collections.abc import Sequence

from textual.widgets import DataTable


def fill_table(table: DataTable, keys: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Replace the rows; the cursor stays on the same key where that row is still shown."""
    current = None
    if table.row_count and 0 <= table.cursor_row < table.row_count:
        current = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    table.clear()
    for key, row in zip(keys, rows, strict=True):
        table.add_row(*row, key=key)
    if current in keys:
        table.move_cursor(row=list(keys).index(current), animate=False)
