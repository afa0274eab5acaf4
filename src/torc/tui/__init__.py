"""`torc tui`: a Textual terminal UI over the torc server's REST API."""

from torc.tui.app import TorcApp
from torc.tui.data import TuiData

__all__ = ["TorcApp", "TuiData"]
