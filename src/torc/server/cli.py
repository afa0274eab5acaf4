"""`torc-server run`: serve torc's REST API over a SQLite database."""

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


def _bind(host: str, port: int) -> socket.socket:
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
    """torc-server: the central torc service (REST API, SQLite storage, event stream)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(run)


@main.command()
@click.option("-d", "--database", envvar="DATABASE_URL", default="torc.db", show_default=True,
              help="SQLite database file (created if missing). Also read from DATABASE_URL.")
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
def run(database: str, host: str, port: int, completion_check_interval_secs: float, log_level: str,
        threads: int | None) -> None:
    """Run the server until SIGINT or SIGTERM."""
    import uvicorn

    from torc.server.app import ServerConfig, create_app
    from torc.storage import open_store

    level = {"warn": "warning", "trace": "debug"}.get(log_level.lower(), log_level.lower())
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        store = open_store(database)  # fail here, with a clean message, on a bad path
    except TorcError as exc:
        raise click.ClickException(exc.message) from None
    except Exception as exc:  # sqlite3.OperationalError and friends
        raise click.ClickException(f"cannot open database {database!r}: {exc}") from None
    sock = _bind(host, port)
    actual_port = sock.getsockname()[1]
    if port == 0:
        print(f"TORC_SERVER_PORT={actual_port}", flush=True)
    app = create_app(ServerConfig(database=database, completion_check_interval_secs=completion_check_interval_secs,
                                  threads=threads), store=store)

    logging.getLogger("torc.server").info(
        "torc-server %s listening on http://%s:%d/torc-service/v1 (database %s)",
        _version(), host, actual_port, os.path.abspath(database),
    )
    config = uvicorn.Config(app, log_level=level, access_log=level == "debug", timeout_graceful_shutdown=5)
    try:
        _server_class()(config).run(sockets=[sock])
    finally:
        store.close()
        sock.close()


def _version() -> str:
    import torc

    return torc.__version__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
