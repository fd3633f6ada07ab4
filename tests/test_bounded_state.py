"""A night's state stays bounded: the engine keeps per-frame history only as far back as a
later decision can read (``engine.history_s`` before the oldest undecided interval), and that
changes no event, no quality figure and no resumed night."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from detector.engine.config import DetectorConfig
from detector.engine.pipeline import Engine
from detector.engine.state import read_state_file, write_state_file
from detector.engine.stream import Growable
from ingest.recordings.recording import array_recording

CFG = DetectorConfig()
KEEP_ALL = DetectorConfig.model_validate(CFG.model_dump()
                                         | {"engine": CFG.engine.model_dump() | {"history_s": 0.0}})


def _stream(rec, cfg, *, step=60.0, sizes_at=(), tmp=None, resume_at=None):
    """Events (as JSON), signal quality and checkpoint sizes (bytes) of a streamed night."""
    eng, t, sizes = Engine(rec.channels, cfg), 0.0, {}
    while t < rec.duration_s:
        t1 = min(rec.duration_s, t + step)
        eng.update({i: rec.read(i, round(t * c.fs), round(t1 * c.fs)) for i, c in enumerate(rec.channels)})
        for m in sizes_at:
            if t < m <= t1:
                sizes[m] = write_state_file(tmp / "s", eng.get_state())
        if resume_at is not None and t < resume_at <= t1:
            write_state_file(tmp / "r", eng.get_state())
            eng = Engine(rec.channels, cfg)
            eng.set_state(read_state_file(tmp / "r"))
        t = t1
    res = eng.finish()
    return [e.to_json(rec.start) for e in res.events], res.signal_quality, sizes


def test_trimmed_history_changes_nothing_and_the_checkpoint_stops_growing(night_rec, tmp_path):
    rec = night_rec  # the busy 2-h night: cramps, PLM series, rollovers, a bed exit, awakenings
    reads = Growable.short_reads
    marks = (1800.0, 3600.0, 7200.0)
    events, quality, sizes = _stream(rec, CFG, sizes_at=marks, tmp=tmp_path, resume_at=4000.0)
    whole, whole_quality, whole_sizes = _stream(rec, KEEP_ALL, sizes_at=marks, tmp=tmp_path)
    assert {"cramp", "limb_movement", "rollover", "awakening"} <= {e["kind"] for e in events}
    assert events == whole
    assert quality == whole_quality
    assert Growable.short_reads == reads, "a decision read history the engine had let go"
    # Per-frame history is what grew (~3.3 MB an hour); what is left grows with the events only.
    assert whole_sizes[7200.0] > 2 * whole_sizes[3600.0] - 0.5e6
    assert sizes[7200.0] < whole_sizes[7200.0] / 4
    assert sizes[7200.0] - sizes[3600.0] < 0.25e6, sizes


def test_history_is_kept_for_as_long_as_a_contraction_is_open(tmp_path):
    """A 12-minute contraction, far longer than ``engine.history_s``: its start is read when it
    ends, so the history before it must still be there."""
    fs, hours = 250.0, 0.75
    n = int(hours * 3600 * fs)
    rng = np.random.default_rng(4)
    left = rng.normal(0, 4.0, n)
    right = rng.normal(0, 4.0, n)
    a, b = int(900 * fs), int((900 + 720) * fs)
    left[a:b] *= np.linspace(6, 10, b - a)  # the left calf, held for 12 min
    for k in range(8):  # leg movements before it, so the look-backs have something to find
        s = int((600 + 30 * k) * fs)
        left[s:s + int(2 * fs)] *= 8
    m = int(hours * 3600 * 25)
    acc = np.tile([0.0, 0.0, 1.0], (m, 1)) + rng.normal(0, 0.002, (m, 3))
    sigs = {"EMG L-Gastroc": (left, fs), "EMG R-Gastroc": (right, fs)}
    for side in "LR":
        for j, ax in enumerate("XYZ"):
            sigs[f"ACC {side}-Shank {ax}"] = (acc[:, j], 25.0)
    rec = array_recording("long-contraction", dt.datetime(2026, 1, 1, 22, tzinfo=dt.UTC), sigs)
    reads = Growable.short_reads
    events, quality, _ = _stream(rec, CFG, step=45.0, tmp=tmp_path)
    whole, whole_quality, _ = _stream(rec, KEEP_ALL, step=45.0, tmp=tmp_path)
    assert events == whole and quality == whole_quality
    assert Growable.short_reads == reads
    long = [e for e in events if e["side"] == "left" and e["end_s"] - e["start_s"] > 600]
    assert long, "the 12-min contraction must be one event"
    assert abs(long[0]["start_s"] - 900) < 5


def test_a_growable_reads_by_absolute_index_after_dropping():
    g = Growable(np.float32)
    g.extend(np.arange(5000, dtype=np.float32))
    g.drop_before(3000)
    assert g.start == 3000 and g.n == 5000
    assert g[4000:4003].tolist() == [4000.0, 4001.0, 4002.0]
    assert g[-2:].tolist() == [4998.0, 4999.0]
    g.extend(np.array([5000.0], np.float32))
    assert g[4999:].tolist() == [4999.0, 5000.0]
    with pytest.raises(RuntimeError, match="dropped"):
        _ = g.view
    h = Growable(np.float32)
    h.set_state(g.get_state())
    assert (h.start, h.n) == (3000, 5001) and h[3000:3002].tolist() == [3000.0, 3001.0]
    reads = Growable.short_reads
    assert h[2998:3001].tolist() == [0.0, 0.0, 3000.0]  # a read too far back: counted, shapes kept
    assert Growable.short_reads == reads + 1
