"""Helpers shared by the tests: story and transcript factories, recordings made at test time, the
report's fixture set, headless Chromium; and DATA, the folder of real recordings (tests/data)."""

from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"
