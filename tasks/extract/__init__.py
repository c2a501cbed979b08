"""Extract: candidate quotes, key phrases, themes and named entities from a word-timed transcript.

A quote is 1..N whole spaCy sentences spoken by one person (never the interviewer), between
min_seconds and max_seconds long, timed exactly from its first and last word, and never across a
pause far longer than the recording's own (speech the recogniser did not write) or a listener's
murmur written into the turn ("M.M."). Its score is a weighted mean of parts between 0 and 1, each
stored in `why`:

- length: 1 inside the ideal word range, falling off outside it
- complete: starts with a capital, ends with . ! or ?, and has a verb
- first_person: "I", "my", "we"... (saturates at `saturation` hits)
- evaluative: words of feeling and judgement from the lexicon (saturates likewise)
- keyphrases: density of the story's key phrases in the quote (one per words_per_keyphrase words counts in full)
- stands_alone: 0 if it opens with "and that's why...", "but then...", low if with an unresolved
  "it/they...", lower if with a reply word ("yeah", "well") or a plain "and/but"
- confidence: the speech recogniser's mean word probability
- filler: 1 minus the share of "um", "you know"... (each filler costs 1/saturation)
- ends_turn: 1 if it is the end of what the speaker said before the other spoke (where a
  storyteller tends to land the point), else 0
- carries_themes: how strongly it carries the codebook's themes (tasks/themes.py; one theme at the
  suggestion threshold counts half)
- central, on_theme: what it means (sentence embeddings), near the story's main thread and near a theme
- quotable: how likely a workshop is to pick it, read whole by the meaning model taught on annotated
  interviews (quotable.py)

The best quotes are kept, skipping any that overlap a better one or repeat it in other words
(rapidfuzz), up to max_quotes per story.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rapidfuzz import fuzz

from storypipe.core import timefmt
from storypipe.core.jsonio import BadFileError
from storypipe.core.store import Store
from storypipe.core.models import Entity, KeyPhrase, KeyphrasesFile, Quote, QuotesFile, Transcript, Word
from storypipe.core.settings import ExtractSettings, MeaningSettings, Settings
from storypipe.tasks.common import meaning
from storypipe.tasks.common.nlp import join_words, load_nlp, speaker_turns, word_range
from storypipe.tasks.common.themes import PROJECT_THEMES, Hits, ThemeTagger, codebook_path, merge_hits, tagger_for
from storypipe.tasks.common.theme_meaning import ThemeMeaning, codebook_meaning, theme_meaning_for
from storypipe.tasks.extract import quotable
from storypipe.tasks.extract.quotable import Quotable

log = logging.getLogger("storypipe")

INTERVIEWER = "interviewer"
SATURATION = 2  # hits at which first_person, evaluative, filler and carries_themes count in full
ENTITY_LABELS = {"PERSON", "GPE", "LOC", "ORG", "NORP", "FAC", "EVENT", "DATE"}

__all__ = ["extract", "extract_story", "load_nlp", "speaker_turns"]


@dataclass
class Sentence:
    text: str
    words: list[Word]
    speaker: str | None
    lemmas: str  # lower-case lemmas joined by spaces, padded, for phrase matching
    tokens: list[str]  # lower-case token texts (no punctuation)
    has_verb: bool
    themes: Hits = field(default_factory=dict)  # theme descriptors this sentence matched
    vector: np.ndarray | None = None  # what it means (tasks/common/meaning.py), unit length


def _clauses(sent, cfg: ExtractSettings) -> list:
    """A long sentence as clauses cut at its commas. Whisper writes spoken English as long comma-joined
    sentences (on bench/interviews, 15-30 words where the script had 10), so a quote made of whole
    sentences would hold far more than the point. Each piece keeps at least `clause_min_words` words."""
    toks = [t for t in sent if not t.is_punct and not t.is_space]
    if not cfg.long_sentence_words or len(toks) <= cfg.long_sentence_words:
        return [sent]
    doc, pieces, start, count = sent.doc, [], sent.start, 0
    remaining = len(toks)
    for tok in sent:
        if not tok.is_punct and not tok.is_space:
            count += 1
            remaining -= 1
        if tok.text == "," and count >= cfg.clause_min_words and remaining >= cfg.clause_min_words:
            pieces.append(doc[start: tok.i + 1])
            start, count = tok.i + 1, 0
    pieces.append(doc[start: sent.end])
    return pieces


def _without_reply(piece, cfg: ExtractSettings) -> list:
    """ "Mm, right, and out there…": a sentence opening with reply words and a comma, split after them.
    The opening is often the other speaker's back-channel, which the recogniser wrote into this
    turn; on its own it is a back-channel sentence, which never starts or ends a quote."""
    lex = cfg.lexicon
    comma = None  # the last comma of the opening run of reply words
    for tok in piece:
        if tok.text == ",":
            comma = tok.i
        elif not (tok.is_punct or tok.is_space or tok.lower_ in lex.reply_openers or tok.lower_ in lex.fillers
                  or tok.lower_ in LISTENER_WORDS):
            break
    else:
        return [piece]
    if comma is None or comma == piece.start:
        return [piece]
    rest = [t for t in piece.doc[comma + 1: piece.end] if not t.is_punct and not t.is_space]
    if len(rest) < cfg.clause_min_words:
        return [piece]
    return [piece.doc[piece.start: comma + 1], piece.doc[comma + 1: piece.end]]


def unheard_limits(turns: list[tuple[str | None, list[Word]]], cfg: ExtractSettings) -> tuple[float, float]:
    """The pause between words, and the length of one word, that mean speech went unwritten, from this
    recording's own: a slow storyteller pauses longer than a quick one, and a fixed length would cut
    one or miss the other. Whisper either leaves the gap or stretches the next word over it
    ("how", 2.6 s, over the listener's question)."""
    words = [w for _, ws in turns for w in ws]
    gaps = [b.start - a.end for _, ws in turns for a, b in zip(ws, ws[1:])]
    def limit(values: list[float]) -> float:
        return max(cfg.unheard_min_s, cfg.unheard_factor * float(np.percentile(values, 95))) if values else float("inf")
    return limit(gaps), limit([w.end - w.start for w in words])


def split_at_unheard(turns: list[tuple[str | None, list[Word]]], pause_s: float, word_s: float
                     ) -> list[tuple[str | None, list[Word]]]:
    """Each turn cut where its words stop for longer than `pause_s`, and on both sides of a word
    lasting longer than `word_s`: whoever spoke there (often the listener, whose "mm" or question
    the recogniser skipped), a quote never runs across it."""
    out = []
    for speaker, words in turns:
        piece: list[Word] = []
        for i, w in enumerate(words):
            stretched = w.end - w.start > word_s
            if piece and (stretched or w.start - words[i - 1].end > pause_s):
                out.append((speaker, piece))
                piece = []
            piece.append(w)
            if stretched:
                out.append((speaker, piece))
                piece = []
        if piece:
            out.append((speaker, piece))
    return out


def split_at_murmurs(turns: list[tuple[str | None, list[Word]]], murmurs: list[str]
                     ) -> list[tuple[str | None, list[Word]]]:
    """Each turn cut at a murmur ("M.M.", "mhm"), which is left out. In a mono recording the
    listener's murmur is written into the storyteller's sentence and is too short for the voice
    labels to give it to its speaker; a quote never runs across it, and never holds it."""
    forms = set(murmurs)
    out = []
    for speaker, words in turns:
        piece: list[Word] = []
        for w in words:
            if re.sub(r"[^a-z0-9]", "", w.word.lower()) in forms:
                if piece:
                    out.append((speaker, piece))
                piece = []
            else:
                piece.append(w)
        if piece:
            out.append((speaker, piece))
    return out


def _sentences_of_turn(nlp, tagger: ThemeTagger, speaker: str | None, words: list[Word],
                       cfg: ExtractSettings) -> list[Sentence]:
    """Split a turn into spaCy sentences (long ones into clauses) and map each back to the words that
    carry its timing."""
    text, spans = join_words([w.word for w in words])
    doc = nlp(text)
    sentences = []
    for sent in (part for whole in doc.sents for piece in _clauses(whole, cfg) for part in _without_reply(piece, cfg)):
        rng = word_range(spans, sent.start_char, sent.end_char)
        if not rng:
            continue
        toks = [t for t in sent if not t.is_punct and not t.is_space]
        sentences.append(
            Sentence(
                text=sent.text.strip(),
                words=words[rng[0] : rng[1] + 1],
                speaker=speaker,
                lemmas=" " + _lemma_key(toks) + " ",
                tokens=[t.text.lower() for t in toks],
                has_verb=any(t.pos_ in ("VERB", "AUX") for t in sent),
                themes=tagger.hits(sent),
            )
        )
    return sentences


def _count_phrases(tokens: list[str], phrases: list[str]) -> int:
    padded = " " + " ".join(tokens) + " "
    return sum(padded.count(f" {p} ") for p in phrases)


def score_parts(
    sents: list[Sentence], keyphrase_keys: list[str], cfg: ExtractSettings, theme_strength: float = 0.0
) -> dict[str, float]:
    """The transparent parts of a quote's score, each between 0 and 1. `theme_strength` is the sum of
    the scores of the themes suggested for the quote, in units of the codebook's `suggest` level."""
    lex = cfg.lexicon
    tokens = [t for s in sents for t in s.tokens]
    n = len(tokens)
    lo, hi = cfg.ideal_words
    if n < lo:
        length = n / lo
    elif n > hi:
        length = max(0.0, 1 - (n - hi) / max(1, cfg.max_words - hi))
    else:
        length = 1.0
    text = " ".join(s.text for s in sents)
    lemmas = " ".join(s.lemmas for s in sents)
    words = [w for s in sents for w in s.words]
    return {
        "length": round(length, 3),
        "complete": round(
            (text[:1].isupper() + text.rstrip().endswith((".", "!", "?")) + all(s.has_verb for s in sents)) / 3, 3
        ),
        "first_person": min(1.0, sum(t in lex.first_person for t in tokens) / SATURATION),
        "evaluative": min(1.0, _count_phrases(tokens, lex.evaluative) / SATURATION),
        # Density, not count: with 25 key phrases nearly every long window holds two of them.
        "keyphrases": round(min(1.0, sum(f" {k} " in lemmas for k in keyphrase_keys) * cfg.words_per_keyphrase / max(1, n)), 3),
        "stands_alone": _stands_alone(tokens, lex),
        "confidence": round(sum(w.probability for w in words) / max(1, len(words)), 3),
        "filler": max(0.0, 1 - _count_phrases(tokens, lex.fillers) / SATURATION),
        "carries_themes": round(min(1.0, theme_strength / SATURATION), 3),
    }


def _stands_alone(tokens: list[str], lex) -> float:
    """1 for a quote that makes sense on its own. 0 after "and that's why", "but then", "so it": it
    answers something said before. 0.3 after an unresolved "it/they". 0.6 after a reply word ("yeah",
    "well") or a plain "and/but" ("And the doctors meet us as equals" reads fine without the "And")."""
    first = tokens[0] if tokens else ""
    second = tokens[1] if len(tokens) > 1 else ""
    if first in lex.dangling_openers:
        return 0.0 if second in lex.unresolved_openers or second in lex.dangling_openers else 0.6
    if first in lex.unresolved_openers:
        return 0.3
    if first in lex.reply_openers:
        return 0.6
    return 1.0


def weighted_score(parts: dict[str, float], cfg: ExtractSettings) -> float:
    weights = cfg.weights.model_dump()
    total = sum(weights.get(k, 0) for k in parts)
    return round(sum(parts[k] * weights.get(k, 0) for k in parts) / total, 4) if total else 0.0


def quote_id(start: float, end: float) -> str:
    """Stable across re-runs of the same transcript, so human decisions stay attached."""
    return "q" + hashlib.sha1(f"{start:.2f}-{end:.2f}".encode()).hexdigest()[:6]


FUNCTION_POS = {"DET", "PRON", "PART", "ADP", "CCONJ", "SCONJ", "AUX", "PUNCT", "SPACE", "NUM"}


def _is_edge_filler(tok) -> bool:
    return tok.pos_ in FUNCTION_POS or tok.is_stop or not tok.is_alpha


def _trim(span) -> list:
    """A phrase without function words at its edges: 'to peer support' -> 'peer support'."""
    toks = list(span)
    while toks and _is_edge_filler(toks[0]):
        toks.pop(0)
    while toks and _is_edge_filler(toks[-1]):
        toks.pop()
    return toks


def _lemma_key(toks) -> str:
    """Lower-case lemmas of the words, so 'peer supports' and 'Peer support' meet."""
    return " ".join(t.lemma_.lower() for t in toks if t.is_alpha)


def keyphrases_of(docs, cfg: ExtractSettings) -> tuple[list[KeyPhrase], list[tuple[str, KeyPhrase]]]:
    """pytextrank phrases merged by lemma, stop phrases dropped. Returns the public list and lemma keys."""
    merged: dict[str, dict] = {}
    for doc in docs:
        for phrase in doc._.phrases:
            toks = _trim(phrase.chunks[0])
            key = _lemma_key(toks)
            # Fragments of hyphenated words ("co" of "co-production") are too short to mean anything.
            if not key or key in cfg.lexicon.stop_phrases or max(len(w) for w in key.split()) < 3:
                continue
            entry = merged.setdefault(key, {"score": 0.0, "forms": Counter()})
            entry["score"] = max(entry["score"], phrase.rank)
            for chunk in phrase.chunks:
                entry["forms"]["".join(t.text_with_ws for t in _trim(chunk)).strip().lower()] += 1
    # Count every occurrence by lemma (textrank counts surface forms, so "supports" would be missed).
    lemma_text = " " + " ".join(t.lemma_.lower() for doc in docs for t in doc if t.is_alpha) + " "
    for key, entry in merged.items():
        entry["count"] = max(1, lemma_text.count(f" {key} "))
    ranked = sorted(merged.items(), key=lambda kv: (-kv[1]["score"], -kv[1]["count"]))[: cfg.max_keyphrases]
    keyed = [
        (key, KeyPhrase(text=e["forms"].most_common(1)[0][0], score=round(e["score"], 4), count=e["count"]))
        for key, e in ranked
    ]
    return [kp for _, kp in keyed], keyed


def entities_of(docs) -> list[Entity]:
    counts: Counter = Counter()
    for doc in docs:
        for ent in doc.ents:
            if ent.label_ in ENTITY_LABELS:
                counts[(re.sub(r"\s+", " ", ent.text.strip()), ent.label_)] += 1
    # Listed by type, then most mentioned first.
    ranked = sorted(counts.items(), key=lambda kv: (kv[0][1], -kv[1], kv[0][0]))
    return [Entity(text=t, label=lbl, count=c) for (t, lbl), c in ranked]


def _windows(sentences_by_turn: list[list[Sentence]], cfg: ExtractSettings, shorter: bool = False):
    """Every run of 1..max_sentences sentences in a turn that could be a quote. `shorter` lowers the
    least length (words and seconds) by `fallback_length_share`, for a story with few long passages."""
    share = cfg.fallback_length_share if shorter else 1.0
    min_words, min_seconds = cfg.min_words * share, cfg.min_seconds * share
    for sents in sentences_by_turn:
        for i in range(len(sents)):
            for j in range(i + 1, min(i + cfg.max_sentences, len(sents)) + 1):
                window = sents[i:j]
                if window[-1].text.endswith("?") or _is_interviewers(window[-1], cfg):
                    break  # questions and recording chat are the interviewer's part, even when mislabelled
                if _is_backchannel(window[0], cfg) or _is_backchannel(window[-1], cfg):
                    continue
                if len(window) > 2 and _is_listeners(window[-2], cfg):
                    break  # "…without. Wow, so when…": the listener spoke between two sentences
                n = sum(len(s.tokens) for s in window)
                seconds = window[-1].words[-1].end - window[0].words[0].start
                if n > cfg.max_words or seconds > cfg.max_seconds:
                    break
                if n >= min_words and seconds >= min_seconds:
                    yield window, j == len(sents)


def _is_interviewers(sentence: Sentence, cfg: ExtractSettings) -> bool:
    """"Thank you." "I'll stop the recording now." The interviewer's stock lines: when the voices
    were mixed up they reach the storyteller's turn, and they never belong in a quote. Only a short
    sentence counts: "…to hear, thank you very much for understanding" inside a long one is the
    storyteller's own."""
    padded = " " + " ".join(sentence.tokens) + " "
    return any(f" {p} " in padded and len(sentence.tokens) <= len(p.split()) + cfg.interviewer_line_words
               for p in cfg.lexicon.interviewer_phrases)


def _is_backchannel(sentence: Sentence, cfg: ExtractSettings) -> bool:
    """"Yeah." "Mm-mm." "Ah," on its own: at a turn's edge it is often the other speaker's, given to
    this one by the speaker labels, and it is never part of a quote."""
    lex = cfg.lexicon
    return 0 < len(sentence.tokens) <= 2 and all(t in lex.reply_openers or t in lex.fillers or t in LISTENER_WORDS
                                                 for t in sentence.tokens)


LISTENER_WORDS = {"mm", "mhm", "mm-hmm", "uh-huh", "wow", "right", "okay", "ok", "oh", "ah", "hmm"}


def _is_listeners(sentence: Sentence, cfg: ExtractSettings) -> bool:
    """"Mm." "Wow," "Right.": a listener's word on its own between two of the storyteller's sentences.
    The recogniser writes it into the storyteller's turn, and the speaker labels cannot split a word
    that short, so a quote never runs across it."""
    return 0 < len(sentence.tokens) <= 2 and all(t in LISTENER_WORDS for t in sentence.tokens)


def is_near_duplicate(text: str, chosen: list[str], similarity: float) -> bool:
    """The same thing said again in other words order or with small changes ("it changed my life")."""
    return any(fuzz.token_sort_ratio(text, other, processor=_plain) >= similarity for other in chosen)


def _plain(text: str) -> str:
    return re.sub(r"[^\w\s']", " ", text.lower())


@dataclass
class Scored:
    """One window that could be a quote, with its score and the parts behind it."""

    score: float
    window: list[Sentence]
    parts: dict[str, float]
    themes: list


def rank_share(values: list[float]) -> list[float]:
    """Each value's place among the story's own (0 lowest, 1 highest; ties share a place). What a
    passage means is judged against the rest of the same recording, not against a fixed cosine."""
    if len(values) < 2:
        return [1.0] * len(values)
    v = np.asarray(values)
    below = np.searchsorted(np.sort(v), v, side="left")
    equal = np.searchsorted(np.sort(v), v, side="right") - below
    return [round(float(x), 3) for x in (below + (equal - 1) / 2) / (len(v) - 1)]


def window_vector(window: list[Sentence]) -> np.ndarray:
    """A window's meaning: its sentences' vectors, weighted by their words."""
    v = np.sum([s.vector * max(1, len(s.tokens)) for s in window], axis=0)
    return v / (np.linalg.norm(v) or 1.0)


def meaning_parts(windows: list[list[Sentence]], all_sentences: list[Sentence], theme_vectors: np.ndarray
                  ) -> list[dict[str, float]]:
    """`central`: how near a window is to the storyteller's main thread (the words-weighted mean of
    everything they said); `on_theme`: how near it is to the codebook's nearest theme. Both as a
    place among this story's windows."""
    if not windows:
        return []
    vectors = np.stack([window_vector(w) for w in windows])
    thread = window_vector(all_sentences)
    central = rank_share((vectors @ thread).tolist())
    on_theme = rank_share((vectors @ theme_vectors.T).max(axis=1).tolist()) if len(theme_vectors) else [0.0] * len(windows)
    return [{"central": c, "on_theme": t} for c, t in zip(central, on_theme)]


def score_windows(
    sentences_by_turn: list[list[Sentence]], keyed: list[tuple[str, KeyPhrase]], cfg: ExtractSettings,
    tagger: ThemeTagger, theme_vectors: np.ndarray | None = None, shorter: bool = False,
    coder: ThemeMeaning | None = None, reader: Quotable | None = None, read: dict[str, float] | None = None,
) -> list[Scored]:
    """Every window scored, best first. With `theme_vectors` (and sentence vectors) the parts that
    come from what the words mean are added; with the taught `reader`, how quotable each window
    reads (`read` keeps its answers by text, so a window scored twice is read once)."""
    keys = [k for k, _ in keyed]
    threshold = tagger.book.matching.suggest
    windows = list(_windows(sentences_by_turn, cfg, shorter))
    everything = [s for sents in sentences_by_turn for s in sents]
    meant = (meaning_parts([w for w, _ in windows], everything, theme_vectors)
             if theme_vectors is not None and everything and everything[0].vector is not None else None)
    found = [merge_hits([s.themes for s in w]) for w, _ in windows]
    vectors = (np.stack([window_vector(w) for w, _ in windows])
               if coder is not None and windows and everything[0].vector is not None else None)
    ranked = tagger.rank_all(found, vectors, coder)
    if reader is not None:
        read = {} if read is None else read
        texts = [" ".join(s.text for s in w) for w, _ in windows]
        new = sorted({t for t in texts if t not in read})
        read.update(zip(new, reader.probabilities(new).tolist()))
    scored = []
    for i, (window, ends_turn) in enumerate(windows):
        themes = ranked[i]
        # Cues only, as before: meaning's share of a theme is in `on_theme` already (and gives every window one).
        parts = score_parts(window, keys, cfg, sum(t.cue_score for t in themes) / threshold)
        parts["ends_turn"] = 1.0 if ends_turn else 0.0
        if meant is not None:
            parts.update(meant[i])
        if reader is not None:
            parts["quotable"] = round(read[texts[i]], 3)
        scored.append(Scored(weighted_score(parts, cfg), window, parts, themes))
    scored.sort(key=lambda x: -x.score)
    return scored


def candidate_quotes(scored: list[Scored], keyed: list[tuple[str, KeyPhrase]], cfg: ExtractSettings,
                     more: list[Scored] = (), chosen: list[Quote] | None = None, used: set[int] | None = None
                     ) -> list[Quote]:
    """The best windows that neither overlap nor repeat a better one, up to max_quotes; then, if
    that leaves fewer, the best of `more` (shorter windows) in the gaps."""
    chosen = [] if chosen is None else chosen
    used = set() if used is None else used
    for item in scored:
        window, parts, themes = item.window, item.parts, item.themes
        span = {id(w) for s in window for w in s.words}
        text = " ".join(s.text for s in window)
        if span & used or is_near_duplicate(text, [q.text for q in chosen], cfg.duplicate_similarity):
            continue
        used |= span
        start, end = window[0].words[0].start, window[-1].words[-1].end
        lemmas = " ".join(s.lemmas for s in window)
        chosen.append(
            Quote(
                id=quote_id(start, end),
                text=text,
                start=start,
                end=end,
                speaker=window[0].speaker,
                score=item.score,
                keyphrases=[kp.text for k, kp in keyed if f" {k} " in lemmas],
                themes=[t.theme for t in themes if t.tagged],
                why={**parts, "themes": {t.theme: t.explain() for t in themes}},
            )
        )
        if len(chosen) >= cfg.max_quotes:
            return sorted(chosen, key=lambda q: -q.score)
    if more:
        chosen = candidate_quotes(list(more), keyed, cfg, chosen=chosen, used=used)
    return sorted(chosen, key=lambda q: -q.score)


def theme_vectors(book, cfg: MeaningSettings) -> np.ndarray:
    """One vector per theme: its name with its description, and each descriptor's text, averaged."""
    rows = []
    for theme in book.themes:
        texts = [f"{theme.name}. {theme.description}".strip(". ")] + [d.text for d in theme.descriptors]
        v = meaning.embed(texts, cfg).mean(axis=0)
        rows.append(v / (np.linalg.norm(v) or 1.0))
    return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)


def merge_decisions(new: list[Quote], previous: list[Quote]) -> list[Quote]:
    """Human decisions and edits survive a re-run: decided quotes are kept as they were."""
    decided = {q.id: q for q in previous
               if q.status != "candidate" or q.title or q.description or q.edited or q.themes_checked}
    merged = [decided.pop(q.id, q) for q in new] + list(decided.values())
    return sorted(merged, key=lambda q: -q.score)


def extract(
    transcript: Transcript, cfg: ExtractSettings, themes_path: Path = PROJECT_THEMES,
    meaning_cfg: MeaningSettings | None = None, coder: ThemeMeaning | None = None,
) -> tuple[list[Quote], list[KeyPhrase], list[Entity]]:
    """Quotes, key phrases and entities from the storyteller's speech (everyone's but the interviewer's)."""
    meaning_cfg = meaning_cfg or MeaningSettings()
    nlp = load_nlp(cfg.spacy_model)
    tagger = tagger_for(nlp, themes_path)
    turns = [(spk, words) for spk, words in speaker_turns(transcript) if spk != INTERVIEWER]
    turns = split_at_murmurs(split_at_unheard(turns, *unheard_limits(turns, cfg)), cfg.lexicon.murmurs)
    sentences = [_sentences_of_turn(nlp, tagger, spk, words, cfg) for spk, words in turns]
    flat = [s for sents in sentences for s in sents]
    for sentence, vector in zip(flat, meaning.embed([s.text for s in flat], meaning_cfg)):
        sentence.vector = vector
    themes = theme_vectors(tagger.book, meaning_cfg)
    coder = coder or codebook_meaning(tagger.book, meaning_cfg)
    docs = list(nlp.pipe(" ".join(s.text for s in sents) for sents in sentences if sents))
    keyphrases, keyed = keyphrases_of(docs, cfg)
    reader, read = quotable.load(cfg, meaning_cfg), {}
    quotes = candidate_quotes(
        score_windows(sentences, keyed, cfg, tagger, themes, coder=coder, reader=reader, read=read), keyed, cfg,
        more=score_windows(sentences, keyed, cfg, tagger, themes, shorter=True, coder=coder, reader=reader, read=read))
    return quotes, keyphrases, entities_of(docs)


def extract_story(story_id: str, store: Store, settings: Settings) -> QuotesFile:
    """Write quotes.json and keyphrases.json for a transcribed story, keeping earlier human decisions."""
    transcript = store.read_transcript(story_id)
    started = time.monotonic()
    path = codebook_path(store.root, settings.extract.themes_file)
    coder = theme_meaning_for(tagger_for(load_nlp(settings.extract.spacy_model), path).book, settings, store, story_id)
    quotes, keyphrases, entities = extract(transcript, settings.extract, path, settings.meaning, coder)
    # The decisions are read, merged and written under the edit lock, so one a reviewer makes
    # while the quotes are computed is kept, not overwritten.
    with store.updating_story(story_id) as story:
        previous: list[Quote] = []
        if store.quotes_path(story_id).exists():
            try:
                previous = store.read_quotes(story_id).quotes
            except BadFileError as e:
                kept = store.set_aside(store.quotes_path(story_id))
                log.warning("quotes.json of %s was unreadable (%s); kept it as %s", story_id, e.reason, kept.name,
                            extra={"story": story_id})
        quotes_file = QuotesFile(story_id=story_id, quotes=merge_decisions(quotes, previous))
        store.write_quotes(story_id, quotes_file)
        store.write_keyphrases(story_id, KeyphrasesFile(story_id=story_id, keyphrases=keyphrases, entities=entities))
        story.advance("extracted", seconds=round(time.monotonic() - started, 3))
    log.info(
        "Found %d candidate quotes and %d key phrases in %s",
        len(quotes),
        len(keyphrases),
        story_id,
        extra={"story": story_id},
    )
    return quotes_file


def quotes_markdown(story_id: str, store: Store, settings: Settings) -> str:
    """The story's top quotes, their themes and its key phrases, for the Prefect UI (a Markdown
    artifact). Names are hidden when the story is to be anonymised: the Prefect server may not be
    on this machine."""
    from storypipe.tasks.common.anonymise import anonymise, redact_text

    story = store.read_story(story_id)
    quotes = store.read_quotes(story_id).quotes
    keyphrases = store.read_keyphrases(story_id).keyphrases
    book = tagger_for(load_nlp(settings.extract.spacy_model), codebook_path(store.root, settings.extract.themes_file)).book
    top = [q for q in quotes if q.status != "rejected"][: settings.extract.max_quotes]
    texts = [q.text for q in top]
    phrases = [k.text for k in keyphrases]
    if story.consent.anonymise:
        hidden = anonymise(store.read_transcript(story_id), story.metadata, settings)
        texts = [hidden.text_between(q.start, q.end) for q in top]
        phrases = redact_text(phrases, story.metadata, settings, hidden, any_case=True)
    lines = [f"# Quotes from {story.metadata.title or story_id}", ""]
    if story.consent.anonymise:
        lines += ["_Anonymised: names are hidden._", ""]
    lines += ["| # | time | score | quote | themes |", "|---|---|---|---|---|"]
    for i, (q, text) in enumerate(zip(top, texts), 1):
        suggested = q.why.get("themes", {})
        themes = ", ".join(
            book.name_of(t) + ("" if info.get("tagged", t in q.themes) else " (suggested)") for t, info in suggested.items()
        ) or "-"
        mark = " (approved)" if q.status == "approved" else ""
        lines.append(f"| {i} | {timefmt.duration(q.start)}-{timefmt.duration(q.end)} | {q.score:.2f}{mark} | "
                     f"{text.replace('|', '/')} | {themes} |")
    lines += ["", "**Key phrases:** " + (", ".join(phrases) or "none found")]
    return "\n".join(lines) + "\n"


# ---- Prefect wrapper ----
