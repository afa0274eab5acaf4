"""torc: distributed workflow orchestration (a Python re-implementation of NREL's torc)."""

from torc.core.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    TorcError,
)
from torc.core.status import JobStatus

__version__ = "0.1.0"

__all__ = [
    "ConflictError",
    "ForbiddenError",
    "InvalidInputError",
    "JobStatus",
    "NotFoundError",
    "TorcError",
    "__version__",
]
