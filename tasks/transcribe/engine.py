"""Speech recognisers behind one small interface, so the pipeline treats every engine the same way.

An engine takes 16 kHz mono float32 audio plus the speech regions found by VAD (seconds, relative to
that audio) and returns word-timed segments with times relative to the same audio. VAD, filtering
of non-speech, speaker labels and confidence flags happen around the engine, identically for all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from storypipe.core.models import Segment, Word


@dataclass
class EngineResult:
    segments: list[Segment]
    language: str
    language_probability: float | None = None
    extra: dict = field(default_factory=dict)


class Engine(Protocol):
    """A speech recogniser: 16 kHz mono float32 in, word-timed segments out."""

    name: str
    model: str
    multilingual: bool
    parallel: int  # how many transcribe() calls may run at once, from different threads

    def transcribe(
        self, speech: np.ndarray, clips: list[tuple[float, float]], language: str | None, prompt: str | None = None
    ) -> EngineResult:
        """Transcribe only inside `clips` ((start, end) seconds); `language` None means detect it.

        `prompt` (the project's vocabulary, vocabulary.py) is given to every 30 s window decoded, not
        only the first: Whisper's own initial_prompt would reach only the first one of each call.
        """
        ...


def make_segment(index: int, start, end, text, avg_logprob, no_speech_prob, compression_ratio, words) -> Segment:
    return Segment(
        id=index,
        start=round(float(start), 3),
        end=round(float(end), 3),
        text=text.strip(),
        avg_logprob=round(float(avg_logprob), 4),
        no_speech_prob=round(float(no_speech_prob), 4),
        compression_ratio=round(float(compression_ratio), 3),
        words=[
            Word(word=w[0], start=round(float(w[1]), 3), end=round(float(w[2]), 3), probability=round(float(w[3]), 4))
            for w in words
        ],
    )


def flat_clips(clips: list[tuple[float, float]]) -> list[float]:
    return [t for clip in clips for t in clip]


def whisper_clips(clips: list[tuple[float, float]], samples: int) -> str | list[float]:
    """Clips for openai-whisper, with ends clamped to its last mel frame (10 ms).

    Why: a clip ending even one frame past the audio makes whisper.transcribe loop for ever on an
    empty window (seen with whisper 20250625). The whole audio is passed as "0", its own default.
    """
    frames = samples // 160
    clamped = [(s, min(e, frames / 100)) for s, e in clips if s < frames / 100]
    if not clamped or (len(clamped) == 1 and clamped[0][0] <= 0 and clamped[0][1] >= frames / 100):
        return "0"
    return flat_clips(clamped)
