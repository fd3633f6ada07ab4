"""Pure signal-processing functions. Every function takes its sampling rate explicitly.

Arrays are float32 or float64 samples in µV (EMG) or g (acceleration); channels, where a
function accepts several, are on the last axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage, signal


def design_bandpass(*, fs: float, low_hz: float, high_hz: float, order: int) -> np.ndarray:
    """Butterworth band-pass as second-order sections; ``high_hz`` is capped at 0.45 x fs."""
    high = min(high_hz, 0.45 * fs)
    if high <= low_hz:
        raise ValueError(f"sampling rate {fs:g} Hz is too low for an EMG band starting at "
                         f"{low_hz:g} Hz (need at least {low_hz / 0.45:.0f} Hz)")
    return np.asarray(signal.butter(order, [low_hz, high], btype="bandpass", fs=fs, output="sos"))


def detect_mains(x: np.ndarray, *, fs: float, min_ratio: float) -> float:
    """Mains frequency present in ``x`` (µV): 50.0, 60.0, or 0.0 when neither line stands out.

    Compares the Welch power at each candidate line with the median power 3–8 Hz away. The
    Welch segments are combined by their median, not their mean: a few seconds of strong muscle
    activity (broadband, with power at the line too) or a movement then neither hides a line
    nor makes one.
    """
    x = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if x.size < fs or fs < 2 * 50 * 1.05:
        return 0.0
    nper = int(min(x.size, 2 ** int(np.floor(np.log2(fs * 2)))))
    f, p = signal.welch(x - x.mean(), fs=fs, nperseg=nper, average="median")
    best, best_ratio = 0.0, min_ratio
    for line in (50.0, 60.0):
        if line >= 0.5 * fs * 0.95:
            continue
        at = p[np.abs(f - line) <= 1.0]
        near = p[(np.abs(f - line) >= 3.0) & (np.abs(f - line) <= 8.0)]
        if at.size == 0 or near.size == 0:
            continue
        ratio = float(at.max() / max(np.median(near), 1e-30))
        if ratio > best_ratio:
            best, best_ratio = line, ratio
    return best


def design_notches(*, fs: float, mains_hz: float, q: float, harmonics: int,
                   max_hz: float) -> np.ndarray | None:
    """IIR notches at the mains line and its odd harmonics up to the ``harmonics``-th, below
    ``max_hz``; None if there are none. Hum is dominated by odd harmonics."""
    if not mains_hz:
        return None
    sections = []
    for h in range(1, harmonics + 1, 2):
        f0 = h * mains_hz
        if f0 >= min(max_hz, 0.48 * fs):
            break
        b, a = signal.iirnotch(f0, q * h ** 0.5, fs=fs)
        sections.append(signal.tf2sos(b, a))
    return np.vstack(sections) if sections else None


def frame_edges(k0: int, k1: int, *, fs: float, frame_s: float) -> np.ndarray:
    """Sample index where each frame ``k0..k1`` begins (``k1 - k0 + 1`` edges).

    Frame k covers samples ``[ceil(k·fs·frame_s), ceil((k+1)·fs·frame_s))``, so any rate,
    integer or not, maps onto the same time grid.
    """
    per = fs * frame_s
    return np.ceil(np.arange(k0, k1 + 1) * per - 1e-9).astype(np.int64)  # type: ignore[no-any-return]


def moving_median(x: np.ndarray, n: int, history: np.ndarray | None = None) -> np.ndarray:
    """Causal moving median over ``n`` frames; ``history`` holds the previous ``n-1`` values.

    Used for envelopes because a heartbeat (ECG bleed) or an electrode-pop transient fills
    fewer than half the frames of the window and so does not move it.
    For an even ``n`` the upper of the two middle values is taken.
    """
    x = np.asarray(x, dtype=np.float64)
    if n <= 1:
        return x.copy()
    if history is None:
        history = np.full(n - 1, x[0] if x.size else 0.0)
    full = np.concatenate([history, x])
    # A centred C median filter, read back so each output ends its window (causal).
    shift = n - 1 - n // 2
    centred = ndimage.median_filter(full, size=n, mode="nearest")
    return np.asarray(centred[n - 1 - shift:len(full) - shift])


def quantile(x: np.ndarray, q: float) -> float:
    """The ``q`` quantile of a small array (linear interpolation), without np.quantile's overhead."""
    s = np.sort(np.asarray(x, dtype=np.float64), axis=None)
    return sorted_quantile(s, q) if s.size else float("nan")


def sorted_quantile(s: Sequence[float] | np.ndarray, q: float) -> float:
    """The ``q`` quantile of ascending values ``s`` (a list or an array), interpolated linearly;
    scalar Python, for the few values of a baseline window."""
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (s[hi] - s[lo]) * (pos - lo))


def angle_deg(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Angle (deg) between vectors on the last axis."""
    nu = np.linalg.norm(u, axis=-1)
    nv = np.linalg.norm(v, axis=-1)
    cos = np.sum(u * v, axis=-1) / np.maximum(nu * nv, 1e-12)
    return np.asarray(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


_LINES_HZ = (50.0, 60.0, 150.0, 180.0)  # both mains and their strongest (3rd) harmonic
_BLOCK_S = 0.1


def _residual_operator(n: int, fs: float) -> np.ndarray | None:
    """(n, n) matrix taking a block of n samples to what is left after removing a quadratic
    trend and sinusoids at both mains lines and their 3rd harmonics (least squares); None when
    n is too short to leave anything."""
    key = (n, round(fs, 6))
    if key in _OPERATORS:
        return _OPERATORS[key]
    t = np.arange(n) / fs
    u = (t - t.mean()) / max(float(np.ptp(t)), 1.0 / fs)
    cols = [np.ones(n), u, u * u]
    for f in _LINES_HZ:
        if f < 0.45 * fs:
            cols += [np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t)]
    a = np.stack(cols, axis=1)
    op = None if n < 2 * a.shape[1] else np.eye(n) - a @ np.linalg.pinv(a)
    if len(_OPERATORS) > 256:
        _OPERATORS.clear()
    _OPERATORS[key] = op
    return op


_OPERATORS: dict[tuple[int, float], np.ndarray | None] = {}


def residual_peak(x: np.ndarray, *, fs: float) -> np.ndarray | None:
    """Per channel (last axis), the largest |x| (µV) left in ``x`` (samples, channels) once slow
    wander and mains hum are taken out, block by block of 0.1 s (a quadratic trend and the 50,
    60, 150 and 180 Hz lines fitted per block): what a 10-Hz high-passed, notched EMG trace
    reaches in that span, computable from one frame alone. None if the frame is too short.

    It lets a zoomed-out viewer draw filtered EMG from per-frame figures kept for ever, where
    filtering the raw samples of a whole night on every view would be far too slow.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    m = max(1, int(round(_BLOCK_S * fs)))
    n = x.shape[0]
    if n < m:
        m = n
    nb = n // m
    peaks = []
    if nb:
        op = _residual_operator(m, fs)
        if op is None:
            return None
        blocks = x[: nb * m].reshape(nb, m, x.shape[1])
        peaks.append(np.abs(op @ blocks).max(axis=(0, 1)))
    rest = n - nb * m
    if rest:
        op = _residual_operator(rest, fs)
        if op is not None:
            peaks.append(np.abs(op @ x[nb * m:]).max(axis=0))
    return np.max(peaks, axis=0) if peaks else None
