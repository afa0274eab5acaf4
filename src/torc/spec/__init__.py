"""Workflow specification files -> one typed model -> a workflow on the server."""

from torc.spec.load import SpecError, load_spec
from torc.spec.model import WorkflowSpec

__all__ = ["SpecError", "WorkflowSpec", "load_spec"]
