"""A contraction's characteristic EMG frequency, from two per-frame envelopes.

For a sinusoid of ``f`` Hz sampled at ``fs`` Hz, the mean absolute sample-to-sample change over
the mean absolute value is ``2 sin(pi f / fs)``; for broadband EMG the same ratio gives a
frequency weighted toward the upper part of the spectrum (like a second spectral moment). It
costs one difference per sample, so every frame of a night has it, and it moves with the
spectrum: during a cramp the EMG spectrum shifts upward (mean frequency ~75 -> ~100 Hz in an
induced foot cramp, Serrao 2007; shorter potentials in cramp than in a maximal voluntary
contraction, Roeleveld 2000). Electrodes, skin and the muscle shape the spectrum as much, so
the cramp evidence compares a contraction with the same channel's own leg movements, never
with a fixed number.

Resting noise is taken out in power: for independent signals the squares of mean absolute
values add (exactly for Gaussian ones), and so do those of the changes.
"""

from __future__ import annotations

import math

import numpy as np

MIN_FRAMES = 5  # activity frames needed for an estimate
MIN_MUSCLE_SHARE = 0.5  # share of the frames' power that must be above the resting noise


def resting_levels(mav: np.ndarray, dmav: np.ndarray, quiet: np.ndarray) -> tuple[float, float] | None:
    """RMS over quiet frames of the mean absolute value (µV) and of the change (µV per sample);
    None with fewer than 20 quiet frames."""
    if int(np.count_nonzero(quiet)) < 20:
        return None
    m, d = mav[quiet].astype(np.float64), dmav[quiet].astype(np.float64)
    return math.sqrt(float(np.mean(m * m))), math.sqrt(float(np.mean(d * d)))


def characteristic_hz(mav: np.ndarray, dmav: np.ndarray, rest: tuple[float, float], *,
                      fs: float) -> float | None:
    """Characteristic frequency (Hz) of the muscle activity in frames ``mav`` (µV) / ``dmav``
    (µV per sample) of a channel sampled at ``fs`` Hz, with resting levels ``rest`` (µV, µV per
    sample) taken out in power. None when there are too few frames or the noise dominates."""
    n = len(mav)
    if n < MIN_FRAMES or fs <= 0:
        return None
    m, d = mav.astype(np.float64), dmav.astype(np.float64)
    p_total = float(np.sum(m * m))
    p = p_total - n * rest[0] ** 2
    pd = float(np.sum(d * d)) - n * rest[1] ** 2
    if p <= MIN_MUSCLE_SHARE * p_total or pd <= 0:
        return None
    return fs / math.pi * math.asin(min(1.0, 0.5 * math.sqrt(pd / p)))


def relative_shift(hz: float | None, reference: list[float], *, min_reference: int = 5) -> float | None:
    """``hz`` over the median of ``reference`` (Hz) minus 1; None without enough reference."""
    if hz is None or len(reference) < min_reference:
        return None
    ref = float(np.median(reference))
    return hz / ref - 1.0 if ref > 0 else None
