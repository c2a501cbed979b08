"""The transcribe stage around the engine (a fake engine here; the real one runs in test_e2e)."""

from __future__ import annotations

import numpy as np
import pytest

from storypipe.jsonio import read_model, write_model
from storypipe.layout import Layout
from storypipe.models import Story, Transcript
from tasks import transcribe
from tasks.audio import write_wav
from tests.factories import make_story, make_transcript


class FakeEngine:
    name, model = "fake-engine", "fake-model"

    def __init__(self):
        self.seen = None

    def transcribe(self, speech):
        self.seen = speech
        return make_transcript([("storyteller", "We built it together, and it worked.")]).segments


@pytest.fixture
def layout(tmp_path):
    return Layout(tmp_path).ensure()


def test_transcribe_story_writes_every_format_and_advances(layout, settings, monkeypatch):
    engine = FakeEngine()
    monkeypatch.setattr(transcribe, "get_engine", lambda cfg: engine)
    story = make_story("s-12345678", "s.wav", title="Together")
    write_model(layout.story_dir(story.story_id) / "story.json", story)
    write_wav(layout.speech_wav(story.story_id), (np.ones(16000) * 1000).astype(np.int16), 16000)

    result = transcribe.transcribe_story(story.story_id, layout, settings)

    assert engine.seen.dtype == np.float32 and len(engine.seen) == 16000
    assert abs(float(engine.seen[0]) - 1000 / 32768) < 1e-6
    folder = layout.story_dir(story.story_id)
    saved = read_model(folder / "transcript.json", Transcript)
    assert saved == result and saved.engine == "fake-engine" and saved.duration_s == story.source.duration_s
    assert "# Together" in (folder / "transcript.txt").read_text()
    assert "We built it together" in (folder / "transcript.srt").read_text()
    assert (folder / "transcript.vtt").read_text().startswith("WEBVTT")
    after = read_model(folder / "story.json", Story)
    assert after.state == "transcribed" and after.history[-1].seconds is not None


def test_speech_copy_is_rebuilt_from_the_original_when_missing(layout, settings):
    import subprocess

    from tasks.audio import ffmpeg_binary

    story = make_story("s-12345678", "s.flac")
    original = layout.original_dir(story.story_id) / "s.flac"
    original.parent.mkdir(parents=True)
    subprocess.run([ffmpeg_binary(), "-v", "error", "-f", "lavfi", "-i", "sine=duration=1.5", "-ar", "44100",
                    str(original)], check=True)
    path = transcribe.speech_wav(story, layout, settings)
    assert path == layout.speech_wav(story.story_id)
    from tasks.audio import read_wav_float

    assert abs(len(read_wav_float(path)) - 1.5 * 16000) < 400


def test_unknown_engine_is_a_clear_error(settings):
    cfg = settings.transcribe.model_copy(update={"engine": "faster-whisper"})
    with pytest.raises(ValueError, match="faster-whisper"):
        transcribe.get_engine(cfg)
