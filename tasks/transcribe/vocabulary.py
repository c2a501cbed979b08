"""The project's own words, given to the speech engine so it writes them as the project does.

Whisper writes what it hears as the words it knows best: the storyteller's "co-production" came out
"Copernuction" in a draft report. A short prompt listing the project's words (openai-whisper's
`initial_prompt`, carried into every 30 s window; faster-whisper's `hotwords`, which it gives every
window) makes it write them right where they are said, and measurably invents none where they are
not (bench/vocabulary.md).

The words come from three places, in this order when the prompt has to be cut short: the config's
`transcribe.vocabulary` (the project's words), the story's sidecar (storyteller, interviewer and
`names:`), then the codebook in use (theme names; with `vocabulary_codebook = "descriptors"` the
descriptors' texts as well). Each term is kept once, as first written.

A prompt also changes what Whisper dares to hear. On hard speech (four people in a meeting) tiny.en,
prompted, left whole stretches of speech without a word, and at the end of a clip it wrote "Thank
you." into the silence. So the vocabulary may change how words are written, never whether speech is
transcribed: `hear_again` decodes, without the prompt, the speech the prompted pass left without
words and the short segments the engine itself doubts, and keeps what the plain pass heard there.

Privacy: the sidecar's names reach the prompt only inside this process, on this machine. The prompt
is never written to a file, a log or a Prefect parameter: logs say how many terms, never which.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from storypipe.core.jsonio import BadFileError
from storypipe.core.models import Metadata, Segment, Story
from storypipe.core.settings import Settings, TranscribeSettings
from storypipe.tasks.common.themes import Codebook, codebook_path, load_codebook
from storypipe.tasks.transcribe.engine import Engine, EngineResult

log = logging.getLogger("storypipe")

__all__ = ["Vocabulary", "build_vocabulary", "codebook_terms", "hear_again", "prompt_text", "sidecar_names",
           "story_vocabulary"]

# Where each term came from, in the order they are given priority.
SOURCES = ("config", "sidecar", "codebook")
_BRACKETED = re.compile(r"\s*\([^)]*\)")  # "(general difficulty)": a note in the codebook, not words said
_WORD = re.compile(r"[^\W\d_]{2,}")  # a name needs a word of two letters or more: "R." is an initial


@dataclass(frozen=True)
class Vocabulary:
    """The terms the engine is given for one story, and the prompt they make (None: no prompt)."""

    terms: tuple[str, ...] = ()
    prompt: str | None = None
    counts: dict[str, int] = field(default_factory=dict)  # source -> terms kept from it
    left_out: int = 0  # terms that did not fit in the prompt

    def describe(self) -> str:
        """What the engine was given, in plain words and without the terms themselves (names)."""
        if not self.terms:
            return "no vocabulary given to the engine"
        parts = ", ".join(f"{n} from the {source}" for source, n in self.counts.items() if n)
        cut = f"; {self.left_out} left out to keep the prompt short" if self.left_out else ""
        return f"gave the engine a vocabulary of {len(self.terms)} terms ({parts}{cut})"


def _clean(term: str) -> str:
    return " ".join(_BRACKETED.sub("", term).split()).strip(" ,;.")


def codebook_terms(book: Codebook, which: str) -> list[str]:
    """The codebook's words for the prompt: theme names ("names"), also descriptor texts
    ("descriptors"), or none ("none")."""
    if which == "none":
        return []
    terms = [theme.name for theme in book.themes]
    if which == "descriptors":
        terms += [d.text for theme in book.themes for d in theme.descriptors]
    return [t for t in map(_clean, terms) if t]


def sidecar_names(metadata: Metadata | None) -> list[str]:
    """The people, places and organisations a story's sidecar names (as anonymise reads them), so the
    engine spells them as the sidecar does; initials such as a pseudonym "R." are left out."""
    if metadata is None:
        return []
    raw = [metadata.storyteller, metadata.interviewer, *metadata.names]
    return [name for name in map(_clean, (n for n in raw if n)) if _WORD.search(name)]


def prompt_text(terms: list[str] | tuple[str, ...], template: str) -> str:
    """The prompt for a list of terms: the template (e.g. "Glossary: {terms}.") around them."""
    return template.replace("{terms}", ", ".join(terms))


def build_vocabulary(cfg: TranscribeSettings, names: list[str], book_terms: list[str]) -> Vocabulary:
    """Config terms, then names, then codebook terms, each kept once (case and spacing ignored), while
    the prompt stays within `vocabulary_max_terms` and `vocabulary_max_chars` (Whisper reads at most
    223 prompt tokens, and a long prompt is more for it to echo)."""
    kept: list[str] = []
    counts = dict.fromkeys(SOURCES, 0)
    seen: set[str] = set()
    left_out = 0
    for source, terms in zip(SOURCES, (cfg.vocabulary, names if cfg.vocabulary_sidecar_names else [], book_terms)):
        for term in map(_clean, terms):
            key = term.casefold()
            if not term or key in seen:
                continue
            seen.add(key)
            fits = (len(kept) < cfg.vocabulary_max_terms
                    and len(prompt_text([*kept, term], cfg.vocabulary_prompt)) <= cfg.vocabulary_max_chars)
            if not fits:
                left_out += 1
                continue
            kept.append(term)
            counts[source] += 1
    prompt = prompt_text(kept, cfg.vocabulary_prompt) if kept else None
    return Vocabulary(tuple(kept), prompt, counts, left_out)


def applies_to(language: str | None, cfg: TranscribeSettings) -> bool:
    """The vocabulary is in one language (`vocabulary_language`): an English prompt on Welsh speech
    would pull the words towards English, so it is given only when the story's language is that one
    or not known (an English-only model, or detection)."""
    if not language or not cfg.vocabulary_language:
        return True
    return language.lower().split("-")[0] == cfg.vocabulary_language.lower().split("-")[0]


def story_vocabulary(story: Story, root: Path | None, settings: Settings, language: str | None) -> Vocabulary:
    """The vocabulary for one story: the config's terms, its sidecar's names, the root's codebook.

    A codebook that cannot be read leaves its terms out (with a warning) rather than stopping the
    transcript: the extract stage reports the broken file itself.
    """
    cfg = settings.transcribe
    if not applies_to(language, cfg):
        return Vocabulary()
    book_terms: list[str] = []
    if cfg.vocabulary_codebook != "none":
        path = codebook_path(root, settings.extract.themes_file)
        try:
            book_terms = codebook_terms(load_codebook(path), cfg.vocabulary_codebook)
        except BadFileError as e:
            log.warning("%s: the codebook's terms are not in the engine's vocabulary: %s", story.story_id, e,
                        extra={"story": story.story_id})
    return build_vocabulary(cfg, sidecar_names(story.metadata), book_terms)


def _spans(segments: list[Segment]) -> list[tuple[float, float]]:
    """Where the engine put words (a segment's own span when it has no word times)."""
    return sorted((w.start, w.end) for s in segments for w in s.words) or sorted((s.start, s.end) for s in segments)


def uncovered(segments: list[Segment], duration: float, gap_s: float) -> list[tuple[float, float]]:
    """Stretches of at least gap_s with no word: at the start, between words, at the end. The audio
    given is speech (VAD cut the silence out), so such a stretch is speech the engine did not write."""
    out, last = [], 0.0
    for start, end in _spans(segments):
        if start - last >= gap_s:
            out.append((last, start))
        last = max(last, end)
    if duration - last >= gap_s:
        out.append((last, duration))
    return out


def doubtful(seg: Segment, cfg: TranscribeSettings) -> bool:
    """A short segment with words that the engine itself thinks is probably not speech, or is unsure
    of: what a prompt makes Whisper write into the last fraction of a second ("Thank you.")."""
    short = seg.end - seg.start <= cfg.vocabulary_recheck_max_s
    unsure = seg.no_speech_prob > cfg.filter.no_speech_prob or seg.avg_logprob < cfg.filter.logprob
    return short and unsure and bool(_WORDS.search(seg.text))


_WORDS = re.compile(r"[\w']+")


def _grams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORDS.findall(text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


# A pass that lost its place writes again what it wrote in the same 30 s window or the one before
# (Whisper decodes 30 s at a time: whisper.audio.CHUNK_LENGTH).
LOST_PLACE_S = 2 * 30.0


def repeated(segments: list[Segment], n: int) -> set[int]:
    """Indexes of segments that repeat n words in a row of a segment shortly before: a prompted pass
    that lost its place writes a passage twice (seen on a meeting); people rarely repeat that many
    words so soon. A passage said again minutes later (a storyteller's refrain, a recording played
    twice) is not this, and is not decoded again."""
    grams = [_grams(seg.text, n) for seg in segments]
    out = set()
    for i, seg in enumerate(segments):
        earlier = (grams[k] for k in range(i) if segments[k].end >= seg.start - LOST_PLACE_S)
        if any(grams[i] & g for g in earlier):
            out.add(i)
    return out


def _merge(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _inside(t0: float, t1: float, spans: list[tuple[float, float]]) -> bool:
    mid = (t0 + t1) / 2
    return any(a <= mid <= b for a, b in spans)


def _plain(engine: Engine, audio: np.ndarray, duration: float, targets: list[tuple[float, float]],
           context_s: float, language: str | None) -> list[Segment]:
    """What the engine hears without the prompt in `targets`: each decoded with context_s of the speech
    before it (a fraction of a second decoded alone is where Whisper invents most), and only the
    words inside the target kept."""
    spans = _merge([(max(0.0, a - context_s), min(duration, b)) for a, b in targets])
    plain = engine.transcribe(audio, [(round(a, 3), round(b, 3)) for a, b in spans], language)
    out = []
    for seg in plain.segments:
        if not seg.words:  # no word times: the segment as a whole
            if _inside(seg.start, seg.end, targets):
                out.append(seg)
            continue
        words = [w for w in seg.words if _inside(w.start, w.end, targets)]
        if words and _WORDS.search("".join(w.word for w in words)):
            out.append(seg.model_copy(update={"start": words[0].start, "end": words[-1].end, "words": words,
                                              "text": "".join(w.word for w in words).strip()}))
    return out


def _said_at(segment: Segment) -> tuple[float, float]:
    """When a segment's words were said (its own times if it has none)."""
    if segment.words:
        return segment.words[0].start, segment.words[-1].end
    return segment.start, segment.end


def hear_again(
    engine: Engine, audio: np.ndarray, duration: float, prompted: EngineResult, language: str | None,
    cfg: TranscribeSettings,
) -> tuple[EngineResult, int]:
    """The prompted result, checked against the engine without the prompt where the prompt may have
    cost words or added some: speech left without any (`uncovered`), short segments the engine doubts
    (`doubtful`) and passages written twice (`repeated`). There, what the plain pass hears replaces the
    prompted segments (nothing, if it hears nothing). Returns the result and how many stretches were
    decoded again (0: the prompted result as it was, nothing decoded twice)."""
    segments = prompted.segments
    gaps = uncovered(segments, duration, cfg.vocabulary_recheck_gap_s)
    twice = repeated(segments, cfg.vocabulary_recheck_repeat_words)
    doubts = {i for i, s in enumerate(segments) if i in twice or doubtful(s, cfg)}
    targets = gaps + [(segments[i].start, segments[i].end) for i in sorted(doubts)]
    if not targets:
        return prompted, 0
    kept = [s for i, s in enumerate(segments) if i not in doubts]
    added = _plain(engine, audio, duration, targets, cfg.vocabulary_recheck_context_s, language)
    # A prompted segment that writes again what the plain pass heard elsewhere was misplaced: it goes,
    # and its own stretch is heard plainly too.
    heard = set().union(*(_grams(s.text, cfg.vocabulary_recheck_repeat_words) for s in added))
    moved = [s for s in kept if _grams(s.text, cfg.vocabulary_recheck_repeat_words) & heard]
    if moved:
        kept = [s for s in kept if s not in moved]
        again = [(s.start, s.end) for s in moved]
        targets += again
        added += _plain(engine, audio, duration, again, cfg.vocabulary_recheck_context_s, language)
    # In the order the words were said: a segment's own start can be seconds before its first word.
    out = sorted(kept + added, key=_said_at)
    out = [s.model_copy(update={"id": i}) for i, s in enumerate(out)]
    return EngineResult(out, prompted.language, prompted.language_probability, prompted.extra), len(_merge(targets))
