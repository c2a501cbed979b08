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


from tests.support import DATA  # noqa: E402  (the folder of real recordings)


@pytest.fixture(scope="session")
def prefect_api():
    """storypipe's own Prefect server for the session (storypipe/app/prefect_server.py), given to this
    process and, through PREFECT_API_URL, to every `storypipe` command a test starts."""
    from storypipe.app import prefect_server
    from storypipe.core.settings import load_settings

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
def clean_env(monkeypatch):
    """The project's own configuration (real tiny.en), whatever STORYPIPE_* the caller has set."""
    for key in [k for k in os.environ if k.startswith("STORYPIPE_")]:
        monkeypatch.delenv(key)
    return monkeypatch


@pytest.fixture
def settings(tmp_path, clean_env):
    """Settings for a test root; the converted model cache is shared across tests (converting costs time)."""
    from storypipe.core.settings import load_settings

    return load_settings(tmp_path)


@pytest.fixture
def store(tmp_path):
    """An empty root at tmp_path (the root of `settings` too), its folders made."""
    from storypipe.core.store import Store

    return Store(tmp_path).ensure()


@pytest.fixture(scope="module")
def jfk():
    """tests/data/jfk.flac (11 s of real speech) as float32 samples at 16 kHz, the engines' input."""
    import numpy as np

    from storypipe.tasks.common.audio import decode_pcm16

    return decode_pcm16(DATA / "jfk.flac", 16000).astype(np.float32) / 32768
