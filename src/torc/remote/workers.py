"""Worker addresses: `[user@]host[:port]`, IPv6 hosts in brackets (`[::1]:2222`, `me@[fe80::1]`)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from torc.core.errors import InvalidInputError

_USER = r"(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]*)@)?"
_PORT = r"(?::(?P<port>[0-9]+))?"
_BRACKETED = re.compile(rf"^{_USER}\[(?P<host>[^\]\s]+)\]{_PORT}$")
_PLAIN = re.compile(rf"^{_USER}(?P<host>[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?){_PORT}$")
SYNTAX = "[user@]host[:port] (IPv6 in brackets, e.g. [::1]:2222)"


@dataclass(frozen=True)
class Worker:
    """One remote machine: the text it was given as, and its parts."""

    original: str
    host: str
    user: str | None = None
    port: int | None = None

    @property
    def key(self) -> tuple[str, int]:
        """What makes two entries the same machine: host and port (22 when not given)."""
        return self.host.lower(), self.port or 22

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host

    @property
    def destination(self) -> str:
        """`user@host` for ssh (which takes IPv6 addresses bare)."""
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def scp_host(self) -> str:
        """`user@host` for scp, IPv6 in brackets."""
        host = f"[{self.host}]" if self.is_ipv6 else self.host
        return f"{self.user}@{host}" if self.user else host

    @property
    def label(self) -> str:
        """A file-name-safe name for this worker (local log folders)."""
        text = self.host if self.port is None else f"{self.host}_{self.port}"
        if self.user:
            text = f"{self.user}@{text}"
        return re.sub(r"[^A-Za-z0-9@._-]", "_", text)

    def __str__(self) -> str:
        return self.original


def parse_worker(text: str) -> Worker:
    """A worker address, or InvalidInputError saying what is wrong with it."""
    raw = text.strip()
    if not raw:
        raise InvalidInputError(f"invalid worker {text!r}: empty; expected {SYNTAX}")
    match = _BRACKETED.match(raw)
    if match:
        try:
            ipaddress.IPv6Address(match["host"].split("%", 1)[0])
        except ValueError:
            raise InvalidInputError(f"invalid worker {raw!r}: {match['host']!r} in brackets is not an IPv6 "
                                    f"address; expected {SYNTAX}") from None
    else:
        match = _PLAIN.match(raw)
        if match is None:
            hint = " (put IPv6 addresses in brackets)" if raw.count(":") > 1 else ""
            raise InvalidInputError(f"invalid worker {raw!r}{hint}: expected {SYNTAX}")
    port = None
    if match["port"] is not None:
        port = int(match["port"])
        if not 1 <= port <= 65535:
            raise InvalidInputError(f"invalid worker {raw!r}: port {port} is not between 1 and 65535")
    return Worker(original=raw, host=match["host"], user=match["user"], port=port)


def check_duplicates(workers: list[Worker], source: str = "") -> None:
    """Two entries for the same host and port are an error (they would share one PID file)."""
    seen: dict[tuple[str, int], Worker] = {}
    dups = []
    for worker in workers:
        if worker.key in seen:
            dups.append(f"{worker.original!r} (same host as {seen[worker.key].original!r})")
        else:
            seen[worker.key] = worker
    if dups:
        where = f" in {source}" if source else ""
        raise InvalidInputError(f"duplicate worker{'s' if len(dups) > 1 else ''}{where}: " + ", ".join(dups))


def parse_workers(texts: list[str] | tuple[str, ...]) -> list[Worker]:
    workers = [parse_worker(t) for t in texts]
    check_duplicates(workers)
    return workers


def parse_worker_lines(text: str, source: str = "<workers>") -> list[Worker]:
    """One worker per line; blank lines and `#` comments (whole-line or trailing) are ignored."""
    workers = []
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            workers.append(parse_worker(entry))
        except InvalidInputError as exc:
            raise InvalidInputError(f"{source}:{number}: {exc.message}") from None
    check_duplicates(workers, source)
    return workers


def parse_worker_file(path: str | Path) -> list[Worker]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidInputError(f"cannot read worker file {path}: {exc.strerror or exc}") from None
    workers = parse_worker_lines(text, str(path))
    if not workers:
        raise InvalidInputError(f"no workers in {path}")
    return workers
