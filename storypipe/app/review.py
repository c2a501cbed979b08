"""Review: what a person changes after the machine is done, as plain functions.

The review app and the `approve`/`reject` commands call these; they write the same files the
pipeline writes (transcript.json, quotes.json, story.json), atomically, under a per-story lock.
Every change that could clash with another tab carries the version of the file it was based on:
a stale version is refused (StaleVersion) rather than silently overwriting someone's work.
"""

from __future__ import annotations

import hashlib
import logging
import re
from difflib import SequenceMatcher
from pathlib import Path

from storypipe.core.store import Store
from storypipe.core.models import Consent, HistoryEntry, Quote, QuotesFile, Story, Transcript, Word, now
from storypipe.core.settings import Settings
from storypipe.tasks.common import formats

log = logging.getLogger("storypipe")

STORY_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,120}$")
QUOTE_ID = re.compile(r"^q[a-z0-9]{1,40}$")


class ReviewError(ValueError):
    """A change that cannot be made, in words a volunteer understands."""

    status = 400


class NotFound(ReviewError):
    status = 404


class StaleVersion(ReviewError):
    status = 409


def story_dir(store: Store, story_id: str) -> Path:
    """The story's folder; ids are checked first, so "../" can never reach outside the root."""
    if not STORY_ID.match(story_id or ""):
        raise NotFound(f"There is no story called {story_id!r}.")
    if not store.has_story(story_id):
        raise NotFound(f"There is no story called {story_id}.")
    return store.story_dir(story_id)


def version(path: Path) -> str:
    """A short fingerprint of a file's bytes: what an edit was based on."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else "none"


def _check(path: Path, expected: str | None) -> None:
    if expected is not None and version(path) != expected:
        raise StaleVersion(
            f"{path.name} was changed (in another tab or by the pipeline) since this page loaded. "
            "Reload the page to see the latest version, then make your change again."
        )


# ---- transcript ----


def _plain(token: str) -> str:
    return re.sub(r"[^\w']", "", token.lower())


def realign_words(words: list[Word], text: str, start: float, end: float) -> list[Word]:
    """Timed words for corrected text: words that did not change keep their times; new or changed
    words share the time between their unchanged neighbours, in proportion to their length."""
    tokens = text.split()
    if not tokens:
        return []
    old = [_plain(w.word) for w in words]
    new = [_plain(t) for t in tokens]
    times: list[tuple[float, float, float] | None] = [None] * len(tokens)
    for block in SequenceMatcher(None, old, new, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            w = words[block.a + k]
            times[block.b + k] = (w.start, w.end, w.probability)
    i = 0
    while i < len(tokens):
        if times[i] is not None:
            i += 1
            continue
        j = i
        while j < len(tokens) and times[j] is None:
            j += 1
        left = times[i - 1][1] if i > 0 else start
        right = times[j][0] if j < len(tokens) else end
        right = max(right, left)
        total = sum(len(t) + 1 for t in tokens[i:j])
        t = left
        for k in range(i, j):
            share = (right - left) * (len(tokens[k]) + 1) / total
            times[k] = (round(t, 3), round(t + share, 3), 1.0)
            t += share
        i = j
    return [Word(word=" " + tok, start=s, end=e, probability=p) for tok, (s, e, p) in zip(tokens, times)]


def edit_segment(store: Store, story_id: str, segment_id: int, text: str, based_on: str | None) -> Transcript:
    """Correct a segment's text. The machine's text is kept beside it; word times are re-aligned
    within the segment, so clicking a word still plays from it."""
    text = " ".join(text.split())
    if not text:
        raise ReviewError("A segment cannot be empty. To drop what was heard, write what was really said.")
    story_dir(store, story_id)
    with store.edit_lock(story_id):
        _check(store.transcript_path(story_id), based_on)
        transcript = store.read_transcript(story_id)
        seg = next((s for s in transcript.segments if s.id == segment_id), None)
        if seg is None:
            raise NotFound(f"Segment {segment_id} is not in {story_id}.")
        if text != seg.text:
            if seg.machine_text is None:
                seg.machine_text = seg.text
            seg.words = realign_words(seg.words, text, seg.start, seg.end) if seg.words else []
            seg.text = text
            seg.low_confidence = False
            _save_transcript(store, transcript)
    log.info("Segment %d of %s corrected by a reviewer", segment_id, story_id, extra={"story": story_id})
    return transcript


def rename_speaker(store: Store, story_id: str, label: str, name: str, based_on: str | None) -> Transcript:
    story_dir(store, story_id)
    name = " ".join(name.split())[:60]
    with store.edit_lock(story_id):
        _check(store.transcript_path(story_id), based_on)
        transcript = store.read_transcript(story_id)
        if label not in {s.speaker for s in transcript.segments if s.speaker}:
            raise NotFound(f"Nobody is labelled {label!r} in {story_id}.")
        if name:
            transcript.speaker_names[label] = name
        else:
            transcript.speaker_names.pop(label, None)
        _save_transcript(store, transcript)
    return transcript


def _save_transcript(store: Store, transcript: Transcript) -> None:
    store.write_transcript(transcript)
    story = store.read_story(transcript.story_id)
    formats.write_transcript_files(transcript, store, title=story.metadata.title)


def mark_reviewed(store: Store, story_id: str) -> Story:
    story_dir(store, story_id)
    with store.updating_story(story_id) as story:
        story.reviewed_at = now()
        story.history.append(HistoryEntry(state=story.state, note="transcript and quotes reviewed"))
    return story


# ---- quotes ----


def _quotes(store: Store, story_id: str) -> QuotesFile:
    if not store.quotes_path(story_id).exists():
        raise NotFound(f"{story_id} has no quotes yet.")
    return store.read_quotes(story_id)


def _quote(quotes: QuotesFile, quote_id: str) -> Quote:
    quote = next((q for q in quotes.quotes if q.id == quote_id), None) if QUOTE_ID.match(quote_id or "") else None
    if quote is None:
        raise NotFound(f"There is no quote {quote_id!r} in {quotes.story_id}.")
    return quote


def decide(store: Store, story_id: str, quote_ids: list[str], status: str, based_on: str | None = None) -> QuotesFile:
    """Approve, reject or reset quotes; all ids are checked before anything is written."""
    if status not in ("approved", "rejected", "candidate"):
        raise ReviewError(f"{status!r} is not a decision: use approved, rejected or candidate.")
    story_dir(store, story_id)
    with store.edit_lock(story_id):
        _check(store.quotes_path(story_id), based_on)
        quotes = _quotes(store, story_id)
        chosen = [_quote(quotes, qid) for qid in quote_ids]
        for q in chosen:
            q.status = status
        store.write_quotes(story_id, quotes)
    return quotes


def update_quote(
    store: Store,
    story_id: str,
    quote_id: str,
    based_on: str | None,
    *,
    widen_start: int = 0,
    widen_end: int = 0,
    title: str | None = None,
    description: str | None = None,
) -> QuotesFile:
    """Move a quote's edges by whole words (positive widens, negative narrows), or set its clip
    title and description. The text follows the (reviewed) transcript."""
    story_dir(store, story_id)
    with store.edit_lock(story_id):
        _check(store.quotes_path(story_id), based_on)
        quotes = _quotes(store, story_id)
        quote = _quote(quotes, quote_id)
        if widen_start or widen_end:
            transcript = store.read_transcript(story_id)
            words = transcript.words()
            inside = transcript.word_indices_between(quote.start, quote.end)
            if not inside:
                raise ReviewError("The quote's words are no longer in the transcript.")
            first = min(max(0, inside[0] - widen_start), len(words) - 1)
            last = max(min(len(words) - 1, inside[-1] + widen_end), first)
            quote.start, quote.end = words[first].start, words[last].end
            quote.text = "".join(w.word for w in words[first : last + 1]).strip()
            quote.edited = True
        if title is not None:
            quote.title = " ".join(title.split())[:100] or None
        if description is not None:
            quote.description = description.strip()[:5000] or None
        store.write_quotes(story_id, quotes)
    return quotes


def check_themes(themes: list[str], known: list[str]) -> None:
    """Every theme must be in the codebook: a typo is refused, with the ids there are."""
    unknown = [t for t in themes if t not in known]
    if unknown:
        raise ReviewError(f"Unknown theme(s): {', '.join(unknown)}. The codebook has: {', '.join(known)}.")


def set_themes(store: Store, story_id: str, quote_id: str, themes: list[str], known: list[str],
               based_on: str | None = None) -> QuotesFile:
    """A person's choice of themes for a quote (a suggestion confirmed, one added or taken away): it
    replaces the machine's tags, and a re-run keeps it. Themes must be in the codebook (`known`)."""
    check_themes(themes, known)
    story_dir(store, story_id)
    with store.edit_lock(story_id):
        _check(store.quotes_path(story_id), based_on)
        quotes = _quotes(store, story_id)
        quote = _quote(quotes, quote_id)
        quote.themes = list(dict.fromkeys(themes))
        quote.themes_checked = True
        store.write_quotes(story_id, quotes)
    return quotes


def new_quote(store: Store, story_id: str, start: float, end: float, based_on: str | None = None) -> Quote:
    """A quote a person picked by selecting transcript text: approved, since a person chose it."""
    story_dir(store, story_id)
    with store.edit_lock(story_id):
        _check(store.quotes_path(story_id), based_on)
        transcript = store.read_transcript(story_id)
        words = [w for w in transcript.words() if w.within(min(start, end), max(start, end))]
        if not words:
            raise ReviewError("Select some words of the transcript to make a quote.")
        speaker = next((s.speaker for s in transcript.segments if words[0] in s.words), None)
        qid = "q" + hashlib.sha1(f"manual-{words[0].start:.2f}-{words[-1].end:.2f}".encode()).hexdigest()[:6]
        quote = Quote(
            id=qid, text="".join(w.word for w in words).strip(), start=words[0].start, end=words[-1].end,
            speaker=speaker, score=1.0, status="approved", edited=True, why={"chosen_by_reviewer": 1.0},
        )
        quotes = store.read_quotes(story_id, missing_ok=True) or QuotesFile(story_id=story_id)
        quotes.quotes = [q for q in quotes.quotes if q.id != qid] + [quote]
        store.write_quotes(story_id, quotes)
    return quote


# ---- consent ----


def change_consent(store: Store, story_id: str, changes: dict[str, bool], settings: Settings,
                   based_on: str | None = None) -> Story:
    """Change what the storyteller consents to. A withdrawal takes effect at once: the staged
    package goes, and so do the story's clips that are not yet published. A new permission to
    publish the full story stages it now."""
    from storypipe.tasks import clips, stage

    unknown = set(changes) - set(Consent.model_fields)
    if unknown:
        raise ReviewError(f"Unknown consent choice(s): {', '.join(sorted(unknown))}.")
    story_dir(store, story_id)
    with store.updating_story(story_id) as story:
        _check(store.story_path(story_id), based_on)
        before = story.consent
        after = Consent.model_validate({**before.model_dump(), **changes})
        if after == before:
            return story  # nothing changed, so nothing is written
        said = ", ".join(
            f"{k} {'yes' if v else 'no'}" for k, v in after.model_dump().items() if getattr(before, k) != v
        )
        story.consent = after
        story.history.append(HistoryEntry(state=story.state, note=f"consent changed: {said}"))
    if not after.full_story or after.anonymise != before.anonymise:
        if stage.unstage(story_id, store):
            log.info("%s: staged package removed after the consent change", story_id, extra={"story": story_id})
    if not after.clips or after.anonymise != before.anonymise:
        clips.withdraw_story(store, story_id)
    if after.full_story and story.state in ("extracted", "staged"):
        stage.stage_story(story_id, store, settings)
    return store.read_story(story_id)
