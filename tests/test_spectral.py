"""The contraction's characteristic EMG frequency (detector.engine.spectral) and the cramp evidence
it gives: measured from the front end's frames, resting noise taken out, and compared with the
same channel's leg movements on simulated nights whose cramps do or do not shift."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detector.analyze import analyze_recording
from detector.engine.config import DetectorConfig
from detector.engine.frontend import EmgFrontEnd
from detector.engine.spectral import characteristic_hz, relative_shift, resting_levels
from ingest.simulate import NightOptions, plan_night, render_recording

CFG = DetectorConfig()


def _frames(x: np.ndarray, fs: float):
    fe = EmgFrontEnd(fs, CFG)
    fr = fe.update(x.astype(np.float32))
    tail = fe.finish()
    return np.r_[fr.mav, tail.mav], np.r_[fr.dmav, tail.dmav]


@pytest.mark.parametrize(("fs", "f0"), [(1000.0, 80.0), (1000.0, 160.0), (500.0, 120.0), (2000.0, 100.0)])
def test_a_sinusoid_gives_its_own_frequency(fs, f0):
    t = np.arange(int(20 * fs)) / fs
    mav, dmav = _frames(100.0 * np.sin(2 * math.pi * f0 * t), fs)
    hz = characteristic_hz(mav[40:], dmav[40:], (0.0, 0.0), fs=fs)  # after the filter settles
    assert hz == pytest.approx(f0, rel=0.03)


def test_resting_noise_is_taken_out_in_power():
    fs, f0 = 1000.0, 90.0
    rng = np.random.default_rng(1)
    t = np.arange(int(60 * fs)) / fs
    noise = rng.normal(0, 6.0, t.size)  # white: its characteristic frequency is high
    act = t >= 30
    x = noise + np.where(act, 20.0 * np.sin(2 * math.pi * f0 * t), 0.0)
    mav, dmav = _frames(x, fs)
    k = np.arange(mav.size) * CFG.front_end.frame_s
    quiet, busy = (k > 2) & (k < 29), k > 31
    rest = resting_levels(mav, dmav, quiet)
    assert rest is not None
    raw = characteristic_hz(mav[busy], dmav[busy], (0.0, 0.0), fs=fs)
    clean = characteristic_hz(mav[busy], dmav[busy], rest, fs=fs)
    assert raw > 1.2 * f0  # the noise pulls it up ...
    assert clean == pytest.approx(f0, rel=0.1)  # ... until it is taken out


def test_noise_alone_and_too_little_give_no_estimate():
    fs = 1000.0
    mav, dmav = _frames(np.random.default_rng(2).normal(0, 5, int(20 * fs)), fs)
    rest = resting_levels(mav[20:200], dmav[20:200], np.ones(180, bool))
    assert characteristic_hz(mav[200:], dmav[200:], rest, fs=fs) is None  # no muscle above the noise
    assert characteristic_hz(mav[200:203], dmav[200:203], (0.0, 0.0), fs=fs) is None
    assert resting_levels(mav[:10], dmav[:10], np.ones(10, bool)) is None
    assert relative_shift(120.0, [100.0] * 4) is None
    assert relative_shift(120.0, [100.0] * 5) == pytest.approx(0.2)


def _cramp_shifts(mix: float) -> list[float | None]:
    opts = NightOptions(hours=2.0, seed=31, fs_emg=1000.0, fs_acc=50.0, cramps_per_night=16.0,
                        cramp_spectral_mix=(mix, mix))
    plan = plan_night(opts)
    cramps = [t for t in plan.truth if t.kind == "cramp"]
    assert len(cramps) >= 2
    a = analyze_recording(render_recording(plan), CFG)
    out = []
    for c in cramps:
        hits = [e for e in a.events if e.kind in ("cramp", "sustained_activity") and e.side == c.side
                and e.start_s < c.end_s and e.end_s > c.start_s]
        assert hits, f"cramp at {c.start_s:.0f} s left no cramp or sustained_activity event"
        out.append(max(hits, key=lambda e: e.end_s - e.start_s).features.get("spectral_shift"))
    return out


def test_a_cramp_in_the_higher_band_shows_a_rise_over_the_wearers_leg_movements():
    shifted = _cramp_shifts(1.0)
    assert all(s is not None and s > 0.08 for s in shifted), shifted
    same = _cramp_shifts(0.0)
    assert all(s is not None and abs(s) < 0.05 for s in same), same
