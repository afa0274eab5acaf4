"""Versioned schema migrations: numbered .sql files per dialect, applied in order at start-up."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"^(\d+)_(\w+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """Split on semicolons that end a line; trigger bodies keep theirs (`...;` then `END`)."""
        lines = [ln for ln in self.sql.splitlines() if not ln.strip().startswith("--")]
        statements, current, in_trigger = [], [], False
        for line in lines:
            current.append(line)
            stripped = line.strip().upper()
            if stripped.startswith("CREATE TRIGGER"):
                in_trigger = True
            ends = stripped.rstrip(";") == "END" if in_trigger else stripped.endswith(";")
            if ends:
                statements.append("\n".join(current).strip().rstrip(";"))
                current, in_trigger = [], False
        tail = "\n".join(current).strip().rstrip(";")
        if tail:
            statements.append(tail)
        return [s for s in statements if s]


def load_migrations(dialect: str) -> list[Migration]:
    folder = resources.files("torc.storage") / "migrations" / dialect
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text()))
    return sorted(found, key=lambda m: m.version)
