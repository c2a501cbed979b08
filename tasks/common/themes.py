"""Themes: tag quotes with the codebook's themes (config/themes.toml), explainably.

Each descriptor of a theme has cue words and phrases and a weight. A text matches a cue as written,
and a phrase also on lemmas ("they listened to me" matches "listen to me"), with spaCy's PhraseMatcher. A theme's
score is the sum of the weights of its descriptors that matched, each counted once, so a quote that
says "equal" five times is not five times more about sharing power. spaCy's word vectors are not
used: the small English model has none, and pretending otherwise would tag at random.

Beside the cues, what a quote means is evidence too (theme_meaning.py: sentence embeddings of the
codebook's texts, and the quotes the team approved as examples), in the same units: `rank` adds it
to the cue score when it is given, and `why` shows each part.
"""

from __future__ import annotations

import functools
import threading
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, ValidationError

from storypipe.core.jsonio import BadFileError
from storypipe.core.settings import shipped_file

if TYPE_CHECKING:
    import numpy as np

    from storypipe.tasks.common.theme_meaning import ThemeEvidence, ThemeMeaning

PROJECT_THEMES = shipped_file("themes.toml")  # the shipped codebook (config/themes.toml, in the package)
ROOT_THEMES_NAME = "themes.toml"


class Descriptor(BaseModel):
    text: str
    weight: float = Field(default=1.0, gt=0)
    cues: list[str] = Field(min_length=1)
    # How a storyteller might say it, in whole sentences: embedded for matching by meaning (never
    # matched word for word as cues are).
    says: list[str] = Field(default_factory=list)


class Theme(BaseModel):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str
    description: str = ""
    descriptors: list[Descriptor] = Field(min_length=1)


class Matching(BaseModel):
    # A theme is suggested (shown in `why`, with its cues) from `suggest`, and tagged from `threshold`.
    suggest: float = 1.0
    threshold: float = 1.5
    max_themes: int = 2
    relative: float = 0.6


class Codebook(BaseModel):
    matching: Matching = Field(default_factory=Matching)
    themes: list[Theme] = Field(min_length=1)

    def name_of(self, theme_id: str) -> str:
        return next((t.name for t in self.themes if t.id == theme_id), theme_id)


def codebook_path(root: Path | None, themes_file: str = "") -> Path:
    """The root's own themes.toml wins over the shipped one; `[extract] themes_file` wins over both."""
    if themes_file:
        path = Path(themes_file).expanduser()
        return path if path.is_absolute() or root is None else Path(root) / path
    if root is not None and (Path(root) / ROOT_THEMES_NAME).is_file():
        return Path(root) / ROOT_THEMES_NAME
    return PROJECT_THEMES


def load_codebook(path: Path) -> Codebook:
    """Read and check a codebook; a broken one is a configuration error that names the file."""
    try:
        book = Codebook.model_validate(tomllib.loads(Path(path).read_text("utf-8")))
    except OSError as e:
        raise BadFileError(Path(path), f"cannot read the themes codebook: {e.strerror or e}") from e
    except tomllib.TOMLDecodeError as e:
        raise BadFileError(Path(path), f"the themes codebook is not valid TOML: {e}") from e
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadFileError(Path(path), f"the themes codebook is invalid at {where}: {first['msg']}") from e
    ids = [t.id for t in book.themes]
    if len(ids) != len(set(ids)):
        raise BadFileError(Path(path), "the themes codebook has the same theme id twice")
    return book


def theme_ids(root: Path | None, themes_file: str = "") -> list[str]:
    """The ids of the codebook in use for a root (what a person may tag a quote with)."""
    return [t.id for t in load_codebook(codebook_path(root, themes_file)).themes]


Hits = dict[tuple[str, int], list[str]]  # (theme id, descriptor index) -> cues found


@dataclass
class ThemeMatch:
    theme: str
    score: float  # all the evidence: cue_score + meaning's + the examples'
    cues: list[str]  # the cues found, as spoken
    tagged: bool  # strong enough to tag the quote; otherwise only a suggestion
    cue_score: float = 0.0
    evidence: ThemeEvidence | None = None  # by meaning and from the team's examples, when given

    def explain(self) -> dict:
        """The theme's entry in a quote's `why["themes"]`: the score and every part behind it."""
        out: dict = {"score": self.score, "cues": self.cues, "cue_score": self.cue_score}
        if self.evidence is not None:
            out["meaning"] = self.evidence.explain_meaning()
            out["examples"] = self.evidence.explain_examples()
            out["examples_score"] = self.evidence.examples_score
        out["tagged"] = self.tagged
        return out


LEMMA_NEEDS_NOT = ("parser", "ner", "textrank", "senter")


class ThemeTagger:
    """Phrase matchers built once per codebook and spaCy pipeline (building takes about half a second)."""

    def __init__(self, nlp, book: Codebook):
        from spacy.matcher import PhraseMatcher

        self.book = book
        self._lemma = PhraseMatcher(nlp.vocab, attr="LEMMA")
        self._lower = PhraseMatcher(nlp.vocab, attr="LOWER")
        self._keys: dict[int, tuple[str, int]] = {}  # match id -> (theme id, descriptor index)
        # A cue's lemmas need only the tagger and lemmatizer: skipping the rest took 1.5 s down to 0.5 s.
        skip = [name for name in nlp.pipe_names if name in LEMMA_NEEDS_NOT]
        for theme in book.themes:
            for d_index, descriptor in enumerate(theme.descriptors):
                key = f"{theme.id}#{d_index}"
                cues = [nlp.make_doc(c.strip().lower()) for c in descriptor.cues if c.strip()]
                self._lower.add(key, cues)
                # Phrases also match on lemmas ("they listened to me" ~ "listen to me"). Single words do
                # not: out of context their lemma is a guess, and "rights" would match "right".
                phrases = [c.text for c in cues if len(c) > 1]
                if phrases:
                    self._lemma.add(key, list(nlp.pipe(phrases, disable=skip)))
                self._keys[nlp.vocab.strings[key]] = (theme.id, d_index)
        self._weights = {t.id: [d.weight for d in t.descriptors] for t in book.themes}

    def hits(self, doclike) -> Hits:
        """Which descriptors a text (a spaCy Doc or Span) matched, and the cues that did it."""
        found: Hits = {}
        doc = getattr(doclike, "doc", doclike)  # on a Span, matches come back in the Doc's positions
        for matcher in (self._lemma, self._lower):
            for match_id, start, end in matcher(doclike):
                cue = doc[start:end].text.lower()
                spoken = found.setdefault(self._keys[match_id], [])
                if cue not in spoken:
                    spoken.append(cue)
        return found

    def rank(self, found: Hits, evidence: dict[str, ThemeEvidence] | None = None) -> list[ThemeMatch]:
        """Themes from descriptor hits (of one sentence or several together), strongest first. With
        `evidence` (theme_meaning.WindowEvidence.row), meaning and the team's examples add to the cues."""
        cue_scores: dict[str, float] = defaultdict(float)
        cues: dict[str, list[str]] = defaultdict(list)
        for (theme_id, d_index), spoken in found.items():
            cue_scores[theme_id] += self._weights[theme_id][d_index]
            cues[theme_id].extend(c for c in spoken if c not in cues[theme_id])
        scores = dict(cue_scores)
        for theme_id, ev in (evidence or {}).items():
            extra = ev.meaning_score + ev.examples_score
            if extra > 0:
                scores[theme_id] = scores.get(theme_id, 0.0) + extra
        m = self.book.matching
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        if not ranked:
            return []
        best = ranked[0][1]
        return [
            ThemeMatch(theme=t, score=round(s, 3), cues=cues[t], tagged=s >= m.threshold,
                       cue_score=round(cue_scores.get(t, 0.0), 3), evidence=(evidence or {}).get(t))
            for t, s in ranked[: m.max_themes]
            if s >= m.suggest and s >= m.relative * best
        ]

    def rank_all(self, found: list[Hits], vectors: np.ndarray | None = None, coder: ThemeMeaning | None = None,
                 background: np.ndarray | None = None) -> list[list[ThemeMatch]]:
        """`rank` for many quotes at once (a story's candidate windows): their cue hits, their meaning
        vectors (unit rows, one per quote) and the codebook by meaning. Meaning is judged against the
        recording, so give all of a story's windows together; `background` defaults to them."""
        if coder is None or vectors is None:
            return [self.rank(hits) for hits in found]
        evidence = coder.evidence(vectors, background)
        return [self.rank(hits, evidence.row(i)) for i, hits in enumerate(found)]

    def match(self, doclike) -> list[ThemeMatch]:
        """Suggested and tagged themes of a text, strongest first."""
        return self.rank(self.hits(doclike))

    def tag(self, doclike) -> list[str]:
        """Only the themes strong enough to tag."""
        return [m.theme for m in self.match(doclike) if m.tagged]


def merge_hits(parts: list[Hits]) -> Hits:
    merged: Hits = {}
    for found in parts:
        for key, spoken in found.items():
            have = merged.setdefault(key, [])
            have += [c for c in spoken if c not in have]
    return merged


_LOCK = threading.Lock()


def tagger_for(nlp, path: Path) -> ThemeTagger:
    """One tagger per (pipeline, codebook file, its modification time): edits are picked up."""
    path = Path(path)
    with _LOCK:
        return _tagger(nlp, path, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _tagger(nlp, path: Path, mtime_ns: int) -> ThemeTagger:
    return ThemeTagger(nlp, load_codebook(path))
