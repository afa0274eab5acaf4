"""Authentication: who is calling. HTTP Basic credentials checked against a bcrypt htpasswd file.

Modes (see docs/security.md):
  no auth file                 everyone is anonymous (credentials are ignored)
  --auth-file                  good credentials give an identity; no credentials: anonymous
  --auth-file --require-auth   credentials are mandatory
  --require-auth, no file      every request is refused

Decision: bad credentials (unknown user, wrong password, a malformed Authorization header) are a
401 in every mode with an auth file. torc carries on with no identity, which hides a typo in a
password until some later 403; a 401 names the problem where it happens.

`AuthMiddleware` resolves the identity once per request and stores it in the ASGI scope;
`/ping` stays open so health checks and start-up probes need no password. Verified credentials are
cached for `credential_cache_ttl_secs` (bcrypt costs ~250 ms at cost 12).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio.to_thread
from fastapi.security.utils import get_authorization_scheme_param
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from torc.server import htpasswd
from torc.server.responses import error_response

log = logging.getLogger("torc.server.auth")
REALM = 'Basic realm="Torc"'
SCOPE_KEY = "torc.identity"
ANONYMOUS = "anonymous"
# bcrypt of a random password: unknown users cost as much as known ones (no user enumeration by timing).
_DUMMY_HASH = "$2b$12$eSJAFHUoBu1a/u5XKx.2neDAvEBjv.9.Jg0PGfEjtnoyStgWMUx7O"


@dataclass(frozen=True)
class Identity:
    """The caller: `name` is the authenticated user, or "anonymous" when `authenticated` is False."""

    name: str = ANONYMOUS
    authenticated: bool = False
    is_admin: bool = False


ANONYMOUS_IDENTITY = Identity()


class AuthenticationFailed(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass
class AuthSettings:
    auth_file: str | None = None
    require_auth: bool = False
    credential_cache_ttl_secs: float = 60.0
    admin_users: tuple[str, ...] = ()
    enforce_access_control: bool = False


@dataclass
class CredentialCache:
    """(user, sha256(password)) -> expiry; only successful checks are cached."""

    ttl: float
    _entries: dict[tuple[str, bytes], float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def _key(user: str, password: str) -> tuple[str, bytes]:
        return user, hashlib.sha256(password.encode()).digest()

    def hit(self, user: str, password: str) -> bool:
        if self.ttl <= 0:
            return False
        key = self._key(user, password)
        with self._lock:
            expiry = self._entries.get(key)
            if expiry is None:
                return False
            if expiry < time.monotonic():
                del self._entries[key]
                return False
            return True

    def add(self, user: str, password: str) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) > 10_000:  # bounded: drop expired, then everything if still full
                now = time.monotonic()
                self._entries = {k: v for k, v in self._entries.items() if v >= now}
                if len(self._entries) > 10_000:
                    self._entries.clear()
            self._entries[self._key(user, password)] = time.monotonic() + self.ttl

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class Authenticator:
    """Checks Basic credentials against the htpasswd file (re-read when it changes on disk)."""

    def __init__(self, settings: AuthSettings):
        self.settings = settings
        self.admins = frozenset(settings.admin_users)
        self.cache = CredentialCache(settings.credential_cache_ttl_secs)
        self.path = Path(settings.auth_file) if settings.auth_file else None
        self._users: dict[str, str] = {}
        self._mtime: float | None = None
        self._lock = threading.Lock()
        if self.path is not None:
            self._reload()  # a bad file fails at start, with a message naming the line

    @property
    def enabled(self) -> bool:
        return self.path is not None or self.settings.require_auth

    def _reload(self) -> None:
        assert self.path is not None
        mtime = self.path.stat().st_mtime if self.path.exists() else None
        if mtime == self._mtime and self._mtime is not None:
            return
        users = htpasswd.load(self.path)
        with self._lock:
            self._users, self._mtime = users, mtime
        self.cache.clear()  # a removed user or changed password takes effect at once

    def _hash_for(self, user: str) -> str | None:
        if self.path is not None:
            try:
                self._reload()
            except Exception:  # keep the last good file; the admin sees the problem in the log
                log.exception("cannot reload the auth file %s", self.path)
        with self._lock:
            return self._users.get(user)

    def check_password(self, user: str, password: str) -> bool:
        """The slow path (bcrypt); run it in a worker thread."""
        hashed = self._hash_for(user)
        ok = htpasswd.check_password(password, hashed or _DUMMY_HASH)
        return ok and hashed is not None

    def identity(self, user: str) -> Identity:
        return Identity(user, True, user in self.admins)

    async def authenticate(self, authorization: str | None) -> Identity:
        """The identity for an Authorization header value; AuthenticationFailed means 401."""
        if not self.enabled:
            return ANONYMOUS_IDENTITY
        if self.path is None:  # --require-auth without an auth file
            raise AuthenticationFailed("authentication is required but the server has no auth file; "
                                       "ask its administrator to start it with --auth-file")
        if not authorization:
            if self.settings.require_auth:
                raise AuthenticationFailed("authentication required: send HTTP Basic credentials "
                                           "(torc --password/--prompt-password, or TORC_PASSWORD)")
            return ANONYMOUS_IDENTITY
        scheme, param = get_authorization_scheme_param(authorization)
        if scheme.lower() != "basic":
            raise AuthenticationFailed(f"unsupported authorization scheme {scheme!r}; use HTTP Basic")
        try:
            user, sep, password = base64.b64decode(param, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise AuthenticationFailed("malformed Basic credentials") from None
        if not sep or not user:
            raise AuthenticationFailed("malformed Basic credentials (expected user:password)")
        if self.cache.hit(user, password):
            return self.identity(user)
        if not await anyio.to_thread.run_sync(self.check_password, user, password):
            raise AuthenticationFailed(f"invalid user name or password for user {user!r}")
        self.cache.add(user, password)
        return self.identity(user)


class AuthMiddleware:
    """Resolves the caller once per request (HTTP and WebSocket) and stores it in the scope."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator, public_paths: frozenset[str] = frozenset()):
        self.app = app
        self.authenticator = authenticator
        self.public_paths = public_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        try:
            identity = await self.authenticator.authenticate(conn.headers.get("authorization"))
        except AuthenticationFailed as exc:
            if scope["path"] in self.public_paths:
                identity = ANONYMOUS_IDENTITY
            else:
                response = error_response(401, exc.message)
                response.headers["WWW-Authenticate"] = REALM
                await response(scope, receive, send)
                return
        scope[SCOPE_KEY] = identity
        await self.app(scope, receive, send)


def current_identity(conn: HTTPConnection) -> Identity:
    return conn.scope.get(SCOPE_KEY, ANONYMOUS_IDENTITY)
