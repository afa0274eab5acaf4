"""The documented examples run as written."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_walkthrough_drives_a_whole_workflow(live_server):
    proc = subprocess.run(["bash", str(REPO / "docs/examples/curl_walkthrough.sh"), live_server.url],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "workflow 1"
    assert "report is now: ready" in lines
    assert lines[-1] == "is_complete: True"
    with live_server.client() as api:
        results = api.get("results", workflow_id=1)["items"]
        assert [r["status"] for r in results] == ["completed", "completed"]
