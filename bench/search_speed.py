"""How fast search across stories is on a whole project: 100 forty-minute interviews (about 6,500
words each), with the real sentence embeddings.

    .venv/bin/python bench/search_speed.py [--stories 100] [--words 6500] [--queries 20] [--keep DIR]

The stories: the turns of the writers' interviews in bench/interviews/*.txt (stage directions left
out), recombined at random (seeded): each storyteller turn is 2-8 sentences drawn from every
writer's storyteller turns, each interviewer turn one of their questions, taking turns until the
story has its words, timed at the pace of a 40-minute interview. So nearly every passage is new text
to embed, as in a real project. No audio and no pipeline: a root holding only story.json and
transcript.json per story, indexed by tasks/search.index_story as the flow does after extraction.

Measured:
- indexing: every story's passages embedded and written (total, and per story);
- queries after indexing, in this process, with the index in memory as the review app keeps it:
  the median and worst of the queries (each still checks every story for changes first);
- the same queries in a fresh process (as `storypipe search` runs): loading the model and loading the
  index (reading every story's file) timed on their own, then the queries;
- with --anonymised N: what an anonymised story adds to its indexing (redacting it: spaCy over
  every word), over N of the stories.

--keep DIR keeps (and reuses) the indexed root, so the query figures can be taken again without
indexing. Results go to stdout; bench/search.md quotes them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storypipe.core.models import Consent, Segment, Source, Story, Transcript, Word  # noqa: E402
from storypipe.core.settings import load_settings  # noqa: E402
from storypipe.core.store import Store  # noqa: E402

INTERVIEWS = Path(__file__).resolve().parent / "interviews"
INTERVIEW_S = 40 * 60
SEED = 16
MODEL_DIM = 384  # all-MiniLM-L6-v2's vectors (only for an empty index's matrix)
QUERIES = [
    "being listened to", "nobody listened to what we had to say", "the money ran out", "feeling lonely",
    "co-production", "they treated us as equals", "I didn't trust them at first", "learning from each other",
    "the council changed how it works", "I felt proud of myself", "it was hard to get there by bus",
    "my lived experience counted", "we did it together as a group", "being paid for our time",
    "the project ended and we heard nothing", "I found my voice", "people like us are never asked",
    "the staff started to understand us", "it gave me confidence", "what would you tell someone starting out",
]


# ---- the synthetic project ----


def pools() -> tuple[list[str], list[str]]:
    """Every storyteller sentence and every interviewer turn of the writers' interviews."""
    told, asked = [], []
    for path in sorted(INTERVIEWS.glob("w*.txt")):
        for line in path.read_text("utf-8").splitlines():
            speaker, _, text = line.partition(":")
            text = " ".join(re.sub(r"\([^)]*\)|\[[^\]]*\]", " ", text).split())
            if line.startswith("#") or not text:
                continue
            if speaker.strip() == "storyteller":
                told += [s for s in re.split(r"(?<=[.!?])\s+", text) if s]
            elif speaker.strip() == "interviewer":
                asked.append(text)
    return told, asked


def synthetic_transcript(story_id: str, words: int, rng: random.Random, told: list[str], asked: list[str]) -> Transcript:
    """An interview of about `words` words over 40 minutes: questions and recombined answers."""
    texts: list[tuple[str, str]] = []
    count = 0
    while count < words:
        for speaker, text in (("interviewer", rng.choice(asked)),
                              ("storyteller", " ".join(rng.choice(told) for _ in range(rng.randint(2, 8))))):
            texts.append((speaker, text))
            count += len(text.split())
    per_word = INTERVIEW_S / count
    segments, t = [], 0.0
    for i, (speaker, text) in enumerate(texts):
        ws = []
        for token in text.split():
            ws.append(Word(word=" " + token, start=round(t, 3), end=round(t + per_word * 0.9, 3), probability=0.9))
            t += per_word
        segments.append(Segment(id=i, start=ws[0].start, end=ws[-1].end, text=text, speaker=speaker,
                                avg_logprob=-0.2, no_speech_prob=0.01, words=ws))
    return Transcript(story_id=story_id, language="en", duration_s=round(t, 3), engine="synthetic",
                      model="bench", segments=segments)


def build_root(root: Path, n: int, words: int) -> Store:
    store = Store(root).ensure()
    rng = random.Random(SEED)
    told, asked = pools()
    for i in range(n):
        sid = f"bench-{i:03d}-{i:08x}"
        transcript = synthetic_transcript(sid, words, rng, told, asked)
        story = Story(story_id=sid, consent=Consent(anonymise=False), metadata={"title": f"Interview {i + 1}"},
                      source=Source(filename=f"{sid}.wav", sha256="0" * 64, bytes=1, format="wav",
                                    duration_s=transcript.duration_s, channels=1, sample_rate=16000))
        story.advance("ingested").advance("transcribed").advance("extracted")
        store.write_story(story)
        store.write_transcript(transcript)
    return store


# ---- measuring ----


def index_all(store: Store) -> dict:
    from storypipe.tasks import search

    settings = load_settings(store.root)
    times, passages = [], 0
    cpu = time.process_time()
    load = os.getloadavg()[0]
    for sid in store.story_ids():
        began = time.perf_counter()
        entry = search.index_story(sid, store, settings)
        times.append(time.perf_counter() - began)
        passages += len(entry.passages)
    return {"stories": len(times), "passages": passages, "total_s": sum(times), "cpu_s": time.process_time() - cpu,
            "per_story_median_s": statistics.median(times), "per_story_worst_s": max(times),
            "load_before": load, "load_after": os.getloadavg()[0]}


def run_queries(store: Store, queries: list[str]) -> dict:
    """The queries, each a full search (the check for changed stories included), the index in memory."""
    from storypipe.tasks import search
    from storypipe.tasks.common import meaning

    settings = load_settings(store.root)
    dim = len(meaning.embed(["warm up"], settings.meaning)[0])  # after indexing, the model is loaded
    cache = search.IndexCache()
    began = time.perf_counter()
    cache.matrix(search.refresh(store, settings, cache).entries, dim)  # every file read, one matrix
    load_s = time.perf_counter() - began
    times, hits = [], 0
    for q in queries:
        began = time.perf_counter()
        found = search.search(q, store, settings, cache=cache)
        times.append(time.perf_counter() - began)
        hits += len(found.hits)
        assert not found.indexed_now, "the index should be up to date"
    return {"index_load_s": load_s, "median_s": statistics.median(times), "worst_s": max(times),
            "queries": len(times), "mean_hits": hits / len(times)}


def fresh_process(root: Path, queries: list[str]) -> dict:
    """In a new interpreter, in the order `storypipe search` goes: the index (every story's file read,
    one matrix), the model (torch, sentence-transformers, the model's weights), then the queries."""
    began = time.perf_counter()
    from storypipe.tasks import search
    from storypipe.tasks.common import meaning

    imported = time.perf_counter()
    store, settings = Store(root), load_settings(root)
    cache = search.IndexCache()
    entries = search.refresh(store, settings, cache).entries
    cache.matrix(entries, MODEL_DIM)
    loaded = time.perf_counter()
    meaning.embed(["warm up"], settings.meaning)
    model = time.perf_counter()
    times = []
    for q in queries:
        t = time.perf_counter()
        found = search.search(q, store, settings, cache=cache)
        times.append(time.perf_counter() - t)
        assert not found.indexed_now, "the index should be up to date"
    return {"import_s": imported - began, "index_load_s": loaded - imported, "model_load_s": model - loaded,
            "first_query_s": times[0], "median_s": statistics.median(times), "worst_s": max(times),
            "queries": len(times)}


def anonymised_extra(store: Store, n: int) -> dict:
    """What indexing an anonymised story costs on top: redacting its transcript (spaCy over every
    word, as tasks/search does through anonymise_text_cached), timed for n stories, nothing cached."""
    from storypipe.tasks.common.anonymise import anonymise_text_cached

    settings = load_settings(store.root)
    times = []
    with tempfile.TemporaryDirectory() as cache:
        for sid in store.story_ids()[:n]:
            began = time.perf_counter()
            anonymise_text_cached(store.transcript_path(sid), store.read_story(sid).metadata, settings, Path(cache))
            times.append(time.perf_counter() - began)
    return {"stories": n, "per_story_median_s": statistics.median(times) if times else 0.0,
            "first_s": times[0] if times else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stories", type=int, default=100)
    parser.add_argument("--words", type=int, default=6500)
    parser.add_argument("--queries", type=int, default=len(QUERIES))
    parser.add_argument("--anonymised", type=int, default=0, help="also index this many stories anonymised")
    parser.add_argument("--keep", type=Path, help="keep the indexed root here (and reuse it when it is there)")
    parser.add_argument("--fresh", type=Path, help=argparse.SUPPRESS)  # the child process: time queries on ROOT
    args = parser.parse_args()
    queries = (QUERIES * (1 + args.queries // len(QUERIES)))[: args.queries]
    if args.fresh:
        print(json.dumps(fresh_process(args.fresh, queries)))
        return

    root = args.keep or Path(tempfile.mkdtemp(prefix="storypipe-search-bench-"))
    try:
        print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        store = Store(root)
        if len(store.search_indexed_ids()) == args.stories and len(store.story_ids()) == args.stories:
            print(f"Reusing the indexed root {root}")
            indexed = None
        else:
            shutil.rmtree(root, ignore_errors=True)
            began = time.perf_counter()
            store = build_root(root, args.stories, args.words)
            words = sum(len(w) for sid in store.story_ids() for w in [store.read_transcript(sid).words()])
            print(f"Made {args.stories} stories, {words} words ({words // args.stories} each, 40 min each), "
                  f"in {time.perf_counter() - began:.1f} s")
            indexed = index_all(store)
            print(f"Indexing: {indexed['stories']} stories, {indexed['passages']} passages in "
                  f"{indexed['total_s']:.1f} s ({indexed['total_s'] / 60:.1f} min; {indexed['cpu_s']:.0f} s of CPU); "
                  f"per story median {indexed['per_story_median_s']:.2f} s, worst {indexed['per_story_worst_s']:.2f} s "
                  f"(load average {indexed['load_before']:.1f} before, {indexed['load_after']:.1f} after)")
        size = sum(p.stat().st_size for p in store.search_dir.glob("*.npz"))
        print(f"Index on disk: {size / 1e6:.1f} MB in {len(store.search_indexed_ids())} files")

        warm = run_queries(store, queries)
        print(f"After indexing, in this process (index in memory): {warm['queries']} queries, median "
              f"{warm['median_s'] * 1000:.0f} ms, worst {warm['worst_s'] * 1000:.0f} ms "
              f"({warm['mean_hits']:.1f} hits each; load average {os.getloadavg()[0]:.1f})")

        child = subprocess.run([sys.executable, __file__, "--fresh", str(root), "--queries", str(args.queries)],
                               capture_output=True, text=True, check=True)
        fresh = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"Fresh process (as `storypipe search`): imports {fresh['import_s']:.1f} s, loading the index "
              f"(all {args.stories} files, one matrix) {fresh['index_load_s'] * 1000:.0f} ms, loading the model "
              f"(torch, sentence-transformers, the weights) {fresh['model_load_s']:.1f} s; then {fresh['queries']} "
              f"queries, the first {fresh['first_query_s'] * 1000:.0f} ms, median {fresh['median_s'] * 1000:.0f} ms, "
              f"worst {fresh['worst_s'] * 1000:.0f} ms")
        if args.anonymised:
            anon = anonymised_extra(store, args.anonymised)
            print(f"Anonymised stories: redacting the transcript adds, per story, median "
                  f"{anon['per_story_median_s']:.1f} s (the first {anon['first_s']:.1f} s, loading spaCy), "
                  f"over {anon['stories']} stories")
        print(json.dumps({"indexing": indexed, "warm": warm, "fresh": fresh}))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
