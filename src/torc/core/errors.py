"""The one exception hierarchy of torc.

    TorcError                 base; carries a message and an HTTP status for the server edge
    ├── InvalidInputError     422: bad field values, illegal transitions, stale run_id
    ├── NotFoundError         404: an id that does not exist
    ├── ConflictError         409: already claimed, already exists
    ├── UnauthorizedError     401: missing or bad credentials
    └── ForbiddenError        403: access control said no

Each edge translates exactly once: the server maps these to a status code and a JSON body,
the client maps error responses back to these classes, the CLI prints one clean line.
"""

from __future__ import annotations


class TorcError(Exception):
    status_code = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidInputError(TorcError):
    status_code = 422


class NotFoundError(TorcError):
    status_code = 404

    @classmethod
    def for_id(cls, kind: str, id_: object) -> NotFoundError:
        return cls(f"{kind} with id {id_} not found")


class ConflictError(TorcError):
    status_code = 409


class UnauthorizedError(TorcError):
    status_code = 401


class ForbiddenError(TorcError):
    status_code = 403


def error_for_status(status_code: int, message: str) -> TorcError:
    """Map an HTTP error status back to the matching exception (used by the client)."""
    cls = {404: NotFoundError, 409: ConflictError, 401: UnauthorizedError, 403: ForbiddenError}.get(status_code)
    if cls is None:
        cls = InvalidInputError if 400 <= status_code < 500 else TorcError
    err = cls(message)
    err.status_code = status_code
    return err
