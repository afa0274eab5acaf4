"""The HTTP client every other part of torc uses to reach the server."""

from torc.client.http import DEFAULT_URL, TorcClient

__all__ = ["DEFAULT_URL", "TorcClient"]
