"""Frames that arrive out of order (redelivery after a broker restart) give the same night as
frames in order, as long as they stay within the reorder window; beyond it the gap is signal lost."""

from __future__ import annotations

import dataclasses
import tracemalloc
from collections import Counter

from detector.engine.config import DetectorConfig
from detector.service.live import WearerNight
from ingest.wire.frames import decode
from tests.live_helpers import virtual_night

CFG = DetectorConfig()


def _frames():
    sensors, frames = virtual_night()
    return {vs.sensor: vs.status() for vs in sensors}, [(s, st, decode(p), t) for s, st, p, t in frames]


def _night(statuses, frames, reorder_s: float, *, with_duration: bool = False):
    stats: Counter = Counter()
    night = WearerNight.open("w-1", frames[0][2].first_time_ns, statuses, CFG)
    for sensor, stream, fr, _ in frames:
        night.feed(sensor, stream, fr, stats, reorder_s)
    a = night.finish()
    events = [(e.kind, round(e.start_s, 3), round(e.end_s, 3), e.side) for e in a.events]
    return (events, stats, a.recording.duration_s) if with_duration else (events, stats)


def test_out_of_order_frames_within_the_window_give_the_same_night():
    statuses, frames = _frames()
    in_order, st0 = _night(statuses, frames, reorder_s=60.0)
    assert not st0["gap_samples"] and in_order
    # 40 frames (a few minutes of night) held back and delivered after newer ones, plus duplicates.
    late = frames[100:140]
    shuffled = frames[:100] + frames[140:200] + late[::-1] + frames[120:130] + frames[200:]
    got, st = _night(statuses, shuffled, reorder_s=3600.0)
    assert got == in_order
    assert st["gap_samples"] == 0 and st["reordered_frames"] > 0 and st["stale_frame"] >= 10


def test_a_gap_beyond_the_window_is_signal_lost_and_nothing_after_it_is_dropped():
    statuses, frames = _frames()
    _, _, full = _night(statuses, frames, reorder_s=60.0, with_duration=True)
    missing = frames[:100] + frames[120:]  # 20 frames never arrive
    got, st, duration = _night(statuses, missing, reorder_s=30.0, with_duration=True)
    assert st["gap_samples"] > 0
    assert any(k == "signal_lost" for k, *_ in got)
    assert duration == full  # the frames after the gap are all there


def test_the_waiting_frames_survive_a_checkpoint():
    statuses, frames = _frames()
    in_order, _ = _night(statuses, frames, reorder_s=60.0)
    stats: Counter = Counter()
    night = WearerNight.open("w-1", frames[0][2].first_time_ns, statuses, CFG)
    order = frames[:100] + frames[110:150] + frames[100:110] + frames[150:]
    for k, (sensor, stream, fr, _) in enumerate(order):
        night.feed(sensor, stream, fr, stats, 3600.0)
        if k == 120:  # frames wait in the reorder buffer now: checkpoint and resume
            assert any(s.ahead for s in night.streams.values())
            night = WearerNight.from_state(night.get_state(), CFG)
    a = night.finish()
    assert [(e.kind, round(e.start_s, 3), round(e.end_s, 3), e.side) for e in a.events] == in_order
    assert stats["gap_samples"] == 0


def _shifted(fr, samples: int):
    """The same frame with its sample counter (and time) moved by ``samples``."""
    return dataclasses.replace(fr, first_sample=fr.first_sample + samples,
                               first_time_ns=fr.first_time_ns + round(samples / fr.rate_hz * 1e9))


def test_a_counter_jump_of_55_hours_is_kept_apart_without_allocating_the_gap():
    statuses, frames = _frames()
    in_order, _ = _night(statuses, frames, reorder_s=60.0)
    stats: Counter = Counter()
    night = WearerNight.open("w-1", frames[0][2].first_time_ns, statuses, CFG)
    tracemalloc.start()
    for k, (sensor, stream, fr, _) in enumerate(frames):
        night.feed(sensor, stream, fr, stats, 60.0)
        if k == 150:
            jump = round(55 * 3600 * fr.rate_hz)
            night.feed(sensor, stream, _shifted(fr, jump), stats, 60.0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert stats["outside_night"] == 1 and stats["gap_samples"] == 0
    assert peak < 200 * 2**20  # 55 h of NaN samples at 250 Hz would be 400 MB
    a = night.finish()
    assert [(e.kind, round(e.start_s, 3), round(e.end_s, 3), e.side) for e in a.events] == in_order


def test_a_long_gap_becomes_signal_lost_a_slice_at_a_time():
    """A 10-hour dropout inside the night: one signal_lost span, memory bounded by the slice."""
    statuses, frames = _frames()
    gap = {stream: None for stream in ("emg", "acc")}
    stats: Counter = Counter()
    night = WearerNight.open("w-1", frames[0][2].first_time_ns, statuses, CFG)
    cut = len(frames) // 2
    for sensor, stream, fr, _ in frames[:cut]:
        night.feed(sensor, stream, fr, stats, 60.0)
    tracemalloc.start()
    for sensor, stream, fr, _ in frames[cut:]:
        gap[stream] = round(10 * 3600 * fr.rate_hz)
        night.feed(sensor, stream, _shifted(fr, gap[stream]), stats, 60.0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    a = night.finish()
    lost = [e for e in a.events if e.kind == "signal_lost"]
    assert lost and max(e.duration_s for e in lost) >= 35000
    assert a.recording.duration_s > 10 * 3600
    # Measured here: 80 MB sliced (the engine's per-frame history of 10 h), 344 MB for the gap at once.
    assert peak < 150 * 2**20, peak
