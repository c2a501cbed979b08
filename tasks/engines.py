"""Speech recognisers behind one small interface, so the pipeline treats every engine the same way.

An engine takes 16 kHz mono float32 audio plus the speech regions found by VAD (seconds, relative to
that audio) and returns word-timed segments with times relative to the same audio. VAD, filtering
of non-speech, speaker labels and confidence flags happen around the engine, identically for all.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from storypipe.models import Segment, Word
from storypipe.settings import TranscribeSettings


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

    def transcribe(self, speech: np.ndarray, clips: list[tuple[float, float]], language: str | None) -> EngineResult:
        """Transcribe only inside `clips` ((start, end) seconds); `language` None means detect it."""
        ...


def _segment(index: int, start, end, text, avg_logprob, no_speech_prob, compression_ratio, words) -> Segment:
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


def _flat_clips(clips: list[tuple[float, float]]) -> list[float]:
    return [t for clip in clips for t in clip]


def _whisper_clips(clips: list[tuple[float, float]], samples: int) -> str | list[float]:
    """Clips for openai-whisper, with ends clamped to its last mel frame (10 ms).

    Why: a clip ending even one frame past the audio makes whisper.transcribe loop for ever on an
    empty window (seen with whisper 20250625). The whole audio is passed as "0", its own default.
    """
    frames = samples // 160
    clamped = [(s, min(e, frames / 100)) for s, e in clips if s < frames / 100]
    if not clamped or (len(clamped) == 1 and clamped[0][0] <= 0 and clamped[0][1] >= frames / 100):
        return "0"
    return _flat_clips(clamped)


def _cache_word_aligner() -> None:
    """openai-whisper's word aligner (whisper.timing.dtw_cpu) is compiled by numba in every process,
    about 1.5 s of CPU per `storypipe run`. The same function with numba's on-disk cache turned on
    is compiled once and then loaded (0.4 s). whisper.timing looks it up by name at each call."""
    import numba
    import whisper.timing as timing

    if not getattr(timing.dtw_cpu, "_storypipe_cached", False):
        cached = numba.jit(nopython=True, cache=True)(timing.dtw_cpu.py_func)
        cached._storypipe_cached = True
        timing.dtw_cpu = cached


class OpenAIWhisperEngine:
    name = "openai-whisper"
    parallel = 1  # one model, torch's threads already spread each call over the cores

    def __init__(self, settings: TranscribeSettings):
        from tasks.whisper_model import load_whisper_model

        _cache_word_aligner()
        self.settings = settings
        self.model = settings.model
        self._whisper = load_whisper_model(settings.model, settings.model_cache_dir(), settings.device)
        self.multilingual = bool(self._whisper.is_multilingual)

    def transcribe(self, speech: np.ndarray, clips: list[tuple[float, float]], language: str | None) -> EngineResult:
        import whisper

        s = self.settings
        language_probability = None
        if language is None and self.multilingual:
            language, language_probability = self.detect_language(speech, clips)
        result = whisper.transcribe(
            self._whisper,
            speech,
            language=language if self.multilingual else "en",
            beam_size=s.beam_size,
            best_of=s.beam_size,
            condition_on_previous_text=s.condition_on_previous_text,
            word_timestamps=s.word_timestamps,
            clip_timestamps=_whisper_clips(clips, len(speech)),
            fp16=s.device != "cpu",
            verbose=None,
        )
        segments = [
            _segment(
                i, seg["start"], seg["end"], seg["text"], seg["avg_logprob"], seg["no_speech_prob"],
                seg["compression_ratio"],
                [(w["word"], w["start"], w["end"], w["probability"]) for w in seg.get("words", [])],
            )
            for i, seg in enumerate(result["segments"])
        ]
        return EngineResult(segments, result.get("language") or language or "en", language_probability)

    def detect_language(self, speech: np.ndarray, clips: list[tuple[float, float]]) -> tuple[str, float]:
        """Whisper's language detection on the first 30 s of speech (not of silence)."""
        import whisper

        start = int((clips[0][0] if clips else 0.0) * 16000)
        audio = whisper.pad_or_trim(speech[start:])
        mel = whisper.log_mel_spectrogram(audio, self._whisper.dims.n_mels).to(self._whisper.device)
        _, probs = self._whisper.detect_language(mel)
        best = max(probs, key=probs.get)
        return best, float(probs[best])


_ENGINES: dict[tuple, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def get_engine(settings: TranscribeSettings) -> Engine:
    """One loaded engine per (engine, model, device) in this process: loading costs seconds.

    Thread-safe, so the command line can load it while Prefect's temporary server starts.
    """
    key = (settings.engine, settings.model, settings.device, settings.model_cache_dir(), settings.parallel)
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            if settings.engine == "openai-whisper":
                _ENGINES[key] = OpenAIWhisperEngine(settings)
            elif settings.engine == "faster-whisper":
                from tasks.engine_faster import FasterWhisperEngine

                _ENGINES[key] = FasterWhisperEngine(settings)
            else:  # pragma: no cover - settings validation allows only the two above
                raise ValueError(f"unknown transcribe.engine {settings.engine!r}")
        engine = _ENGINES[key]
    engine.settings = settings  # decoding options may differ between roots; the weights don't
    return engine
