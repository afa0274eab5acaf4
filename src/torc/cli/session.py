"""How one `torc` invocation reaches a server, and its error handling."""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from torc.client import DEFAULT_URL, TorcClient
from torc.config import ConfigError, TorcConfig, load_config
from torc.core.errors import TorcError


@dataclass
class Session:
    """How this invocation reaches a server: an explicit URL, or an embedded server on a database."""

    url: str | None
    database: Path | None
    fmt: str
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    config_overrides: dict[str, Any] = field(default_factory=dict)
    auth: tuple[str, str] | None = None  # HTTP Basic credentials (--user/--password or TORC_PASSWORD)
    ca_cert: str | None = None  # PEM file that verifies an https server (--ca-cert / TORC_CA_CERT)
    _client: TorcClient | None = None
    _config: TorcConfig | None = None

    def config(self) -> TorcConfig:
        """The layered configuration, loaded on first use (so a bad file only breaks what needs it)."""
        if self._config is None:
            self._config = load_config(overrides=self.config_overrides)
        return self._config

    def client(self) -> TorcClient:
        if self._client is None:
            url = self.url or self.config().client.api_url or DEFAULT_URL
            if self.database is not None:
                from torc.cli.embedded import EmbeddedServer

                url = self.stack.enter_context(EmbeddedServer(self.database)).url
            self._client = self.stack.enter_context(TorcClient(url, auth=self.auth, ca_cert=self.ca_cert))
        return self._client

    def export_credentials(self) -> None:
        """Put the credentials and CA certificate into this process's environment (restored when
        the command ends) so that every runner, Slurm allocation, dashboard and MCP server that this
        command starts reaches the server as the same user. The password never goes on a command line."""
        values = {"TORC_CA_CERT": self.ca_cert}
        if self.auth is not None:
            values.update(TORC_USER=self.auth[0], TORC_PASSWORD=self.auth[1])
        saved = {k: os.environ.get(k) for k, v in values.items() if v is not None}
        if not saved:
            return
        os.environ.update({k: v for k, v in values.items() if v is not None})

        def restore() -> None:
            for key, old in saved.items():
                if old is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = old

        self.stack.callback(restore)


class TorcGroup(click.Group):
    """Turns TorcError into one clean line and exit code 1, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except TorcError as exc:
            click.secho(f"Error: {exc.message}", fg="red", err=True)
            sys.exit(1)
        except ConfigError as exc:
            click.secho(f"Error: {exc}", fg="red", err=True)
            sys.exit(1)
