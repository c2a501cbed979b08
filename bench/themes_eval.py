"""How often does the theme tagger give a workshop quote the theme the workshop gave it? Text only.

On bench/interviews (24 interviews by independent writers, README there), the tagger is run on the
text of each gold quote, with the rest of the storyteller's script as the recording it is judged
against (its windows of 1..max_sentences sentences, as extract makes them), and compared with the
workshop's theme ids. No audio: the ranking of quotes is bench/quotes_eval.py's business; this is
the tagger alone, as "theme P/R (gold text)" there.

Three ways, per split:

- (a) cues: the codebook's cue words only, with its [matching] as it was before issue 16 (the
  tagger before);
- (b) cues + meaning: with the codebook embedded (tasks/common/theme_meaning.py);
- (c) cues + meaning + examples: with the team's approved quotes as examples. For the test split
  the examples are the tune split's gold quotes; within tune, each interview learns from the other
  tune interviews only (leave one interview out).

Figures: precision and recall of the tagged themes (micro, over theme ids), the share of quotes
tagged with at least one of their workshop themes, and how many themes a quote gets.

Tune on tune only (`--set` tries values of [themes] and [matching] without editing a file); freeze;
run test once:

    .venv/bin/python bench/themes_eval.py --split tune
    .venv/bin/python bench/themes_eval.py --split tune --set themes.meaning_weight=1.5 --set matching.threshold=1.2
    .venv/bin/python bench/themes_eval.py --split test --write bench/themes.md
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from storypipe.core.settings import Settings, load_settings  # noqa: E402
from storypipe.tasks.common import meaning  # noqa: E402
from storypipe.tasks.common.nlp import load_nlp  # noqa: E402
from storypipe.tasks.common.theme_meaning import Example, build_theme_meaning  # noqa: E402
from storypipe.tasks.common.themes import PROJECT_THEMES, Codebook, ThemeTagger, load_codebook  # noqa: E402

DATA = REPO / "bench" / "interviews"
CACHE = REPO / "bench" / ".cache" / "themes"
STAGE_DIRECTION = re.compile(r"\s*\([a-z ]+\)")  # "(laughs)": not words (bench/interviews/README.md)
MODES = {"a": "cues only", "b": "cues + meaning", "c": "cues + meaning + examples"}
# The codebook's [matching] before issue 16 (config/themes.toml at f2abc7c), for (a).
BEFORE = {"suggest": 1.0, "threshold": 1.5, "max_themes": 2, "relative": 0.6}


@dataclass
class Interview:
    name: str
    split: str
    quotes: list[tuple[str, set[str]]]  # text, workshop themes
    turns: list[str]  # the storyteller's turns, as said


def split_of(path: Path) -> str:
    """Fixed before anything was tuned: odd numbers tune, even numbers test."""
    return "tune" if int(path.name.split("-")[1]) % 2 else "test"


def load(split: str) -> list[Interview]:
    out = []
    for txt in sorted(DATA.glob("*.txt")):
        if split != "all" and split_of(txt) != split:
            continue
        ann = yaml.safe_load(txt.with_suffix(".yaml").read_text("utf-8"))
        turns = [STAGE_DIRECTION.sub("", line.partition(":")[2]).strip() for line in txt.read_text("utf-8").splitlines()
                 if line.startswith("storyteller:")]
        out.append(Interview(txt.stem, split_of(txt), [(q["text"], set(q["themes"])) for q in ann["quotes"]], turns))
    return out


@dataclass
class Counts:
    right: int = 0
    extra: int = 0
    missed: int = 0
    quotes: int = 0
    hit: int = 0  # quotes tagged with at least one of their workshop themes
    tagged: int = 0  # themes given, in all
    untagged: int = 0  # quotes given no theme
    errors: list[str] = field(default_factory=list)

    def add(self, text: str, got: set[str], want: set[str]) -> None:
        self.right += len(got & want)
        self.extra += len(got - want)
        self.missed += len(want - got)
        self.quotes += 1
        self.hit += bool(got & want)
        self.tagged += len(got)
        self.untagged += not got
        if got != want:
            self.errors.append(f"{text[:60]}... workshop {sorted(want)} tagged {sorted(got)}")

    def precision(self) -> float:
        return self.right / max(1, self.right + self.extra)

    def recall(self) -> float:
        return self.right / max(1, self.right + self.missed)


class Vectors:
    """Sentence vectors, cached by content; a passage is its sentences' mean weighted by their words
    (as extract's window_vector), so the bench sees what extract sees."""

    def __init__(self, settings: Settings, nlp):
        self.settings, self.nlp = settings, nlp
        self._known: dict[str, np.ndarray] = {}

    def sentences(self, text: str) -> list[str]:
        return [s.text.strip() for s in self.nlp(text).sents if s.text.strip()]

    def warm(self, texts: list[str], cache: Path) -> None:
        todo = sorted({s for t in texts for s in self.sentences(t)} - set(self._known))
        if todo:
            self._known.update(zip(todo, meaning.embed_cached(todo, cache, self.settings.meaning)))

    def passage(self, sentences: list[str]) -> np.ndarray:
        v = np.sum([self._known[s] * max(1, len(s.split())) for s in sentences], axis=0)
        return v / (np.linalg.norm(v) or 1.0)

    def of(self, text: str) -> np.ndarray:
        return self.passage(self.sentences(text))


def windows(turns: list[str], vec: Vectors, settings: Settings) -> list[list[str]]:
    """The storyteller's passages extract would weigh: 1..max_sentences sentences of one turn."""
    cfg = settings.extract
    out = []
    for turn in turns:
        sents = vec.sentences(turn)
        for i in range(len(sents)):
            for j in range(i + 1, min(i + cfg.max_sentences, len(sents)) + 1):
                n = sum(len(s.split()) for s in sents[i:j])
                if n > cfg.max_words:
                    break
                if n >= cfg.min_words:
                    out.append(sents[i:j])
    return out


def with_overrides(settings: Settings, book: Codebook, sets: list[str]) -> tuple[Settings, Codebook]:
    """`themes.KEY=VALUE` and `matching.KEY=VALUE`, for trying values on the tune split."""
    themes, matching = settings.themes.model_dump(), book.matching.model_dump()
    for item in sets:
        key, _, value = item.partition("=")
        table, _, name = key.partition(".")
        target = {"themes": themes, "matching": matching}.get(table)
        if target is None or name not in target:
            raise SystemExit(f"--set {item}: not a key of [themes] or [matching]")
        target[name] = type(target[name])(value) if not isinstance(target[name], bool) else value.lower() == "true"
    settings = settings.model_copy(update={"themes": type(settings.themes)(**themes)})
    book = book.model_copy(update={"matching": type(book.matching)(**matching)})
    return settings, book


def evaluate(interviews: list[Interview], examples_from: list[Interview], settings: Settings, book: Codebook,
             tagger: ThemeTagger, before: ThemeTagger, nlp, vec: Vectors) -> dict[str, Counts]:
    counts = {mode: Counts() for mode in MODES}
    cache = CACHE / "vectors"
    cache.mkdir(parents=True, exist_ok=True)
    every = [Example(iv.name, f"g{k}", text, tuple(sorted(themes)))
             for iv in examples_from for k, (text, themes) in enumerate(iv.quotes)]
    no_examples = settings.model_copy(update={"themes": settings.themes.model_copy(update={"examples": False})})
    plain = build_theme_meaning(book, no_examples.themes, settings.meaning, cache)
    for iv in interviews:
        learned = build_theme_meaning(book, settings.themes, settings.meaning, cache, every, exclude=iv.name)
        texts = [t for t, _ in iv.quotes]
        quote_vectors = np.stack([vec.of(t) for t in texts])
        background = np.stack([vec.passage(w) for w in windows(iv.turns, vec, settings)])
        hits = [tagger.hits(nlp(t)) for t in texts]
        for mode, coder in (("a", None), ("b", plain), ("c", learned)):
            ranked = (tagger if coder else before).rank_all(hits, quote_vectors if coder else None, coder, background)
            for (text, want), matches in zip(iv.quotes, ranked):
                counts[mode].add(text, {m.theme for m in matches if m.tagged}, want)
    return counts


def report(split: str, interviews: list[Interview], counts: dict[str, Counts], note: str) -> str:
    n = sum(len(iv.quotes) for iv in interviews)
    lines = [f"### Split `{split}` ({len(interviews)} interviews, {n} gold quotes){note}", "",
             "| themes from | precision | recall | quotes with a workshop theme | themes per quote | quotes with none |",
             "|---|---|---|---|---|---|"]
    for mode, c in counts.items():
        lines.append(f"| ({mode}) {MODES[mode]} | {c.precision():.2f} | {c.recall():.2f} | {c.hit / max(1, c.quotes):.2f} "
                     f"({c.hit} of {c.quotes}) | {c.tagged / max(1, c.quotes):.2f} | {c.untagged} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=["tune", "test"], default="tune")
    ap.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE",
                    help="try a value of [themes] (pipeline.toml) or [matching] (themes.toml) without editing them")
    ap.add_argument("--write", type=Path, help="append the Markdown result to this file")
    ap.add_argument("--verbose", action="store_true", help="list every quote whose themes differ, per way")
    args = ap.parse_args(argv)
    settings, book = with_overrides(load_settings(), load_codebook(PROJECT_THEMES), args.set)
    nlp = load_nlp(settings.extract.spacy_model)
    tagger = ThemeTagger(nlp, book)  # with the tried [matching] values
    before = ThemeTagger(nlp, book.model_copy(update={"matching": type(book.matching)(**BEFORE)}))
    interviews = load(args.split)
    # Test learns from the tune split's workshop quotes; tune from its other interviews (left out in turn).
    examples_from = load("tune")
    vec = Vectors(settings, nlp)
    # Every interview's sentences at once, so the cache holds the same texts whichever split is run.
    vec.warm([t for iv in load("all") for t in [*iv.turns, *(q for q, _ in iv.quotes)]], CACHE / "sentences.npz")
    counts = evaluate(interviews, examples_from, settings, book, tagger, before, nlp, vec)
    note = " with " + ", ".join(args.set) if args.set else ""
    text = report(args.split, interviews, counts, note)
    print(text)
    if args.verbose:
        for mode, c in counts.items():
            print(f"({mode}) {MODES[mode]}:")
            for e in c.errors:
                print("   ", e)
    if args.write:
        with args.write.open("a", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
