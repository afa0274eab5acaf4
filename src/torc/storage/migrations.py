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
        # Migration files hold no semicolons inside literals, so splitting is safe.
        lines = [ln for ln in self.sql.splitlines() if not ln.strip().startswith("--")]
        return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def load_migrations(dialect: str) -> list[Migration]:
    folder = resources.files("torc.storage") / "migrations" / dialect
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text()))
    return sorted(found, key=lambda m: m.version)
