"""faster-whisper (CTranslate2) behind the same Engine interface as openai-whisper.

Same decoding choices as engine_openai.OpenAIWhisperEngine (beam size, temperature fallback and
its thresholds, clip_timestamps from VAD, word timestamps), so the two engines give the same kind
of transcript and can be swapped with one setting. Nothing here touches the network: the bundled
tiny.en is used as it is (it is already a CTranslate2 model), and other model names are looked up
only in the local Hugging Face cache.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from storypipe.core.settings import TranscribeSettings
from storypipe.tasks.transcribe.engine import EngineResult, flat_clips, make_segment
from storypipe.tasks.transcribe.whisper_model import (
    BUNDLED_MODEL_NAME,
    ModelNotFoundError,
    bundled_model_dir,
)

__all__ = ["FasterWhisperEngine", "resolve_ct2_model"]

# openai-whisper's transcribe() defaults, passed explicitly so both engines fall back alike.
TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
COMPRESSION_RATIO_THRESHOLD = 2.4
LOG_PROB_THRESHOLD = -1.0
NO_SPEECH_THRESHOLD = 0.6

# What a CTranslate2 Whisper folder needs to load without fetching anything from the internet
# (without tokenizer.json faster-whisper would try to download one).
_REQUIRED_FILES = ("model.bin", "tokenizer.json")


def _hf_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _check_folder(folder: Path, what: str) -> Path:
    missing = [name for name in _REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise ModelNotFoundError(
            f"{what} {folder} is not a complete faster-whisper (CTranslate2) model: "
            f"{', '.join(missing)} missing. A model folder needs model.bin, config.json, "
            "tokenizer.json and vocabulary.txt (or vocabulary.json); copy the whole folder again."
        )
    return folder


def _from_hf_cache(model: str) -> Path:
    """faster-whisper's own name lookup, in the local Hugging Face cache only (never downloads)."""
    from faster_whisper.utils import _MODELS, download_model

    repo = model if "/" in model else _MODELS.get(model)
    names = ", ".join(_MODELS)
    if repo is None:
        raise ModelNotFoundError(
            f"Unknown faster-whisper model {model!r}. Use one of {names} "
            f"({BUNDLED_MODEL_NAME!r} works offline), a Hugging Face model id such as "
            "'Systran/faster-whisper-small' that is already downloaded, or a folder containing "
            "model.bin. (A Whisper .pt checkpoint needs transcribe.engine = \"openai-whisper\".)"
        )
    try:
        found = Path(download_model(model, local_files_only=True))
    except (OSError, ValueError) as exc:  # LocalEntryNotFoundError, HFValidationError
        local = Path(model).expanduser().resolve()
        raise ModelNotFoundError(
            f"faster-whisper model {model!r} ({repo} on Hugging Face) is not on this computer: "
            f"it is not in the Hugging Face cache {_hf_cache_dir()}"
            + (f", and there is no folder {local}" if "/" in model else "")
            + ". This pipeline never downloads. Either use "
            f"{BUNDLED_MODEL_NAME!r}, which works offline, or on a computer with internet run "
            f"`huggingface-cli download {repo}` and copy the resulting cache folder here (or copy "
            "the model folder itself and set the model setting to its path)."
        ) from exc
    return _check_folder(found, f"The cached copy of {model!r} at")


def resolve_ct2_model(model: str) -> Path:
    """The folder of the CTranslate2 Whisper model a model setting names, on this computer only.

    tiny.en -> the bundled model; an existing folder with model.bin -> that folder;
    another faster-whisper name or Hugging Face id -> the local Hugging Face cache.
    A .pt file is an openai-whisper checkpoint and is refused with a pointer to that engine.
    """
    model = model.strip()
    if model == BUNDLED_MODEL_NAME:
        return _check_folder(bundled_model_dir(), "The bundled model folder")

    path = Path(model).expanduser()
    if model.endswith(".pt") or (path.is_file() and path.suffix == ".pt"):
        raise ModelNotFoundError(
            f"{model} is an openai-whisper checkpoint (.pt), which faster-whisper cannot read. "
            'Set transcribe.engine = "openai-whisper" to use it, or point the model setting at a '
            "CTranslate2 model folder (containing model.bin) or a name such as "
            f"{BUNDLED_MODEL_NAME!r}."
        )
    if path.is_dir():
        if (path / "model.bin").is_file():
            return _check_folder(path, "The model folder")
        raise ModelNotFoundError(
            f"{path} is a folder but holds no model.bin, so it is not a faster-whisper "
            "(CTranslate2) model. Point the model setting at the folder that contains model.bin, "
            f"config.json and tokenizer.json, or use a name such as {BUNDLED_MODEL_NAME!r}."
        )
    if path.exists():
        raise ModelNotFoundError(
            f"{path} is a file, not a faster-whisper model. Point the model setting at the folder "
            f"containing model.bin, or use a name such as {BUNDLED_MODEL_NAME!r}."
        )
    if model.startswith(("/", "~", ".")) or (os.sep != "/" and os.sep in model) or model.count("/") > 1:
        raise ModelNotFoundError(
            f"Model folder {path.resolve()} does not exist. Check the path in the model setting "
            f"(it must be a folder containing model.bin), or use {BUNDLED_MODEL_NAME!r}, which "
            "works offline."
        )
    return _from_hf_cache(model)


class FasterWhisperEngine:
    name = "faster-whisper"

    def __init__(self, settings: TranscribeSettings):
        from faster_whisper import WhisperModel

        self.settings = settings
        self.model = settings.model
        self.model_dir = resolve_ct2_model(settings.model)
        cores = os.cpu_count() or 1
        self.parallel = settings.parallel or min(2, cores)
        try:
            # One worker per batch decoded at once (CTranslate2 runs them side by side), the cores shared.
            self._whisper = WhisperModel(
                str(self.model_dir), device="cpu", compute_type="int8",
                cpu_threads=max(1, cores // self.parallel), num_workers=self.parallel,
            )
        except (RuntimeError, ValueError, OSError) as exc:  # CTranslate2 refusing a damaged/odd model
            raise ModelNotFoundError(
                f"faster-whisper could not load the model in {self.model_dir}: {exc}. The files may "
                "be damaged or from an incompatible converter; copy the folder again, or use "
                f"{BUNDLED_MODEL_NAME!r}."
            ) from exc
        self.multilingual = bool(self._whisper.model.is_multilingual)

    def transcribe(
        self, speech: np.ndarray, clips: list[tuple[float, float]], language: str | None, prompt: str | None = None
    ) -> EngineResult:
        s = self.settings
        detect = language is None and self.multilingual
        segments, info = self._whisper.transcribe(
            np.ascontiguousarray(speech, dtype=np.float32),
            language=language if self.multilingual else "en",
            beam_size=s.beam_size,
            best_of=s.beam_size,
            temperature=list(TEMPERATURES),
            compression_ratio_threshold=COMPRESSION_RATIO_THRESHOLD,
            log_prob_threshold=LOG_PROB_THRESHOLD,
            no_speech_threshold=NO_SPEECH_THRESHOLD,
            condition_on_previous_text=s.condition_on_previous_text,
            word_timestamps=s.word_timestamps,
            clip_timestamps=[float(t) for t in flat_clips(clips)] or "0",
            vad_filter=False,  # VAD runs outside the engine, identically for both engines
            # faster-whisper puts hotwords at the head of every window's prompt, the same place as
            # openai-whisper's carried initial_prompt; its initial_prompt would reach the first only.
            hotwords=prompt or None,
            without_timestamps=False,
            log_progress=False,
        )
        result = [
            make_segment(
                i, seg.start, seg.end, seg.text, seg.avg_logprob, seg.no_speech_prob, seg.compression_ratio,
                [(w.word, w.start, w.end, w.probability) for w in (seg.words or [])],
            )
            for i, seg in enumerate(segments)  # a generator: decoding happens here
        ]
        if detect:
            return EngineResult(result, info.language, float(info.language_probability))
        return EngineResult(result, info.language or language or "en", None)
