"""Themes by meaning, and learning from the team's own decisions.

Cue words (themes.py) find a theme only when a storyteller uses the codebook's words, and new
interviews mostly do not. Here a quote is also compared with each theme by what it means: the
theme's name and description, its descriptors' texts, how a storyteller might say them (`says`)
and, with `[themes] embed_cues`, its cues as short phrases, embedded with the sentence model
(meaning.py) and averaged into one vector per theme.

No fixed cosine decides. What the whole recording has in common (and what all themes have in
common) is taken away first, so a story about buses does not look like every theme about
transport; then a quote's lean towards each theme is compared with its lean towards the others, as
a z-score across the codebook. The evidence is in the codebook's own units (a descriptor of weight
1), so it adds to the cue score and meets the same `suggest` and `threshold`.

The team teaches it: a quote approved with its themes confirmed (`status == "approved"` and
`themes_checked`) in any other story of the root is an example of those themes. The examples
nearest a new quote, when they stand out from the rest, vote for their themes, and `why` names them.

Vectors are kept by content (meaning.embed_cached) under the root's state folder, so a re-run
embeds only what changed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from storypipe.core.jsonio import BadFileError
from storypipe.core.settings import MeaningSettings, Settings, ThemeSettings
from storypipe.core.store import Store
from storypipe.tasks.common import meaning
from storypipe.tasks.common.themes import Codebook

log = logging.getLogger("storypipe")

CODEBOOK_CACHE = "codebook.npz"
EXAMPLES_CACHE = "examples.npz"


@dataclass(frozen=True)
class Example:
    """A quote the team approved with its themes confirmed: what those themes sound like to them."""

    story_id: str
    quote_id: str
    text: str
    themes: tuple[str, ...]

    def first_words(self, n: int) -> str:
        words = self.text.split()
        return " ".join(words[:n]) + ("…" if len(words) > n else "")


def gather_examples(store: Store, theme_ids: Iterable[str], exclude: str | None = None) -> list[Example]:
    """Every approved quote with confirmed themes in the root, but for the story `exclude` (the one
    being extracted must not learn from itself). Themes the codebook no longer has are left out; a
    story whose quotes.json is broken is skipped with a warning, not a failure."""
    known = set(theme_ids)
    found: list[Example] = []
    for story_id in store.quoted_story_ids():
        if story_id == exclude:
            continue
        try:
            quotes = store.read_quotes(story_id, missing_ok=True)
        except BadFileError as e:
            log.warning("Did not learn themes from %s: its quotes.json is unreadable (%s)", story_id, e.reason,
                        extra={"story": story_id})
            continue
        for q in quotes.quotes if quotes else []:
            themes = tuple(t for t in q.themes if t in known)
            if q.status == "approved" and q.themes_checked and themes:
                found.append(Example(story_id, q.id, q.text, themes))
    return found


def codebook_texts(book: Codebook, cfg: ThemeSettings) -> list[tuple[str, str, bool]]:
    """(theme id, text, may be shown as the nearest) for every text that says what a theme is. Cues
    are embedded but never shown as "nearest": a single word says little on its own."""
    rows: list[tuple[str, str, bool]] = []
    for theme in book.themes:
        rows.append((theme.id, f"{theme.name}. {theme.description}".strip(" ."), True))
        for d in theme.descriptors:
            rows.append((theme.id, d.text.strip(" ()"), True))  # "(general difficulty)" is a label, not words
            rows += [(theme.id, s, True) for s in d.says]
            if cfg.embed_cues:
                rows += [(theme.id, c, False) for c in d.cues]
    return [(t, text, shown) for t, text, shown in rows if text]


def _unit(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=-1, keepdims=True)
    return m / np.where(norms > 0, norms, 1.0)


def _row_z(m: np.ndarray) -> np.ndarray:
    """Each row as standard deviations from its own mean (0 where a row does not vary)."""
    sd = m.std(axis=1, keepdims=True)
    return (m - m.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0)


@dataclass
class ExampleMatch:
    example: Example
    similarity: float


@dataclass
class ThemeEvidence:
    """What meaning and the team's examples say about one theme for one quote."""

    meaning_score: float
    similarity: float  # the quote's lean towards the theme (cosine, after the common parts are taken away)
    z: float  # that lean against its lean towards the other themes
    place: float  # share of the recording's windows that lean less towards their nearest theme (1 without one)
    nearest: str  # the theme's text nearest the quote
    examples_score: float = 0.0
    examples: list[ExampleMatch] = field(default_factory=list)
    example_words: int = 1  # how many of an example's first words `why` shows ([themes] example_words)

    def explain_meaning(self) -> dict:
        return {"score": round(self.meaning_score, 3), "similarity": round(self.similarity, 3), "z": round(self.z, 2),
                "place": round(self.place, 3), "nearest": self.nearest}

    def explain_examples(self) -> list[dict]:
        return [{"story_id": m.example.story_id, "quote_id": m.example.quote_id,
                 "words": m.example.first_words(self.example_words), "similarity": round(m.similarity, 3)}
                for m in self.examples]


class WindowEvidence:
    """Evidence for many quotes at once (arrays); `row(i)` is one quote's, theme by theme."""

    def __init__(self, owner: ThemeMeaning, lean: np.ndarray, z: np.ndarray, place: np.ndarray, nearest: np.ndarray,
                 meaning_score: np.ndarray, example_votes: np.ndarray, example_hits: list[list[tuple[int, float]]]):
        self._owner, self.lean, self.z, self.place, self._nearest = owner, lean, z, place, nearest
        self.meaning_score, self.example_votes, self._hits = meaning_score, example_votes, example_hits

    def __len__(self) -> int:
        return len(self.lean)

    def row(self, i: int) -> dict[str, ThemeEvidence]:
        o = self._owner
        # Rounded as `why` shows them, so the sum that decides is the sum a reviewer can add up.
        meaning_score, lean = np.round(self.meaning_score[i], 3).tolist(), np.round(self.lean[i], 3).tolist()
        z, votes = np.round(self.z[i], 2).tolist(), np.round(self.example_votes[i], 3).tolist()
        nearest, place = self._nearest[i].tolist(), round(float(self.place[i]), 3)
        out = {}
        for k, theme_id in enumerate(o.theme_ids):
            matched = [ExampleMatch(o.examples[j], s) for j, s in self._hits[i] if theme_id in o.examples[j].themes]
            out[theme_id] = ThemeEvidence(meaning_score[k], lean[k], z[k], place, o.texts[nearest[k]], votes[k],
                                          matched[: o.cfg.examples_shown], o.cfg.example_words)
        return out


class ThemeMeaning:
    """The codebook's themes and the team's examples as vectors, ready to meet a story's quotes."""

    def __init__(self, book: Codebook, cfg: ThemeSettings, rows: list[tuple[str, str, bool]], row_vectors: np.ndarray,
                 examples: list[Example], example_vectors: np.ndarray):
        self.cfg = cfg
        self.theme_ids = [t.id for t in book.themes]
        index = {t: k for k, t in enumerate(self.theme_ids)}
        owner = np.array([index[t] for t, _, _ in rows])
        # One vector per theme (the mean of its texts), less what every theme shares.
        means = np.stack([row_vectors[owner == k].mean(axis=0) for k in range(len(self.theme_ids))])
        self.prototypes = _unit(means - means.mean(axis=0))
        shown = np.array([s for _, _, s in rows])
        self.texts = [text for _, text, _ in rows]
        self._text_vectors = _unit(row_vectors - row_vectors.mean(axis=0))
        # For "nearest": each theme's shown texts only; others can never win.
        self._text_mask = np.full((len(self.theme_ids), len(rows)), -np.inf, dtype=np.float32)
        for k in range(len(self.theme_ids)):
            self._text_mask[k, (owner == k) & shown] = 0.0
        self.examples = examples
        self._example_themes = np.zeros((len(examples), len(self.theme_ids)), dtype=np.float32)
        for j, ex in enumerate(examples):
            for t in ex.themes:
                self._example_themes[j, index[t]] = 1.0
        self._example_vectors = self._centre(example_vectors, example_vectors)

    def _centre(self, vectors: np.ndarray, background: np.ndarray) -> np.ndarray:
        """Vectors less the mean of their background (what a recording, or the team's examples, say
        throughout), when there is enough of it to mean anything."""
        if len(vectors) == 0:
            return vectors
        if len(background) < self.cfg.min_background:
            return _unit(vectors)
        return _unit(vectors - background.mean(axis=0))

    def evidence(self, vectors: np.ndarray, background: np.ndarray | None = None) -> WindowEvidence:
        """Meaning and example evidence for each quote vector (unit rows), every theme. `background`
        is what the recording said throughout (default: the quotes given, e.g. all of a story's
        candidate windows)."""
        cfg = self.cfg
        n, t = len(vectors), len(self.theme_ids)
        background = vectors if background is None else background
        if n == 0:
            empty = np.zeros((0, t), dtype=np.float32)
            return WindowEvidence(self, empty, empty, np.zeros(0), empty.astype(int), empty, empty, [])
        q = self._centre(vectors, background)
        lean = q @ self.prototypes.T
        z = _row_z(lean)
        place = self._place(lean.max(axis=1), background)
        span = max(cfg.meaning_full_z - cfg.meaning_from_z, 1e-6)
        score = cfg.meaning_weight * np.clip((z - cfg.meaning_from_z) / span, 0.0, 1.0)
        score = score * (lean > cfg.min_lean) * (place >= cfg.min_place)[:, None]
        near_all = q @ self._text_vectors.T
        nearest = np.stack([np.argmax(near_all + self._text_mask[k], axis=1) for k in range(t)], axis=1)
        votes, hits = self._example_votes(q, self._centre(background, background))
        return WindowEvidence(self, lean, z, place, nearest, score, votes, hits)

    def _place(self, strongest: np.ndarray, background: np.ndarray) -> np.ndarray:
        """How much on theme each quote is, as its place among the recording's windows (0..1): the
        share of them whose lean towards their own nearest theme is weaker. Every theme is nearer
        than the others to something, so this is what tells a point from chatter. 1 for all
        without enough of a recording to compare with."""
        if len(background) < self.cfg.min_background:
            return np.ones(len(strongest))
        ref = np.sort((self._centre(background, background) @ self.prototypes.T).max(axis=1))
        return np.searchsorted(ref, strongest, side="left") / len(ref)

    def _example_votes(self, q: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, list[list[tuple[int, float]]]]:
        """Which examples each quote is near, and the themes they vote for. Near is relative: a quote
        is near an example when it stands out among the recording's windows as like that example
        (`example_from_z` standard deviations above the example's mean similarity to the recording).
        With too little of the recording, it is against the quote's similarity to all examples."""
        cfg, n, t = self.cfg, len(q), len(self.theme_ids)
        votes = np.zeros((n, t), dtype=np.float32)
        hits: list[list[tuple[int, float]]] = [[] for _ in range(n)]
        if not cfg.examples or not self.examples:
            return votes, hits
        sims = q @ self._example_vectors.T
        if len(background) >= cfg.min_background:
            ref = background @ self._example_vectors.T
            sd = ref.std(axis=0)
            stand_out = (sims - ref.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
        elif len(self.examples) >= cfg.min_background:
            stand_out = _row_z(sims)
        else:
            return votes, hits  # neither the recording nor the examples say what "near" is
        k = min(cfg.example_neighbours, len(self.examples))
        top = np.argpartition(-stand_out, k - 1, axis=1)[:, :k]
        top_stand = np.take_along_axis(stand_out, top, axis=1)
        order = np.argsort(-top_stand, axis=1)  # the nearest first, for `why`
        top, top_stand = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_stand, order, axis=1)
        near = top_stand >= cfg.example_from_z
        votes = cfg.example_weight * np.einsum("ik,ikt->it", near.astype(np.float32), self._example_themes[top]) \
            / cfg.example_neighbours
        top_sims = np.take_along_axis(sims, top, axis=1)
        for i in np.flatnonzero(near.any(axis=1)):
            hits[i] = [(int(j), float(s)) for j, s, ok in zip(top[i], top_sims[i], near[i]) if ok]
        return votes, hits

    def evidence_of_texts(self, texts: list[str], meaning_cfg: MeaningSettings,
                          background: list[str] | None = None) -> WindowEvidence:
        """`evidence` for texts (embedded here, not cached: for a few quotes, the bench and tests)."""
        vectors = meaning.embed(texts, meaning_cfg)
        return self.evidence(vectors, meaning.embed(background, meaning_cfg) if background else None)


def build_theme_meaning(book: Codebook, cfg: ThemeSettings, meaning_cfg: MeaningSettings, cache_dir: Path,
                        examples: Iterable[Example] = (), exclude: str | None = None) -> ThemeMeaning:
    """Embed the codebook and the examples, keeping their vectors by content in `cache_dir`.

    The examples of the story `exclude` are embedded too and dropped after: the cache then holds the
    same texts whichever story of the root is extracted, and nothing is embedded twice."""
    rows = codebook_texts(book, cfg)
    row_vectors = meaning.embed_cached([text for _, text, _ in rows], cache_dir / CODEBOOK_CACHE, meaning_cfg)
    every = list(examples) if cfg.examples else []
    vectors = meaning.embed_cached([e.text for e in every], cache_dir / EXAMPLES_CACHE, meaning_cfg) if every \
        else np.zeros((0, row_vectors.shape[1]), dtype=np.float32)
    keep = [j for j, e in enumerate(every) if e.story_id != exclude]
    return ThemeMeaning(book, cfg, rows, row_vectors, [every[j] for j in keep], vectors[keep])


def cache_folder(settings: Settings, root: Path | None) -> Path:
    """In the root's state folder (its vectors are of its own quotes), or the model's cache without a root."""
    base = settings.run.state_folder(Path(root)) if root is not None else settings.meaning.model_cache_dir()
    return base / settings.themes.cache_folder


def codebook_meaning(book: Codebook, meaning_cfg: MeaningSettings, cfg: ThemeSettings | None = None) -> ThemeMeaning:
    """The codebook by meaning alone, with no root to learn from (a bare `extract`, the bench): its
    vectors are kept in the model's cache folder."""
    cfg = cfg or ThemeSettings()
    return build_theme_meaning(book, cfg, meaning_cfg, meaning_cfg.model_cache_dir() / cfg.cache_folder)


def theme_meaning_for(book: Codebook, settings: Settings, store: Store | None = None,
                      story_id: str | None = None) -> ThemeMeaning:
    """What extract needs for one story: the codebook by meaning, and the team's examples from every
    other story of the root (none without a store)."""
    every = gather_examples(store, [t.id for t in book.themes]) if store is not None and settings.themes.examples else []
    coder = build_theme_meaning(book, settings.themes, settings.meaning, cache_folder(settings, store.root if store else None),
                                every, exclude=story_id)
    if coder.examples:
        stories = len({e.story_id for e in coder.examples})
        log.info("Learning themes from %d quotes the team approved in %d other %s", len(coder.examples), stories,
                 "story" if stories == 1 else "stories", extra={"story": story_id} if story_id else {})
    return coder
