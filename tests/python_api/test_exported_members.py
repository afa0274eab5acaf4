"""torc's public API: a sorted __all__ whose every name exists and is documented (as httpx checks)."""

from __future__ import annotations

import subprocess
import sys

import torc


def test_all_is_sorted_and_unique() -> None:
    assert list(torc.__all__) == sorted(torc.__all__)
    assert len(set(torc.__all__)) == len(torc.__all__)


def test_every_exported_name_exists_and_has_a_docstring() -> None:
    for name in torc.__all__:
        value = getattr(torc, name)
        if name == "__version__":
            assert isinstance(value, str)
            continue
        if getattr(value, "__module__", "").startswith("torc.core."):
            continue  # the error hierarchy and JobStatus are documented in their modules
        assert value.__doc__ and value.__doc__.strip(), f"torc.{name} has no docstring"


def test_public_names_in_modules_are_exported() -> None:
    """Everything the docs promise is reachable from `import torc`."""
    for name in ("connect", "TorcApi", "WorkflowBuilder", "run_workflow", "wait_for_completion",
                 "map_function_to_jobs", "results_dataframe", "job_logs"):
        assert name in torc.__all__


def test_unknown_attribute_raises_attribute_error() -> None:
    try:
        torc.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_import_torc_stays_light() -> None:
    """`import torc` must not pull in the client, pandas or pydantic-heavy modules (CLI start-up)."""
    code = "import sys, torc; print(sorted(m for m in ('httpx', 'pandas', 'torc.execution', 'torc.builder') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
