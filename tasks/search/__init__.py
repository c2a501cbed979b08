"""Search across stories: the passages of every story that mean what a person asks for, best first.

Passages. Each speaker's turn (consecutive segments of one speaker) is cut into windows of whole
sentences of about `window_words` words, at most `max_words` (a longer sentence is cut into pieces);
each window starts with the last `overlap_sentences` sentence(s) of the one before, so a point made
across a window's edge is whole in one of them. A window never crosses a change of speaker. Turns
shorter than `min_words` ("Yeah.", "Mm.") are left out: a two-word reply is near every short query.
So are the turns of `leave_out_speakers` (the interviewer): a workshop searches what storytellers
said, and the interviewer's questions, which repeat the topic in few words, crowded the answers out.
Each passage keeps its story, start and end (its first and last word), speaker and text.

Ranking. The query and the passages are embedded with all-MiniLM-L6-v2 (tasks/common/meaning.py);
the score is their cosine similarity. A passage that holds the query's exact words (whole words;
case and punctuation aside) gets `phrase_boost` added, so an exact phrase a volunteer remembers
ranks first. There is no fuzzy word-overlap boost: it would lift passages that share words but not
meaning, which is what the embeddings are there to see past. A passage shorter than `window_words`
loses up to `short_penalty`, in proportion to how much shorter: short texts sit near every short
query. Passages below `min_score` that do not hold the phrase are not shown, and of the hits of one
story that overlap in time (windows overlap) only the best is.

The model is small and leans on shared words when the query is only two or three words ("being
listened to" finds "we listened to the radio"); a query said as a storyteller might say it ("nobody
listened to what we had to say") finds passages by meaning better (bench/search.md).

The index. One file per story, inside the root (`Store.search_index_path`:
.storypipe/search/<story_id>.npz): the passages' vectors, the passages, and the keys of what they
were made from (the transcript's content, the story's title and anonymisation, the passage settings
and the model). The flow indexes a story when it is extracted; `refresh` (run by every search) brings
the index up to date by content: a story whose transcript did not change (its file's size and time,
else its words, times and speakers) is not embedded again; a changed one is done again (only
passages whose text changed are embedded); an extracted story not yet indexed is indexed; the file
of a deleted story goes.

Consent. The index holds transcript text, so the storyteller's `transcript` answer decides
(common/consent.search): without it a story is never indexed, its file is removed (at once when
consent is withdrawn in the review app, see `consent_changed`), and search ignores a stale file.
An anonymised story's passages are made from its redacted transcript (common/anonymise.py) and
embedded as redacted, so names are neither shown nor found; its title is redacted too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from storypipe.core import timefmt
from storypipe.core.jsonio import BadFileError, atomic_writer
from storypipe.core.models import Story, Transcript, Word
from storypipe.core.settings import SearchSettings, Settings
from storypipe.core.store import Store
from storypipe.tasks.common import consent, meaning

log = logging.getLogger("storypipe")

INDEX_VERSION = 1  # the file's layout; a new one makes every story's passages again
# Stories reach search once their quotes are extracted (a failure after that keeps them).
SEARCHABLE_STATES = ("extracted", "staged", "published")
# In the root's state folder: redacted transcripts by content, shared with the findings report.
ANONYMISED_CACHE = "anonymised"
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*$")
_NOT_WORD = re.compile(r"[^\w]+")


class SearchError(ValueError):
    """A search that cannot be made (an empty query), in words for a volunteer."""


@dataclass(frozen=True)
class Passage:
    story_id: str
    start: float
    end: float
    speaker: str | None
    text: str
    segment: int  # the transcript segment it starts in: where the story page opens


@dataclass
class IndexEntry:
    """One story's index file, as read."""

    story_id: str
    title: str
    passages: list[Passage]
    vectors: np.ndarray  # one unit-length row per passage
    index_key: str  # passage settings, model, file layout
    story_key: str  # what of story.json the passages depend on (title, anonymisation)
    content_key: str  # the transcript's words, times and speakers
    transcript_stat: list[int]  # transcript.json's size and modification time, to skip reading it
    model: str  # the model's checksum: vectors can be reused only from the same model
    speaker_names: dict[str, str] = field(default_factory=dict)  # none when anonymised
    _plain: list[str] | None = None

    def plain_texts(self) -> list[str]:
        """Each passage in the form the exact-phrase match compares (worked out once)."""
        if self._plain is None:
            self._plain = [plain(p.text) for p in self.passages]
        return self._plain

    def word_counts(self) -> list[int]:
        return [t.count(" ") + 1 if t else 0 for t in self.plain_texts()]


@dataclass(frozen=True)
class Hit:
    story_id: str
    title: str
    start: float
    end: float
    speaker: str | None
    who: str | None  # the speaker as the team named them in the review app, else the label
    text: str
    score: float
    segment: int

    @property
    def time(self) -> str:
        return timefmt.duration(self.start)

    def json(self) -> dict:
        """A hit as `storypipe search --json` prints it (CONTRACT.md)."""
        return {"story_id": self.story_id, "start": round(self.start, 3), "end": round(self.end, 3),
                "speaker": self.speaker, "text": self.text, "score": round(self.score, 4)}


@dataclass
class Found:
    query: str
    hits: list[Hit]
    stories: int  # stories searched
    indexed_now: list[str]  # made searchable (or brought up to date) by this search
    pending: list[str]  # new or changed stories not searched yet, or as they were (index_now=False)
    withheld: int  # stories left out because the storyteller did not consent to a transcript
    waiting: int  # stories whose quotes are not extracted yet

    def json(self) -> dict:
        return {"query": self.query, "hits": [h.json() for h in self.hits]}


# ---- passages ----


def plain(text: str) -> str:
    """Lower case, apostrophes dropped, other punctuation as spaces: "Being LISTENED-to." -> "being listened to"."""
    return " ".join(_NOT_WORD.sub(" ", text.lower().replace("'", "").replace("’", "")).split())


def _turns(transcript: Transcript) -> list[tuple[str | None, list[tuple[int, Word]]]]:
    """Consecutive segments of one speaker, as (segment id, word) lists. A segment without timed
    words counts as one word spanning it, so its text is still found."""
    turns: list[tuple[str | None, list[tuple[int, Word]]]] = []
    for seg in transcript.segments:
        words = seg.words or ([Word(word=seg.text, start=seg.start, end=seg.end, probability=1.0)]
                              if seg.text.strip() else [])
        if not words:
            continue
        if turns and turns[-1][0] == seg.speaker:
            turns[-1][1].extend((seg.id, w) for w in words)
        else:
            turns.append((seg.speaker, [(seg.id, w) for w in words]))
    return turns


def _sentences(words: list[tuple[int, Word]], cfg: SearchSettings) -> list[list[tuple[int, Word]]]:
    """A turn's words as sentences (ending at . ! ? …); one longer than max_words is cut into
    pieces of window_words."""
    out, current = [], []
    for item in words:
        current.append(item)
        if _SENTENCE_END.search(item[1].word.strip()):
            out.append(current)
            current = []
    if current:
        out.append(current)
    pieces = []
    for sentence in out:
        if len(sentence) > cfg.max_words:
            pieces += [sentence[i:i + cfg.window_words] for i in range(0, len(sentence), cfg.window_words)]
        else:
            pieces.append(sentence)
    return pieces


def _windows(sentences: list[list], cfg: SearchSettings) -> list[list]:
    """Runs of whole sentences of about window_words words, each after the first starting with the
    last overlap_sentences sentence(s) of the one before."""
    windows, i = [], 0
    while i < len(sentences):
        j, count = i, 0
        while j < len(sentences) and count < cfg.window_words and (
                count == 0 or count + len(sentences[j]) <= cfg.max_words):
            count += len(sentences[j])
            j += 1
        windows.append(sentences[i:j])
        if j >= len(sentences):
            break
        i = max(i + 1, j - cfg.overlap_sentences)
    return windows


def passages_of(transcript: Transcript, cfg: SearchSettings) -> list[Passage]:
    """The story's passages, in the order spoken (see the module doc)."""
    out = []
    for speaker, words in _turns(transcript):
        if speaker in cfg.leave_out_speakers or sum(len(w.word.split()) for _, w in words) < cfg.min_words:
            continue
        for window in _windows(_sentences(words, cfg), cfg):
            items = [item for sentence in window for item in sentence]
            text = " ".join("".join(w.word for _, w in items).split())
            out.append(Passage(transcript.story_id, items[0][1].start, items[-1][1].end, speaker, text, items[0][0]))
    return out


# ---- what an index file was made from ----


def _digest(data: object) -> str:
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def index_key(settings: Settings) -> str:
    """The passage settings, the model and the file's layout: any change makes the passages again."""
    cfg = settings.search
    return _digest([INDEX_VERSION, settings.meaning.sha256, cfg.window_words, cfg.max_words,
                    cfg.overlap_sentences, cfg.min_words, sorted(cfg.leave_out_speakers)])


def story_key(story: Story, settings: Settings) -> str:
    """What of story.json the passages and title depend on: the title, and whether and how names
    are hidden (the sidecar's names, the [anonymise] settings, the spaCy model)."""
    parts: list[object] = [story.metadata.title, story.consent.anonymise]
    if story.consent.anonymise:
        parts += [story.metadata.model_dump(mode="json"), settings.anonymise.model_dump(mode="json"),
                  settings.extract.spacy_model]
    return _digest(parts)


def content_key(transcript: Transcript) -> str:
    """The transcript's words, their times and speakers, and the speakers' names: what passages are
    made of (not the recogniser's confidence, which a re-run may change)."""
    return _digest([[s.speaker, s.text, s.start, s.end, [(w.word, w.start, w.end) for w in s.words]]
                    for s in transcript.segments] + [transcript.speaker_names])


def _stat(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns]


# ---- index files ----


def write_entry(path: Path, entry: IndexEntry) -> None:
    meta = {"version": INDEX_VERSION, "story_id": entry.story_id, "title": entry.title,
            "index_key": entry.index_key, "story_key": entry.story_key, "content_key": entry.content_key,
            "transcript_stat": entry.transcript_stat, "model": entry.model, "speaker_names": entry.speaker_names,
            "passages": [[p.start, p.end, p.speaker, p.text, p.segment] for p in entry.passages],
            "plain": entry.plain_texts()}  # kept, so a fresh process need not work them out again
    with atomic_writer(path) as f:
        np.savez(f, vectors=entry.vectors.astype(np.float32),
                 meta=np.frombuffer(json.dumps(meta, ensure_ascii=False).encode(), dtype=np.uint8))


def read_entry(path: Path) -> IndexEntry | None:
    """A story's index file, or None when it is missing or unreadable (then it is made again)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(data["meta"].tobytes().decode())
            vectors = data["vectors"]
        if meta["version"] != INDEX_VERSION or len(meta["passages"]) != len(vectors):
            return None
        sid = meta["story_id"]
        passages = [Passage(sid, float(a), float(b), spk, text, int(seg)) for a, b, spk, text, seg in meta["passages"]]
        plain_texts = meta.get("plain")
        return IndexEntry(sid, meta["title"], passages, vectors, meta["index_key"], meta["story_key"],
                          meta["content_key"], list(meta["transcript_stat"]), meta["model"], meta["speaker_names"],
                          _plain=plain_texts if isinstance(plain_texts, list) and len(plain_texts) == len(passages)
                          else None)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("The search index file %s could not be read (%s); it will be made again", path.name, e)
        return None


class IndexCache:
    """Index files read once and kept while unchanged on disk, and the matrix of every story's
    vectors: the review app keeps one across searches, so a search reads only what changed."""

    def __init__(self) -> None:
        self._entries: dict[Path, tuple[list[int] | None, IndexEntry | None]] = {}
        self._matrix: tuple[tuple, np.ndarray, list[tuple[IndexEntry, int]], list[str], np.ndarray] | None = None

    def read(self, path: Path) -> IndexEntry | None:
        stat = _stat(path)
        known = self._entries.get(path)
        if known is not None and known[0] == stat and stat is not None:
            return known[1]
        entry = read_entry(path) if stat is not None else None
        self._entries[path] = (stat, entry)
        return entry

    def wrote(self, path: Path, entry: IndexEntry) -> None:
        self._entries[path] = (_stat(path), entry)

    def forget(self, path: Path) -> None:
        self._entries.pop(path, None)

    def matrix(self, entries: list[IndexEntry], dim: int
               ) -> tuple[np.ndarray, list[tuple[IndexEntry, int]], list[str], np.ndarray]:
        """Every passage's vector as one matrix, with (entry, passage index), plain text (with a
        space either side, for matching whole words) and word count per row."""
        key = tuple((e.story_id, e.index_key, e.story_key, e.content_key) for e in entries)
        if self._matrix is None or self._matrix[0] != key:
            vectors = np.concatenate([e.vectors for e in entries]) if entries else np.zeros((0, dim), np.float32)
            rows = [(e, i) for e in entries for i in range(len(e.passages))]
            texts = [f" {t} " for e in entries for t in e.plain_texts()]
            counts = np.array([n for e in entries for n in e.word_counts()], dtype=np.float32)
            self._matrix = (key, np.ascontiguousarray(vectors, dtype=np.float32), rows, texts, counts)
        return self._matrix[1:]


def drop_story(store: Store, story_id: str, cache: IndexCache | None = None) -> bool:
    """Remove a story's index file; True when there was one."""
    path = store.search_index_path(story_id)
    if cache is not None:
        cache.forget(path)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    log.info("%s is no longer searchable", story_id, extra={"story": story_id})
    return True


def consent_changed(store: Store, story_id: str, settings: Settings) -> None:
    """After a consent change (storypipe/app/review.py): a withdrawn transcript consent removes the
    story from search at once; a change of `anonymise` drops the file too, so text made under the
    old answer is never shown (the next search makes it again)."""
    story = store.read_story(story_id)
    path = store.search_index_path(story_id)
    if consent.search(story) is not None:
        drop_story(store, story_id)
        return
    old = read_entry(path)
    if old is not None and old.story_key != story_key(story, settings):
        drop_story(store, story_id)


def _texts_and_title(store: Store, story: Story, transcript: Transcript, settings: Settings
                     ) -> tuple[Transcript, str, dict[str, str]]:
    """The transcript the passages are cut from, the title and the speakers' names: redacted for an
    anonymised story (names hidden, no speaker names)."""
    title = story.metadata.title or story.story_id
    if not consent.anonymise(story):
        return transcript, title, dict(transcript.speaker_names)
    from storypipe.tasks.common.anonymise import anonymise_text_cached, redact_text

    hidden = anonymise_text_cached(store.transcript_path(story.story_id), story.metadata, settings,
                                   settings.run.state_folder(store.root) / ANONYMISED_CACHE)
    if story.metadata.title:
        title = redact_text([story.metadata.title], story.metadata, settings, hidden)[0]
    return hidden.transcript, title, {}


def _embed_reusing(texts: list[str], old: IndexEntry | None, settings: Settings) -> tuple[np.ndarray, int]:
    """Vectors for `texts`, reusing the old file's for texts that did not change; and how many were
    embedded now."""
    known: dict[str, np.ndarray] = {}
    if old is not None and old.model == settings.meaning.sha256:
        known = {p.text: v for p, v in zip(old.passages, old.vectors)}
    missing = list(dict.fromkeys(t for t in texts if t not in known))
    if missing:
        known.update(zip(missing, meaning.embed(missing, settings.meaning)))
    if not texts:
        return meaning.embed([], settings.meaning), 0
    return np.stack([known[t] for t in texts]).astype(np.float32), len(missing)


@dataclass
class _Plan:
    """What bringing one story's index up to date takes: nothing ("fresh"), remembering its
    rewritten transcript file ("same words"), or making its passages again ("stale")."""

    story: Story
    old: IndexEntry | None
    kind: str
    stat: list[int] | None = None
    content_key: str = ""


def _plan(store: Store, story: Story, settings: Settings, old: IndexEntry | None) -> _Plan:
    """Look without embedding: the transcript's file first (its size and time), its words only when
    the file changed. None of it when it has no transcript (kind "none")."""
    stat = _stat(store.transcript_path(story.story_id))  # before reading: a newer file is then noticed next time
    if stat is None:
        return _Plan(story, old, "none")
    same_settings = old is not None and old.index_key == index_key(settings) and old.story_key == story_key(story, settings)
    if same_settings and old.transcript_stat == stat:
        return _Plan(story, old, "fresh", stat, old.content_key)
    ckey = content_key(store.read_transcript(story.story_id))
    kind = "same words" if same_settings and old.content_key == ckey else "stale"
    return _Plan(story, old, kind, stat, ckey)


def _carry_out(store: Store, plan: _Plan, settings: Settings, cache: IndexCache | None) -> IndexEntry | None:
    sid, old = plan.story.story_id, plan.old
    if plan.kind == "none":
        return None
    if plan.kind == "fresh":
        return old
    if plan.kind == "same words":
        entry = replace(old, transcript_stat=plan.stat)
    else:
        transcript = store.read_transcript(sid)
        source, title, names = _texts_and_title(store, plan.story, transcript, settings)
        passages = passages_of(source, settings.search)
        vectors, embedded = _embed_reusing([p.text for p in passages], old, settings)
        entry = IndexEntry(sid, title, passages, vectors, index_key(settings), story_key(plan.story, settings),
                           content_key(transcript), plan.stat, settings.meaning.sha256, names)
        log.info("%s is searchable: %d passages (%d embedded now)", sid, len(passages), embedded,
                 extra={"story": sid})
    path = store.search_index_path(sid)
    write_entry(path, entry)
    if cache is not None:
        cache.wrote(path, entry)
    return entry


def index_story(story_id: str, store: Store, settings: Settings) -> IndexEntry | None:
    """Make one story searchable, or up to date (the flow runs this after extraction). A story
    without transcript consent is never indexed, and its file goes."""
    story = store.read_story(story_id)
    if consent.search(story) is not None:
        drop_story(store, story_id)
        return None
    old = read_entry(store.search_index_path(story_id))
    return _carry_out(store, _plan(store, story, settings, old), settings, None)


@dataclass
class Refreshed:
    entries: list[IndexEntry]
    indexed_now: list[str]
    pending: list[str]  # new or changed stories left to index later (index_now=False)
    withheld: int
    waiting: int


def _usable_meanwhile(plan: _Plan, settings: Settings) -> IndexEntry | None:
    """A changed story's old file while it waits to be indexed again: only when it was made under the
    same anonymisation and settings (its text may be a little out of date, never less hidden)."""
    old = plan.old
    ok = old is not None and old.index_key == index_key(settings) and old.story_key == story_key(plan.story, settings)
    return old if ok else None


def refresh(store: Store, settings: Settings, cache: IndexCache | None = None,
            on_indexing: Callable[[list[str]], None] | None = None, index_now: bool = True) -> Refreshed:
    """Every searchable story's index, up to date (see the module doc): files of deleted stories and
    of stories without transcript consent are removed; a story that is extracted but not indexed,
    or changed since, is indexed now (`on_indexing` is told which first, so a person can be told),
    or with index_now=False left `pending` (the review app indexes them in the background)."""
    cache = cache or IndexCache()
    stories = store.stories()
    known = {s.story_id: s for s in stories}
    for sid in store.search_indexed_ids():
        story = known.get(sid)
        gone = story is None and not store.has_story(sid)  # a broken story.json is not a deleted story
        if gone or (story is not None and consent.search(story) is not None):
            drop_story(store, sid, cache)
    withheld = sum(consent.search(s) is not None for s in stories)
    ready = [s for s in stories if consent.search(s) is None and s.reached() in SEARCHABLE_STATES]
    plans = []
    for story in ready:
        try:
            plans.append(_plan(store, story, settings, cache.read(store.search_index_path(story.story_id))))
        except BadFileError as e:
            log.warning("%s is left out of search: %s", story.story_id, e.reason, extra={"story": story.story_id})
    stale = [p.story.story_id for p in plans if p.kind == "stale"]
    if stale and index_now and on_indexing is not None:
        on_indexing(stale)
    entries = []
    for plan in plans:
        if plan.kind == "stale" and not index_now:
            entry = _usable_meanwhile(plan, settings)
            entries += [entry] if entry is not None else []
            continue
        try:
            entry = _carry_out(store, plan, settings, cache)
        except BadFileError as e:
            log.warning("%s is left out of search: %s", plan.story.story_id, e.reason,
                        extra={"story": plan.story.story_id})
            continue
        if entry is not None:
            entries.append(entry)
    indexed, pending = (stale, []) if index_now else ([], stale)
    return Refreshed(entries, indexed, pending, withheld, len(stories) - withheld - len(ready))


# ---- searching ----


def rank(query: str, vectors: np.ndarray, texts: list[str], counts: np.ndarray, cfg: SearchSettings,
         query_vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's score (cosine; plus phrase_boost when the passage holds the query's exact words,
    `texts` being the plain texts with a space either side; less the short_penalty share for a short
    passage), and whether it is shown at all (alike enough, or holding the phrase)."""
    cosine = vectors @ query_vector
    phrase = f" {plain(query)} "
    holds = np.fromiter((phrase in t for t in texts), dtype=bool, count=len(texts)) \
        if phrase.strip() else np.zeros(len(texts), bool)
    shortness = np.clip(1 - counts / cfg.window_words, 0, 1)
    return cosine + cfg.phrase_boost * holds - cfg.short_penalty * shortness, (cosine >= cfg.min_score) | holds


def search(query: str, store: Store, settings: Settings, limit: int | None = None,
           cache: IndexCache | None = None, on_indexing: Callable[[list[str]], None] | None = None,
           index_now: bool = True) -> Found:
    """The passages across every searchable story that mean `query`, best first (at most `limit`,
    default [search] limit). Brings the index up to date first (see `refresh`)."""
    query = " ".join((query or "").split())
    if not query:
        raise SearchError("Say what to search for, e.g. storypipe search \"being listened to\".")
    limit = settings.search.limit if limit is None else limit
    if limit < 1:
        raise SearchError("The number of hits (--limit) must be 1 or more.")
    cache = cache or IndexCache()
    fresh = refresh(store, settings, cache, on_indexing, index_now)
    query_vector = meaning.embed([query], settings.meaning)[0]
    vectors, rows, texts, counts = cache.matrix(fresh.entries, len(query_vector))
    scores, shown = rank(query, vectors, texts, counts, settings.search, query_vector)
    hits: list[Hit] = []
    taken: dict[str, list[tuple[float, float]]] = {}
    for i in np.argsort(-scores, kind="stable"):
        if not shown[i]:
            continue
        entry, k = rows[i]
        p = entry.passages[k]
        spans = taken.setdefault(p.story_id, [])
        if any(p.start < b and a < p.end for a, b in spans):
            continue  # overlaps a better hit of the same story
        spans.append((p.start, p.end))
        who = entry.speaker_names.get(p.speaker or "", p.speaker)
        hits.append(Hit(p.story_id, entry.title, p.start, p.end, p.speaker, who, p.text, float(scores[i]), p.segment))
        if len(hits) >= limit:
            break
    return Found(query, hits, len(fresh.entries), fresh.indexed_now, fresh.pending, fresh.withheld, fresh.waiting)
