"""htpasswd files with bcrypt hashes: `user:$2b$12$...` lines, `#` comments and blank lines ignored.

Only bcrypt is accepted (Apache's `htpasswd -B` writes the same `$2y$` format); a line with any other
hash is an error naming the file and line, so a misconfigured file fails at server start.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import bcrypt

from torc.core.errors import InvalidInputError

DEFAULT_COST = 12
BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


def hash_password(password: str, cost: int = DEFAULT_COST) -> str:
    if not 4 <= cost <= 31:
        raise InvalidInputError(f"bcrypt cost must be between 4 and 31, found {cost}")
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()


def check_password(password: str, hashed: str) -> bool:
    """True when `password` matches the bcrypt `hashed` (Apache's $2y$ is read as $2b$)."""
    if hashed.startswith("$2y$"):
        hashed = "$2b$" + hashed[4:]
    try:
        return bcrypt.checkpw(password.encode(), hashed.encode())
    except ValueError:  # malformed hash
        return False


def validate_user_name(user: str) -> str:
    if not user or ":" in user or any(c.isspace() for c in user):
        raise InvalidInputError(f"invalid user name {user!r}: it must be non-empty, without ':' or spaces")
    return user


def parse(text: str, source: str = "htpasswd") -> dict[str, str]:
    """user -> bcrypt hash; an InvalidInputError names the line of a malformed entry."""
    users: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user:
            raise InvalidInputError(f"{source}, line {number}: expected 'user:bcrypt_hash', found {line[:40]!r}")
        if not hashed.startswith(BCRYPT_PREFIXES):
            raise InvalidInputError(f"{source}, line {number}: user {user!r} has no bcrypt hash "
                                    "(only bcrypt is supported; create entries with torc-htpasswd add)")
        users[user] = hashed
    return users


def load(path: str | Path) -> dict[str, str]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidInputError(f"cannot read the auth file {path}: {exc.strerror}") from None
    return parse(text, str(path))


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _write(path: Path, lines: list[str]) -> None:
    """Write atomically, readable only by the owner (the file holds password hashes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write("\n".join(lines) + ("\n" if lines else ""))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def set_user(path: str | Path, user: str, hashed: str) -> bool:
    """Add or replace `user`; True when the user was new. Comments and other lines are kept."""
    path = Path(path)
    validate_user_name(user)
    lines, new = [], True
    for line in _lines(path):
        if line.strip().partition(":")[0] == user and not line.lstrip().startswith("#"):
            if new:
                lines.append(f"{user}:{hashed}")
            new = False
        else:
            lines.append(line)
    if new:
        lines.append(f"{user}:{hashed}")
    _write(path, lines)
    return new


def remove_user(path: str | Path, user: str) -> bool:
    """Remove `user`; False when the file has no such user."""
    path = Path(path)
    lines = _lines(path)
    kept = [line for line in lines
            if line.lstrip().startswith("#") or line.strip().partition(":")[0] != user]
    if len(kept) == len(lines):
        return False
    _write(path, kept)
    return True
