"""Sample-to-frame front ends: raw samples in, fixed-grid frame features out.

EMG: mains detection on the first seconds, band-pass + notch with carried state, then per
frame the mean absolute value (µV), the mean absolute sample-to-sample change of the same
signal (µV per sample: with the mean absolute value it gives the frame's characteristic
frequency, see ``detector.engine.spectral``), the mains-band envelope (µV), the raw level (µV, for
electrode pops), and flags for flat, clipped and missing samples.
ACC: per frame the mean vector (g) and the dynamic RMS (g).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detector.engine.config import DetectorConfig
from detector.engine.dsp import design_bandpass, design_notches, detect_mains, frame_edges
from detector.engine.state import Stateful, record
from detector.engine.stream import SosFilter


@record
@dataclass
class EmgFrames:
    mav: np.ndarray  # µV, band-passed and notched
    mains: np.ndarray  # µV, envelope at both mains lines and the notched harmonics (lead-off)
    level: np.ndarray  # µV, raw mean (for pops)
    flat: np.ndarray  # bool
    clipped: np.ndarray  # bool
    lost: np.ndarray  # bool: any NaN sample in the frame
    dmav: np.ndarray  # µV per sample, mean |x[n] - x[n-1]| of the band-passed, notched signal

    @staticmethod
    def empty() -> EmgFrames:
        z = np.zeros(0)
        b = np.zeros(0, bool)
        return EmgFrames(z, z, z, b, b, b, z)

    def padded(self, m: int) -> EmgFrames:
        """These frames and ``m`` lost ones after them."""
        z, f = np.zeros(m), np.zeros(m, bool)
        return EmgFrames(np.r_[self.mav, z], np.r_[self.mains, z], np.r_[self.level, z],
                         np.r_[self.flat, f], np.r_[self.clipped, f], np.r_[self.lost, np.ones(m, bool)],
                         np.r_[self.dmav, z])

    def __len__(self) -> int:
        return len(self.mav)

    def __getitem__(self, k: slice) -> EmgFrames:
        return EmgFrames(*(getattr(self, f)[k] for f in _EMG_FIELDS))

    @staticmethod
    def concat(parts: list[EmgFrames]) -> EmgFrames:
        if len(parts) <= 1:
            return parts[0] if parts else EmgFrames.empty()
        return EmgFrames(*(np.concatenate([getattr(p, f) for p in parts]) for f in _EMG_FIELDS))


_EMG_FIELDS = ("mav", "mains", "level", "flat", "clipped", "lost", "dmav")


class EmgFrontEnd(Stateful):
    """Streaming EMG front end; feeding any chunking yields identical frames."""

    _derived = frozenset({"cfg"})

    def __init__(self, fs: float, cfg: DetectorConfig) -> None:
        fe = cfg.front_end
        self.fs, self.cfg = fs, cfg
        self.bp = SosFilter(design_bandpass(fs=fs, low_hz=fe.bandpass_low_hz,
                                            high_hz=fe.bandpass_high_hz, order=fe.bandpass_order),
                            np.float32)
        self.notch: SosFilter | None = None
        self.mains_hz: float | None = None
        self._detect_n = int(round(fe.mains_detect_s * fs))
        self._pending: list[np.ndarray] = []
        self._pending_n = 0
        # Filtered samples of the frame in progress.
        self._tail_raw = np.zeros(0, np.float32)
        self._tail_bp = np.zeros(0, np.float32)
        self._tail_notched = np.zeros(0, np.float32)
        self._k = 0  # next frame index
        self._n0 = 0  # sample index of the first tail sample
        self._prev: float | None = None  # the notched sample before the tail (for the change)


    def update(self, x: np.ndarray) -> EmgFrames:
        x = np.asarray(x, dtype=np.float32)
        if self.mains_hz is None:
            self._pending.append(x)
            self._pending_n += x.size
            if self._pending_n < self._detect_n:
                return EmgFrames.empty()
            return self._decide_and_run()
        return self._run(x)

    def finish(self) -> EmgFrames:
        if self.mains_hz is None:
            return self._decide_and_run()
        return EmgFrames.empty()

    def _decide_and_run(self) -> EmgFrames:
        fe = self.cfg.front_end
        buf = np.concatenate(self._pending) if self._pending else np.zeros(0, np.float32)
        self._pending = []
        self.mains_hz = detect_mains(buf[: self._detect_n], fs=self.fs, min_ratio=fe.mains_min_ratio)
        top = min(fe.bandpass_high_hz, 0.45 * self.fs) + 10
        sos = design_notches(fs=self.fs, mains_hz=self.mains_hz, q=fe.notch_q,
                             harmonics=fe.notch_harmonics, max_hz=top)
        # Both mains lines are notched whatever was found at the start: hum that appears later
        # (a detached electrode picks it up, or a device is switched on) must not become the
        # "EMG", and a lead-off then shows as the notched signal vanishing. With a line found,
        # the other one's fundamental joins its notches; with none, where the hum would come
        # from is unknown, so both lines get their harmonics too (~4% of the EMG band).
        harmonics = 1 if sos is not None else fe.notch_harmonics
        lines = [f for f in (50.0, 60.0) if f != self.mains_hz and f < 0.45 * self.fs]
        others = [o for o in (design_notches(fs=self.fs, mains_hz=f, q=fe.notch_q, harmonics=harmonics,
                                             max_hz=top) for f in lines) if o is not None]
        parts = [p for p in (sos, *others) if p is not None]
        self.notch = SosFilter(np.vstack(parts), np.float32) if parts else None
        return self._run(buf)

    def _run(self, x: np.ndarray) -> EmgFrames:
        nan = ~np.isfinite(x)  # inf as well: a sample that cannot be real is a lost one
        clean = np.where(nan, np.float32(0), x) if nan.any() else x
        bp = self.bp(clean)
        notched = self.notch(bp) if self.notch is not None else bp
        raw, bpa, nta = (np.concatenate([t, v]) if t.size else v for t, v in (
            (self._tail_raw, x), (self._tail_bp, bp), (self._tail_notched, notched)))
        n_total = self._n0 + raw.size
        # Frames entirely inside the buffered samples.
        k1 = _complete_frames(n_total, self._k, self.fs, self.cfg.front_end.frame_s)
        if k1 <= self._k:
            self._tail_raw, self._tail_bp, self._tail_notched = raw, bpa, nta
            return EmgFrames.empty()
        edges = frame_edges(self._k, k1, fs=self.fs, frame_s=self.cfg.front_end.frame_s) - self._n0
        starts, end = edges[:-1], edges[-1]
        lengths = np.diff(edges)
        seg_raw = raw[:end]
        nan_raw = ~np.isfinite(seg_raw)
        any_nan = bool(nan_raw.any())
        safe_raw = np.where(nan_raw, np.float32(0), seg_raw) if any_nan else seg_raw
        seg = nta[:end]
        mav = np.add.reduceat(np.abs(seg), starts) / lengths
        step = np.abs(np.diff(seg, prepend=seg[0] if self._prev is None else np.float32(self._prev)))
        dmav = np.add.reduceat(step, starts) / lengths
        mains = np.add.reduceat(np.abs(bpa[:end] - nta[:end]), starts) / lengths
        level = np.add.reduceat(safe_raw, starts) / lengths
        hi = np.maximum.reduceat(safe_raw, starts).astype(np.float64)
        lo = np.minimum.reduceat(safe_raw, starts).astype(np.float64)
        absmax = np.maximum(hi, -lo)
        clipped = np.zeros(len(starts), bool)
        # Saturation: the same extreme value repeated; only frames that reach the clip level.
        for k in np.flatnonzero(absmax >= self.cfg.artifact.clip_uV):
            seg = np.abs(safe_raw[starts[k]:starts[k] + lengths[k]])
            clipped[k] = int(np.count_nonzero(seg >= absmax[k])) >= 3
        lost = (np.add.reduceat(nan_raw, starts) > 0) if any_nan else np.zeros(len(starts), bool)
        flat = (hi - lo == 0) & ~lost
        self._tail_raw, self._tail_bp, self._tail_notched = raw[end:], bpa[end:], nta[end:]
        self._prev = float(seg[-1])
        self._n0 += end
        self._k = k1
        return EmgFrames(mav, mains, level, flat, clipped, lost, dmav)


@record
@dataclass
class AccFrames:
    mean: np.ndarray  # (n, 3) g
    dynamic: np.ndarray  # (n,) g RMS around the frame mean
    lost: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.dynamic)


class AccFrontEnd(Stateful):
    """Streaming 3-axis accelerometer front end (axes fed together, same rate)."""

    _derived = frozenset({"cfg"})

    def __init__(self, fs: float, cfg: DetectorConfig) -> None:
        self.fs, self.frame_s = fs, cfg.acc.frame_s
        self._tail = np.zeros((0, 3), np.float64)
        self._k = 0
        self._n0 = 0

    def update(self, xyz: np.ndarray) -> AccFrames:
        buf = np.concatenate([self._tail, np.asarray(xyz, np.float64)])
        n_total = self._n0 + len(buf)
        k1 = _complete_frames(n_total, self._k, self.fs, self.frame_s)
        if k1 <= self._k:
            self._tail = buf
            return AccFrames(np.zeros((0, 3)), np.zeros(0), np.zeros(0, bool))
        edges = frame_edges(self._k, k1, fs=self.fs, frame_s=self.frame_s) - self._n0
        starts, end = edges[:-1], edges[-1]
        lengths = np.diff(edges)[:, None]
        seg = buf[:end]
        nan = (~np.isfinite(seg)).any(axis=1)
        safe = np.where(nan[:, None], 0.0, seg)
        s1 = np.add.reduceat(safe, starts, axis=0)
        s2 = np.add.reduceat(safe * safe, starts, axis=0)
        mean = s1 / lengths
        var = np.maximum(s2 / lengths - mean * mean, 0.0)
        lost = np.add.reduceat(nan, starts) > 0
        self._tail = buf[end:]
        self._n0 += end
        self._k = k1
        return AccFrames(mean, np.sqrt(var.sum(axis=1)), lost)


def _complete_frames(n_total: int, k: int, fs: float, frame_s: float) -> int:
    """Index one past the last frame whose samples are all among the first ``n_total``."""
    k1 = int(np.floor((n_total + 1e-9) / (fs * frame_s)))
    while k1 > k and frame_edges(k1, k1, fs=fs, frame_s=frame_s)[0] > n_total:
        k1 -= 1
    return k1
