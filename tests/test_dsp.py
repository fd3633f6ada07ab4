"""Pure DSP functions against scipy references and known signals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from detector.engine.dsp import design_bandpass, detect_mains, frame_edges, moving_median
from detector.engine.stream import SosFilter


@pytest.mark.parametrize("fs", [250.0, 487.5, 1000.0, 2000.0])
@pytest.mark.parametrize("mains", [0.0, 50.0, 60.0])
def test_mains_detected_from_the_data(fs, mains):
    rng = np.random.default_rng(int(fs) + int(mains))
    t = np.arange(int(fs * 10)) / fs
    x = rng.normal(0, 5, t.size)
    if mains:
        x += 8 * np.sin(2 * np.pi * mains * t) + 3 * np.sin(2 * np.pi * 3 * mains * t)
    assert detect_mains(x, fs=fs, min_ratio=3.0) == mains


@pytest.mark.parametrize("mains", [0.0, 50.0])
def test_a_few_seconds_of_strong_activity_neither_hide_nor_make_a_mains_line(mains):
    fs = 1000.0
    rng = np.random.default_rng(5)
    t = np.arange(int(fs * 10)) / fs
    x = rng.normal(0, 4, t.size) + (10 * np.sin(2 * np.pi * mains * t) if mains else 0.0)
    burst = (t > 2) & (t < 4.5)
    # A strong contraction recorded with its own hum (as real EMG often is): broadband, and
    # with a 60-Hz line that lasts only as long as the contraction.
    x[burst] += 40 * signal.sosfilt(signal.butter(2, [40, 350], btype="bandpass", fs=fs, output="sos"),
                                    rng.normal(0, 1, burst.sum())) * 3
    x[burst] += 30 * np.sin(2 * np.pi * 60.0 * t[burst])
    assert detect_mains(x, fs=fs, min_ratio=3.0) == mains


def test_bandpass_is_capped_below_nyquist_and_refuses_too_low_rates():
    sos = design_bandpass(fs=100.0, low_hz=20, high_hz=450, order=4)
    _w, h = signal.sosfreqz(sos, worN=2048, fs=100.0)
    assert np.all(np.isfinite(h))
    with pytest.raises(ValueError, match="too low for an EMG band"):
        design_bandpass(fs=40.0, low_hz=20, high_hz=450, order=4)


def test_streamed_filter_equals_scipy_on_the_whole_signal():
    rng = np.random.default_rng(1)
    x = rng.normal(size=10_000)
    sos = design_bandpass(fs=1000.0, low_hz=20, high_hz=450, order=4)
    f = SosFilter(sos)
    parts, i = [], 0
    while i < x.size:
        n = int(rng.integers(1, 700))
        parts.append(f(x[i:i + n]))
        i += n
    np.testing.assert_array_equal(np.concatenate(parts), signal.sosfilt(sos, x))


@pytest.mark.parametrize("fs", [250.0, 487.5, 1000.0, 12.5])
def test_frames_tile_the_samples_for_any_rate(fs):
    e = frame_edges(0, 400, fs=fs, frame_s=0.05)
    assert e[0] == 0 and np.all(np.diff(e) >= 0)
    assert e[-1] == int(np.ceil(400 * 0.05 * fs - 1e-9))


def test_moving_median_ignores_a_short_spike():
    x = np.ones(50)
    x[20] = 100.0
    y = moving_median(x, 7)
    assert y.max() == 1.0
    x[20:28] = 100.0
    assert moving_median(x, 7).max() == 100.0


def test_display_filter_and_frame_peak_take_out_wander_and_hum_but_keep_emg():
    from dashboard import display_filter
    from detector.engine.dsp import residual_peak

    fs = 1000.0
    rng = np.random.default_rng(4)
    t = np.arange(int(20 * fs)) / fs
    emg = rng.normal(0, 5, t.size)  # µV
    emg[int(10 * fs):int(12 * fs)] *= 4  # a burst
    x = emg + 200 * np.sin(2 * np.pi * 0.3 * t) + 30 * np.sin(2 * np.pi * 50 * t)
    t_ns = (t * 1e9).astype(np.int64)
    y = display_filter.apply(t_ns, x, name="hp10", notch_hz=50.0)
    rest, burst = np.std(y[int(2 * fs):int(9 * fs)]), np.std(y[int(10.2 * fs):int(11.8 * fs)])
    assert 4.0 < rest < 6.0 and burst / rest > 3.5  # the EMG, not the wander or the hum
    assert np.std(x[int(2 * fs):int(9 * fs)]) > 100
    # a gap: each side is filtered alone, so the step does not ring across it
    gap = np.r_[t_ns[:5000], t_ns[5000:] + 5 * 10**9]
    stepped = np.r_[x[:5000], x[5000:] + 500]
    assert np.abs(display_filter.apply(gap, stepped, name="hp10", notch_hz=50.0)[5000:5100]).max() < 60
    assert display_filter.apply(t_ns, x, name="off", notch_hz=50.0) is not None
    with pytest.raises(display_filter.FilterError, match="choose off, hp10, bp20-450"):
        display_filter.apply(t_ns, x, name="lp5", notch_hz=50.0)
    # per 0.1-s frame, the peak without wander and hum follows the EMG
    frames = x[: int(9 * fs)].reshape(-1, 100)
    pk = np.array([residual_peak(f[:, None], fs=fs)[0] for f in frames])
    assert np.median(pk) < 4 * 5 and np.median(np.abs(frames).max(axis=1)) > 100
    burst_pk = residual_peak(x[int(10.5 * fs):int(10.6 * fs), None], fs=fs)[0]
    assert burst_pk > 2.5 * np.median(pk)
    assert residual_peak(np.zeros((5, 1)), fs=fs) is None  # too short to say anything
