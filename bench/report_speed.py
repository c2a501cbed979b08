"""How long `storypipe report` takes for a whole project: 100 stories (the size of the co-production
study), a third of them anonymised, against the time to read the same files and load spaCy alone.

    .venv/bin/python bench/report_speed.py [--stories 100]

The stories are the fixture stories of tests/report_fixtures.py, copied under new ids. Results go to
stdout; the README quotes them.
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

from storypipe.jsonio import read_model, write_model  # noqa: E402
from storypipe.layout import Layout  # noqa: E402
from storypipe.models import KeyphrasesFile, QuotesFile, Story, Transcript  # noqa: E402
from storypipe.settings import load_settings  # noqa: E402
from tasks import report  # noqa: E402
from tasks.nlp import load_nlp  # noqa: E402
from tasks.status import load_stories  # noqa: E402
from tests import report_fixtures as fx  # noqa: E402

FILES = ("story.json", "transcript.json", "quotes.json", "keyphrases.json")


def project(root: Path, n: int) -> Layout:
    """n stories: copies of the twelve fixture stories, every third anonymised."""
    seed = fx.build_root(root / "seed")
    layout = Layout(root / "project").ensure()
    for i in range(n):
        source = seed.story_dir(fx.story_id(1 + i % 12))
        sid = f"story-{i:03d}-{i:08x}"
        folder = layout.story_dir(sid)
        folder.mkdir(parents=True)
        for name in FILES:
            shutil.copy2(source / name, folder / name)
        story = read_model(folder / "story.json", Story)
        story.story_id = sid
        story.consent.anonymise = i % 3 == 0
        write_model(folder / "story.json", story)
    return layout


def read_everything(layout: Layout) -> None:
    for story in load_stories(layout):
        folder = layout.story_dir(story.story_id)
        read_model(folder / "transcript.json", Transcript)
        read_model(folder / "quotes.json", QuotesFile)
        read_model(folder / "keyphrases.json", KeyphrasesFile)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stories", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        layout = project(Path(tmp), args.stories)
        settings = load_settings(layout.root)
        load_time = timed(lambda: load_nlp(settings.extract.spacy_model))
        reads, reports = [], []
        for _ in range(args.repeat):
            reads.append(timed(lambda: read_everything(layout)))
            reports.append(timed(lambda: report.write_report(layout, settings)))
        tracemalloc.start()
        report.write_report(layout, settings, pdf=True)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        pdf_time = timed(lambda: report.write_report(layout, settings, pdf=True)) - statistics.median(reports)
        folder = next(layout.reports.iterdir())
        size = {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}
    read, made = statistics.median(reads), statistics.median(reports)
    print(f"{args.stories} stories ({args.stories // 3 + (args.stories % 3 > 0)} anonymised), median of {args.repeat}:")
    print(f"  loading spaCy once:             {load_time:6.2f} s")
    print(f"  reading every story's JSON:     {read:6.2f} s")
    print(f"  storypipe report (md+html+png): {made:6.2f} s  ({made / read:.0f}x reading)")
    print(f"  the PDF on top:                 {pdf_time:6.2f} s")
    print(f"  Python heap peak with the PDF:  {peak:6.1f} MiB")
    print("  sizes: " + ", ".join(f"{k} {v / 1024:.0f} KiB" for k, v in sorted(size.items())))


if __name__ == "__main__":
    main()
