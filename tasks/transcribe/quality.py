"""How far to trust a transcript: drop what is probably not speech, flag what a reviewer should check."""

from __future__ import annotations

import re

from storypipe.core.models import Segment
from storypipe.core.settings import ConfidenceSettings, FilterSettings

_WORD = re.compile(r"[\w']+")


def repeats(text: str, max_n: int = 8) -> int:
    """The longest run of one word or phrase (up to max_n words) repeated back to back."""
    words = [w.lower() for w in _WORD.findall(text)]
    best = 1 if words else 0
    for n in range(1, max_n + 1):
        run = 1
        for i in range(n, len(words) - n + 1, n):
            if words[i : i + n] == words[i - n : i]:
                run += 1
                best = max(best, run)
            else:
                run = 1
    return best


def non_speech_reason(seg: Segment, cfg: FilterSettings) -> str | None:
    """Why a segment is probably not speech (Whisper's own rules, plus decoding loops), or None."""
    if seg.no_speech_prob > cfg.no_speech_prob and seg.avg_logprob < cfg.logprob:
        return "no speech"
    if seg.compression_ratio is not None and seg.compression_ratio > cfg.compression_ratio:
        return "repetitive"
    if repeats(seg.text) >= cfg.max_repeats:
        return "loop"
    if not _WORD.search(seg.text):
        return "empty"
    return None


def drop_non_speech(segments: list[Segment], cfg: FilterSettings) -> tuple[list[Segment], dict[str, int]]:
    """Keep the segments that are speech; count what was dropped and why."""
    kept, dropped = [], {}
    for seg in segments:
        reason = non_speech_reason(seg, cfg)
        if reason:
            dropped[reason] = dropped.get(reason, 0) + 1
        else:
            kept.append(seg)
    return [s.model_copy(update={"id": i}) for i, s in enumerate(kept)], dropped


def flag_confidence(segments: list[Segment], cfg: ConfidenceSettings) -> list[Segment]:
    """Mark unsure words and segments, so the review shows where to listen."""
    out = []
    for seg in segments:
        words = [w.model_copy(update={"low_confidence": w.probability < cfg.low_word_probability}) for w in seg.words]
        low_share = sum(w.low_confidence for w in words) / len(words) if words else 0.0
        low = seg.avg_logprob < cfg.low_segment_logprob or low_share > cfg.low_segment_word_share
        out.append(seg.model_copy(update={"words": words, "low_confidence": low}))
    return out


def mean_word_probability(segments: list[Segment]) -> float | None:
    probs = [w.probability for s in segments for w in s.words]
    return sum(probs) / len(probs) if probs else None


def language_warnings(
    segments: list[Segment], multilingual: bool, requested: str | None, cfg: ConfidenceSettings
) -> list[str]:
    """Warnings when the speech is probably not in a language the model understands."""
    if multilingual:
        return []
    if requested and not requested.lower().startswith("en"):
        return [
            f"the sidecar says the language is '{requested}', but the model only understands English: "
            "use a multilingual model (e.g. transcribe.model = \"small\") for this story"
        ]
    mean = mean_word_probability(segments)
    logprob = sum(s.avg_logprob for s in segments) / len(segments) if segments else 0.0
    if mean is not None and (mean < cfg.not_english_word_probability or logprob < cfg.not_english_logprob):
        return [
            f"the speech may not be English (the English-only model was unsure throughout: mean word "
            f"confidence {mean:.2f}, mean log-probability {logprob:.2f}); check the transcript, or set "
            "`language` in the sidecar and use a multilingual model"
        ]
    return []
