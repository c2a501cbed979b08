"""openai-whisper behind the Engine interface (engine.py): the reference engine, and the default."""

from __future__ import annotations

import numpy as np

from storypipe.core.settings import TranscribeSettings
from storypipe.tasks.transcribe.engine import EngineResult, make_segment, whisper_clips


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
        from storypipe.tasks.transcribe.whisper_model import load_whisper_model

        _cache_word_aligner()
        self.settings = settings
        self.model = settings.model
        self._whisper = load_whisper_model(settings.model, settings.model_cache_dir(), settings.device)
        self.multilingual = bool(self._whisper.is_multilingual)

    def transcribe(
        self, speech: np.ndarray, clips: list[tuple[float, float]], language: str | None, prompt: str | None = None
    ) -> EngineResult:
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
            clip_timestamps=whisper_clips(clips, len(speech)),
            # Carried: the prompt opens every window's context, not only the first (which is all
            # initial_prompt alone does when condition_on_previous_text is off).
            initial_prompt=prompt or None,
            carry_initial_prompt=bool(prompt),
            fp16=s.device != "cpu",
            verbose=None,
        )
        segments = [
            make_segment(
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

        start = int((clips[0][0] if clips else 0.0) * whisper.audio.SAMPLE_RATE)  # Whisper's input rate
        audio = whisper.pad_or_trim(speech[start:])
        mel = whisper.log_mel_spectrogram(audio, self._whisper.dims.n_mels).to(self._whisper.device)
        _, probs = self._whisper.detect_language(mel)
        best = max(probs, key=probs.get)
        return best, float(probs[best])
