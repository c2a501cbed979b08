"""Loudness: the one meter (ITU-R BS.1770 integrated loudness and true peak), and clips brought to
a target loudness with their true peak under a ceiling.

The meter is pyloudnorm's measurement (its K-weighting, built with its public IIRfilter; its
400 ms blocks with 75% overlap, from its Meter; its absolute and relative gates), read in chunks:
the filters run chunk by chunk with their state carried over and each block's energy comes from a
running sum, so an hour-long interview is never held as float, only one chunk at a time. The true
peak is the peak of the 4x oversampled signal (scipy's resample_poly), also chunk by chunk.

Gain alone cannot bring a clip of speech with sharp peaks to -14 LUFS without pushing its peaks
past -1 dBTP. So a gentle look-ahead peak limiter (5 ms look-ahead, smoothed gain, no clicks)
catches the peaks, and gain and limiting alternate until the loudness is on target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter1d, minimum_filter1d, uniform_filter1d
from scipy.signal import lfilter, resample_poly

# Frames read at a time when measuring (about 12 s at 44.1 kHz).
CHUNK_FRAMES = 1 << 19
OVERSAMPLE = 4
# Input samples read either side of a chunk, so its 4x oversampling matches the whole signal's
# (resample_poly's filter reaches 10 input samples either side for 4x).
OVERSAMPLE_MARGIN = 32
CHANNEL_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)  # BS.1770: L, R, C, Ls, Rs
ABSOLUTE_GATE = -70.0  # LUFS
RELATIVE_GATE = -10.0  # LU below the loudness of the blocks over the absolute gate
LOOKAHEAD_MS = 5.0
ROUNDS = 4


@dataclass(frozen=True)
class Loudness:
    integrated_lufs: float  # -inf: silent, or too short to measure (under one 0.4 s block)
    true_peak_db: float  # -inf: all zeros


def _frames(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1)


def _as_float(piece: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """16-bit PCM as -1..1, or float audio as it is, in `dtype`."""
    if np.issubdtype(piece.dtype, np.integer):
        return piece.astype(dtype) / dtype(32768.0)
    return piece.astype(dtype, copy=False)


def _k_weighting(rate: int) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """BS.1770's K-weighting as pyloudnorm's Meter builds it: a high shelf, then a high-pass."""
    import pyloudnorm

    stages = (pyloudnorm.IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, rate, "high_shelf"),
              pyloudnorm.IIRfilter(0.0, 0.5, 38.0, rate, "high_pass"))
    return [(f.b, f.a, f.passband_gain) for f in stages]


def integrated_lufs(x: np.ndarray, rate: int, chunk: int = CHUNK_FRAMES) -> float:
    """Integrated loudness (LUFS) of 16-bit PCM or float audio (samples, or samples x channels):
    pyloudnorm's Meter.integrated_loudness, one chunk at a time. -inf for silence and for audio
    shorter than one block (which pyloudnorm refuses)."""
    import pyloudnorm

    x = _frames(x)
    n, channels = x.shape
    meter = pyloudnorm.Meter(rate)  # 0.4 s blocks, 0.75 overlap (BS.1770-4)
    block, step = meter.block_size, 1.0 - meter.overlap
    if n == 0 or n < block * rate:
        return -math.inf
    # Block edges exactly as pyloudnorm computes them.
    count = int(np.round((n / rate - block) / (block * step))) + 1
    j = np.arange(count)
    lo = np.minimum((block * (j * step) * rate).astype(np.int64), n)
    hi = np.minimum((block * (j * step + 1) * rate).astype(np.int64), n)
    edges = np.unique(np.concatenate([lo, hi]))
    energy_at = np.zeros((len(edges), channels))  # sum of squares of samples [0, edge)
    stages = _k_weighting(rate)
    state = [np.zeros((max(len(a), len(b)) - 1, channels)) for b, a, _ in stages]
    running = np.zeros(channels)
    for c0 in range(0, n, chunk):
        c1 = min(n, c0 + chunk)
        y = _as_float(x[c0:c1])
        for k, (b, a, gain) in enumerate(stages):
            y, state[k] = lfilter(b, a, y, axis=0, zi=state[k])
            if gain != 1.0:
                y *= gain
        sums = np.cumsum(y * y, axis=0) + running
        running = sums[-1]
        first, last = np.searchsorted(edges, [c0 + 1, c1 + 1])
        energy_at[first:last] = sums[edges[first:last] - c0 - 1]

    z = (energy_at[np.searchsorted(edges, hi)] - energy_at[np.searchsorted(edges, lo)]) / (block * rate)
    power = z @ np.array(CHANNEL_WEIGHTS[:channels])
    with np.errstate(divide="ignore"):
        levels = -0.691 + 10 * np.log10(power)
    gated = levels >= ABSOLUTE_GATE
    if not gated.any():
        return -math.inf
    relative = -0.691 + 10 * math.log10(float(power[gated].mean())) + RELATIVE_GATE
    gated = (levels > relative) & (levels > ABSOLUTE_GATE)
    if not gated.any():
        return -math.inf
    return -0.691 + 10 * math.log10(float(power[gated].mean()))


def true_peak_db(x: np.ndarray, chunk: int = CHUNK_FRAMES) -> float:
    """True peak (dBTP) of 16-bit PCM or float audio: the peak of the 4x oversampled signal (and of
    the samples themselves), one chunk at a time. -inf when all zeros."""
    x = _frames(x)
    n = len(x)
    peak = 0.0
    for c0 in range(0, n, chunk):
        c1 = min(n, c0 + chunk)
        s0, s1 = max(0, c0 - OVERSAMPLE_MARGIN), min(n, c1 + OVERSAMPLE_MARGIN)
        seg = _as_float(x[s0:s1], np.float32)  # float32 is plenty for a peak, and faster
        over = resample_poly(seg, OVERSAMPLE, 1, axis=0)[(c0 - s0) * OVERSAMPLE : (c1 - s0) * OVERSAMPLE]
        peak = max(peak, float(np.abs(over).max(initial=0.0)), float(np.abs(seg).max(initial=0.0)))
    return 20 * math.log10(peak) if peak > 0 else -math.inf


def measure(x: np.ndarray, rate: int, chunk: int = CHUNK_FRAMES) -> Loudness:
    """Integrated loudness and true peak of 16-bit PCM or float audio, in bounded memory."""
    return Loudness(integrated_lufs(x, rate, chunk), true_peak_db(x, chunk))


def limit(x: np.ndarray, rate: int, ceiling_db: float) -> np.ndarray:
    """Peaks above the ceiling are turned down smoothly; everything else is untouched."""
    ceiling = 10 ** (ceiling_db / 20)
    # The level each sample reaches between samples too (4x oversampled), so true peaks are caught.
    over = np.abs(resample_poly(x, OVERSAMPLE, 1, axis=0))[: OVERSAMPLE * len(x)]
    if over.ndim == 2:
        over = over.max(axis=1)
    level = np.pad(over, (0, OVERSAMPLE * len(x) - len(over))).reshape(len(x), OVERSAMPLE).max(axis=1)
    width = 2 * int(rate * LOOKAHEAD_MS / 1000) + 1
    gain = np.minimum(1.0, ceiling / np.maximum(maximum_filter1d(level, size=width), 1e-9))
    gain = uniform_filter1d(minimum_filter1d(gain, size=width), size=width)
    return x * (gain[:, None] if x.ndim == 2 else gain)


def normalise(x: np.ndarray, rate: int, target_lufs: float, true_peak_ceiling_db: float) -> tuple[np.ndarray, float, float]:
    """The audio (float, -1..1) at the target loudness with true peaks under the ceiling; returns
    it with its measured loudness and true peak. Silence (no measurable loudness) is left as it is."""
    loudness = integrated_lufs(x, rate)
    if not np.isfinite(loudness):
        return x, loudness, true_peak_db(x)
    y = x
    for _ in range(ROUNDS):
        y = limit(y * 10 ** ((target_lufs - loudness) / 20), rate, true_peak_ceiling_db - 0.2)
        loudness = integrated_lufs(y, rate)
        if abs(loudness - target_lufs) < 0.3:
            break
    peak = true_peak_db(y)
    if peak > true_peak_ceiling_db:
        y = y * 10 ** ((true_peak_ceiling_db - peak) / 20)
        loudness, peak = integrated_lufs(y, rate), true_peak_db(y)
    return np.clip(y, -1.0, 1.0), float(loudness), float(peak)
