"""`torc-server run`: serve torc's REST API over a SQLite database or a PostgreSQL one."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys

import click

from torc.core.errors import TorcError

LOG_LEVELS = ("error", "warn", "warning", "info", "debug", "trace")


def _server_class():
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """Ends open event streams as soon as shutdown begins (uvicorn would wait for them), and
        exits 0 on SIGINT/SIGTERM (uvicorn re-raises the signal after its graceful shutdown)."""

        def handle_exit(self, sig, frame) -> None:
            ctx = getattr(self.config.app.state, "ctx", None)
            if ctx is not None:
                ctx.bus.close_all()
            super().handle_exit(sig, frame)

        @contextlib.contextmanager
        def capture_signals(self):
            with super().capture_signals():
                yield
                self._captured_signals.clear()

    return GracefulServer


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free one); a clear error when it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="torc", prog_name="torc-server")
@click.pass_context
def main(ctx: click.Context) -> None:
    """torc-server: the central torc service (REST API, SQLite or PostgreSQL storage, event stream)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(run)


@main.command()
@click.option("-d", "--database", envvar="DATABASE_URL", default="torc.db", show_default=True,
              help="SQLite database file (created if missing), or a PostgreSQL URL "
                   "postgresql://USER:PASSWORD@HOST:PORT/DBNAME (the database must exist; tables are created). "
                   "Also read from DATABASE_URL. See docs/server.md for which to choose.")
@click.option("-u", "--host", "--url", "host", default="localhost", show_default=True, help="Address to bind.")
@click.option("-p", "--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on; 0 picks a free port and prints TORC_SERVER_PORT=<n> first.")
@click.option("-c", "--completion-check-interval-secs", envvar="TORC_COMPLETION_CHECK_INTERVAL_SECS", default=30.0,
              show_default=True, type=click.FloatRange(min=0.01),
              help="Safety-net pass that releases dependents of unprocessed completions. Completions "
                   "normally unblock their dependents immediately.")
@click.option("-l", "--log-level", envvar="TORC_LOG_LEVEL", default="info", show_default=True,
              type=click.Choice(LOG_LEVELS, case_sensitive=False))
@click.option("-t", "--threads", default=None, type=click.IntRange(min=1),
              help="Worker threads for request handling (default 40).")
@click.option("--auth-file", envvar="TORC_AUTH_FILE", default=None, type=click.Path(dir_okay=False),
              help="htpasswd file of bcrypt `user:hash` lines (torc-htpasswd); enables HTTP Basic "
                   "authentication [env TORC_AUTH_FILE].")
@click.option("--require-auth", is_flag=True, envvar="TORC_REQUIRE_AUTH",
              help="Refuse requests without valid credentials (401).")
@click.option("--credential-cache-ttl-secs", envvar="TORC_CREDENTIAL_CACHE_TTL_SECS", default=60.0,
              show_default=True, type=click.FloatRange(min=0),
              help="How long verified credentials are remembered (bcrypt is slow); 0 disables the cache.")
@click.option("--enforce-access-control", is_flag=True, envvar="TORC_ENFORCE_ACCESS_CONTROL",
              help="Users see and change only their own workflows and those shared with their access groups.")
@click.option("--admin-user", "admin_users", multiple=True,
              help="Member of the system admin group (repeatable; also TORC_ADMIN_USERS, comma-separated). "
                   "The group is rebuilt from this list at every start.")
@click.option("--tls-cert", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Serve HTTPS with this PEM certificate (chain); needs --tls-key.")
@click.option("--tls-key", default=None, type=click.Path(exists=True, dir_okay=False),
              help="The PEM private key of --tls-cert.")
@click.option("--max-request-bytes", envvar="TORC_MAX_REQUEST_BYTES", default=64 * 1024 * 1024, show_default=True,
              type=click.IntRange(min=0),
              help="Refuse request bodies larger than this with 413 (0: no limit).")
def run(database: str, host: str, port: int, completion_check_interval_secs: float, log_level: str,
        threads: int | None, auth_file: str | None, require_auth: bool, credential_cache_ttl_secs: float,
        enforce_access_control: bool, admin_users: tuple[str, ...], tls_cert: str | None,
        tls_key: str | None, max_request_bytes: int) -> None:
    """Run the server until SIGINT or SIGTERM."""
    import uvicorn

    from torc.server.app import ServerConfig, create_app
    from torc.server.auth import AuthSettings
    from torc.storage import open_store

    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    env_admins = [u.strip() for u in os.environ.get("TORC_ADMIN_USERS", "").split(",") if u.strip()]
    auth = AuthSettings(auth_file=auth_file, require_auth=require_auth,
                        credential_cache_ttl_secs=credential_cache_ttl_secs,
                        admin_users=tuple(dict.fromkeys([*admin_users, *env_admins])),
                        enforce_access_control=enforce_access_control)

    level = {"warn": "warning", "trace": "debug"}.get(log_level.lower(), log_level.lower())
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        store = open_store(database)  # fail here, with a clean message, on a bad path
    except TorcError as exc:
        raise click.ClickException(exc.message) from None
    except Exception as exc:  # sqlite3.OperationalError and friends
        raise click.ClickException(f"cannot open database {database!r}: {exc}") from None
    sock = bind_socket(host, port)
    actual_port = sock.getsockname()[1]
    if port == 0:
        print(f"TORC_SERVER_PORT={actual_port}", flush=True)
    try:
        app = create_app(ServerConfig(database=database,
                                      completion_check_interval_secs=completion_check_interval_secs,
                                      threads=threads, auth=auth, max_request_bytes=max_request_bytes),
                         store=store)
    except TorcError as exc:  # a malformed auth file
        sock.close()
        store.close()
        raise click.ClickException(exc.message) from None
    if require_auth and not auth_file:
        logging.getLogger("torc.server").warning("--require-auth without --auth-file: every request is refused")

    logging.getLogger("torc.server").info(
        "torc-server %s listening on %s://%s:%d/torc-service/v1 (database %s)",
        _version(), "https" if tls_cert else "http", host, actual_port, _describe(database),
    )
    config = uvicorn.Config(app, log_level=level, access_log=level == "debug", timeout_graceful_shutdown=5,
                            ssl_certfile=tls_cert, ssl_keyfile=tls_key)
    try:
        _server_class()(config).run(sockets=[sock])
    finally:
        store.close()
        sock.close()


def _describe(database: str) -> str:
    from torc.storage.factory import is_postgres_url

    if is_postgres_url(database):
        from torc.storage.postgres import redact

        return redact(database)
    return os.path.abspath(database)


def _version() -> str:
    import torc

    return torc.__version__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
