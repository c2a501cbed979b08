"""Shared fixtures. Prefect's test harness starts once per session, only for tests that ask for it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def settings(tmp_path, monkeypatch):
    """Settings for a test root; the converted model cache is shared across tests (converting costs time)."""
    from storypipe.settings import load_settings

    for key in [k for k in os.environ if k.startswith("STORYPIPE_")]:
        monkeypatch.delenv(key)
    return load_settings(tmp_path)
