"""Smoke test: Playwright drives Debian's headless Chromium, reads a heading and takes a screenshot."""

from __future__ import annotations

import io
import time
from urllib.parse import quote


from tests.support.browser import launch_browser


HTML = (
    "<!doctype html><html><head><meta charset='utf-8'><title>smoke</title></head>"
    "<body style='margin:0;background:#fff'>"
    "<h1 style='font:bold 48px sans-serif;color:#000;padding:20px'>Storypipe smoke test</h1>"
    "</body></html>"
)


def test_headless_chromium_renders_a_heading():
    started = time.perf_counter()
    with launch_browser() as browser:
        launched = time.perf_counter() - started
        assert browser.version  # e.g. "150.0.7871.100"
        page = browser.new_page(viewport={"width": 640, "height": 200})
        page.goto("data:text/html;charset=utf-8," + quote(HTML))
        assert page.inner_text("h1") == "Storypipe smoke test"
        png = page.screenshot()
    print(f"chromium {browser.version} launched in {launched:.2f} s")

    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    try:
        from PIL import Image
    except ImportError:  # pillow is in the test extra; without it, only a rough size check
        assert len(png) > 1000
        return
    image = Image.open(io.BytesIO(png)).convert("L")
    assert image.size == (640, 200)
    lo, hi = image.getextrema()
    assert hi == 255 and lo < 64, "the screenshot should show dark text on a white page"
    dark = sum(image.histogram()[:128])
    assert 0.005 < dark / (640 * 200) < 0.5, "the heading's pixels should be a small part of the page"
