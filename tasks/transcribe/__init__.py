"""Transcribe: speech found by VAD, through the configured engine, into a transcript a reviewer can trust.

The steps, the same for every engine: find the speech (VAD) → transcribe it in bounded batches →
drop what is probably not speech → label who spoke → flag unsure words → warn about the language.
"""

from __future__ import annotations

import ctypes
import hashlib
import itertools
import json
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from storypipe.core.jsonio import BadFileError
from storypipe.core.store import Store
from storypipe.core.models import Segment, Story, Transcript
from storypipe.core import timefmt
from storypipe.core.settings import Settings
from storypipe.tasks.common import audio, formats
from storypipe.tasks.transcribe import quality, speakers, vad, vocabulary
from storypipe.tasks.transcribe.engines import Engine, get_engine
from storypipe.tasks.transcribe.vad import NoSpeechError

log = logging.getLogger("storypipe")

__all__ = ["NoSpeechError", "get_engine", "speech_wav", "transcribe_story", "transcribe_speech"]


def speech_wav(story: Story, store: Store, settings: Settings) -> Path:
    """The 16 kHz copy made at ingest; rebuilt from the original if someone cleared audio/work/."""
    path = store.speech_wav(story.story_id)
    if not path.exists():
        original = store.original_dir(story.story_id) / story.source.filename
        rate = settings.ingest.speech_sample_rate
        audio.write_wav(path, audio.decode_pcm16(original, rate, audio.speech_channels(story.source.channels)), rate)
    return path


def warm_up(settings: Settings) -> None:
    """Load the models and compile Whisper's word aligner once, ahead of the first story."""
    engine = get_engine(settings.transcribe)
    rate = settings.ingest.speech_sample_rate
    vad.speech_regions(np.zeros(rate, dtype=np.float32), settings.transcribe.vad, rate)
    speakers.voice_encoder()  # about 0.1 s, but its imports (librosa, numba) cost seconds on a cold start
    if engine.name == "openai-whisper" and settings.transcribe.word_timestamps:
        import whisper.timing  # numba compiles its aligner on first use, or loads it from its cache

        whisper.timing.dtw_cpu(np.ones((2, 2)))


def batch_size(speech_s: float, batch_s: float, parallel: int, min_batch_s: float) -> float:
    """Seconds of speech per batch. One engine: batch_s. `parallel` engines share the memory of one
    batch (each takes at most batch_s / parallel) and get a multiple of `parallel` batches of even
    size, so all of them work until the end; never below min_batch_s."""
    if parallel <= 1 or speech_s < 2 * min_batch_s:
        return batch_s
    share = max(min_batch_s, batch_s / parallel)
    speech_s *= 1.02  # room for cuts: a batch ends at a pause, a little after its share
    n = parallel * math.ceil(speech_s / (share * parallel))
    return max(min_batch_s, speech_s / n)


def transcribe_speech(
    engine: Engine, mono: np.ndarray, settings: Settings, language: str | None, story_id: str = "",
    prompt: str | None = None,
) -> tuple[list[Segment], list[tuple[float, float]], str, float | None, dict[str, int]]:
    """VAD, then the engine on the speech only, in batches, each given the same `prompt` (the
    vocabulary, vocabulary.py). Returns segments (original times), the speech regions, the language,
    its probability, and what was dropped as non-speech."""
    cfg, rate = settings.transcribe, settings.ingest.speech_sample_rate
    duration = len(mono) / rate
    raw = vad.raw_speech_regions(mono, cfg.vad, rate)
    regions = vad.merge_regions(raw, cfg.vad.bridge_s)
    if not regions:
        raise NoSpeechError("no speech found: the recording seems to hold only silence, noise, music or a tone")
    speech_s = sum(e - s for s, e in regions)
    log.info(
        "%s: %.0f s of speech found in %.0f s of audio", story_id, speech_s, duration,
        extra={"story": story_id, "position_s": 0.0, "total_s": duration},
    )
    parallel = getattr(engine, "parallel", 1)
    groups = vad.batches(regions, batch_size(speech_s, cfg.batch_s, parallel, cfg.parallel_min_batch_s),
                         vad.pauses_within(raw, cfg.vad.bridge_s))

    def run(group: list[tuple[float, float]], language: str | None):
        packed = vad.compact(mono, group, rate)
        result = engine.transcribe(packed.audio, [(0.0, round(packed.duration, 3))], language, prompt=prompt)
        if prompt:
            result, again = vocabulary.hear_again(engine, packed.audio, packed.duration, result,
                                                  language or result.language, cfg)
            if again:
                log.info("%s: %d stretches of speech heard again without the vocabulary (words the prompted "
                         "pass had left out or doubted)", story_id, again, extra={"story": story_id})
        return result, vad.restore_times(result.segments, packed)

    segments: list[Segment] = []
    probability = None
    first = []
    if language is None and engine.multilingual:  # detected on the first batch, kept for the rest
        first.append(run(groups[0], None))
        language, probability = first[0][0].language, first[0][0].language_probability
    with ThreadPoolExecutor(max(1, parallel), thread_name_prefix="transcribe") as pool:
        # Consumed in order; at most `parallel` batches' audio is held at once.
        results = itertools.chain(first, pool.map(lambda g, known=language: run(g, known), groups[len(first):]))
        for group, (result, times) in zip(groups, results):
            language = language or result.language
            segments += times
            log.info(
                "%s: transcribed up to %s", story_id, timefmt.duration(group[-1][1]),
                extra={"story": story_id, "position_s": group[-1][1], "total_s": duration},
            )
    # Chronological, whatever the engine's order: turns, quotes and captions all read it in order.
    segments = [s.model_copy(update={"id": i}) for i, s in enumerate(sorted(segments, key=lambda s: (s.start, s.end)))]
    segments, dropped = quality.drop_non_speech(segments, cfg.filter)
    if not segments:
        hint = "" if engine.multilingual else " (the model only understands English: is the speech in another language?)"
        raise NoSpeechError(
            f"no speech found: voice activity was heard ({speech_s:.0f} s) but no words could be made out{hint}"
        )
    return segments, regions, language or "en", probability, dropped


def label_speakers(
    segments: list[Segment], mono: np.ndarray, channels: np.ndarray | None, story: Story, settings: Settings
) -> list[Segment]:
    """Who said what (stereo channels or voice clustering); see tasks/speakers.py. Ids come back 0..n-1."""
    n = story.metadata.speakers or settings.speakers.default_count
    return speakers.label_speakers(segments, mono, channels, n_speakers=n, roles=story.metadata.speaker_roles,
                                   cfg=settings.speakers, rate=settings.ingest.speech_sample_rate)


def _reviewed_transcript(store: Store, story_id: str) -> Transcript | None:
    if not store.transcript_path(story_id).exists():
        return None
    try:
        transcript = store.read_transcript(story_id)
    except BadFileError:
        return None
    edited = transcript.speaker_names or any(s.machine_text is not None or s.machine_speaker is not None
                                             for s in transcript.segments)
    return transcript if edited else None


def transcribe_story(story_id: str, store: Store, settings: Settings) -> Transcript:
    """Transcribe one ingested story and write transcript.json, .txt, .srt and .vtt beside story.json."""
    kept = keep_reviewed(story_id, store)
    if kept is not None:
        return kept
    transcript, seconds = compute_transcript(story_id, store, settings)
    return save_transcript(transcript, store, seconds)


def keep_reviewed(story_id: str, store: Store) -> Transcript | None:
    """A person has corrected this transcript: a re-run never replaces their work (contract)."""
    reviewed = _reviewed_transcript(store, story_id)
    if reviewed is not None:
        with store.updating_story(story_id) as story:
            story.advance("transcribed", note="kept the reviewed transcript")
        log.info("Kept the reviewed transcript of %s", story_id, extra={"story": story_id})
    return reviewed


# Raised when the code changes what a transcript holds for the same audio and settings, so that
# transcripts cached before are made again (2: segments in the order their words were said).
METHOD = 2


def cache_key(story: Story, settings: Settings, root: Path | None = None) -> str:
    """What a transcript depends on: the audio's bytes, the engine and model, every setting that
    shapes it (VAD, filters, confidence marks, speaker count) and the vocabulary's prompt (config,
    sidecar names, the root's codebook; only hashed here). Anything else changing keeps the cache."""
    parts = {
        "schema": Transcript.model_fields["schema_version"].default,
        "method": METHOD,
        "audio": story.source.sha256,
        "transcribe": settings.transcribe.model_dump(
            exclude={"cache_dir", "device", "batch_s", "parallel", "parallel_min_batch_s"}),  # where cuts fall, not what
        "speakers": settings.speakers.model_dump(),
        "rate": settings.ingest.speech_sample_rate,
        "metadata": {k: getattr(story.metadata, k) for k in ("language", "speakers", "speaker_roles")},
        "story_id": story.story_id,  # the transcript names its story
        "vocabulary": vocabulary.story_vocabulary(story, root, settings, story_language(story, settings)).prompt,
    }
    return "transcript-" + hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _return_freed_memory() -> None:
    """Give the memory the transcription freed back to the system. glibc keeps freed blocks in
    per-thread arenas (each engine thread had one), so without this a long recording's peak
    carries over into the stages after it. A no-op where there is no glibc."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def story_language(story: Story, settings: Settings) -> str | None:
    """The language a story is transcribed in: its sidecar's, else the config's, else None (detect)."""
    return story.metadata.language or settings.transcribe.language or None


def compute_transcript(story_id: str, store: Store, settings: Settings) -> tuple[Transcript, float]:
    """The transcript of a story's audio (nothing written): VAD, the engine, speakers, confidence."""
    story = store.read_story(story_id)
    speech = audio.read_wav_float(speech_wav(story, store, settings))
    channels = speech if speech.ndim == 2 else None
    mono = speech.mean(axis=1) if channels is not None else speech
    engine = get_engine(settings.transcribe)
    language = story_language(story, settings)
    log.info("Transcribing %s (%.0f s of audio)", story_id, story.source.duration_s, extra={"story": story_id})
    started = time.monotonic()
    vocab = vocabulary.story_vocabulary(story, store.root, settings, language)
    log.info("%s: %s", story_id, vocab.describe(), extra={"story": story_id})  # counts only: names stay out of logs
    segments, regions, language, probability, dropped = transcribe_speech(
        engine, mono, settings, language, story_id, prompt=vocab.prompt)
    segments = label_speakers(segments, mono, channels, story, settings)
    segments = quality.flag_confidence(segments, settings.transcribe.confidence)
    warnings = quality.language_warnings(
        segments, engine.multilingual, story.metadata.language, settings.transcribe.confidence
    )
    seconds = time.monotonic() - started
    del speech, channels, mono
    _return_freed_memory()
    transcript = Transcript(
        story_id=story_id,
        language=language,
        duration_s=story.source.duration_s,
        engine=engine.name,
        model=engine.model,
        language_probability=probability,
        speech_regions=regions,
        warnings=warnings,
        segments=segments,
    )
    low = sum(w.low_confidence for s in segments for w in s.words)
    log.info(
        "Transcribed %s: %d words (%d to check) in %.1f s%s", story_id, len(transcript.words()), low, seconds,
        f"; dropped {sum(dropped.values())} non-speech segments" if dropped else "",
        extra={"story": story_id},
    )
    return transcript, seconds


def save_transcript(transcript: Transcript, store: Store, seconds: float | None, note: str | None = None) -> Transcript:
    """Write transcript.json and its .txt/.srt/.vtt, then record the stage on the story."""
    with store.updating_story(transcript.story_id) as story:
        store.write_transcript(transcript)
        formats.write_transcript_files(transcript, store, title=story.metadata.title)
        warnings = transcript.warnings
        story.problems = [p for p in story.problems if p not in warnings] + warnings
        story.advance("transcribed", seconds=round(seconds, 3) if seconds is not None else None, note=note)
    for warning in warnings:
        log.warning("%s: %s", transcript.story_id, warning, extra={"story": transcript.story_id})
    return transcript


# ---- Prefect wrapper ----
