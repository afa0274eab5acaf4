"""Persistence: the Store port, its adapters and the schema migrations."""

from torc.storage.base import Connection, Store
from torc.storage.factory import open_store

__all__ = ["Connection", "Store", "open_store"]
