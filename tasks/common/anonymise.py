"""Anonymise: find the names in a story and hide them, in the text and in the audio.

One function for every stage that lets a story leave the machine (staging, clips): `anonymise`
takes the word-timed transcript and returns it with names replaced by [NAME], [PLACE] or
[ORGANISATION], plus the time spans to mute, taken from the words' own timestamps.

Names come from four places, because no single one is enough on speech-recognised text:
1. spaCy's named entities (people, places, organisations), read on each speaker's turn;
2. the sidecar: the interviewer, the storyteller and its `names:` list;
3. the deny lists in config ([anonymise]);
4. every name found by 1-3 is looked for again everywhere else in the story, so a name spaCy
   recognised once is hidden each time it is said.
Known names also match when speech recognition misspelt them or split them over words
("Oluwaseun" heard as "Oluwa Seun"), by comparing the letters of up to `max_split_words` words.
The allow list in config keeps words that are never names for this team ("Mind", "Covid").
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from rapidfuzz import fuzz

from storypipe.core.jsonio import read_model, write_json
from storypipe.core.models import Metadata, Quote, Story, Transcript, Word
from storypipe.core.settings import AnonymiseSettings, Settings
from storypipe.tasks.common.nlp import join_words, load_nlp, speaker_turns, word_range

PLACEHOLDERS = ("NAME", "PLACE", "ORGANISATION")
# Words that are part of organisation and place names but mean nothing alone.
_NAME_NOISE = {"the", "of", "and", "for", "a", "an", "st", "mr", "mrs", "ms", "dr", "miss"}


@dataclass(frozen=True)
class KnownName:
    letters: str  # lower-case letters only: what is compared
    label: str  # NAME, PLACE or ORGANISATION
    capitalised: bool  # a one-word match must be capitalised (so "Will" does not hide "will")


@dataclass(frozen=True)
class NameSpan:
    first: int  # word indices, inclusive
    last: int
    label: str


@dataclass
class Redaction:
    start: float
    end: float
    label: str
    heard: str  # the words as transcribed; stays on this machine (never staged or published)


@dataclass
class Anonymised:
    transcript: Transcript  # names replaced by placeholders
    redactions: list[Redaction]
    mute: list[tuple[float, float]]  # merged, padded spans of audio to hide
    known: list[KnownName]  # every name looked for, to hide them in other text about the story too

    def text_between(self, start: float, end: float) -> str:
        """The redacted words spoken from start to end (a quote's text, for captions and summaries)."""
        return "".join(w.word for w in self.transcript.words() if w.within(start, end)).strip()


def letters(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalpha())


def known_names(metadata: Metadata | None, cfg: AnonymiseSettings) -> list[KnownName]:
    """Names from the sidecar and the config's deny lists; a person's first and last names also count
    alone ("Margaret Smith" hides a later "Margaret")."""
    raw: list[tuple[str, str]] = []
    if metadata is not None:
        raw += [(n, "NAME") for n in (metadata.interviewer, metadata.storyteller) if n]
        raw += [(n, "NAME") for n in metadata.names]
    raw += [(n, "NAME") for n in cfg.deny_people]
    raw += [(n, "PLACE") for n in cfg.deny_places]
    raw += [(n, "ORGANISATION") for n in cfg.deny_organisations]
    out: dict[str, KnownName] = {}
    for text, label in raw:
        parts = [p for p in re.findall(r"[^\W\d_]+", text) if p.lower() not in _NAME_NOISE]
        whole = "".join(letters(p) for p in parts)
        # "Express and Star" is said with its "and"; "the Job Centre" is often said without "the".
        for key in {whole, letters(text)}:
            if len(key) >= 2:
                out.setdefault(key, KnownName(key, label, capitalised=True))
        if label == "NAME" and len(parts) > 1:
            for p in parts:
                if len(p) >= 3:
                    out.setdefault(letters(p), KnownName(letters(p), label, capitalised=True))
    return list(out.values())


def _match_known(words: list[str], names: list[KnownName], cfg: AnonymiseSettings) -> list[NameSpan]:
    """Known names in a word list: exact or near letters over 1..max_split_words words.

    Every window is scored and the best are taken first, so "me. Margaret" does not beat "Margaret"
    by swallowing its neighbour."""
    keys = [letters(w) for w in words]
    found = []  # (similarity, -words, first, last, label)
    for i in range(len(words)):
        if not keys[i]:
            continue
        for k in range(1, min(cfg.max_split_words, len(words) - i) + 1):
            window = "".join(keys[i : i + k])
            for name in names:
                score = _name_similarity(window, words[i : i + k], name, cfg)
                if score:
                    found.append((score, -k, i, i + k - 1, name.label))
    taken: set[int] = set()
    spans = []
    for _, _, first, last, label in sorted(found, reverse=True):
        if taken.isdisjoint(range(first, last + 1)):
            taken.update(range(first, last + 1))
            spans.append(NameSpan(first, last, label))
    return sorted(spans, key=lambda s: s.first)


def _name_similarity(window: str, words: list[str], name: KnownName, cfg: AnonymiseSettings) -> float:
    """100 for the name's exact letters, the fuzzy ratio for a near miss, 0 for no match.

    One word must look like a name (capitalised) when the name is also an ordinary word ("Will");
    several words that only together spell a name are a split name, however the recogniser cased
    them. Short names must match exactly: "Sam" is too close to "same"."""
    if len(words) == 1 and name.capitalised and not words[0].strip()[:1].isupper():
        return 0.0
    if window == name.letters:
        return 100.0
    if len(name.letters) < cfg.min_fuzzy_letters or abs(len(window) - len(name.letters)) > 2:
        return 0.0
    if len(words) == 1 and not words[0].strip()[:1].isupper():
        return 0.0
    score = fuzz.ratio(window, name.letters)
    return score if score >= cfg.similarity else 0.0


def _entities(nlp, words: list[str], cfg: AnonymiseSettings) -> list[NameSpan]:
    text, spans = join_words(words)
    found = []
    for ent in nlp(text).ents:
        label = cfg.entity_labels.get(ent.label_)
        if not label:
            continue
        rng = word_range(spans, ent.start_char, ent.end_char, touching=True)
        if rng:
            found.append(NameSpan(rng[0], rng[1], label))
    return found


def _allowed(words: list[str], span: NameSpan, allow: set[str]) -> bool:
    heard = " ".join(words[span.first : span.last + 1])
    return letters(heard) in allow or all(letters(w) in allow or letters(w) in _NAME_NOISE for w in words[span.first : span.last + 1])


def _merge(spans: list[NameSpan]) -> list[NameSpan]:
    """Overlapping finds become one; at the same start, the earlier find's label wins."""
    out: list[NameSpan] = []
    for s in sorted(spans, key=lambda s: s.first):
        if out and s.first <= out[-1].last:
            if s.last > out[-1].last:
                out[-1] = NameSpan(out[-1].first, s.last, out[-1].label)
            continue
        out.append(s)
    return out


def find_names(nlp, words: list[str], names: list[KnownName], cfg: AnonymiseSettings) -> list[NameSpan]:
    """Where names are in a list of words (Whisper's, or a text split at spaces)."""
    allow = {letters(a) for a in cfg.allow}
    spans = _match_known(words, names, cfg) + _entities(nlp, words, cfg)  # the sidecar's label wins
    return _merge([s for s in spans if not _allowed(words, s, allow)])


def _redacted_word(words: list[str], span: NameSpan) -> str:
    """'[NAME]' with the first word's leading space and the last word's possessive and punctuation."""
    first, last = words[span.first], words[span.last]
    lead = first[: len(first) - len(first.lstrip())]
    tail = re.search(r"(['’]s)?[^\w\]]*$", last.rstrip()).group(0)
    return f"{lead}[{span.label}]{tail}"


def _names_heard(nlp, turns: list[list[str]], known: list[KnownName], cfg: AnonymiseSettings) -> list[KnownName]:
    """Names spaCy recognised anywhere, so each is also hidden where it was missed (lower case, say)."""
    allow = {letters(a) for a in cfg.allow}
    extra: dict[str, KnownName] = {}
    for words in turns:
        for span in _entities(nlp, words, cfg):
            if _allowed(words, span, allow):
                continue
            key = letters("".join(words[span.first : span.last + 1]))
            if len(key) >= 3 and key not in {k.letters for k in known}:
                # A person's name is hidden however it was cased; a place or organisation only when
                # capitalised, so "Recovery" tagged once as an organisation leaves "recovery" alone.
                extra.setdefault(key, KnownName(key, span.label, capitalised=span.label != "NAME"))
    return known + list(extra.values())


def anonymise(transcript: Transcript, metadata: Metadata | None, settings: Settings) -> Anonymised:
    """The transcript with every name replaced, and the audio spans to hide (see the module doc)."""
    cfg = settings.anonymise
    nlp = load_nlp(settings.extract.spacy_model)
    turns = [[w.word for w in words] for _, words in speaker_turns(transcript)]
    known = _names_heard(nlp, turns, known_names(metadata, cfg), cfg)

    segments, redactions = [], []
    for seg in transcript.segments:
        if not seg.words:
            segments.append(seg.model_copy(update={"text": redact_words(nlp, [seg.text], known, cfg)[0]}))
            continue
        raw = [w.word for w in seg.words]
        spans = find_names(nlp, raw, known, cfg)
        new_words, i = [], 0
        for span in spans:
            new_words += seg.words[i : span.first]
            first, last = seg.words[span.first], seg.words[span.last]
            new_words.append(Word(word=_redacted_word(raw, span), start=first.start, end=last.end, probability=1.0))
            redactions.append(Redaction(first.start, last.end, span.label, "".join(raw[span.first : span.last + 1]).strip()))
            i = span.last + 1
        new_words += seg.words[i:]
        text = "".join(w.word for w in new_words).strip()
        segments.append(seg.model_copy(update={"words": new_words, "text": text}))
    # The reviewer's names for the speakers are names too: the labels (storyteller, interviewer) stay.
    redacted = transcript.model_copy(update={"segments": segments, "speaker_names": {}})
    return Anonymised(redacted, redactions, mute_spans(redactions, cfg.pad_s, transcript.duration_s), known)


def _cache_key(transcript_path: Path, metadata: Metadata | None, settings: Settings) -> str:
    """Everything the redacted text depends on: the transcript, the sidecar, the settings, the
    spaCy model and this module's own code."""
    import spacy

    parts = [hashlib.sha256(Path(transcript_path).read_bytes()).hexdigest(),
             metadata.model_dump(mode="json") if metadata else None, settings.anonymise.model_dump(mode="json"),
             settings.extract.spacy_model, spacy.__version__, hashlib.sha256(Path(__file__).read_bytes()).hexdigest()]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:40]


def anonymise_text_cached(transcript_path: Path, metadata: Metadata | None, settings: Settings,
                          cache_dir: Path) -> Anonymised:
    """`anonymise` for text only (no audio spans), kept by content in cache_dir: the findings report
    asks again for the same stories each time, and spaCy takes seconds over a 40-minute story.
    The cache holds names, so it lives in the root's own state folder, never anywhere else."""
    path = Path(cache_dir) / f"{_cache_key(transcript_path, metadata, settings)}.json"
    try:
        data = json.loads(path.read_text("utf-8"))
        known = [KnownName(str(k), str(label), bool(cap)) for k, label, cap in data["known"]]
        return Anonymised(Transcript.model_validate(data["transcript"]), [], [], known)
    except (OSError, ValueError, KeyError, TypeError):
        pass  # not there yet, or damaged: made again
    result = anonymise(read_model(transcript_path, Transcript), metadata, settings)
    write_json(path, {"transcript": result.transcript.model_dump(mode="json"),
                      "known": [[k.letters, k.label, k.capitalised] for k in result.known]})
    return result


def redact_words(nlp, texts: list[str], known: list[KnownName], cfg: AnonymiseSettings) -> list[str]:
    """Each text with its names replaced (for text without word times: titles, key phrases)."""
    out = []
    for text in texts:
        words = re.findall(r"\s*\S+", text)
        spans = find_names(nlp, words, known, cfg)
        pieces, i = [], 0
        for span in spans:
            pieces += words[i : span.first]
            pieces.append(_redacted_word(words, span))
            i = span.last + 1
        out.append(("".join(pieces + words[i:])).strip())
    return out


def redact_text(
    texts: list[str], metadata: Metadata | None, settings: Settings, anonymised: Anonymised | None = None,
    any_case: bool = False,
) -> list[str]:
    """Plain text about a story (title, key phrases) with names hidden: those of the sidecar and
    config, and, given the story's `anonymise` result, every name found in the story itself.

    any_case: for text whose capitals were lost (key phrases are lower case), a name is hidden
    however it is written; "will" then goes too when someone is called Will."""
    cfg = settings.anonymise
    known = anonymised.known if anonymised else known_names(metadata, cfg)
    if any_case:
        known = [replace(k, capitalised=False) for k in known]
    return redact_words(load_nlp(settings.extract.spacy_model), texts, known, cfg)


def public_quote_text(quote: Quote, story: Story, settings: Settings, anonymised: Anonymised | None) -> str:
    """A quote's words as they may be shown outside the team: as written, or, for an anonymised
    story, the redacted words spoken over its span (its own text redacted when no words fall there)."""
    text = quote.text
    if anonymised is not None:
        text = anonymised.text_between(quote.start, quote.end)
        text = text or redact_text([quote.text], story.metadata, settings, anonymised)[0]
    return " ".join(text.split()).strip(" \"“”")


def mute_spans(redactions: list[Redaction], pad_s: float, duration_s: float) -> list[tuple[float, float]]:
    """Padded, merged, clipped spans of audio to hide."""
    spans: list[list[float]] = []
    for r in sorted(redactions, key=lambda r: r.start):
        a, b = max(0.0, r.start - pad_s), min(duration_s or r.end + pad_s, r.end + pad_s)
        if spans and a <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], b)
        else:
            spans.append([a, b])
    return [(round(a, 3), round(b, 3)) for a, b in spans]


def hide_in_audio(pcm: np.ndarray, rate: int, spans: list[tuple[float, float]], cfg: AnonymiseSettings) -> np.ndarray:
    """A copy of int16 audio (samples or samples x channels) with the spans muted or bleeped.

    Edges ramp over 5 ms so the cut does not click."""
    out = pcm.copy()
    ramp = max(1, int(0.005 * rate))
    for a, b in spans:
        i, j = max(0, int(a * rate)), min(len(out), int(round(b * rate)))
        if j <= i:
            continue
        n = j - i
        if cfg.audio == "bleep":
            t = np.arange(n) / rate
            tone = np.sin(2 * np.pi * cfg.bleep_hz * t) * (10 ** (cfg.bleep_db / 20)) * 32767
            env = np.minimum(1.0, np.minimum(np.arange(n) + 1, n - np.arange(n)) / ramp)
            fill = (tone * env).astype(np.int16)
            out[i:j] = fill[:, None] if out.ndim == 2 else fill
        else:
            out[i:j] = 0
    return out
