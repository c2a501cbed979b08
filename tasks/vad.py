"""Voice-activity detection: transcribe speech only, so no words are invented over silence or noise.

Silero VAD (its model ships inside the `silero-vad` wheel) finds the speech regions. They are joined
into one compact recording without the silences, which the engine transcribes; every time is then
mapped back to the original. Whisper decodes in 30 s windows whatever they hold, so cutting the
silence out (rather than decoding many short clips) is also the fastest way to skip it.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

import numpy as np

from storypipe.models import Segment
from storypipe.settings import VadSettings

SAMPLE_RATE = 16000
_LOCK = threading.Lock()


class NoSpeechError(ValueError):
    """The recording holds no speech that could be transcribed. Trying again would not help."""

    permanent = True


@functools.cache
def _silero():
    from silero_vad import load_silero_vad

    return load_silero_vad(onnx=True)  # the ONNX model is about twice as fast on CPU as the JIT one


def speech_regions(speech: np.ndarray, cfg: VadSettings) -> list[tuple[float, float]]:
    """(start, end) seconds of speech, padded and with short pauses bridged."""
    import torch
    from silero_vad import get_speech_timestamps

    if not cfg.enabled:
        return [(0.0, round(len(speech) / SAMPLE_RATE, 3))] if len(speech) else []
    with _LOCK:  # the model keeps state between calls
        found = get_speech_timestamps(
            torch.from_numpy(np.ascontiguousarray(speech, dtype=np.float32)),
            _silero(),
            threshold=cfg.threshold,
            sampling_rate=SAMPLE_RATE,
            min_speech_duration_ms=cfg.min_speech_ms,
            min_silence_duration_ms=cfg.min_silence_ms,
            speech_pad_ms=cfg.pad_ms,
        )
    return merge_regions([(r["start"] / SAMPLE_RATE, r["end"] / SAMPLE_RATE) for r in found], cfg.bridge_s)


def merge_regions(regions: list[tuple[float, float]], bridge_s: float) -> list[tuple[float, float]]:
    """Join regions separated by less than bridge_s: a short pause belongs to the speech around it."""
    merged: list[list[float]] = []
    for start, end in sorted(regions):
        if merged and start - merged[-1][1] < bridge_s:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(round(s, 3), round(e, 3)) for s, e in merged]


@dataclass
class Compact:
    """Speech regions laid end to end, with the map back to the original's times."""

    audio: np.ndarray
    regions: list[tuple[float, float]]  # in the original
    offsets: list[float]  # where each region starts in the compact audio

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    def region_of(self, t: float, is_end: bool = False) -> int:
        return max(0, int(np.searchsorted(self.offsets, t, side="left" if is_end else "right")) - 1)

    def word_times(self, start: float, end: float) -> tuple[float, float]:
        """A word's times in the original. One that straddles a cut is kept on the side holding most of it
        (it cannot really have spanned the silence that was cut out)."""
        first, last = self.region_of(start), self.region_of(end, is_end=True)
        if first == last:
            return self.to_original(start), self.to_original(end, is_end=True)
        cut = self.offsets[first + 1]
        if cut - start >= end - cut:
            return self.to_original(start), self.regions[first][1]
        return self.regions[first + 1][0], self.to_original(end, is_end=True)

    def to_original(self, t: float, is_end: bool = False) -> float:
        """A compact time in the original; an end exactly at a join belongs to the region before it."""
        i = self.region_of(t, is_end)
        start, end = self.regions[i]
        return round(min(end, start + (t - self.offsets[i])), 3)


def compact(speech: np.ndarray, regions: list[tuple[float, float]]) -> Compact:
    pieces, offsets, pos = [], [], 0.0
    for start, end in regions:
        piece = speech[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
        pieces.append(piece)
        offsets.append(pos)
        pos += len(piece) / SAMPLE_RATE
    audio = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
    return Compact(audio=audio, regions=regions, offsets=offsets)


def batches(regions: list[tuple[float, float]], max_s: float) -> list[list[tuple[float, float]]]:
    """Groups of consecutive regions of at most max_s of speech each (a longer region is split).

    Each group is transcribed on its own: memory stays bounded and progress can be shown.
    """
    groups: list[list[tuple[float, float]]] = [[]]
    size = 0.0
    for start, end in regions:
        while end - start > 0:
            room = max_s - size
            if room <= 0:
                groups.append([])
                size, room = 0.0, max_s
            take = min(room, end - start)
            groups[-1].append((round(start, 3), round(start + take, 3)))
            size += take
            start += take
    return [g for g in groups if g]


def restore_times(segments: list[Segment], packed: Compact) -> list[Segment]:
    """Map segment and word times from the compact audio back to the original recording."""
    out = []
    for seg in segments:
        words = []
        for w in seg.words:
            start, end = packed.word_times(w.start, w.end)
            words.append(w.model_copy(update={"start": start, "end": end}))
        start = words[0].start if words else packed.to_original(seg.start)
        end = words[-1].end if words else packed.to_original(seg.end, is_end=True)
        out.append(seg.model_copy(update={"start": start, "end": end, "words": words}))
    return out
