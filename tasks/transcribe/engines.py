"""Which speech recogniser: one loaded engine per model and device in this process (engine.py
says what an engine is; engine_openai.py and engine_faster.py are the two there are)."""

from __future__ import annotations

import threading

from storypipe.core.settings import TranscribeSettings
from storypipe.tasks.transcribe.engine import Engine, EngineResult
from storypipe.tasks.transcribe.engine_openai import OpenAIWhisperEngine

__all__ = ["Engine", "EngineResult", "OpenAIWhisperEngine", "get_engine"]


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
                from storypipe.tasks.transcribe.engine_faster import FasterWhisperEngine

                _ENGINES[key] = FasterWhisperEngine(settings)
            else:  # pragma: no cover - settings validation allows only the two above
                raise ValueError(f"unknown transcribe.engine {settings.engine!r}")
        engine = _ENGINES[key]
    engine.settings = settings  # decoding options may differ between roots; the weights don't
    return engine
