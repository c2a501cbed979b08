"""Voice-activity detection: transcribe speech only, so no words are invented over silence or noise.

Silero VAD (its model ships inside the `silero-vad` wheel) finds the speech regions. They are joined
into one compact recording without the silences, which the engine transcribes; every time is then
mapped back to the original. Whisper decodes in 30 s windows whatever they hold, so cutting the
silence out (rather than decoding many short clips) is also the fastest way to skip it.
"""

from __future__ import annotations

import bisect
import functools
import threading
from dataclasses import dataclass

import numpy as np

from storypipe.core.models import Segment
from storypipe.core.settings import IngestSettings, VadSettings

# Every array of speech here is at the speech sample rate (`ingest.speech_sample_rate`): `rate`,
# or the shipped value when a caller gives none.
_LOCK = threading.Lock()


class NoSpeechError(ValueError):
    """The recording holds no speech that could be transcribed. Trying again would not help."""

    permanent = True


@functools.cache
def _silero_package():
    """The silero_vad package, imported without changing torch's thread count.

    Why: silero_vad/model.py runs `torch.set_num_threads(1)` when imported. That is process-wide: every
    thread that first touches torch afterwards (Prefect's task threads, where Whisper and the voice
    encoder run) then computes on one core instead of all of them.
    """
    import torch

    threads = torch.get_num_threads()
    import silero_vad

    torch.set_num_threads(threads)
    return silero_vad


@functools.cache
def _silero():
    """Silero's model: the batched ("sequence") ONNX front-end where the installed silero-vad has it
    (6.2+: the same per-frame probabilities, bit for bit, in one ONNX call per 16 s instead of a Python
    loop over 32 ms frames, about 5x faster), else the streaming ONNX model."""
    silero_vad = _silero_package()
    try:
        return silero_vad.load_silero_vad(sequence=True)
    except (TypeError, ImportError, FileNotFoundError, AttributeError):  # silero-vad < 6.2
        return silero_vad.load_silero_vad(onnx=True)  # the ONNX model is about twice as fast on CPU as the JIT one


def raw_speech_regions(speech: np.ndarray, cfg: VadSettings, rate: int | None = None) -> list[tuple[float, float]]:
    """(start, end) seconds of speech as Silero finds it, padded, before short pauses are bridged."""
    rate = rate or IngestSettings().speech_sample_rate
    if not cfg.enabled:
        return [(0.0, round(len(speech) / rate, 3))] if len(speech) else []
    silero_vad = _silero_package()
    model = _silero()
    options = dict(
        threshold=cfg.threshold,
        sampling_rate=rate,
        min_speech_duration_ms=cfg.min_speech_ms,
        min_silence_duration_ms=cfg.min_silence_ms,
        speech_pad_ms=cfg.pad_ms,
    )
    audio = np.ascontiguousarray(speech, dtype=np.float32)
    if hasattr(model, "audio_forward") and not hasattr(model, "reset_states"):  # the sequence model: stateless
        found = silero_vad.get_speech_timestamps_sequence(audio, model, **options)
    else:
        import torch

        with _LOCK:  # the streaming model keeps state between calls
            found = silero_vad.get_speech_timestamps(torch.from_numpy(audio), model, **options)
    return [(r["start"] / rate, r["end"] / rate) for r in found]


def speech_regions(speech: np.ndarray, cfg: VadSettings, rate: int | None = None) -> list[tuple[float, float]]:
    """(start, end) seconds of speech, padded and with short pauses bridged."""
    return merge_regions(raw_speech_regions(speech, cfg, rate), cfg.bridge_s)


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
    rate: int  # samples per second of `audio`

    @property
    def duration(self) -> float:
        return len(self.audio) / self.rate

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


def compact(speech: np.ndarray, regions: list[tuple[float, float]], rate: int | None = None) -> Compact:
    rate = rate or IngestSettings().speech_sample_rate
    pieces, offsets, pos = [], [], 0.0
    for start, end in regions:
        piece = speech[int(start * rate) : int(end * rate)]
        pieces.append(piece)
        offsets.append(pos)
        pos += len(piece) / rate
    audio = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
    return Compact(audio=audio, regions=regions, offsets=offsets, rate=rate)


def pauses_within(raw: list[tuple[float, float]], bridge_s: float) -> list[tuple[float, float]]:
    """The pauses Silero heard that merge_regions bridged: (start, end) of each gap shorter than bridge_s
    between two raw regions (zero-length where their padding met). Good places to cut a long region."""
    ordered = sorted(raw)
    return [(round(a_end, 3), round(b_start, 3)) for (_, a_end), (b_start, _) in zip(ordered, ordered[1:])
            if b_start - a_end < bridge_s]


def batches(
    regions: list[tuple[float, float]], max_s: float, pauses: list[tuple[float, float]] = (),
) -> list[list[tuple[float, float]]]:
    """Groups of consecutive regions of at most max_s of speech each (a longer region is split).

    Each group is transcribed on its own: memory stays bounded and progress can be shown. A region that
    does not fit in what is left of a group is cut in the middle of the latest of `pauses` that fits
    (never in the middle of a word: the engine starts each group afresh, without the words before the
    cut); with no pause to cut at, a group that already holds speech is closed and the region starts
    the next one, and only a region with no pause in max_s of speech is cut where the room ends.
    """
    cuts = sorted(round((a + b) / 2, 3) for a, b in pauses)
    groups: list[list[tuple[float, float]]] = [[]]
    size = 0.0
    for start, end in regions:
        while end - start > 0:
            room = max_s - size
            if room <= 0:
                groups.append([])
                size, room = 0.0, max_s
            if end - start <= room:
                take = end - start
            else:
                i = bisect.bisect_right(cuts, start + room) - 1
                if i >= 0 and cuts[i] > start:
                    take = cuts[i] - start
                elif size > 0:  # no pause to cut at: this region starts the next group
                    groups.append([])
                    size = 0.0
                    continue
                else:
                    take = room
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
