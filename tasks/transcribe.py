"""Transcribe: speech to word-timed segments, behind a small engine interface a second engine can join."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Protocol

import numpy as np

from storypipe.jsonio import read_model, write_model
from storypipe.layout import Layout
from storypipe.models import Segment, Story, Transcript, Word
from storypipe.settings import Settings, TranscribeSettings
from tasks import audio, formats

log = logging.getLogger("storypipe")


class Engine(Protocol):
    """A speech recogniser: 16 kHz mono float32 in, word-timed segments out."""

    name: str
    model: str

    def transcribe(self, speech: np.ndarray) -> list[Segment]: ...


class OpenAIWhisperEngine:
    name = "openai-whisper"

    def __init__(self, settings: TranscribeSettings):
        from tasks.whisper_model import load_whisper_model

        self.settings = settings
        self.model = settings.model
        self._whisper = load_whisper_model(settings.model, settings.model_cache_dir(), settings.device)

    def transcribe(self, speech: np.ndarray) -> list[Segment]:
        import whisper

        s = self.settings
        result = whisper.transcribe(
            self._whisper,
            speech,
            language=s.language or None,
            beam_size=s.beam_size,
            best_of=s.beam_size,
            condition_on_previous_text=s.condition_on_previous_text,
            word_timestamps=s.word_timestamps,
            fp16=s.device != "cpu",
            verbose=None,
        )
        return [_segment_from_whisper(i, seg) for i, seg in enumerate(result["segments"])]


def _segment_from_whisper(index: int, seg: dict) -> Segment:
    return Segment(
        id=index,
        start=round(float(seg["start"]), 3),
        end=round(float(seg["end"]), 3),
        text=seg["text"].strip(),
        avg_logprob=round(float(seg["avg_logprob"]), 4),
        no_speech_prob=round(float(seg["no_speech_prob"]), 4),
        words=[
            Word(
                word=w["word"],
                start=round(float(w["start"]), 3),
                end=round(float(w["end"]), 3),
                probability=round(float(w["probability"]), 4),
            )
            for w in seg.get("words", [])
        ],
    )


_ENGINES: dict[tuple, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def get_engine(settings: TranscribeSettings) -> Engine:
    """One loaded engine per (engine, model, device) in this process: loading costs seconds.

    Thread-safe, so the command line can load it while Prefect's temporary server starts.
    """
    key = (settings.engine, settings.model, settings.device, settings.model_cache_dir())
    with _ENGINES_LOCK:
        return _get_engine(key, settings)


def _get_engine(key: tuple, settings: TranscribeSettings) -> Engine:
    if key not in _ENGINES:
        if settings.engine == "openai-whisper":
            _ENGINES[key] = OpenAIWhisperEngine(settings)
        else:
            raise ValueError(f"transcribe.engine = {settings.engine!r} is not available yet")
    engine = _ENGINES[key]
    if getattr(engine, "settings", settings) != settings:
        engine.settings = settings  # decoding options may differ between roots; the weights don't
    return engine


def speech_wav(story: Story, layout: Layout, settings: Settings) -> Path:
    """The 16 kHz copy made at ingest; rebuilt from the original if someone cleared audio/work/."""
    path = layout.speech_wav(story.story_id)
    if not path.exists():
        original = layout.original_dir(story.story_id) / story.source.filename
        rate = settings.ingest.speech_sample_rate
        audio.write_wav(path, audio.decode_pcm16(original, rate), rate)
    return path


def transcribe_story(story_id: str, layout: Layout, settings: Settings) -> Transcript:
    """Transcribe one ingested story and write transcript.json, .txt, .srt and .vtt beside story.json."""
    story_dir = layout.story_dir(story_id)
    story = read_model(story_dir / "story.json", Story)
    speech = audio.read_wav_float(speech_wav(story, layout, settings))
    engine = get_engine(settings.transcribe)
    log.info("Transcribing %s (%.0f s of audio)", story_id, story.source.duration_s, extra={"story": story_id})
    started = time.monotonic()
    segments = engine.transcribe(speech)
    seconds = time.monotonic() - started
    transcript = Transcript(
        story_id=story_id,
        language=settings.transcribe.language,
        duration_s=story.source.duration_s,
        engine=engine.name,
        model=engine.model,
        segments=segments,
    )
    write_model(story_dir / "transcript.json", transcript)
    formats.write_transcript_files(transcript, story_dir, title=story.metadata.title)
    story.advance("transcribed", seconds=round(seconds, 3))
    write_model(story_dir / "story.json", story)
    log.info(
        "Transcribed %s: %d words in %.1f s", story_id, len(transcript.words()), seconds, extra={"story": story_id}
    )
    return transcript


# ---- Prefect wrapper ----
from prefect import task  # noqa: E402

from tasks.retry import transient_only  # noqa: E402


@task(name="transcribe", retry_condition_fn=transient_only)
def transcribe_task(root: str, story_id: str, settings: Settings) -> int:
    """Returns the number of words transcribed (the transcript itself is on disk)."""
    return len(transcribe_story(story_id, Layout(Path(root)), settings).words())
