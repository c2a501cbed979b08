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
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path

from storypipe.core import timefmt
from storypipe.core.store import Store
from storypipe.core.models import Consent, HistoryEntry, Quote, QuotesFile, Segment, Story, Transcript, Word, now
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


# ---- who spoke ----
#
# Three corrections, each on one segment and based on the transcript's version: give the segment to
# another speaker; give the words from a chosen word to the end of the segment to another speaker
# (a turn the machine missed: only that segment changes, the ones after keep their speakers); split
# the segment in two at a word (the speaker stays). Segments are numbered again 0..n-1 in order after
# a split, as the pipeline numbers them. A change of speaker derives the quotes again from the
# corrected turns at once (extract_story keeps every decided quote as it was); a decided quote the
# correction now runs through gets a `review_note` for the reviewer.

STORYTELLER, INTERVIEWER = "storyteller", "interviewer"
# A voice the machine did not find: "speaker 3", "speaker 4"... (as tasks/transcribe/speakers.py names them).
EXTRA_VOICE = re.compile(r"^speaker [1-9][0-9]?$")


@dataclass
class SpeakerChange:
    """What a correction of who spoke did, for the page and the shell."""

    transcript: Transcript
    said: str  # the change in plain words, or why nothing needed changing
    changed: bool
    segments: list[int]  # ids of the segments made or changed, as they are numbered now
    quotes: QuotesFile | None = None  # the quotes, when they were derived again
    notes: dict[str, str] = field(default_factory=dict)  # quote id -> note, decided quotes to look at again
    problem: str | None = None  # why the quotes could not be derived again


def speaker_choices(transcript: Transcript) -> list[str]:
    """Who a segment can be given to: the labels in the transcript (in the order they first speak),
    storyteller and interviewer when missing (a recording where the machine heard one voice), and
    the next free "speaker N" for a voice the machine did not find."""
    labels = list(dict.fromkeys(s.speaker for s in transcript.segments if s.speaker))
    labels += [x for x in (STORYTELLER, INTERVIEWER) if x not in labels]
    n = 3
    while f"speaker {n}" in labels:
        n += 1
    return [*labels, f"speaker {n}"]


def who(transcript: Transcript, label: str | None) -> str:
    """A speaker as a person reads it: "Sam (interviewer)", "the storyteller", "speaker 3"."""
    if not label:
        return "nobody in particular"
    name = transcript.speaker_names.get(label)
    if name:
        return f"{name} ({label})"
    return f"the {label}" if label in (STORYTELLER, INTERVIEWER) else label


def _speaker_for(transcript: Transcript, current: str | None, to: str | None) -> str:
    """The label `to` means: a label, a name the reviewer gave, or None for "the other speaker" (the
    one voice of storyteller and interviewer, and any other in the transcript, that is not `current`)."""
    choices = speaker_choices(transcript)
    if to is None:
        others = [x for x in choices[:-1] if x != current]
        if len(others) == 1:
            return others[0]
        raise ReviewError(f"Say who said it: {_listing(transcript, others)}.")
    wanted = " ".join(to.split()).casefold()
    for label in choices[:-1]:
        if label.casefold() == wanted:
            return label
    for label, name in transcript.speaker_names.items():
        if " ".join(name.split()).casefold() == wanted:
            return label
    if EXTRA_VOICE.match(wanted):
        return wanted
    raise ReviewError(f"Nobody called {to!r} speaks in {transcript.story_id}. Choose "
                      f"{_listing(transcript, choices[:-1])}, or {choices[-1]!r} for a voice the machine missed.")


def _listing(transcript: Transcript, labels: list[str]) -> str:
    shown = [f"{label!r}" + (f" ({transcript.speaker_names[label]})" if label in transcript.speaker_names else "")
             for label in labels]
    return ", ".join(shown[:-1]) + f" or {shown[-1]}" if len(shown) > 1 else "".join(shown)


def _transcript_of(store: Store, story_id: str) -> Transcript:
    transcript = store.read_transcript(story_id, missing_ok=True)
    if transcript is None:
        raise NotFound(f"{story_id} is not transcribed yet.")
    return transcript


def _segment_at(transcript: Transcript, segment_id: int) -> int:
    """The position of segment `segment_id`; NotFound naming the segments there are."""
    index = next((i for i, s in enumerate(transcript.segments) if s.id == segment_id), None)
    if index is None:
        ids = [s.id for s in transcript.segments]
        there = f"its segments are numbered {min(ids)} to {max(ids)}" if ids else "it has no segments"
        raise NotFound(f"There is no segment {segment_id} in {transcript.story_id}: {there}.")
    return index


def _segment_for_edit(store: Store, story_id: str, segment_id: int,
                      based_on: str | None) -> tuple[Transcript, int, Segment]:
    """Under the story's edit lock: the transcript (refused if it changed since the reviewer saw it),
    the segment's position in it, and the segment."""
    _check(store.transcript_path(story_id), based_on)
    transcript = _transcript_of(store, story_id)
    index = _segment_at(transcript, segment_id)
    return transcript, index, transcript.segments[index]


def _check_word(seg: Segment, word: int, split: bool) -> None:
    """Word `word` of the segment must exist (and, for a split, not be its first): else say what there is."""
    n = len(seg.words)
    if not n:
        raise ReviewError(f"Segment {seg.id} has no timed words, so it cannot be "
                          + ("split at a word." if split else "given from a word on: give it whole."))
    if split and n == 1:
        raise ReviewError(f"Segment {seg.id} has only one word: there is nothing to split.")
    if not 0 <= word < n:
        raise ReviewError(f"Segment {seg.id} has {n} words, numbered 0 to {n - 1}: there is no word {word}.")
    if split and word == 0:
        raise ReviewError(f"Segment {seg.id} cannot be split before its first word: a split needs words on "
                          f"both sides. Choose a word from 1 to {n - 1}.")


def _cut(seg: Segment, k: int) -> tuple[Segment, Segment]:
    """The segment as two, before word k: the first keeps its start and ends with word k-1, the
    second starts with word k and keeps its end. Both remember the machine's speaker."""
    machine = seg.machine_speaker if seg.machine_speaker is not None else seg.speaker or ""

    def part(words: list[Word], start: float, end: float) -> Segment:
        return seg.model_copy(deep=True, update={
            "start": start, "end": end, "words": [w.model_copy() for w in words],
            "text": "".join(w.word for w in words).strip(), "machine_speaker": machine,
        })

    head, tail = seg.words[:k], seg.words[k:]
    return part(head, seg.start, max(head[-1].end, seg.start)), part(tail, tail[0].start, max(seg.end, tail[-1].end))


def _quoted(words: list[Word] | str, n: int = 6) -> str:
    """The first n words, in quotes: “When we started the peer support…”."""
    tokens = words.split() if isinstance(words, str) else [w.word.strip() for w in words]
    return f"“{' '.join(tokens[:n])}{'…' if len(tokens) > n else ''}”"


def give_segment(store: Store, story_id: str, segment_id: int, to: str | None, settings: Settings,
                 based_on: str | None = None) -> SpeakerChange:
    """Give a whole segment to another speaker: `to` is a label, a name the reviewer gave, or None
    for the other of the two voices. The quotes are derived again from the corrected speakers."""
    return _give(store, story_id, segment_id, None, to, settings, based_on)


def give_words_from(store: Store, story_id: str, segment_id: int, from_word: int, to: str | None,
                    settings: Settings, based_on: str | None = None) -> SpeakerChange:
    """A turn the machine missed: the words from `from_word` (0 is the segment's first) to the end of
    the segment go to another speaker, as a segment of their own right after the rest. Only this
    segment changes; the ones after it keep their speakers (give them whole if they are wrong too)."""
    return _give(store, story_id, segment_id, from_word, to, settings, based_on)


def _give(store: Store, story_id: str, segment_id: int, from_word: int | None, to: str | None,
          settings: Settings, based_on: str | None) -> SpeakerChange:
    story_dir(store, story_id)
    with store.edit_lock(story_id):
        transcript, index, seg = _segment_for_edit(store, story_id, segment_id, based_on)
        if from_word is not None:
            _check_word(seg, from_word, split=False)
        speaker = _speaker_for(transcript, seg.speaker, to)
        if seg.speaker == speaker:
            said = f"Nothing changed: segment {segment_id} is already {who(transcript, speaker)}'s."
            return SpeakerChange(transcript, said, changed=False, segments=[segment_id])
        if not from_word:  # the whole segment (from its first word is the same)
            if seg.machine_speaker is None:
                seg.machine_speaker = seg.speaker or ""
            seg.speaker = speaker
            touched = [segment_id]
            shown = _quoted(seg.words or seg.text)
            said = f"Segment {segment_id} ({timefmt.duration(seg.start)}, {shown}) is now {who(transcript, speaker)}'s."
        else:
            head, tail = _cut(seg, from_word)
            tail.speaker = speaker
            transcript.segments[index:index + 1] = [head, tail]
            _renumber(transcript)
            touched = [head.id, tail.id]
            said = (f"The words from {_quoted(tail.words)} ({timefmt.duration(tail.start)}) to the end of segment "
                    f"{segment_id} are now {who(transcript, speaker)}'s, as segment {tail.id}.")
        _save_transcript(store, transcript)
        _record(store, story_id, said)
    log.info("Who spoke corrected by a reviewer in %s: %s", story_id, said, extra={"story": story_id})
    # Outside the lock, as the pipeline's extract stage does it: other changes to the story (a
    # decision in another tab) need not wait for the quotes, which takes seconds on a long story.
    derived, problem = _derive_quotes(store, story_id, settings)
    with store.edit_lock(story_id):
        quotes, notes = note_quotes(store, story_id, _transcript_of(store, story_id))
    return SpeakerChange(transcript, said, changed=True, segments=touched, quotes=quotes if derived else None,
                         notes=notes, problem=problem)


def split_segment(store: Store, story_id: str, segment_id: int, at_word: int,
                  based_on: str | None = None) -> SpeakerChange:
    """Split a segment in two before word `at_word` (1 to its last): the first part ends with the
    word before, the second starts with that word; both keep the speaker. Who said what does not
    change, so the quotes (made from whole turns of one speaker) stay as they are."""
    story_dir(store, story_id)
    with store.edit_lock(story_id):
        transcript, index, seg = _segment_for_edit(store, story_id, segment_id, based_on)
        _check_word(seg, at_word, split=True)
        head, tail = _cut(seg, at_word)
        transcript.segments[index:index + 1] = [head, tail]
        _renumber(transcript)
        said = (f"Segment {segment_id} is split in two: segment {head.id} ends with {_quoted(head.words[-1:])}, "
                f"segment {tail.id} starts with {_quoted(tail.words)} ({timefmt.duration(tail.start)}).")
        _save_transcript(store, transcript)
        log.info("Segment split by a reviewer in %s: %s", story_id, said, extra={"story": story_id})
        _record(store, story_id, said)
    return SpeakerChange(transcript, said, changed=True, segments=[head.id, tail.id])


def _renumber(transcript: Transcript) -> None:
    for i, seg in enumerate(transcript.segments):
        seg.id = i


def _record(store: Store, story_id: str, said: str) -> None:
    with store.updating_story(story_id) as story:
        story.history.append(HistoryEntry(state=story.state, note=f"reviewer: {said}"))


# Times the quotes are derived again when the transcript keeps changing while they are (two quick
# corrections in a row): the last derivation always starts from the newest transcript.
DERIVE_TRIES = 3


def _derive_quotes(store: Store, story_id: str, settings: Settings) -> tuple[QuotesFile | None, str | None]:
    """The quotes again from the corrected speakers, keeping every decision (extract_story). Only for
    a story whose quotes were already found: otherwise the pipeline's extract stage does it next.
    When the transcript changed while they were derived (another correction, whose own derivation
    may have finished first), they are derived again, so the newest transcript's quotes are kept."""
    from storypipe.tasks.extract import extract_story

    if not store.quotes_path(story_id).exists():
        return None, None
    try:
        for _ in range(DERIVE_TRIES):
            based_on = version(store.transcript_path(story_id))
            quotes = extract_story(story_id, store, settings)
            if version(store.transcript_path(story_id)) == based_on:
                break
        return quotes, None
    except Exception as e:  # noqa: BLE001 - the correction is saved; say what did not follow it
        log.warning("The quotes of %s could not be derived again after a correction of who spoke: %s", story_id, e,
                    extra={"story": story_id})
        return None, (f"The change is saved, but the quotes could not be derived again ({e}). They are as they "
                      "were; decided quotes are marked where the correction runs through them.")


def speakers_between(transcript: Transcript, start: float, end: float) -> list[str | None]:
    """Who said the words from start to end, in the order they speak."""
    return list(dict.fromkeys(s.speaker for s in transcript.segments for w in s.words if w.within(start, end)))


def speaker_note(transcript: Transcript, quote: Quote) -> str | None:
    """Set the quote's speaker and review note from the transcript's speakers: a quote whose words
    are now one person's takes their label; one that holds two people's words (a correction of who
    spoke runs through it, or its edges were moved over a turn) gets a note saying what to do, and
    so does one a correction made the interviewer's (kept while it is). Rejected quotes need no note.
    Returns the note."""
    voices = speakers_between(transcript, quote.start, quote.end)
    was = quote.speaker
    if len(voices) == 1:
        quote.speaker = voices[0]
    note = None
    if quote.status == "rejected":
        pass
    elif len(voices) > 1:
        names = " and ".join(who(transcript, v) for v in voices)
        note = f"Now holds the words of {names}. Move its edges so it holds one person's words, or reject it."
    elif voices == [INTERVIEWER] and (was != INTERVIEWER or quote.review_note):
        note = (f"Now said by {who(transcript, INTERVIEWER)}: who spoke was corrected. A quote is usually the "
                "storyteller's: check it, or reject it.")
    quote.review_note = note
    return note


def note_quotes(store: Store, story_id: str, transcript: Transcript) -> tuple[QuotesFile | None, dict[str, str]]:
    """Every quote checked against who spoke now (speaker_note); quotes.json written when that changed
    anything. Returns the quotes and the notes by quote id."""
    quotes = store.read_quotes(story_id, missing_ok=True)
    if quotes is None:
        return None, {}
    before = quotes.model_copy(deep=True)
    notes = {q.id: n for q in quotes.quotes if (n := speaker_note(transcript, q))}
    if quotes != before:
        store.write_quotes(story_id, quotes)
    return quotes, notes


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
            speaker_note(transcript, quote)
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
    from storypipe.tasks import clips, search, stage

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
    search.consent_changed(store, story_id, settings)  # a withdrawn transcript consent leaves search at once
    if after.full_story and story.state in ("extracted", "staged"):
        stage.stage_story(story_id, store, settings)
    return store.read_story(story_id)
