"""Conformance: every stateful step gives the same output for any chunking as for one call,
and survives pickling mid-stream (a restarted service resumes cleanly)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detector.engine.config import DetectorConfig
from detector.engine.dsp import design_bandpass
from detector.engine.frontend import AccFrontEnd, EmgFrontEnd
from detector.engine.pipeline import Engine
from detector.engine.state import STATE_VERSION, StateError, read_state_file, write_state_file
from detector.engine.stream import Hysteresis, SosFilter
from ingest.simulate import plan_night, render_recording

from .conftest import busy_night

CFG = DetectorConfig()


def _random_chunks(n: int, rng) -> list[tuple[int, int]]:
    out, i = [], 0
    while i < n:
        j = min(n, i + int(rng.integers(1, max(2, n // 20))))
        out.append((i, j))
        i = j
    return out


def _emg_signal(fs=1000.0, seconds=40.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(fs * seconds)) / fs
    x = rng.normal(0, 4, t.size) + 20 * np.sin(2 * np.pi * 50 * t)
    x[int(fs * 12):int(fs * 14)] *= 15
    x[int(fs * 20):int(fs * 20.3)] = np.nan
    return x.astype(np.float32)


def _acc_signal(fs=50.0, seconds=120.0, seed=0):
    rng = np.random.default_rng(seed)
    n = int(fs * seconds)
    x = np.tile([0.1, 0.99, 0.0], (n, 1)) + rng.normal(0, 0.003, (n, 3))
    x[n // 2:] = [0.1, 0.0, 0.99]
    return x


STEPS = {
    "sos_filter": (lambda: SosFilter(design_bandpass(fs=1000.0, low_hz=20, high_hz=450, order=4)),
                   lambda: _emg_signal()[~np.isnan(_emg_signal())].astype(np.float64),
                   lambda obj, x: obj(x), lambda outs: np.concatenate(outs)),
    "emg_front_end": (lambda: EmgFrontEnd(1000.0, CFG), _emg_signal,
                      lambda obj, x: obj.update(x),
                      lambda outs: np.concatenate([o.mav for o in outs] + [o.level for o in outs]
                                                 + [o.dmav for o in outs])),
    "emg_front_end_487.5Hz": (lambda: EmgFrontEnd(487.5, CFG), lambda: _emg_signal(fs=487.5),
                              lambda obj, x: obj.update(x),
                              lambda outs: np.concatenate([o.mav for o in outs])),
    "acc_front_end": (lambda: AccFrontEnd(50.0, CFG), _acc_signal, lambda obj, x: obj.update(x),
                      lambda outs: np.concatenate([o.dynamic for o in outs] +
                                                  [o.mean.ravel() for o in outs])),
    "hysteresis": (lambda: Hysteresis(5), lambda: np.random.default_rng(3).random(20_000),
                   lambda obj, x: obj.update(x > 0.95, x < 0.4),
                   lambda outs: [iv for out in outs for iv in out]),
}


@pytest.mark.parametrize("name", list(STEPS))
def test_stateful_step_is_chunking_invariant_and_resumes_from_its_state(name):
    make, data, feed, join = STEPS[name]
    x = data()
    whole_obj = make()
    whole = join([feed(whole_obj, x)])
    rng = np.random.default_rng(7)
    for trial in range(3):
        obj = make()
        parts = _random_chunks(len(x), rng)
        outs = []
        for k, (a, b) in enumerate(parts):
            if k == len(parts) // 2:  # a fresh part given the state the first one accumulated
                state = obj.get_state()
                obj = make()
                obj.set_state(state)
            outs.append(feed(obj, x[a:b]))
        np.testing.assert_array_equal(np.asarray(join(outs), dtype=float), np.asarray(whole, dtype=float),
                                      err_msg=f"{name}, trial {trial}")


@pytest.fixture(scope="module")
def conformance_night():
    plan = plan_night(busy_night(hours=1.0, seed=33, cramps_per_night=24.0, fs_emg=400.0))
    assert any(e.kind == "cramp" for e in plan.truth)
    return render_recording(plan)


def _run(rec, chunk_s: float | None, checkpoint_at: float | None = None, tmp: Path | None = None):
    eng = Engine(rec.channels, CFG)
    step = chunk_s or rec.duration_s
    t, emitted_early = 0.0, 0
    while t < rec.duration_s:
        t1 = min(rec.duration_s, t + step)
        emitted_early += len(eng.update({i: rec.read(i, round(t * c.fs), round(t1 * c.fs))
                                         for i, c in enumerate(rec.channels)}))
        if checkpoint_at is not None and tmp is not None and t < checkpoint_at <= t1:
            write_state_file(tmp / "engine.state", eng.get_state())
            eng = Engine(rec.channels, CFG)
            eng.set_state(read_state_file(tmp / "engine.state"))
        t = t1
    eng.finish()
    return sorted(e.to_json(rec.start).__repr__() for e in eng.events), emitted_early


def test_engine_events_equal_for_every_chunk_size(conformance_night):
    rec = conformance_night
    whole, _ = _run(rec, None)
    kinds = {eval(e)["kind"] for e in whole}
    assert {"cramp", "limb_movement", "awakening"} <= kinds
    for chunk in (0.1, 1.0, 7.3):
        events, early = _run(rec, chunk)
        assert events == whole, f"chunk {chunk} s differs from the whole-night run"
        assert early > 0.8 * len(events), "events must be emitted while streaming, not only at the end"


def test_engine_resumes_from_a_state_file_mid_stream(conformance_night, tmp_path):
    whole, _ = _run(conformance_night, None)
    events, _ = _run(conformance_night, 7.3, checkpoint_at=1800.0, tmp=tmp_path)
    assert events == whole


def test_a_state_that_does_not_fit_is_refused_by_name(conformance_night, tmp_path, monkeypatch):
    rec = conformance_night
    eng = Engine(rec.channels, CFG)
    eng.update({i: rec.read(i, 0, round(60 * c.fs)) for i, c in enumerate(rec.channels)})
    state = eng.get_state()
    del state["blocks"]
    with pytest.raises(StateError, match=r"Engine: state does not fit \(missing \['blocks'\]"):
        Engine(rec.channels, CFG).set_state(state)
    path = tmp_path / "engine.state"
    monkeypatch.setattr("detector.engine.state.STATE_VERSION", 0)  # as an older detector wrote it
    write_state_file(path, eng.get_state())
    monkeypatch.undo()
    with pytest.raises(StateError,
                       match=f"written with state version 0, this detector reads version {STATE_VERSION}"):
        read_state_file(path)
    (tmp_path / "pickle.state").write_bytes(b"\x80\x04\x95 not a checkpoint")
    with pytest.raises(StateError, match="unreadable checkpoint"):
        read_state_file(tmp_path / "pickle.state")


def test_threaded_analysis_equals_single_threaded_engine(conformance_night, monkeypatch):
    """``analyze`` filters EMG in threads, one chunk ahead; events must not change."""
    from detector.analyze import analyze_recording

    rec = conformance_night
    whole, _ = _run(rec, None)
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    threaded = analyze_recording(rec, CFG, read_s=60.0)
    assert sorted(e.to_json(rec.start).__repr__() for e in threaded.events) == whole
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:  # a checkpoint holds the state, never the threads
        assert "pool" not in Engine(rec.channels, CFG, pool=pool).get_state()
