"""Headless Chromium for browser tests: Playwright drives Debian's chromium (`make setup` installs it
with scripts/install-system-deps.sh), never a browser of Playwright's own (`playwright install`
can't download here). Set STORYPIPE_CHROMIUM to use another Chromium binary.

    from tests.support.browser import launch_browser

    with launch_browser() as browser:
        page = browser.new_page()
        page.goto(url)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser

DEFAULT_CHROMIUM = "/usr/bin/chromium"

# Root in a container: no sandbox, no GPU, a small /dev/shm. The network is closed, so Chromium is
# also kept from reaching out on its own (background requests, component updates, sync, QUIC).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]


def chromium_path() -> str:
    """The Chromium binary to drive: $STORYPIPE_CHROMIUM when set, else Debian's /usr/bin/chromium."""
    return os.environ.get("STORYPIPE_CHROMIUM") or DEFAULT_CHROMIUM


def chromium_available() -> bool:
    path = chromium_path()
    return os.path.isfile(path) and os.access(path, os.X_OK)


@contextmanager
def launch_browser(*, headless: bool = True, args: list[str] | None = None) -> Iterator[Browser]:
    """Start Playwright and a headless Chromium; close both on exit. `args` are added to CHROMIUM_ARGS."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if not chromium_available():
        raise FileNotFoundError(
            f"no Chromium at {path}: run `make setup` (installs Debian's chromium) or set STORYPIPE_CHROMIUM"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=path, headless=headless, args=[*CHROMIUM_ARGS, *(args or [])]
        )
        try:
            yield browser
        finally:
            browser.close()
