"""Shared fixtures. One storypipe Prefect server serves the whole session, started only when a test
asks for it. The tests never read or write the user's ~/.prefect or ~/.cache: both point into a
folder of the session's own (the Whisper model is converted there once, in under a second)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

SESSION_DIR = Path(tempfile.mkdtemp(prefix="storypipe-tests-"))
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["XDG_CACHE_HOME"] = str(SESSION_DIR / "cache")
os.environ["PREFECT_HOME"] = str(SESSION_DIR / "prefect-home")
os.environ.pop("PREFECT_API_URL", None)  # a team's server in the shell never serves the tests
os.environ.pop("PREFECT_PROFILE", None)
os.environ["COLUMNS"] = "200"  # rich wraps at the terminal's width: the tests read whole lines, in any order


def pytest_collection_modifyitems(session, config, items):
    """The end-to-end modules first: under pytest-xdist (`make test` runs two workers, a module per
    worker at a time) the long ones start at once and the quick ones fill in around them."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)  # stable: file order kept


DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def prefect_api():
    """storypipe's own Prefect server for the session (storypipe/prefect_server.py), given to this
    process and, through PREFECT_API_URL, to every `storypipe` command a test starts."""
    from storypipe import prefect_server
    from storypipe.settings import load_settings

    root = SESSION_DIR / "prefect-root"
    root.mkdir(exist_ok=True)
    with prefect_server.connect(root, load_settings(root)) as url:
        yield url
    prefect_server.stop(root)


@pytest.fixture(scope="session")
def prefect_harness(prefect_api):
    """The name the flow tests use: the session's server."""
    return prefect_api


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(SESSION_DIR, ignore_errors=True)


@pytest.fixture
def settings(tmp_path, monkeypatch):
    """Settings for a test root; the converted model cache is shared across tests (converting costs time)."""
    from storypipe.settings import load_settings

    for key in [k for k in os.environ if k.startswith("STORYPIPE_")]:
        monkeypatch.delenv(key)
    return load_settings(tmp_path)
