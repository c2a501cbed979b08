"""No invented text, with the real model: silence and a steady tone around real speech stay empty."""

from __future__ import annotations

import re

import jiwer
import numpy as np
import pytest

from storypipe.tasks import transcribe
from storypipe.tasks.transcribe.engines import get_engine
from tests.support import DATA

RATE = 16000
ENGINES = ["openai-whisper", "faster-whisper"]


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s']", " ", text.lower())).strip()


@pytest.mark.parametrize("engine_name", ENGINES)
def test_silence_speech_tone_gives_text_only_over_the_speech(settings, jfk, engine_name):
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(30 * RATE) / RATE)).astype(np.float32)
    mono = np.concatenate([np.zeros(30 * RATE, dtype=np.float32), jfk, tone])
    speech_start, speech_end = 30.0, 30.0 + len(jfk) / RATE
    engine = get_engine(settings.transcribe.model_copy(update={"engine": engine_name}))

    segments, regions, language, _, _ = transcribe.transcribe_speech(engine, mono, settings, None, "t")

    words = [w for s in segments for w in s.words]
    assert words, "the speech itself must be transcribed"
    assert all(speech_start - 0.5 <= w.start and w.end <= speech_end + 0.5 for w in words)
    assert all(speech_start - 0.5 <= s.start and s.end <= speech_end + 0.5 for s in segments)
    assert all(speech_start - 1.0 <= r0 and r1 <= speech_end + 1.0 for r0, r1 in regions)
    reference = (DATA / "jfk.txt").read_text()
    assert jiwer.wer(normalise(reference), normalise(" ".join(s.text for s in segments))) <= 0.1
    assert language == "en"


@pytest.mark.parametrize("engine_name", ENGINES)
def test_a_recording_of_silence_and_a_tone_ends_with_no_speech_found(settings, engine_name):
    engine = get_engine(settings.transcribe.model_copy(update={"engine": engine_name}))
    tone = (0.3 * np.sin(2 * np.pi * 1000 * np.arange(10 * RATE) / RATE)).astype(np.float32)
    mono = np.concatenate([np.zeros(20 * RATE, dtype=np.float32), tone])
    with pytest.raises(transcribe.NoSpeechError, match="no speech found"):
        transcribe.transcribe_speech(engine, mono, settings, None, "t")
