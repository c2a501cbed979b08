"""How long `storypipe report` takes for a whole project: 100 stories (the size of the co-production
study), a third of them anonymised, each as long as a 40-minute interview (6,000 words).

The raw engine to compare with is spaCy itself: anonymising means running it over every word of
each anonymised story, so `nlp.pipe` over those same words is the floor.

    .venv/bin/python bench/report_speed.py [--stories 100] [--words 6000]

The stories are the fixture stories of tests/support/report_fixtures.py, lengthened and copied under new
ids. Results go to stdout; the README quotes them.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storypipe.core.store import Store  # noqa: E402
from storypipe.core.models import Transcript  # noqa: E402
from storypipe.core.settings import load_settings  # noqa: E402
from storypipe.tasks import report# noqa: E402
from storypipe.tasks.common.nlp import load_nlp  # noqa: E402
from tests.support import report_fixtures as fx  # noqa: E402

def lengthen(transcript: Transcript, words: int) -> Transcript:
    """The transcript's turns said again and again, later in time, until it has `words` words."""
    base = list(transcript.segments)
    segments, offset = list(base), transcript.duration_s
    while sum(len(s.words) for s in segments) < words:
        for seg in base:
            shifted = [w.model_copy(update={"start": w.start + offset, "end": w.end + offset}) for w in seg.words]
            segments.append(seg.model_copy(update={"id": len(segments), "start": seg.start + offset,
                                                   "end": seg.end + offset, "words": shifted}))
        offset += transcript.duration_s
    return transcript.model_copy(update={"segments": segments, "duration_s": offset})


def project(root: Path, n: int, words: int) -> Store:
    """n stories: copies of the twelve fixture stories, lengthened, every third anonymised."""
    seed = fx.build_root(root / "seed")
    store = Store(root / "project").ensure()
    for i in range(n):
        source = fx.story_id(1 + i % 12)
        sid = f"story-{i:03d}-{i:08x}"
        store.story_dir(sid).mkdir(parents=True)
        for path_of in (store.quotes_path, store.keyphrases_path):
            shutil.copy2(path_of(source), path_of(sid))
        transcript = lengthen(seed.read_transcript(source), words)
        store.write_transcript(transcript.model_copy(update={"story_id": sid}))
        story = seed.read_story(source)
        story.story_id = sid
        story.consent.anonymise = i % 3 == 0
        store.write_story(story)
    return store


def read_everything(store: Store) -> None:
    for story in store.stories():
        store.read_transcript(story.story_id)
        store.read_quotes(story.story_id)
        store.read_keyphrases(story.story_id)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stories", type=int, default=100)
    parser.add_argument("--words", type=int, default=6000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = project(Path(tmp), args.stories, args.words)
        settings = load_settings(store.root)
        load_time = timed(lambda: load_nlp(settings.extract.spacy_model))
        nlp = load_nlp(settings.extract.spacy_model)
        hidden = [store.read_transcript(s.story_id).text
                  for s in store.stories() if s.consent.anonymise]
        read = timed(lambda: read_everything(store))
        floor = timed(lambda: list(nlp.pipe(hidden)))
        cold = timed(lambda: report.write_report(store, settings))  # anonymises, fills the cache
        warm = statistics.median(timed(lambda: report.write_report(store, settings)) for _ in range(args.repeat))
        tracemalloc.start()
        pdf = timed(lambda: report.write_report(store, settings, pdf=True)) - warm
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        folder = next(store.reports.iterdir())
        size = {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}
    print(f"{args.stories} stories of {args.words} words ({len(hidden)} anonymised):")
    print(f"  loading spaCy once:                   {load_time:7.2f} s")
    print(f"  reading every story's JSON:           {read:7.2f} s")
    print(f"  spaCy over the anonymised text:       {floor:7.2f} s  (the raw engine)")
    print(f"  storypipe report, first time:         {cold:7.2f} s  ({cold / floor:.2f}x the raw engine)")
    print(f"  storypipe report again (median of {args.repeat}): {warm:7.2f} s  (anonymised text from the cache)")
    print(f"  the PDF on top:                       {pdf:7.2f} s")
    print(f"  Python heap peak, report with PDF:    {peak:7.1f} MiB")
    print("  sizes: " + ", ".join(f"{k} {v / 1024:.0f} KiB" for k, v in sorted(size.items())))


if __name__ == "__main__":
    main()
