"""The findings report opened in a real browser (Playwright + Debian's headless Chromium), straight
from the file, as a team member would open report.html: the charts inside it must render.

Set STORYPIPE_SCREENSHOTS=docs to refresh the README's screenshot (docs/report*.png)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from storypipe.core.settings import load_settings
from storypipe.tasks import report
from tests.support import report_fixtures as fx
from tests.support.browser import launch_browser

SHOTS = os.environ.get("STORYPIPE_SCREENSHOTS")


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    store = fx.build_root(tmp_path_factory.mktemp("report-browser"))
    written = report.write_report(store, load_settings(store.root))
    html = written.folder / "report.html"
    # Alone in a folder of its own: it must not need the charts folder beside it.
    alone = tmp_path_factory.mktemp("mailed") / "report.html"
    alone.write_bytes(html.read_bytes())
    return alone


def test_the_report_opens_in_chromium_with_its_charts_drawn(report_html):
    with launch_browser() as browser:
        page = browser.new_page(viewport={"width": 1100, "height": 1000})
        failed = []
        page.on("requestfailed", lambda r: failed.append(r.url))
        page.goto(report_html.as_uri())
        assert page.title() == "Findings: Community Reporting project"
        images = page.locator("main img")
        assert images.count() == 4
        for i in range(4):
            img = images.nth(i)
            assert img.evaluate("i => i.complete && i.naturalWidth") == 1400  # decoded, print resolution
            alt = img.get_attribute("alt")
            assert alt.startswith("Bar chart, stories by ") and "fewer than 5" in alt
            img.scroll_into_view_if_needed()
            shot = np.asarray(Image.open(io.BytesIO(img.screenshot())).convert("RGB")).astype(int)
            not_white = np.any(shot < 235, axis=2).mean()
            bars = np.all(np.abs(shot - (0x1F, 0x4E, 0x79)) < 24, axis=2).mean()
            assert not_white > 0.05 and bars > 0.03, (i, not_white, bars)
            assert shot.shape[1] > 600  # drawn at a readable size on the page
        assert failed == []
        # The links inside the report work: story 12's anchor exists for its quotes to jump to.
        page.click("text=story 12 >> nth=0")
        assert page.evaluate("location.hash") == "#story-12"
        assert "a storyteller (anonymised)" in page.inner_text("tr:has(#story-12)")
        if SHOTS:
            for heading, name in (("Who shared their stories", "report.png"), ("Themes", "report-themes.png")):
                top = page.evaluate("h => [...document.querySelectorAll('h2')].find(e => e.textContent === h)"
                                    ".getBoundingClientRect().top + scrollY", heading)
                page.evaluate(f"scrollTo(0, {top} - 20)")
                page.screenshot(path=str(Path(SHOTS) / name))
