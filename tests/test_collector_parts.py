"""Collector building blocks: the durable outbox, sensor clock mapping and frame times."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ingest.ble.clock import ClockMap, Unwrapper
from ingest.ble.collector import Collector, SensorSpec
from ingest.ble.outbox import Outbox
from ingest.ble.profile import load_profile
from ingest.ble.replay import read_capture
from ingest.wire.frames import decode


def test_outbox_survives_a_restart_and_keeps_order(tmp_path):
    ob = Outbox(tmp_path / "outbox.sqlite")
    ids = [ob.put(f"t/{k}", bytes([k])) for k in range(5)]
    ob.done(ids[1])
    ob.close()  # the collector dies here
    ob = Outbox(tmp_path / "outbox.sqlite")
    assert [(t, p) for _, t, p, _ in ob.pending()] == [("t/0", b"\x00"), ("t/2", b"\x02"), ("t/3", b"\x03"),
                                                        ("t/4", b"\x04")]
    for i, *_ in ob.pending():
        ob.done(i)
    assert len(ob) == 0
    ob.close()


def test_unwrap_sequence_and_clock():
    u = Unwrapper(16)
    assert [u(v) for v in (65534, 65535, 0, 2, 1)] == [65534, 65535, 65536, 65538, 65537]
    c = Unwrapper(32)
    assert c(2**32 - 5) == 2**32 - 5 and c(3) == 2**32 + 3


def test_clock_map_takes_the_least_delayed_packet_and_follows_drift():
    m = ClockMap(window_s=10.0)
    t0 = 1_764_000_000 * 10**9
    # packets every 0.1 s with 2-20 ms of varying delay; the sensor clock runs 50 ppm fast
    for k in range(600):
        sensor_us = int(k * 100_000 * (1 + 50e-6))
        arrival = t0 + k * 100_000_000 + (2 + (k * 7) % 19) * 1_000_000
        m.observe(sensor_us, arrival)
    true_utc = t0 + 599 * 100_000_000
    assert abs(m.utc_ns(int(599 * 100_000 * (1 + 50e-6))) - true_utc) < 3_000_000  # within 3 ms


def test_frame_times_increase_across_the_sensor_clock_wrap(tmp_path):
    ob = Outbox(tmp_path / "o.sqlite")
    col = Collector(SensorSpec("w-1", "s-1", "x", "L"), load_profile("nightcramp-leg-v1"), ob, None)
    packets = read_capture(Path(__file__).parent / "data" / "ble-capture-left-shank.txt")["emg"]
    t0 = 1_764_000_000 * 10**9
    for k, p in enumerate(packets):  # arriving in real time, 3 ms after their sampling
        col.on_packet("emg", bytearray(p), arrival_ns=t0 + (k + (k >= 123)) * 100_000_000 + 3_000_000)
    frames = [decode(p) for _, _, p, _ in ob.pending(limit=1000)]
    ob.close()
    times = np.array([f.first_time_ns for f in frames])
    assert np.all(np.diff(times) > 0)
    assert abs(np.diff(times)[0] - 100_000_000) < 1_000  # 100 samples at 1 kHz


def _feed(col, packets, k0: int, t0: int) -> None:
    for k, p in enumerate(packets, start=k0):  # one packet every 100 ms, 3 ms after sampling
        col.on_packet("emg", bytearray(p), arrival_ns=t0 + k * 100_000_000 + 3_000_000)


def test_a_restarted_collector_continues_the_sample_counter(tmp_path):
    """Killed and started again on the same outbox, the collector goes on counting where it
    stopped: the detector would otherwise take the new frames for old ones and drop them."""
    packets = read_capture(Path(__file__).parent / "data" / "ble-capture-left-shank.txt")["emg"]
    t0 = 1_764_000_000 * 10**9
    ob = Outbox(tmp_path / "o.sqlite")
    spec, profile = SensorSpec("w-1", "s-1", "x", "L"), load_profile("nightcramp-leg-v1")
    _feed(Collector(spec, profile, ob, None), packets[:100], 0, t0)
    again = Collector(spec, profile, ob, None)  # a new process, the same outbox
    _feed(again, packets[100:200], 100, t0)
    frames = [decode(p) for _, _, p, _ in ob.pending(limit=1000)]
    ob.close()
    firsts = [f.first_sample for f in frames]
    assert firsts == sorted(firsts) and len(set(firsts)) == len(firsts) == 200
    assert firsts[100] == firsts[99] + frames[99].raw.shape[0]  # no restart at 0
    assert np.all(np.diff([f.first_time_ns for f in frames]) > 0)


def test_a_sensor_that_restarts_is_followed_not_dropped(tmp_path):
    """The sensor's sequence and clock start again at 0: its packets are new ones (not stale
    repeats), and the counter jumps by the time the sensor was away."""
    packets = read_capture(Path(__file__).parent / "data" / "ble-capture-left-shank.txt")["emg"]
    t0 = 1_764_000_000 * 10**9
    ob = Outbox(tmp_path / "o.sqlite")
    col = Collector(SensorSpec("w-1", "s-1", "x", "L"), load_profile("nightcramp-leg-v1"), ob, None)
    _feed(col, packets[:280], 0, t0)
    _feed(col, packets[:50], 300, t0)  # rebooted 2 s later: sequence numbers from the start again
    frames = [decode(p) for _, _, p, _ in ob.pending(limit=1000)]
    ob.close()
    assert len(frames) == 330 and col.stats["sensor_restarts"] == 1
    firsts = [f.first_sample for f in frames]
    assert firsts == sorted(firsts)
    gap = firsts[280] - (firsts[279] + frames[279].raw.shape[0])
    assert 1500 <= gap <= 2500  # about the 2 s the sensor was away, at 1 kHz
    assert np.all(np.diff([f.first_time_ns for f in frames]) > 0)
