"""The viewer's EMG display filters, as scoring software offers them: what a clinician sees, not
what the detector uses (the detector filters on its own, ``detector.engine.frontend``).

Zero-phase (forward and backward), so an onset is drawn where it is; applied to each run of
contiguous samples on its own, so a gap in the recording does not ring into its neighbours.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable

import numpy as np
from scipy import signal

from detector.engine.dsp import design_notches

FILTERS: dict[str, str] = {"off": "no filter", "hp10": "high-pass 10 Hz", "bp20-450": "band-pass 20–450 Hz"}
DEFAULT = "hp10"
PAD_S = 1.0  # samples read either side of a view, so the filter has settled at its edges


class FilterError(ValueError):
    """An unknown display filter or notch; the message says what is offered."""


def check(name: str, notch_hz: float) -> None:
    if name not in FILTERS:
        raise FilterError(f"filter {name!r}: choose {', '.join(FILTERS)}")
    if notch_hz not in (0.0, 50.0, 60.0):
        raise FilterError(f"notch {notch_hz:g} Hz: choose 0 (off), 50 or 60")


def _sos(name: str, fs: float, notch_hz: float) -> np.ndarray | None:
    parts = []
    if name == "hp10" and 10.0 < 0.45 * fs:
        parts.append(signal.butter(2, 10.0, btype="highpass", fs=fs, output="sos"))
    elif name == "bp20-450" and 20.0 < 0.45 * fs:
        hi = min(450.0, 0.45 * fs)  # the band's top is capped below Nyquist at low rates
        parts.append(signal.butter(2, [20.0, hi], btype="bandpass", fs=fs, output="sos"))
    if name != "off" and notch_hz:
        n = design_notches(fs=fs, mains_hz=notch_hz, q=30.0, harmonics=3, max_hz=0.45 * fs)
        if n is not None:
            parts.append(n)
    return np.vstack(parts) if parts else None


def apply(t_ns: np.ndarray, x: np.ndarray, *, name: str, notch_hz: float) -> np.ndarray:
    """``x`` (µV, sampled at times ``t_ns``) through the named display filter and the mains notch
    (50/60 Hz and its 3rd harmonic; 0 for none). The rate is read from the sample times."""
    check(name, notch_hz)
    x = np.asarray(x, dtype=np.float64)
    if name == "off" or len(x) < 8:
        return x
    dt_ns = np.diff(np.asarray(t_ns, dtype=np.int64)).astype(np.float64)
    step = float(np.median(dt_ns))
    fs = 1e9 / step
    sos = _sos(name, fs, notch_hz)
    if sos is None:
        return x - x.mean()
    out = np.empty_like(x)
    edges = np.r_[0, np.flatnonzero(dt_ns > 1.5 * step) + 1, len(x)]  # runs without gaps
    pad = 3 * (2 * len(sos) + 1)
    for a, b in itertools.pairwise(edges):
        seg = x[a:b]
        out[a:b] = signal.sosfiltfilt(sos, seg) if len(seg) > pad else seg - seg.mean()
    return out


def for_channels(kinds: dict[str, str], name: str,
                 notch: dict[str, float]) -> dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """The filter for each EMG channel of ``kinds`` (label -> "emg" | "acc"); accelerometers are
    drawn as recorded. ``notch``: label -> mains Hz detected on that channel."""
    if name == "off":
        return {}
    out: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {}
    for label, kind in kinds.items():
        if kind == "emg":
            out[label] = functools.partial(_filtered, name=name, notch_hz=float(notch.get(label) or 0.0))
    return out


def _filtered(t_ns: np.ndarray, x: np.ndarray, *, name: str, notch_hz: float) -> np.ndarray:
    return apply(t_ns, x, name=name, notch_hz=notch_hz)
