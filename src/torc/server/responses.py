"""Fast JSON responses: handlers return plain dicts serialized once with orjson."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_body(status_code: int, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"message": message, **extra}, "code": status_code, "errorMessage": message}


def error_response(status_code: int, message: str, **extra: Any) -> JSON:
    return JSON(error_body(status_code, message, **extra), status_code=status_code)
