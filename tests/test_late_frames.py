"""Frames that arrive after their night was closed (a collector's outbox flushed after an
outage) reopen that night: it is analysed again from its stored frames plus the late ones,
and the stored night is the whole night (a real InfluxDB; the service's handler is called with
the frames' bytes as the broker would deliver them)."""

from __future__ import annotations

from detector.engine.config import DetectorConfig
from ingest.wire.topics import sensor_topic
from tests.live_helpers import one_go_reference, service_on, virtual_night

CFG = DetectorConfig()


def _key(e) -> tuple:
    return (e["kind"], round(e["start_s"], 3), round(e["end_s"], 3), e.get("side") or "none")


def test_late_frames_reopen_the_closed_night_and_it_is_stored_whole(tmp_path, influxd):
    sensors, frames = virtual_night()
    ref = one_go_reference(sensors, frames, CFG)  # the whole night in one go
    svc = service_on(tmp_path, influxd, "late", CFG, "night_close_silence_s = 600\n")
    try:
        for vs in sensors:
            svc.handle(sensor_topic("w-1", vs.sensor, "status"), vs.status().payload())
        cut = int(len(frames) * 0.7)
        for sensor, stream, payload, _ in frames[:cut]:
            svc.handle(sensor_topic("w-1", sensor, stream), payload)
        first = svc.close_night("w-1")
        assert first.recording.duration_s < ref.recording.duration_s - 60
        night = first.recording.start.date().isoformat()
        assert svc.store.nights("w-1")[0]["duration_s"] == first.recording.duration_s
        for sensor, stream, payload, _ in frames[cut:]:  # the outbox flushed after an outage
            svc.handle(sensor_topic("w-1", sensor, stream), payload)
        assert svc.stats["nights_reopened"] == 1
        again = svc.close_night("w-1")
        assert again.recording.duration_s == ref.recording.duration_s
        stored = svc.store.nights("w-1")
        assert len(stored) == 1 and stored[0]["night"] == night
        assert stored[0]["duration_s"] == ref.recording.duration_s
        want = sorted(_key(e.to_json(ref.recording.start)) for e in ref.events)
        assert sorted(_key(e) for e in svc.store.events("w-1", night)) == want
        assert svc.stats["fragment_kept_apart"] == 0
    finally:
        svc._unlock_state_dir()
        svc.store.close()
