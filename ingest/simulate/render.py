"""Samples for a planned night: any channel, any time block, the same bytes every time.

Noise is drawn per fixed 10-s block from a generator seeded by (night seed, channel, block),
so a block renders identically whether the night is written to a file at once or streamed
by a virtual sensor piece by piece.
"""

from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np
from scipy import signal

from ingest.recordings.recording import Recording, array_recording
from ingest.simulate.carrier import carrier_block
from ingest.simulate.plan import SIDES, NightPlan

BLOCK_S = 10.0
_PREROLL = 256
_SAT_UV = 3000.0  # amplifier range: pops beyond it clip, as real front ends do
_PITCH_LYING = np.deg2rad(8.0)
_PITCH_STANDING = np.deg2rad(84.0)


def emg_labels(plan: NightPlan) -> list[str]:
    site = plan.options.emg_site
    return [f"EMG L-{site}", f"EMG R-{site}"]


def acc_labels() -> list[str]:
    return [f"ACC {s}-Shank {a}" for s in ("L", "R") for a in "XYZ"]


def render(plan: NightPlan, label: str, start: int, stop: int) -> np.ndarray:
    """Samples ``[start, stop)`` of channel ``label`` (µV for EMG, g for ACC) as float32."""
    side = "left" if label.split()[1].startswith("L") else "right"
    opts = plan.options
    fs = opts.fs_emg if label.startswith("EMG") else opts.fs_acc
    stop = min(stop, round(plan.duration_s * fs))
    if stop <= start:
        return np.empty(0, np.float32)
    out = np.empty(stop - start, np.float32)
    block_n = int(BLOCK_S * fs)
    for k in range(start // block_n, (stop - 1) // block_n + 1):
        b0, b1 = k * block_n, (k + 1) * block_n
        lo, hi = max(start, b0), min(stop, b1)
        if label.startswith("EMG"):
            block = _emg_block(plan, side, label, k, b0, b1, fs)
        else:
            block = _acc_block(plan, side, label, k, b0, b1, fs)
        out[lo - start:hi - start] = block[lo - b0:hi - b0]
    return out


def render_recording(plan: NightPlan) -> Recording:
    """The whole night as an in-memory :class:`Recording` (no file)."""
    opts = plan.options
    sigs: dict[str, tuple[np.ndarray, float]] = {}
    for lab in emg_labels(plan):
        sigs[lab] = (render(plan, lab, 0, round(plan.duration_s * opts.fs_emg)), opts.fs_emg)
    for lab in acc_labels():
        sigs[lab] = (render(plan, lab, 0, round(plan.duration_s * opts.fs_acc)), opts.fs_acc)
    return array_recording(f"simulated-seed{opts.seed}", opts.start, sigs)


def _rng(plan: NightPlan, label: str, k: int) -> np.random.Generator:
    return np.random.default_rng([plan.options.seed, zlib.crc32(label.encode()), k])


@lru_cache(maxsize=16)
def _carrier_filter(fs: float, lo: float, hi: float) -> tuple[np.ndarray, float]:
    """Band-pass for the EMG carrier and the gain that makes its mean |x| equal to 1."""
    hi = min(hi, 0.45 * fs)
    sos = signal.butter(2, [lo, hi], btype="bandpass", fs=fs, output="sos")
    impulse = signal.sosfilt(sos, np.r_[1.0, np.zeros(4096)])
    sigma = float(np.sqrt(np.sum(impulse**2)))
    return sos, 1.0 / (sigma * np.sqrt(2 / np.pi))


def _carrier(rng, n: int, fs: float, lo: float, hi: float) -> np.ndarray:
    sos, gain = _carrier_filter(fs, lo, hi)
    white = rng.standard_normal(n + _PREROLL)
    return (signal.sosfilt(sos, white)[_PREROLL:] * gain).astype(np.float32)


def _active(items, t0: float, t1: float):
    return [b for b in items if b.start < t1 and b.end > t0]


def _edge(t: np.ndarray, a: float, b: float, rise: float, fall: float) -> np.ndarray:
    """A 0..1 window over [a, b) with raised-cosine edges (s)."""
    up = np.clip((t - a) / max(rise, 1e-3), 0, 1)
    down = np.clip((b - t) / max(fall, 1e-3), 0, 1)
    return (0.5 - 0.5 * np.cos(np.pi * np.minimum(up, down))).astype(np.float32)


def _emg_block(plan, side, label, k, b0, b1, fs) -> np.ndarray:
    rng = _rng(plan, label, k)
    n = b1 - b0
    t = (np.arange(b0, b1) / fs).astype(np.float64)
    t0, t1 = t[0], t[-1] + 1 / fs
    floor = plan.floors[side]
    rest = _carrier(rng, n, fs, 20.0, 250.0)
    real = plan.options.carrier == "real"
    if real:
        cramp_carrier = carrier_block(plan.options.carrier_dir, fs, rng, n)
    else:
        cramp_carrier = _carrier(rng, n, fs, 40.0, 350.0)
    amp_rest = np.full(n, floor, np.float32) * (1 + 0.08 * np.sin(2 * np.pi * t / 1800.0 + k % 7))
    amp_cramp = np.zeros(n, np.float32)
    amp_low = np.zeros(n, np.float32)  # muscle activity in the band of voluntary activity
    for b in _active([x for x in plan.bursts if x.side == side], t0, t1):
        if b.shape == "tonic":
            w = _edge(t, b.start, b.end, 1.0, 2.0)
            mod = 1 + 0.3 * np.sin(2 * np.pi * b.mod_hz * (t - b.start))
            a = (b.amp * floor * w * mod).astype(np.float32)
            if real:  # real EMG has its own spectrum; no shift is made
                amp_cramp += a
            else:  # power shared between the bands, so the level does not depend on the mix
                amp_cramp += np.float32(np.sqrt(b.mix)) * a
                amp_low += np.float32(np.sqrt(1.0 - b.mix)) * a
        elif b.shape == "twitch":
            amp_rest += b.amp * floor * _edge(t, b.start, b.end, 0.01, 0.02)
        elif b.shape == "residual":
            frac = np.clip((b.end - t) / (b.end - b.start), 0, 1)
            amp_rest += (b.amp * floor * _edge(t, b.start, b.end, 2.0, 2.0) * frac).astype(np.float32)
        else:  # a leg movement: muscle activity, in the band (or the real EMG) of voluntary activity
            a = (b.amp * floor * _edge(t, b.start, b.end, 0.08, 0.15)).astype(np.float32)
            if real:
                amp_cramp += a
            else:
                amp_low += a
    x = amp_rest * rest + amp_cramp * cramp_carrier
    if amp_low.any():
        low_rng = np.random.default_rng([plan.options.seed, zlib.crc32(label.encode()), k, 1])
        x += amp_low * _carrier(low_rng, n, fs, 20.0, 250.0)
    for a, b_ in ((a, b) for s, a, b in plan.lead_offs if s == side and a < t1 and b > t0):
        off = (t >= a) & (t < b_)
        x[off] *= 0.03
        x[off] += _lead_off_hum(plan, a, t[off], fs)
    x += _mains(plan, side, t, fs)
    for f, amp, ph in plan.wander[side]:
        x += (amp * np.sin(2 * np.pi * f * t + ph)).astype(np.float32)
    half = int(0.06 * fs) + 1
    for beat in plan.heart[(plan.heart > t0 - 0.1) & (plan.heart < t1 + 0.1)]:
        c = int(round(beat * fs)) - b0
        lo, hi = max(0, c - half), min(n, c + half)
        if hi > lo:
            d = t[lo:hi] - beat
            qrs = -d / 0.012 * np.exp(0.5 - 0.5 * (d / 0.012) ** 2)
            x[lo:hi] += (plan.ecg_uv[side] * qrs).astype(np.float32)
    for s, tp, step in plan.pops:
        if s == side and t0 - 5 < tp < t1:
            after = t >= tp
            x[after] += (step * np.exp(-(t[after] - tp) / 0.4)).astype(np.float32)
    return np.clip(x, -_SAT_UV, _SAT_UV)


def _lead_off_hum(plan, start: float, t: np.ndarray, fs: float) -> np.ndarray:
    """Hum (µV) a detached electrode picks up from ``start`` (s): 50-600 µV at the mains line
    (50 Hz on a night without hum), log-uniform, with 3rd and 5th harmonics; drawn from its own
    stream so that the rest of the night does not change with it."""
    rng = np.random.default_rng([plan.options.seed, zlib.crc32(b"lead_off"), int(start * 1000)])
    amp = float(np.exp(rng.uniform(np.log(50.0), np.log(600.0))))
    f = plan.options.mains_hz or 50.0
    out = np.zeros(t.size, np.float32)
    for h, rel in ((1, 1.0), (3, 0.3), (5, 0.15)):
        if h * f < 0.45 * fs:
            out += (amp * rel * np.sin(2 * np.pi * h * f * t + h)).astype(np.float32)
    return out


def _mains(plan, side, t, fs) -> np.ndarray:
    f = plan.options.mains_hz
    out = np.zeros(t.size, np.float32)
    if not f:
        return out
    for h, rel in ((1, 1.0), (3, 0.3), (5, 0.15)):
        if h * f < 0.45 * fs:
            out += (plan.mains_uv[side] * rel * np.sin(2 * np.pi * h * f * t + h)).astype(np.float32)
    return out


def _orientation(plan, t) -> tuple[np.ndarray, np.ndarray]:
    """Roll and pitch (rad) of the shanks at times ``t``, interpolated through transitions."""
    ps = plan.postures
    starts = np.array([p.start for p in ps])
    idx = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(ps) - 1)
    roll_now = np.deg2rad(np.array([p.roll_deg for p in ps]))
    pitch_now = np.array([_PITCH_STANDING if p.standing else _PITCH_LYING for p in ps])
    trans = np.array([p.transition_s for p in ps])
    prev = np.maximum(idx - 1, 0)
    frac = np.clip((t - starts[idx]) / np.maximum(trans[idx], 1e-3), 0, 1)
    d_roll = np.angle(np.exp(1j * (roll_now[idx] - roll_now[prev])))
    roll = roll_now[prev] + d_roll * frac
    pitch = pitch_now[prev] + (pitch_now[idx] - pitch_now[prev]) * frac
    return roll, pitch


def _acc_block(plan, side, label, k, b0, b1, fs) -> np.ndarray:
    axis = "XYZ".index(label[-1])
    rng = _rng(plan, label, k)
    t = np.arange(b0, b1) / fs
    t0, t1 = t[0], t[-1] + 1 / fs
    roll, pitch = _orientation(plan, t)
    g = np.stack([np.sin(pitch), np.cos(pitch) * np.cos(roll), np.cos(pitch) * np.sin(roll)])
    if side in plan.tilt:  # the sensor is strapped on slightly askew
        g = plan.tilt[side][axis] @ g
    else:
        g = g[axis]
    x = g.astype(np.float32) + rng.normal(0, 0.003, t.size).astype(np.float32)
    sos = _motion_filter(fs)
    for m in _active([m for m in plan.motions if side in m.sides], t0, t1):
        mrng = np.random.default_rng([plan.options.seed, int(m.start * 1000), axis, SIDES.index(side)])
        pad = int(2 * fs)
        i0 = int(np.floor(m.start * fs)) - pad
        i1 = int(np.ceil(m.end * fs)) + pad
        noise = signal.sosfilt(sos, mrng.standard_normal(i1 - i0 + 64))[64:]
        noise /= max(float(np.std(noise)), 1e-9)
        lo, hi = max(i0, b0), min(i1, b1)
        if hi <= lo:
            continue
        seg_t = np.arange(lo, hi) / fs
        w = _edge(seg_t, m.start, m.end, 0.05 if m.kind == "jerk" else 0.5,
                  0.1 if m.kind == "jerk" else 0.5)
        if m.kind == "walk":
            step = np.sin(2 * np.pi * 0.9 * seg_t + axis) + 0.4 * np.sin(2 * np.pi * 1.8 * seg_t)
            dyn = m.amp * (step + 0.3 * noise[lo - i0:hi - i0])
        else:
            dyn = m.amp * noise[lo - i0:hi - i0]
        x[lo - b0:hi - b0] += (w * dyn).astype(np.float32)
    return x


@lru_cache(maxsize=8)
def _motion_filter(fs: float) -> np.ndarray:
    return signal.butter(2, [0.5, min(6.0, 0.45 * fs)], btype="bandpass", fs=fs, output="sos")
