"""How quickly the review app answers on a long story: a 60-minute interview (about 9,000 words).

Builds a synthetic transcript (no audio needed for these routes), then times the story page, the
JSON view, a segment correction and a quote decision through the real app (FastAPI TestClient,
in process). Median of 5.

    .venv/bin/python bench/review_speed.py
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fastapi.testclient import TestClient  # noqa: E402

from storypipe.core.store import Store  # noqa: E402
from storypipe.core.settings import load_settings  # noqa: E402
from storypipe.app.web.app import create_app  # noqa: E402
from storypipe.tasks.extract import extract_story  # noqa: E402
from tests.support.factories import make_story, make_transcript  # noqa: E402

SENTENCE = ("When we started the peer support group, for the first time my lived experience counted as "
            "expertise and the managers treated us as equals. ")


def timed(fn, n=5) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="review-bench-"))
    store = Store(root).ensure()
    turns = [("interviewer", "And what happened next, after that meeting?"), ("storyteller", SENTENCE * 6)] * 75
    transcript = make_transcript(turns, "long-12345678")
    sid = transcript.story_id
    store.write_story(make_story(sid, "long.wav").advance("transcribed"))
    store.write_transcript(transcript)
    extract_story(sid, store, load_settings(root))
    words = len(transcript.words())
    client = TestClient(create_app(root), base_url="http://127.0.0.1")
    csrf = re.search(r'name="csrf" content="([^"]+)"', client.get("/").text).group(1)
    head = {"X-CSRF-Token": csrf}
    page = client.get(f"/stories/{sid}")
    quote = client.get(f"/api/stories/{sid}").json()["quotes"][0]["id"]
    seg_text = transcript.segments[1].text

    def edit():
        v = client.get(f"/api/stories/{sid}").json()["versions"]["transcript"]
        client.post(f"/api/stories/{sid}/segments/1", json={"text": seg_text + " Really.", "version": v}, headers=head)

    results = {
        "story page (HTML)": timed(lambda: client.get(f"/stories/{sid}")),
        "story JSON": timed(lambda: client.get(f"/api/stories/{sid}")),
        "correct a segment (incl. fetching the version)": timed(edit),
        "approve a quote": timed(lambda: client.post(f"/api/stories/{sid}/quotes/{quote}", json={"status": "approved"},
                                                     headers=head)),
        "story list": timed(lambda: client.get("/")),
    }
    print(f"{words} words, {len(transcript.segments)} segments, {transcript.duration_s / 60:.0f} min; "
          f"story page {len(page.content) / 1024:.0f} KiB")
    for name, seconds in results.items():
        print(f"  {name}: {seconds * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
