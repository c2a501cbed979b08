"""The transcribe stage around the engine: VAD, batching, time mapping, filtering, flags, language."""

from __future__ import annotations

import numpy as np
import pytest

from storypipe.core.jsonio import read_model, write_model
from storypipe.core.models import Story, Transcript
from storypipe.tasks.common import audio
from storypipe.tasks import transcribe
from storypipe.tasks.transcribe.engines import EngineResult
from tests.support import audio_fixtures as af
from tests.support.factories import make_story, make_transcript

RATE = 16000


class FakeEngine:
    """Says one sentence spread over whatever audio it is given (times relative to that audio)."""

    name, model, multilingual = "fake-engine", "fake-model", False

    def __init__(self):
        self.calls = []
        self.prompts = []  # the prompt of each call, in call order

    def transcribe(self, speech, clips, language, prompt=None):
        self.calls.append((len(speech) / RATE, clips, language))
        self.prompts.append(prompt)
        t = make_transcript([("storyteller", "We built it together and it worked.")])
        span = len(speech) / RATE
        scale = span / t.segments[0].words[-1].end
        seg = t.segments[0]
        words = [w.model_copy(update={"start": w.start * scale, "end": w.end * scale}) for w in seg.words]
        words[2] = words[2].model_copy(update={"probability": 0.2})
        return EngineResult([seg.model_copy(update={"start": 0, "end": span, "words": words})], "en")


def speech_with_silence(tmp_path, before_s: float, after_s: float) -> np.ndarray:
    voice = audio.read_wav_float(af.speech(tmp_path, "v.wav", "We built it together, and it worked in the end."))
    voice = audio.decode_pcm16(tmp_path / "v.wav", RATE).astype(np.float32) / 32768
    return np.concatenate([np.zeros(int(before_s * RATE)), voice, np.zeros(int(after_s * RATE))]).astype(np.float32)


def test_only_speech_reaches_the_engine_and_times_come_back_in_the_original(store, settings, monkeypatch, tmp_path):
    engine = FakeEngine()
    monkeypatch.setattr(transcribe, "get_engine", lambda cfg: engine)
    mono = speech_with_silence(tmp_path, 20.0, 15.0)
    story = make_story("s-12345678", "s.wav", title="Together")
    write_model(store.story_dir(story.story_id) / "story.json", story)
    audio.write_wav(store.speech_wav(story.story_id), (mono * 32767).astype(np.int16), RATE)

    result = transcribe.transcribe_story(story.story_id, store, settings)

    (seconds, clips, language), = engine.calls
    assert seconds < 6 and clips == [(0.0, round(seconds, 3))]  # 35 s of silence never decoded
    assert language is None
    (start, end), = result.speech_regions
    assert 19.0 < start < 20.5 and end < len(mono) / RATE - 14
    words = result.words()
    assert words[0].start >= start and words[-1].end <= end + 0.01  # mapped back into the speech
    assert words[2].low_confidence and not words[0].low_confidence
    folder = store.story_dir(story.story_id)
    assert read_model(folder / "transcript.json", Transcript) == result
    text = (folder / "transcript.txt").read_text()
    assert "# Together" in text and "(?)" in text and "it(?)" in text.replace(" ", "")
    assert (folder / "transcript.vtt").read_text().startswith("WEBVTT")
    after = read_model(folder / "story.json", Story)
    assert after.state == "transcribed" and after.history[-1].seconds is not None


def test_silence_is_no_speech(settings, tmp_path):
    engine = FakeEngine()
    with pytest.raises(transcribe.NoSpeechError, match="no speech found"):
        transcribe.transcribe_speech(engine, np.zeros(20 * RATE, dtype=np.float32), settings, "en")
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(10 * RATE) / RATE)).astype(np.float32)
    with pytest.raises(transcribe.NoSpeechError):
        transcribe.transcribe_speech(engine, tone, settings, "en")
    assert engine.calls == []


def test_long_audio_is_transcribed_in_bounded_batches(settings, tmp_path):
    engine = FakeEngine()
    cfg = settings.model_copy(update={"transcribe": settings.transcribe.model_copy(update={"batch_s": 2.0})})
    mono = speech_with_silence(tmp_path, 1.0, 1.0)
    segments, regions, *_ = transcribe.transcribe_speech(engine, mono, cfg, "en")
    assert len(engine.calls) >= 2 and all(seconds <= 2.0 + 1e-6 for seconds, _, _ in engine.calls)
    starts = [s.start for s in segments]
    assert starts == sorted(starts)


class SlowParallelEngine(FakeEngine):
    """Two calls at once, each taking a while (so they overlap); records how many ran together."""

    parallel = 2

    def __init__(self):
        super().__init__()
        import threading

        self._lock, self.running, self.most = threading.Lock(), 0, 0

    def transcribe(self, speech, clips, language, prompt=None):
        import time

        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.3 if len(self.calls) == 0 else 0.05)  # the first batch finishes last
        try:
            return super().transcribe(speech, clips, language, prompt)
        finally:
            with self._lock:
                self.running -= 1


def test_batches_are_even_and_as_many_as_the_engines_can_run_at_once():
    assert transcribe.batch_size(400, 300, 1, 60) == 300  # one engine: batches as big as allowed
    # Two engines: the memory of one 300 s batch shared (at most 150 s each), in an even number of
    # even batches (4 of 102 s, not 150 + 150 + 100).
    assert transcribe.batch_size(400, 300, 2, 60) == pytest.approx(400 * 1.02 / 4)
    assert transcribe.batch_size(3600, 300, 2, 60) == pytest.approx(3600 * 1.02 / 26)  # 26, none over 150 s
    assert transcribe.batch_size(100, 300, 2, 60) == 300  # short speech stays one batch


def test_batches_run_side_by_side_and_come_back_in_order(settings, tmp_path):
    engine = SlowParallelEngine()
    cfg = settings.model_copy(update={"transcribe": settings.transcribe.model_copy(
        update={"batch_s": 1.2, "parallel_min_batch_s": 0.5})})
    mono = speech_with_silence(tmp_path, 1.0, 1.0)
    segments, *_ = transcribe.transcribe_speech(engine, mono, cfg, "en")
    assert len(engine.calls) >= 3 and engine.most == 2
    starts = [s.start for s in segments]
    assert starts == sorted(starts) and len(segments) == len(engine.calls)


class FailingParallelEngine(SlowParallelEngine):
    def transcribe(self, speech, clips, language, prompt=None):
        if not self.calls:
            self.calls.append("failed")
            raise RuntimeError("the engine broke")
        return super().transcribe(speech, clips, language, prompt)


def test_a_failed_batch_stops_the_batches_not_yet_started(settings, tmp_path):
    """Executor.map cancels what has not started once a result raises: a broken engine fails the
    story at once instead of after every batch."""
    engine = FailingParallelEngine()
    cfg = settings.model_copy(update={"transcribe": settings.transcribe.model_copy(
        update={"batch_s": 0.6, "parallel_min_batch_s": 0.3})})
    mono = speech_with_silence(tmp_path, 1.0, 1.0)
    whole = SlowParallelEngine()
    transcribe.transcribe_speech(whole, mono, cfg, "en")
    with pytest.raises(RuntimeError, match="the engine broke"):
        transcribe.transcribe_speech(engine, mono, cfg, "en")
    # The failed one and what was running beside it (on a busy machine one more may start): not all.
    assert len(whole.calls) >= 4 and len(engine.calls) <= len(whole.calls) // 2


def test_speech_copy_is_rebuilt_from_the_original_when_missing(store, settings):
    story = make_story("s-12345678", "s.flac")
    original = store.original_dir(story.story_id) / "s.flac"
    original.parent.mkdir(parents=True)
    af.run_ffmpeg("-f", "lavfi", "-i", "sine=duration=1.5", "-ar", "44100", str(original))
    path = transcribe.speech_wav(story, store, settings)
    assert path == store.speech_wav(story.story_id)
    assert abs(len(audio.read_wav_float(path)) - 1.5 * RATE) < 400
