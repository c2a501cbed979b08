"""Which passages search puts first for a theme's words, on the writers' interviews: a rough check
of the [search] choices (whose words, how long a passage, the short-passage penalty).

    .venv/bin/python bench/search_quality.py

The 24 interviews of bench/interviews/ (their turns, words evenly timed), cut into passages by
tasks/search. Queries: each codebook theme's name (a few words, as a volunteer types) and its
description (a sentence). A passage is relevant to a query when it holds a quote the workshop
tagged with that theme (a run of 12 of the quote's words, or all of a shorter one). Reported:
precision of the top 10 over every story (P@10; overlapping passages of one story count once, as
search shows them), for the theme and for any workshop quote, beside
the share of relevant passages (what a random top 10 would get). The workshop marked only its best
quotes, so precision is low everywhere: the figures compare the choices, they do not grade search.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storypipe.core.models import Segment, Transcript, Word  # noqa: E402
from storypipe.core.settings import SearchSettings, Settings  # noqa: E402
from storypipe.tasks import search  # noqa: E402
from storypipe.tasks.common import meaning  # noqa: E402

HERE = Path(__file__).resolve().parent
INTERVIEWS = HERE / "interviews"
QUOTE_RUN = 12  # words of a quote a passage must hold, in a row, to count as holding it
SECONDS_PER_WORD = 0.37  # a 40-minute interview's pace; only the order of words matters here


def transcript(path: Path) -> Transcript:
    segments, t = [], 0.0
    for line in path.read_text("utf-8").splitlines():
        speaker, _, text = line.partition(":")
        tokens = re.sub(r"\([^)]*\)|\[[^\]]*\]", " ", text).split()
        if line.startswith("#") or not tokens:
            continue
        words = []
        for token in tokens:
            words.append(Word(word=" " + token, start=round(t, 3), end=round(t + 0.3, 3), probability=1.0))
            t += SECONDS_PER_WORD
        segments.append(Segment(id=len(segments), start=words[0].start, end=words[-1].end, text=" ".join(tokens),
                                speaker=speaker.strip(), avg_logprob=0.0, no_speech_prob=0.0, words=words))
    return Transcript(story_id=path.stem, language="en", duration_s=t, engine="script", model="bench", segments=segments)


def themes_held(passage: search.Passage, quotes: list[dict]) -> set[str]:
    text = f" {search.plain(passage.text)} "
    held: set[str] = set()
    for q in quotes:
        words = search.plain(q["text"]).split()
        n = min(QUOTE_RUN, len(words))
        if any(f" {' '.join(words[i:i + n])} " in text for i in range(len(words) - n + 1)):
            held |= set(q["themes"])
    return held


def best_ten(scores: np.ndarray, passages: list[search.Passage]) -> list[int]:
    """The top 10 as search shows them: of passages of one story that overlap in time, the best."""
    taken: dict[str, list[tuple[float, float]]] = {}
    top = []
    for i in np.argsort(-scores, kind="stable"):
        p = passages[i]
        spans = taken.setdefault(p.story_id, [])
        if any(p.start < b and a < p.end for a, b in spans):
            continue
        spans.append((p.start, p.end))
        top.append(int(i))
        if len(top) == 10:
            break
    return top


def evaluate(transcripts: list[Transcript], quotes: dict[str, list[dict]], queries: list[tuple[str, str]],
             cfg: SearchSettings, settings: Settings) -> dict:
    passages = [p for t in transcripts for p in search.passages_of(t, cfg)]
    vectors = meaning.embed([p.text for p in passages], settings.meaning)
    query_vectors = meaning.embed([q for q, _ in queries], settings.meaning)
    texts = [f" {search.plain(p.text)} " for p in passages]
    counts = np.array([len(t.split()) for t in texts], dtype=np.float32)
    held = [themes_held(p, quotes[p.story_id]) for p in passages]
    any_quote = np.array([bool(h) for h in held])
    theme_p10, quote_p10, base = [], [], []
    for (query, theme), qv in zip(queries, query_vectors):
        scores, _ = search.rank(query, vectors, texts, counts, cfg, qv)
        relevant = np.array([theme in h for h in held])
        top = best_ten(scores, passages)
        theme_p10.append(relevant[top].mean())
        quote_p10.append(any_quote[top].mean())
        base.append(relevant.mean())
    return {"passages": len(passages), "theme": float(np.mean(theme_p10)), "quote": float(np.mean(quote_p10)),
            "base": float(np.mean(base))}


def main() -> None:
    settings = Settings()
    book = tomllib.loads((Path(__file__).resolve().parent.parent / "config" / "themes.toml").read_text("utf-8"))
    paths = sorted(INTERVIEWS.glob("w*.txt"))
    transcripts = [transcript(p) for p in paths]
    quotes = {p.stem: yaml.safe_load(p.with_suffix(".yaml").read_text("utf-8"))["quotes"] for p in paths}
    default = settings.search
    everyone = default.model_copy(update={"leave_out_speakers": [], "short_penalty": 0.0})
    variants = [
        ("everyone's words, no short penalty", everyone),
        ("storytellers only, no short penalty", default.model_copy(update={"short_penalty": 0.0})),
        ("storytellers only, short penalty 0.1", default.model_copy(update={"short_penalty": 0.1})),
        (f"storytellers only, short penalty {default.short_penalty:g} (shipped)", default),
        ("  the same, windows of 30 words", default.model_copy(update={"window_words": 30, "max_words": 50})),
        ("  the same, windows of 80 words", default.model_copy(update={"window_words": 80, "max_words": 120})),
        ("  the same, no overlap", default.model_copy(update={"overlap_sentences": 0})),
    ]
    print(f"{len(paths)} interviews, {sum(len(q) for q in quotes.values())} workshop quotes\n")
    for kind in ("name", "description"):
        queries = [(theme[kind], theme["id"]) for theme in book["themes"]]
        print(f"Queries: the {len(queries)} themes' {kind}s")
        print("| passages | variant | P@10, theme | P@10, any workshop quote | relevant share |")
        print("|--:|---|--:|--:|--:|")
        for label, cfg in variants:
            r = evaluate(transcripts, quotes, queries, cfg, settings)
            print(f"| {r['passages']} | {label} | {r['theme']:.3f} | {r['quote']:.3f} | {r['base']:.3f} |")
        print()


if __name__ == "__main__":
    main()
