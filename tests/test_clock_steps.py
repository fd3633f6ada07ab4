"""A wall clock that steps mid-night (an NTP correction, a clock set by hand): the collector keeps
the night's time base, the detector stores every sample where its counter puts it, resends and
spooled batches keep their order. Real InfluxDB for the detector; injected clocks for the units."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

import detector.store.transport as store_mod
import ingest.ble.outbox as outbox_mod
from dashboard.services import free_port
from detector.engine.config import DetectorConfig
from detector.service.settings import StoreSettings
from detector.store.influx import InfluxStore
from ingest.ble.clock import SteadyWall
from ingest.ble.collector import Collector, SensorSpec
from ingest.ble.outbox import Outbox
from ingest.ble.profile import load_profile
from ingest.ble.replay import read_capture
from ingest.wire.frames import decode, encode
from ingest.wire.topics import sensor_topic
from tests.live_helpers import one_go_reference, service_on, virtual_night

CFG = DetectorConfig()
HOUR_NS = 3600 * 10**9


class _Clocks:
    """A wall clock that can be stepped and a monotonic one that cannot (ns)."""

    def __init__(self) -> None:
        self.mono, self.step = 10**12, 0
        self.wall0 = 1_764_000_000 * 10**9

    def wall_ns(self) -> int:
        return self.wall0 + self.mono + self.step

    def mono_ns(self) -> int:
        return self.mono


def test_steady_wall_ignores_a_step_and_says_how_large_it_was():
    c = _Clocks()
    w = SteadyWall(c.wall_ns, c.mono_ns)
    t0 = w.now_ns()
    c.mono += 5 * 10**9
    c.step = HOUR_NS
    assert w.now_ns() - t0 == 5 * 10**9 and w.step_ns() == HOUR_NS
    w.anchor()
    assert w.now_ns() == c.wall_ns() and w.step_ns() == 0


def test_collector_frames_keep_the_night_time_base_across_steps(tmp_path, caplog):
    c = _Clocks()
    ob = Outbox(tmp_path / "o.sqlite")
    col = Collector(SensorSpec("w-1", "s-1", "x", "L"), load_profile("nightcramp-leg-v1"), ob, None)
    packets = read_capture(Path(__file__).parent / "data" / "ble-capture-left-shank.txt")["emg"]
    col.on_packet("emg", bytearray(packets[0]))  # the first packet anchors the time base ...
    col.wall = SteadyWall(c.wall_ns, c.mono_ns)  # ... which is then this test's clock
    col.clock.__init__()
    caplog.set_level(logging.WARNING, "nightcramp.collect")
    for k, p in enumerate(packets[1:200], start=1):
        c.mono += 100_000_000  # a packet every 0.1 s
        if k in (60, 120):
            c.step += HOUR_NS if k == 60 else -2 * HOUR_NS  # +1 h, then to -1 h
        col.check_wall_clock()
        col.on_packet("emg", bytearray(p))
    frames = [decode(p) for _, _, p, _ in ob.pending(limit=1000)][1:]
    ob.close()
    gaps = np.diff([f.first_time_ns for f in frames]) / 1e9
    assert np.all((gaps > 0.05) & (gaps < 0.25)), gaps[np.abs(gaps - 0.1) > 0.1]  # no hour in between
    assert col.stats["clock_steps"] == 2
    steps = [r.getMessage() for r in caplog.records if "wall clock stepped" in r.getMessage()]
    assert len(steps) == 2 and "+3600.0 s" in steps[0] and "-7200.0 s" in steps[1]


def test_outbox_resends_a_frame_sent_in_the_future(tmp_path, monkeypatch):
    ob = Outbox(tmp_path / "o.sqlite")
    i = ob.put("t/emg", b"x", frame=("emg", 0, 10))
    now = outbox_mod.time.time()
    monkeypatch.setattr(outbox_mod.time, "time", lambda: now)
    ob.sent(i, keep_frames=True)
    assert ob.unconfirmed_since(now - 60) == []  # sent just now: not due yet
    monkeypatch.setattr(outbox_mod.time, "time", lambda: now - 3600)  # the clock went back 1 h
    assert [r[0] for r in ob.unconfirmed_since(now - 3600 - 60)] == [i]
    ob.close()


def test_spooled_batches_keep_their_write_order_when_the_clock_goes_back(tmp_path, monkeypatch):
    spool = tmp_path / "spool"
    down = InfluxStore(StoreSettings(url=f"http://127.0.0.1:{free_port()}", database="t_step",
                                     spool_dir=spool, retries=0, backoff_s=0.01))
    now = store_mod.time.time_ns()
    for k, t in enumerate((now, now - HOUR_NS, now - HOUR_NS + 1)):
        monkeypatch.setattr(store_mod.time, "time_ns", lambda t=t: t)
        down.write_frame("w-9", "s", "acc", ["ACC L-Shank X"], np.full((2, 1), k, np.int16), (0.001,), 50.0,
                         2 * k, now + k * 10**8)
    down.close()
    names = sorted(f.name for f in spool.glob("*.lp.gz"))
    written = [int(f.stat().st_mtime_ns) for f in sorted(spool.glob("*.lp.gz"))]
    assert len(names) >= 3 and written == sorted(written)


def _stepped(payload: bytes, shift_ns: int) -> bytes:
    f = decode(payload)
    return encode(f.stream, f.rate_hz, f.first_sample, f.first_time_ns + shift_ns, f.scale, f.raw)


def test_detector_stores_samples_where_their_counter_puts_them(tmp_path, influxd):
    sensors, frames = virtual_night()
    ref = one_go_reference(sensors, frames, CFG)
    a, b = int(len(frames) * 0.4), int(len(frames) * 0.7)
    sent = ([f[:3] for f in frames[:a]] + [(s, st, _stepped(p, HOUR_NS)) for s, st, p, _ in frames[a:b]]
            + [(s, st, _stepped(p, -HOUR_NS)) for s, st, p, _ in frames[b:]])
    svc = service_on(tmp_path, influxd, "steps", CFG)
    try:
        for vs in sensors:
            svc.handle(sensor_topic("w-1", vs.sensor, "status"), vs.status().payload())
        for sensor, stream, payload in sent + sent[a:a + 20]:  # and a few stepped frames twice
            svc.handle(sensor_topic("w-1", sensor, stream), payload)
        got = svc.close_night("w-1")
        assert svc.stats["clock_mismatch_frames"] == len(frames) - a + 20
        assert got.recording.duration_s == ref.recording.duration_s
        assert sorted((e.kind, e.start_s, e.end_s) for e in got.events) == \
            sorted((e.kind, e.start_s, e.end_s) for e in ref.events)
        t0 = decode(frames[0][2]).first_time_ns
        for stream in ("emg", "acc"):
            want = sum(len(decode(p).raw) * decode(p).channels for _s, st, p, _ in frames if st == stream)
            assert svc.store.count_samples("w-1", stream) == want  # none twice, none lost
            for sensor, first, t, fs, *_ in svc.store.raw_frames("w-1", stream, t0 - 2 * HOUR_NS,
                                                                  t0 + 2 * HOUR_NS, chunk_ns=4 * HOUR_NS):
                origin = next(decode(p) for s, st, p, _ in frames if s == sensor and st == stream)
                expect = origin.first_time_ns + (first - origin.first_sample) * 1e9 / fs
                assert abs(t - expect) < 2e6, (sensor, stream, first, (t - expect) / 1e9)
    finally:
        svc._unlock_state_dir()
        svc.store.close()
