"""`torc-htpasswd`: manage the bcrypt htpasswd file of `torc-server run --auth-file`."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

import click

from torc.core.errors import TorcError
from torc.server import htpasswd

file_option = click.option("-f", "--file", "path", envvar="TORC_AUTH_FILE", required=True,
                           type=click.Path(dir_okay=False, path_type=Path),
                           help="The htpasswd file [env TORC_AUTH_FILE].")
password_option = click.option("--password", default=None,
                               help="The password (visible in the process list: prefer the prompt).")
cost_option = click.option("--cost", default=htpasswd.DEFAULT_COST, show_default=True, type=click.IntRange(4, 31),
                           help="bcrypt cost factor (each step doubles the time to check a password).")


def _password(given: str | None, confirm: bool) -> str:
    if given is not None:
        return given
    value = click.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    if not value:
        raise click.ClickException("the password must not be empty")
    return value


def _default_user() -> str:
    return os.environ.get("USER") or os.environ.get("USERNAME") or getpass.getuser()


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except TorcError as exc:
            raise click.ClickException(exc.message) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="torc", prog_name="torc-htpasswd")
def main() -> None:
    """Manage torc-server's htpasswd file (bcrypt `user:hash` lines)."""


@main.command()
@file_option
@password_option
@cost_option
@click.argument("user")
def add(path: Path, password: str | None, cost: int, user: str) -> None:
    """Add USER, or change their password."""
    htpasswd.validate_user_name(user)
    new = htpasswd.set_user(path, user, htpasswd.hash_password(_password(password, confirm=True), cost))
    click.echo(f"{'Added' if new else 'Updated'} user {user} in {path}")


@main.command()
@file_option
@click.argument("user")
def remove(path: Path, user: str) -> None:
    """Remove USER."""
    if not htpasswd.remove_user(path, user):
        raise click.ClickException(f"user {user!r} is not in {path}")
    click.echo(f"Removed user {user} from {path}")


@main.command("list")
@file_option
def list_(path: Path) -> None:
    """List the users, one a line."""
    for user in htpasswd.load(path):
        click.echo(user)


@main.command()
@file_option
@password_option
@click.argument("user")
def verify(path: Path, password: str | None, user: str) -> None:
    """Check USER's password; exit status 1 when it does not match."""
    users = htpasswd.load(path)
    if user not in users:
        raise click.ClickException(f"user {user!r} is not in {path}")
    if not htpasswd.check_password(_password(password, confirm=False), users[user]):
        click.echo(f"Password for {user} is NOT correct", err=True)
        sys.exit(1)
    click.echo(f"Password for {user} is correct")


@main.command("hash")
@password_option
@cost_option
@click.argument("user", required=False)
def hash_(password: str | None, cost: int, user: str | None) -> None:
    """Print a `user:hash` line to send to the server's administrator (USER defaults to $USER)."""
    user = htpasswd.validate_user_name(user or _default_user())
    click.echo(f"{user}:{htpasswd.hash_password(_password(password, confirm=True), cost)}")


if __name__ == "__main__":  # pragma: no cover
    main()
