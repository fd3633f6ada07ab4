"""A contraction carrier made from real surface EMG instead of Gaussian noise.

Real motor-unit activity is spiky, its spectrum has peaks and broadband power at 50/60 Hz, and it
carries whatever its amplifier picked up; a detector tuned on filtered Gaussian noise may not
survive it. The carrier is cut from the active parts of three public recordings (sustained
vastus lateralis HD-sEMG, ballistic tibialis bursts, treadmill calf and shin EMG), each segment
band-passed, brought to the night's sampling rate and scaled to a mean absolute value of 1, so
that it stands in for the unit-level Gaussian carrier in the renderer.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import io as sio
from scipy import signal

SOURCES = ("openhdemg-vl-trapezoid", "emggo-tibialis-ballistic", "musclesynergies-gait-emg")


class CarrierError(FileNotFoundError):
    """The real-EMG files are not where the options say."""


def _active(x: np.ndarray, fs: float, min_s: float = 0.3) -> list[np.ndarray]:
    """Stretches of ``x`` whose 0.1-s envelope is above twice its median (muscle active)."""
    n = max(1, int(0.1 * fs))
    env = np.convolve(np.abs(x), np.ones(n) / n, mode="same")
    on = env > 2.0 * np.median(env)
    edges = np.flatnonzero(np.diff(np.r_[0, on.astype(np.int8), 0]))
    return [x[a:b] for a, b in zip(edges[::2], edges[1::2], strict=True) if b - a >= min_s * fs]


def _sources(root: Path) -> list[tuple[np.ndarray, float]]:
    out: list[tuple[np.ndarray, float]] = []
    hd = root / "openhdemg-vl-trapezoid" / "otb_testfile.mat"
    ta = root / "emggo-tibialis-ballistic" / "Sample_Data.mat"
    gait = root / "musclesynergies-gait-emg" / "ID0012_TW_01_raw_emg.csv"
    for p in (hd, ta, gait):
        if not p.exists():
            raise CarrierError(f"real EMG carrier: {p} not found (set NightOptions.carrier_dir to "
                               "the folder holding " + ", ".join(SOURCES) + ")")
    m = sio.loadmat(hd)
    data = np.asarray(m["Data"][0, 0], float)
    fs_hd = float(np.squeeze(m["SamplingFrequency"]))
    plateau = slice(int(4 * fs_hd), int(28 * fs_hd))  # the force plateau (derived_force_windows.csv)
    out += [(data[plateau, ch], fs_hd) for ch in (0, 9, 18, 27, 36, 45, 54, 63)]
    e = sio.loadmat(ta, squeeze_me=True, struct_as_record=False)["EMG"]
    out += [(s, float(e.fs)) for s in _active(np.asarray(e.channelData, float), float(e.fs))]
    rows = np.loadtxt(gait, delimiter=",", skiprows=1)
    with gait.open() as fh:
        cols = fh.readline().strip().split(",")
    for muscle in ("TA", "GM", "GL", "SO", "PL"):
        out += [(s, 1000.0) for s in _active(rows[:, cols.index(muscle)], 1000.0)]
    return out


@lru_cache(maxsize=8)
def real_carrier(root: str, fs: float) -> np.ndarray:
    """The carrier at ``fs`` Hz: real active EMG segments end to end, unit mean |x| each (float32)."""
    pieces = []
    hi = min(450.0, 0.45 * fs)
    for x, fs0 in _sources(Path(root)):
        sos = signal.butter(2, [20.0, min(hi, 0.45 * fs0)], btype="bandpass", fs=fs0, output="sos")
        y = signal.sosfiltfilt(sos, x - np.mean(x))
        r = Fraction(fs / fs0).limit_denominator(1000)
        if r != 1:
            y = signal.resample_poly(y, r.numerator, r.denominator)
        # Fade the joins so that no segment boundary is a step (which would read as a pop).
        w = min(len(y) // 4, int(0.02 * fs))
        if w > 1:
            ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, w))
            y[:w] *= ramp
            y[-w:] *= ramp[::-1]
        mav = float(np.mean(np.abs(y)))
        if mav > 0:
            pieces.append(y / mav)
    return np.concatenate(pieces).astype(np.float32)


def carrier_block(root: str, fs: float, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` samples of the real carrier from a random place (wrapping round)."""
    c = real_carrier(root, fs)
    k = int(rng.integers(len(c)))
    idx = (k + np.arange(n)) % len(c)
    return c[idx]
