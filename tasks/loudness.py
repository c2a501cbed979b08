"""Loudness: bring audio to a target integrated loudness (EBU R128, measured with pyloudnorm) with
its true peak under a ceiling.

Gain alone cannot do both for speech with sharp peaks: reaching -14 LUFS would push peaks past
-1 dBTP. So a gentle look-ahead peak limiter (5 ms look-ahead, smoothed gain, no clicks) catches
the peaks, and gain and limiting alternate until the loudness is on target.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import maximum_filter1d, minimum_filter1d, uniform_filter1d
from scipy.signal import resample_poly

LOOKAHEAD_MS = 5.0
ROUNDS = 4


def true_peak_db(x: np.ndarray) -> float:
    """Peak of the 4x-oversampled signal, in dB (an estimate of ITU-R BS.1770 true peak)."""
    return float(20 * np.log10(np.max(np.abs(resample_poly(x, 4, 1, axis=0))) + 1e-12))


def limit(x: np.ndarray, rate: int, ceiling_db: float) -> np.ndarray:
    """Peaks above the ceiling are turned down smoothly; everything else is untouched."""
    ceiling = 10 ** (ceiling_db / 20)
    # The level each sample reaches between samples too (4x oversampled), so true peaks are caught.
    over = np.abs(resample_poly(x, 4, 1, axis=0))[: 4 * len(x)]
    if over.ndim == 2:
        over = over.max(axis=1)
    level = np.pad(over, (0, 4 * len(x) - len(over))).reshape(len(x), 4).max(axis=1)
    width = 2 * int(rate * LOOKAHEAD_MS / 1000) + 1
    gain = np.minimum(1.0, ceiling / np.maximum(maximum_filter1d(level, size=width), 1e-9))
    gain = uniform_filter1d(minimum_filter1d(gain, size=width), size=width)
    return x * (gain[:, None] if x.ndim == 2 else gain)


def normalise(x: np.ndarray, rate: int, target_lufs: float, true_peak_ceiling_db: float) -> tuple[np.ndarray, float, float]:
    """The audio (float, -1..1) at the target loudness with true peaks under the ceiling; returns
    it with its measured loudness and true peak. Silence (no measurable loudness) is left as it is."""
    import pyloudnorm

    meter = pyloudnorm.Meter(rate)
    loudness = meter.integrated_loudness(x)
    if not np.isfinite(loudness):
        return x, loudness, true_peak_db(x)
    y = x
    for _ in range(ROUNDS):
        y = limit(y * 10 ** ((target_lufs - loudness) / 20), rate, true_peak_ceiling_db - 0.2)
        loudness = meter.integrated_loudness(y)
        if abs(loudness - target_lufs) < 0.3:
            break
    peak = true_peak_db(y)
    if peak > true_peak_ceiling_db:
        y = y * 10 ** ((true_peak_ceiling_db - peak) / 20)
        loudness, peak = meter.integrated_loudness(y), true_peak_db(y)
    return np.clip(y, -1.0, 1.0), float(loudness), float(peak)
