"""Fixtures of the dashboard tests: the dashboard in-process over the in-process API (fast route tests),
and a real torc-server serving it at `/` plus headless Chromium (browser tests)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
from starlette.testclient import TestClient

from tests.server_support import start_server
from torc.client import TorcClient
from torc.dashboard import DashboardConfig, create_dashboard
from torc.dashboard.app import OUTPUT_DIR_ENV
from torc.server.process import ServerProcess

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
# Read at import: the suite clears TORC_* variables for each test.
ARTIFACTS = Path(os.environ.get("TORC_TEST_ARTIFACTS") or REPO / "test-artifacts" / "dashboard")


class FakeLauncher:
    """Records the commands the dashboard would start instead of starting them."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], Path]] = []

    def __call__(self, argv: list[str], log: Path) -> int:
        self.calls.append((argv, log))
        return 4242


@pytest.fixture
def launcher() -> FakeLauncher:
    return FakeLauncher()


@pytest.fixture
def dash_config(api: TorcClient, tmp_path: Path, launcher: FakeLauncher) -> DashboardConfig:
    return DashboardConfig(api_url="http://testserver/torc-service/v1", output_dir=tmp_path / "out",
                           client_factory=lambda url: api, launcher=launcher)


@pytest.fixture
def dash(dash_config: DashboardConfig) -> TestClient:
    """The standalone dashboard in-process (no lifespan: the API client belongs to the `api` fixture)."""
    return TestClient(create_dashboard(dash_config), follow_redirects=False)


# ---- browser tests -----------------------------------------------------------------------------


def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def dash_folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dash")


@pytest.fixture(scope="module")
def dash_server(dash_folder: Path) -> Iterator[ServerProcess]:
    """torc-server serving the dashboard at `/`, reading job logs from dash_folder/out (where the runs
    of runner_support.run write)."""
    with mock.patch.dict(os.environ, {OUTPUT_DIR_ENV: str(dash_folder / "out")}):
        server = start_server(dash_folder / "torc.db", dash_folder / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (scripts/chromium-up.sh installs it as root on Debian)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                    "--disable-background-networking", "--disable-component-update",
                                    "--disable-sync", "--no-first-run", "--disable-quic"])
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    """A fresh page; a screenshot of where it ended goes to the artifacts folder, pass or fail."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    pg.on("dialog", lambda dialog: dialog.accept())  # the confirm() of destructive buttons
    yield pg
    try:
        pg.screenshot(path=str(artifacts_dir() / f"{request.node.name}.png"), full_page=True)
    finally:
        context.close()
