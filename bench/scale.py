"""Detector workers on a NATS JetStream cluster: how many sensors 1, 2 and 3 workers keep up
with in real time on this machine, how long a dead worker's partitions take to move, and how
large a partition's checkpoint is — in one run.

A private 3-server nats-server cluster and InfluxDB are started on loopback. The frames of
``--wearers`` simulated nights (2 sensors each: 1 EMG at 1 kHz + 3 ACC at 50 Hz, 0.5-s frames) are
stored in the frames stream by the collector's JetStream publisher first (its rate is printed:
what the cluster itself takes); then 1, 2 and 3 workers each analyse all of them from the first
message, and the rate is the sensor-seconds of night handled per second of wall time between the
first and the last message any worker handled. The peer is one `nightcramp detect` on one
machine (docs/performance.md: ~225 sensors on 2 cores). Then one of 3 workers is SIGKILLed and the
time until its partitions are held by the others is measured (lease + rebalance).

    .venv/bin/python bench/scale.py [--wearers 24] [--hours 0.15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard.services import (  # noqa: E402
    read_status,
    start_influxd,
    start_nats_cluster,
    stop_all,
    wait_until,
)
from ingest.ble.nats_publisher import JetStreamPublisher  # noqa: E402
from ingest.ble.outbox import Outbox  # noqa: E402
from ingest.simulate import NightOptions, plan_night  # noqa: E402
from ingest.simulate.live import VirtualSensor  # noqa: E402
from ingest.wire import jetstream  # noqa: E402
from ingest.wire.topics import sensor_topic  # noqa: E402


def start_worker(tmp: Path, nodes, influx_port: int, name: str, db: str) -> tuple[subprocess.Popen, Path]:
    servers = json.dumps([n.url for n in nodes])
    sv = tmp / f"{name}.toml"
    state = tmp / f"state-{name}"
    sv.write_text(f'[transport]\nkind = "nats"\n[nats]\nservers = {servers}\nworker_id = "{name}"\n'
                  f'[store]\nurl = "http://127.0.0.1:{influx_port}"\ndatabase = "{db}"\n'
                  f'spool_dir = "{tmp / ("spool-" + name)}"\n'
                  f'[service]\nstate_dir = "{state}"\nnight_close_silence_s = 30.0\n')
    log = (tmp / f"{name}.log").open("wb")
    p = subprocess.Popen([sys.executable, "-m", "dashboard.cli", "detect", "--services", str(sv)],
                         stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    log.close()
    return p, state / "status.json"


def render(wearers: int, hours: float) -> list[tuple]:
    """Every frame of ``wearers`` simulated nights (1 kHz EMG, 50 Hz ACC, 0.5-s frames), in
    time order: (night s, wearer number, sensor, stream, bytes); statuses first."""
    rows: list[tuple] = []
    for k in range(wearers):
        plan = plan_night(NightOptions(hours=hours, seed=5000 + k, fs_emg=1000.0, fs_acc=50.0))
        for sensor, side in (("left-shank", "L"), ("right-shank", "R")):
            vs = VirtualSensor(f"x-{k}", sensor, side, plan)
            rows.append((-1.0, k, vs.sensor, "status", vs.status().payload()))
            rows += [(t, k, vs.sensor, s, p) for s, p, t in vs.frames(0.5)]
    rows.sort(key=lambda r: r[:2])
    return rows


def fill(outbox: Outbox, rows: list[tuple], tag: str) -> int:
    """The rendered frames into the outbox for wearers ``<tag>-<k>`` (the same samples, new names:
    the stream would refuse the same message ids again)."""
    for _, k, sensor, s, p in rows:
        outbox.put(sensor_topic(f"{tag}-{k}", sensor, s), p, s == "status")
    return len(rows)


async def reset(nodes) -> None:
    """Forget every partition's position and checkpoint (the next workers start at the stream's
    first message) and every partition consumer."""
    import nats

    nc = await nats.connect([n.url for n in nodes if n.proc.poll() is None])
    js = nc.jetstream()
    try:
        for stream in ("KV_nightcramp_partitions", "KV_nightcramp_leases", "OBJ_nightcramp_checkpoints"):
            try:
                await js.purge_stream(stream)
            except Exception:
                pass  # not made yet
        for k in range(64):
            try:
                await js.delete_consumer(jetstream.STREAM, f"part-{k}")
            except Exception:
                pass
    finally:
        await nc.close()


def ingest(tmp: Path, nodes, rows: list[tuple]) -> dict:
    """The whole cohort of nights into the frames stream through the collector's publisher (no
    worker running): how fast a 3-server R3 cluster on this machine stores frames."""
    import nats

    async def make_stream() -> None:
        nc = await nats.connect([n.url for n in nodes])
        try:
            await jetstream.ensure_frames_stream(nc.jetstream(), replicas=3)
        finally:
            await nc.close()

    asyncio.run(make_stream())
    outbox = Outbox(tmp / "outbox.sqlite")
    msgs = fill(outbox, rows, "x")
    pub = JetStreamPublisher(outbox, [n.url for n in nodes], max_inflight=256)
    t0 = time.monotonic()
    pub.start()
    try:
        if not pub.drain(3600):
            raise SystemExit(f"{len(outbox)} messages not stored in an hour")
        wall = time.monotonic() - t0
    finally:
        pub.stop()
        outbox.close()
    return {"messages": msgs, "ingest_s": wall, "ingest_msgs_per_s": msgs / wall}


def throughput(tmp: Path, nodes, influx_port: int, n_workers: int, msgs: int, sensor_s: float) -> dict:
    """``n_workers`` workers on the filled stream, every partition from its first message: the
    sensor-seconds of night handled per second, from the first message any worker handled to
    the last."""
    run = tmp / f"w{n_workers}"
    run.mkdir()
    asyncio.run(reset(nodes))
    procs = [start_worker(run, nodes, influx_port, f"wk-{i}", f"scale{n_workers}") for i in range(n_workers)]
    try:
        def stats() -> list[dict]:
            return [read_status(st).get("stats", {}) for _, st in procs]

        wait_until(lambda: sum(s.get("messages", 0) for s in stats()) >= msgs, 3600, "every message handled",
             every=0.5)
        st = stats()
        wall = max(s["last_message_at"] for s in st if "last_message_at" in s) - min(
            s["first_message_at"] for s in st if "first_message_at" in s)
    finally:
        stop_all([p for p, _ in procs])
    return {"workers": n_workers, "messages": msgs, "sensor_s": sensor_s, "wall_s": wall,
            "sensors_real_time": sensor_s / wall}


def takeover(tmp: Path, nodes, influx_port: int) -> dict:
    run = tmp / "takeover"
    run.mkdir()
    procs = [start_worker(run, nodes, influx_port, f"tk-{i}", "takeover") for i in range(3)]
    try:
        def spread() -> bool:
            held = [len(read_status(st).get("partitions", [])) for _, st in procs]
            return min(held) > 10 and sum(held) == 64

        wait_until(spread, 180, "partitions spread")
        held = read_status(procs[0][1])["partitions"]
        procs[0][0].send_signal(signal.SIGKILL)
        t0 = time.monotonic()
        def moved() -> bool:
            return set(held) <= {k for _, st in procs[1:] for k in read_status(st).get("partitions", [])}

        wait_until(moved, 120, "partitions taken over")
        return {"takeover_s": time.monotonic() - t0, "partitions_moved": len(held)}
    finally:
        stop_all([p for p, _ in procs])


def checkpoint_size(tmp: Path, nodes) -> dict:
    """Sizes of the committed checkpoints left in the object store (the last run's nights)."""
    import nats

    async def sizes() -> list[int]:
        nc = await nats.connect([n.url for n in nodes])
        try:
            obs = await nc.jetstream().object_store("nightcramp_checkpoints")
            return [i.size for i in await obs.list() if not i.deleted]
        finally:
            await nc.close()

    s = asyncio.run(sizes())
    return {"checkpoints": len(s), "checkpoint_kb_max": max(s) / 1024 if s else 0.0}


def main() -> int:
    ap = argparse.ArgumentParser(description="detector workers on a NATS JetStream cluster")
    ap.add_argument("--wearers", type=int, default=24)
    ap.add_argument("--hours", type=float, default=0.15)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "scale.json")
    args = ap.parse_args()
    res: dict = {"wearers": args.wearers, "hours": args.hours, "runs": []}
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        nodes = start_nats_cluster(tmp / "nats", 3)
        influx = start_influxd(tmp / "influx")
        try:
            print(f"simulating {args.wearers} nights of {args.hours:g} h …", flush=True)
            rows = render(args.wearers, args.hours)
            print(f"storing their {len(rows)} frames in the stream (no worker running) …", flush=True)
            res.update(ingest(tmp, nodes, rows))
            print(f"  {res['ingest_msgs_per_s']:.0f} frames/s stored (R3)", flush=True)
            sensor_s = 2 * args.wearers * args.hours * 3600
            for n in (1, 2, 3):
                print(f"{n} worker(s) on the stored frames …", flush=True)
                r = throughput(tmp, nodes, influx.port, n, len(rows), sensor_s)
                res["runs"].append(r)
                print(f"  {r['messages']} frames in {r['wall_s']:.1f} s: "
                      f"{r['sensors_real_time']:.0f} sensors in real time", flush=True)
            res.update(checkpoint_size(tmp, nodes))
            print("takeover after a worker is SIGKILLed …", flush=True)
            res.update(takeover(tmp, nodes, influx.port))
        finally:
            influx.stop()
            for n in nodes:
                n.stop()
    one = res["runs"][0]["sensors_real_time"]
    print()
    print("workers | sensors in real time | per worker | ratio to 1 worker")
    for r in res["runs"]:
        rt = r["sensors_real_time"]
        print(f"{r['workers']:7d} | {rt:20.0f} | {rt / r['workers']:10.0f} | {rt / one:.2f}")
    print(f"frames stream, 3 servers, R3: {res['ingest_msgs_per_s']:.0f} frames/s stored through the "
          f"collector's publisher = {res['ingest_msgs_per_s'] / 20:.0f} sensors sending 0.1-s frames "
          "(EMG + ACC)")
    print(f"takeover of {res['partitions_moved']} partitions after a worker died: {res['takeover_s']:.1f} s "
          "(goal <= 15 s)")
    print(f"largest committed checkpoint: {res['checkpoint_kb_max']:.0f} kB "
          f"({res['checkpoints']} partitions; nights of {args.hours:g} h, 2 sensors)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
