"""Live pipeline capacity and latency, end to end with real servers started for the run.

1. Capacity: W wearers x 2 sensors (each 1 kHz EMG + 50 Hz 3-axis ACC) with frames rendered
   beforehand, published to Mosquitto as fast as it takes them; ``nightcramp detect`` stores raw
   frames in InfluxDB and runs the engines. Capacity = sensor-seconds handled / wall seconds,
   measured when InfluxDB holds every sample: how many sensors it keeps up with in real time
   on this machine (goal >= 200).
2. Latency: one wearer published at --speed x real time; for every live event, the time from
   publishing the frame that completed the data the event was decided on (``decided_at_s``) to
   receiving the event on MQTT: p50 and p99 (goal p99 <= 1 s).

    .venv/bin/python bench/live.py [--wearers 25] [--seconds 120] [--speed 30] [--latency-s 3600]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard.services import start_influxd, start_mosquitto  # noqa: E402
from detector.engine.config import DetectorConfig  # noqa: E402
from detector.engine.cramp_evidence import decidable_after_s  # noqa: E402
from detector.service.settings import load_services  # noqa: E402
from detector.store.influx import InfluxStore  # noqa: E402
from ingest.simulate import NightOptions, plan_night  # noqa: E402
from ingest.simulate.live import PubAcks, VirtualSensor  # noqa: E402
from ingest.wire.frames import read_header  # noqa: E402
from ingest.wire.topics import EVENTS_SUB, sensor_topic  # noqa: E402

CLI = ROOT / ".venv" / "bin" / "nightcramp"


def rig(tmp: Path):
    mosq = start_mosquitto(tmp / "mosquitto")
    influx = start_influxd(tmp / "influxdb")
    services = tmp / "services.toml"
    services.write_text(f"[mqtt]\nport = {mosq.port}\n[store]\nurl = \"http://127.0.0.1:{influx.port}\"\n"
                        f"spool_dir = \"{tmp / 'spool'}\"\n[service]\nnight_close_silence_s = 3600\n"
                        f"state_dir = \"{tmp / 'state'}\"\n")
    log = (tmp / "detector.log").open("w")
    det = subprocess.Popen([str(CLI), "detect", "--services", str(services), "-v"], stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while "subscribed to frames" not in (tmp / "detector.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    return mosq, influx, services, det


def client(port: int) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def capacity(tmp: Path, wearers: int, seconds: float) -> dict:
    mosq, influx, services, det = rig(tmp)
    opts = NightOptions(hours=seconds / 3600, seed=900, fs_emg=1000.0, fs_acc=50.0)
    plan = plan_night(opts)
    sensors = [VirtualSensor(f"w-{k}", f"{side.lower()}-shank", side, plan)
               for k in range(wearers) for side in ("L", "R")]
    print(f"rendering {len(sensors)} sensors x {seconds:g} s …", flush=True)
    frames = []
    for vs in sensors:
        frames += [(sensor_topic(vs.wearer, vs.sensor, s), b, t) for s, b, t in vs.frames(0.1)]
    frames.sort(key=lambda f: f[2])
    total = sum(h.n * h.channels for h in (read_header(b) for _, b, _ in frames))
    c = client(mosq.port)
    acks = PubAcks(c)
    for vs in sensors:
        acks.publish(c, sensor_topic(vs.wearer, vs.sensor, "status"), vs.status().payload(), retain=True)
    acks.wait()
    store = InfluxStore(load_services(services).store)
    print(f"publishing {len(frames)} frames ({total} samples) …", flush=True)
    t0 = time.monotonic()
    for t, b, _ in frames:
        acks.publish(c, t, b)
        acks.wait(backlog=5000)  # message ids wrap at 65535
    acks.wait()
    t_pub = time.monotonic() - t0
    stored = 0
    while time.monotonic() - t0 < 1800:
        stored = sum(store.count_samples(vs.wearer, s) for vs in sensors[::2] for s in ("emg", "acc"))
        if stored >= total:
            break
        time.sleep(1.0)
    wall = time.monotonic() - t0
    det.terminate()
    det.wait(60)
    c.loop_stop()
    store.close()
    mosq.stop()
    influx.stop()
    sensor_seconds = len(sensors) * seconds
    return {"sensors": len(sensors), "night_s": seconds, "frames": len(frames), "samples": total,
            "stored": stored, "publish_wall_s": t_pub, "wall_s": wall,
            "realtime_sensors": sensor_seconds / wall}


def latency(tmp: Path, speed: float, seconds: float) -> dict:
    mosq, influx, _services, det = rig(tmp)
    plan = plan_night(NightOptions(hours=seconds / 3600, seed=903, fs_emg=1000.0, fs_acc=50.0,
                                   cramps_per_night=40.0))
    sensors = [VirtualSensor("w-1", "l-shank", "L", plan), VirtualSensor("w-1", "r-shank", "R", plan)]
    frames = sorted(((sensor_topic(vs.wearer, vs.sensor, s), b, t + read_header(b).duration_s)
                     for vs in sensors for s, b, t in vs.frames(0.1)), key=lambda f: f[2])
    got: list[tuple[float, dict]] = []
    sub = client(mosq.port)
    sub.on_message = lambda c, u, m: got.append((time.monotonic(), json.loads(m.payload)))
    sub.subscribe(EVENTS_SUB, qos=1)
    pub = client(mosq.port)
    for vs in sensors:
        pub.publish(sensor_topic(vs.wearer, vs.sensor, "status"), vs.status().payload(), qos=1, retain=True)
    time.sleep(1.0)
    sent_at: list[tuple[float, float]] = []  # (night time covered, wall time published)
    print(f"publishing {seconds:g} s of night at {speed:g}x …", flush=True)
    t0 = time.monotonic()
    for t, b, t_end in frames:
        delay = t0 + t_end / speed - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        pub.publish(t, b, qos=1)
        sent_at.append((t_end, time.monotonic()))
    time.sleep(3.0)
    det.terminate()
    det.wait(60)
    cover = np.array([s[0] for s in sent_at])
    wall = np.array([s[1] for s in sent_at])
    lat = []
    for t_recv, ev in got:
        if "decided_at_s" not in ev:
            continue
        i = int(np.searchsorted(cover, ev["decided_at_s"] - 1e-6))
        if i < len(wall):
            lat.append(t_recv - wall[i])
    for c in (sub, pub):
        c.loop_stop()
    mosq.stop()
    influx.stop()
    lat.sort()
    p = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]) if lat else (lambda q: float("nan"))
    # Cramp alerts: night time from the criteria being met (final event's onset plus the
    # duration the rule needs) to the data the alert was raised on.
    cfg = DetectorConfig()
    evs = [ev for _, ev in got]
    finals = [e for e in evs if e.get("kind") == "cramp" and not e.get("provisional")]
    suspected = [e for e in evs if e.get("provisional") and e.get("status") == "suspected"]
    behind = []
    for c in finals:
        need = decidable_after_s(c["features"], cfg)
        if need is None:  # decided on what the wearer did afterwards: no alert is due
            continue
        a = [x for x in suspected
             if x["channel"] == c["channel"] and c["start_s"] - 2 <= x["start_s"] <= c["end_s"]]
        if a:
            behind.append(a[0]["met_at_s"] - (c["start_s"] + need))
    return {"events": len(lat), "speed": speed, "p50_s": p(0.5), "p99_s": p(0.99),
            "max_s": lat[-1] if lat else float("nan"),
            "kinds": sorted({ev.get("kind") for _, ev in got if "decided_at_s" in ev}),
            "cramps": len(finals), "cramps_alerted": len(behind),
            "alerts": len(suspected), "alerts_retracted": sum(e.get("status") == "retracted" for e in evs),
            "alert_after_criteria_s": behind}


def main() -> int:
    ap = argparse.ArgumentParser(description="live pipeline capacity and latency")
    ap.add_argument("--wearers", type=int, default=25, help="capacity run: wearers (2 sensors each)")
    ap.add_argument("--seconds", type=float, default=120.0, help="capacity run: seconds of night")
    ap.add_argument("--speed", type=float, default=30.0, help="latency run: times real time")
    ap.add_argument("--latency-s", type=float, default=3600.0, help="latency run: seconds of night "
                    "(an hour: cramps start out of settled sleep)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "live.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        cap = capacity(Path(a), args.wearers, args.seconds)
        lat = latency(Path(b), args.speed, args.latency_s)
    res = {"capacity": cap, "latency": lat}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1))
    print()
    print(f"capacity: {cap['sensors']} sensors x {cap['night_s']:g} s ({cap['frames']} frames, "
          f"{cap['samples']} samples) stored in {cap['wall_s']:.1f} s (published in "
          f"{cap['publish_wall_s']:.1f} s) -> keeps up with {cap['realtime_sensors']:.0f} sensors in real "
          "time (goal >= 200)")
    print(f"latency: {lat['events']} live events at {lat['speed']:g}x, publish of the deciding frame -> "
          f"event: p50 {lat['p50_s'] * 1000:.0f} ms, p99 {lat['p99_s'] * 1000:.0f} ms, max "
          f"{lat['max_s'] * 1000:.0f} ms (goal p99 <= 1 s); kinds {lat['kinds']}")
    if lat["alert_after_criteria_s"]:
        b = lat["alert_after_criteria_s"]
        print(f"cramp alerts: {lat['cramps_alerted']}/{lat['cramps']} cramps alerted while going on "
              f"({lat['alerts']} alerts, {lat['alerts_retracted']} retracted); raised on data "
              f"{np.median(b):.2f} s (max {max(b):.2f} s) after the criteria were met, plus the wall "
              f"latency above (goal: announced within 2 s)")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
