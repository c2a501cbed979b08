"""pytextrank prints a git error when imported; storypipe silences it without touching sys.stdout,
which is shared by every thread (silencing it from the warm-up thread once swallowed a run's
summary printed by the main thread at the same moment)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import threading
from storypipe.tasks.common.nlp import import_textrank

worker = threading.Thread(target=import_textrank)
worker.start()
printed = 0
while worker.is_alive() or printed < 50:
    print(f"main thread line {printed}", flush=True)
    printed += 1
worker.join()
from spacy.language import Language
assert Language.has_factory("textrank")  # the import did its job
print("printed", printed)
"""


def test_importing_textrank_in_a_thread_loses_nothing_the_main_thread_prints():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[3])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    printed = int(lines[-1].split()[-1])
    assert lines[:-1] == [f"main thread line {i}" for i in range(printed)]  # every line, in order
    assert "site-packages" not in out.stdout + out.stderr  # and pytextrank's git error is silent
