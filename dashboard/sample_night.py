"""A simulated night stored as the live pipeline would store it (raw frames of both legs, the
analysis, advice), without the servers in between: for the dashboard's tests, benchmark and
trials."""

from __future__ import annotations

from detector.advice.rules import with_advice
from detector.analyze import analyze_recording
from detector.engine.config import DetectorConfig
from detector.engine.summary import night_key
from detector.store.shards import Store
from ingest.simulate import NightOptions, plan_night, render_recording
from ingest.simulate.live import VirtualSensor
from ingest.wire.frames import decode


def store_simulated_night(store: Store, wearer: str, opts: NightOptions, *, frame_s: float = 1.0,
                          batch: int = 500, progress=None) -> tuple[str, dict]:
    """Write the raw frames of a simulated two-leg night and its analysis; (night key, analysis JSON)."""
    plan = plan_night(opts)
    mine = store.of(wearer)  # the instance that keeps this wearer
    raw_lines: list[str] = []
    env_lines: list[str] = []

    def flush() -> None:
        if raw_lines:
            ok = mine.write("\n".join(raw_lines), rp=mine.s.raw_rp)
            if not (mine.write("\n".join(env_lines)) and ok):
                raise OSError("InfluxDB refused the night's frames")
            raw_lines.clear()
            env_lines.clear()

    for side, sensor in (("L", "left-shank"), ("R", "right-shank")):
        vs = VirtualSensor(wearer, sensor, side, plan)
        labels = {"emg": vs.emg_labels, "acc": vs.acc_labels}
        for stream, payload, t in vs.frames(frame_s):
            f = decode(payload)
            r, e = store.frame_lines(wearer, sensor, stream, labels[stream], f.raw, f.scale, f.rate_hz,
                                     f.first_sample, f.first_time_ns)
            raw_lines.append(r)
            env_lines.append(e)
            if len(raw_lines) >= batch:
                flush()
                if progress:
                    progress(sensor, t / plan.duration_s)
    flush()
    a = with_advice(analyze_recording(render_recording(plan), DetectorConfig()))
    night = night_key(a.recording.start)
    if not store.write_analysis(wearer, night, a.to_json()):
        raise OSError("InfluxDB refused the night's analysis")
    return night, a.to_json()
