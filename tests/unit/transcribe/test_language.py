"""Language: an English-only model given other speech says so (real model), the sidecar's language
reaches the engine, and a multilingual engine's detected language is recorded."""

from __future__ import annotations

import numpy as np
import pytest

from storypipe.core.jsonio import read_model, write_model
from storypipe.core.store import Store
from storypipe.core.models import Story
from storypipe.tasks.common import audio
from storypipe.tasks.transcribe import quality
from storypipe.tasks import transcribe
from storypipe.tasks.transcribe.engines import EngineResult, get_engine
from tests.support import audio_fixtures as af
from tests.support.factories import make_story, make_transcript

FRENCH = ("Je suis arrivée dans cette ville il y a dix ans, et au début je ne connaissais personne. "
          "Le groupe de soutien m'a beaucoup aidée à trouver ma place.")
ENGLISH = "I came to this town ten years ago and at first I knew nobody. The support group helped me find my place."


def run_real(tmp_path, settings, voice, text):
    mono = audio.decode_pcm16(af.speech(tmp_path, "s.wav", text, voice=voice), 16000).astype(np.float32) / 32768
    engine = get_engine(settings.transcribe)
    segments, *_ = transcribe.transcribe_speech(engine, mono, settings, None, "t")
    return quality.language_warnings(segments, engine.multilingual, None, settings.transcribe.confidence)


def test_english_only_model_warns_on_french_speech(tmp_path, settings):
    # faster-whisper: openai-whisper, lost in French, falls back through every temperature with beam
    # search (70-140 s of a busy test run, against 10 s); the warning reads the segments either gives.
    settings.transcribe.engine = "faster-whisper"
    try:
        warnings = run_real(tmp_path, settings, "fr", FRENCH)
    except transcribe.NoSpeechError as e:  # nothing it could write down: the error says why
        assert "another language" in str(e)
        return
    assert warnings and "may not be English" in warnings[0]


def test_english_speech_gives_no_language_warning(tmp_path, settings):
    assert run_real(tmp_path, settings, "en-us+f2", ENGLISH) == []


class MultilingualFake:
    name, model, multilingual = "fake", "fake-small", True

    def __init__(self, detected="cy"):
        self.detected, self.asked = detected, []

    def transcribe(self, speech, clips, language, prompt=None):
        self.asked.append(language)
        seg = make_transcript([(None, "Roedd y grŵp yn bwysig iawn i mi bob wythnos.")]).segments
        return EngineResult(seg, language or self.detected, None if language else 0.93)


@pytest.mark.parametrize("sidecar_language, expected", [(None, "cy"), ("en", "en")])
def test_sidecar_language_reaches_the_engine_else_it_is_detected(tmp_path, settings, monkeypatch,
                                                                  sidecar_language, expected):
    store = Store(tmp_path).ensure()
    engine = MultilingualFake()
    monkeypatch.setattr(transcribe, "get_engine", lambda cfg: engine)
    story = make_story("s-12345678", "s.wav", language=sidecar_language, speakers=1)
    write_model(store.story_dir(story.story_id) / "story.json", story)
    speech = audio.decode_pcm16(af.speech(tmp_path, "v.wav", ENGLISH), 16000)
    audio.write_wav(store.speech_wav(story.story_id), speech, 16000)

    result = transcribe.transcribe_story(story.story_id, store, settings)

    # The first pass is given the sidecar's language (None: detect); any stretch heard again
    # (vocabulary.hear_again) is decoded in the language now known.
    assert engine.asked[0] == sidecar_language
    assert set(engine.asked[1:]) <= {expected}
    assert result.language == expected
    assert result.language_probability == (0.93 if sidecar_language is None else None)


def test_non_english_sidecar_with_english_only_model_is_a_story_warning(tmp_path, settings, monkeypatch):
    from tests.unit.transcribe.test_transcribe import FakeEngine

    store = Store(tmp_path).ensure()
    monkeypatch.setattr(transcribe, "get_engine", lambda cfg: FakeEngine())
    story = make_story("s-12345678", "s.wav", language="fr", speakers=1)
    write_model(store.story_dir(story.story_id) / "story.json", story)
    audio.write_wav(store.speech_wav(story.story_id), audio.decode_pcm16(af.speech(tmp_path, "v.wav", ENGLISH), 16000),
                    16000)
    result = transcribe.transcribe_story(story.story_id, store, settings)
    saved = read_model(store.story_dir(story.story_id) / "story.json", Story)
    assert result.warnings and "only understands English" in result.warnings[0]
    assert result.warnings[0] in saved.problems
    assert "Warning: the sidecar says" in (store.story_dir(story.story_id) / "transcript.txt").read_text()
