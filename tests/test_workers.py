"""Detector workers on a NATS JetStream cluster, all real: 3 nats-servers with their own ports and
stores, 3 `nightcramp detect --worker` processes, 20 simulated wearers sent through the collector's
JetStream publisher, InfluxDB. A worker and the stream leader are SIGKILLed mid-night: no frame is
missing, and every wearer's stored night equals the analysis of the same frames in one go."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dashboard.services import read_status, start_influxd, start_nats_cluster, stop_all, wait_until
from detector.engine.config import DetectorConfig
from detector.store.influx import StoreSettings
from detector.store.shards import WearerMap, open_store
from ingest.ble.nats_publisher import JetStreamPublisher
from ingest.ble.outbox import Outbox
from ingest.simulate import NightOptions, plan_night
from ingest.simulate.live import VirtualSensor
from ingest.wire import jetstream
from ingest.wire.topics import sensor_topic
from tests.live_helpers import one_go_reference

pytestmark = pytest.mark.scale

WEARERS, WORKERS, HOURS = 20, 3, 0.1
ROOT = Path(__file__).resolve().parent.parent


def _key(e):
    return (e["kind"], round(e["start_s"], 3), round(e["end_s"], 3), e.get("side") or "none",
            e.get("subtype") or "")


@pytest.fixture()
def scale_rig(tmp_path, influxd):
    """3 nats-servers and two InfluxDB instances (the session's and one more) behind the wearer
    map; the workers a test starts are stopped at the end."""
    nodes = start_nats_cluster(tmp_path / "nats", 3)
    second = start_influxd(tmp_path / "influxd-b")
    procs: list[subprocess.Popen] = []
    rig = {"nodes": nodes, "procs": procs, "tmp": tmp_path, "influx_port": influxd.port,
           "influx_b_port": second.port, "users_db": tmp_path / "users.sqlite"}
    yield rig
    stop_all(procs, timeout=30)
    for n in nodes:
        n.stop()
    second.stop()


def _store(rig):
    """The stored nights as the dashboard reads them: through the wearer map, both instances."""
    settings = StoreSettings(url=f"http://127.0.0.1:{rig['influx_port']}", database="scale",
                             spool_dir=str(rig["tmp"] / "spool-test"),
                             shards={"b": f"http://127.0.0.1:{rig['influx_b_port']}"})
    return open_store(settings, rig["users_db"])


def _start_worker(rig, name: str, silence_s: float = 8.0) -> tuple[subprocess.Popen, Path]:
    tmp = rig["tmp"]
    servers = json.dumps([n.url for n in rig["nodes"]])
    sv = tmp / f"{name}.toml"
    state = tmp / f"state-{name}"
    sv.write_text(f'[transport]\nkind = "nats"\n[nats]\nservers = {servers}\nworker_id = "{name}"\n'
                  f"lease_s = 10.0\nheartbeat_s = 2.0\n"
                  f'[store]\nurl = "http://127.0.0.1:{rig["influx_port"]}"\ndatabase = "scale"\n'
                  f'spool_dir = "{tmp / ("spool-" + name)}"\n'
                  f'[store.shards]\nb = "http://127.0.0.1:{rig["influx_b_port"]}"\n'
                  f'[dashboard]\nusers_db = "{rig["users_db"]}"\n'
                  f'[service]\nstate_dir = "{state}"\nnight_close_silence_s = {silence_s}\n'
                  "checkpoint_s = 1.0\n")
    log = (tmp / f"{name}.log").open("wb")
    p = subprocess.Popen([sys.executable, "-m", "dashboard.cli", "detect", "--services", str(sv), "-v"],
                         stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    log.close()
    rig["procs"].append(p)
    return p, state / "status.json"


@pytest.mark.chaos
def test_workers_lose_no_frame_when_a_worker_and_the_stream_leader_die(scale_rig):
    rig, tmp = scale_rig, scale_rig["tmp"]
    outbox = Outbox(tmp / "outbox.sqlite")
    sensors, frames = {}, {}
    for k in range(WEARERS):
        plan = plan_night(NightOptions(hours=HOURS, seed=900 + k, fs_emg=250.0, fs_acc=25.0,
                                       cramps_per_night=40.0))
        w = f"w-{k}"
        sensors[w] = [VirtualSensor(w, "left-shank", "L", plan), VirtualSensor(w, "right-shank", "R", plan)]
        frames[w] = sorted(((vs.sensor, stream, payload, t) for vs in sensors[w] for stream, payload, t in
                            vs.frames(1.0)), key=lambda f: f[3])
    # the night as the collectors would send it: each wearer's statuses, then frames in time order
    for w in frames:
        for vs in sensors[w]:
            outbox.put(sensor_topic(w, vs.sensor, "status"), vs.status().payload(), True)
    by_time = sorted(((t, w, s, st, p) for w in frames for s, st, p, t in frames[w]), key=lambda x: x[:2])
    for _, w, s, st, p in by_time:
        outbox.put(sensor_topic(w, s, st), p)
    total = len(outbox)
    workers = [_start_worker(rig, f"wk-{i}") for i in range(1, WORKERS + 1)]
    # every worker up and holding its share of the partitions before frames flow
    wait_until(lambda: all(len(read_status(st).get("partitions", [])) > 5 for _, st in workers), 120,
          "three workers holding partitions")
    pub = JetStreamPublisher(outbox, [n.url for n in rig["nodes"]], max_inflight=128)
    pub.start()
    try:
        victim_proc, victim_status = workers[0]
        # wk-1 has handled part of its wearers' nights: it dies, and so does the stream's leader
        wait_until(lambda: read_status(victim_status).get("stats", {}).get("messages", 0) > 1500, 300,
              "wk-1 handling frames")
        held = read_status(victim_status)["partitions"]
        victim_proc.send_signal(signal.SIGKILL)
        victim_proc.wait(10)
        killed_at = time.monotonic()
        print(f"wk-1 killed at {time.strftime('%H:%M:%S')} holding {held}", flush=True)
        import asyncio

        import nats

        async def leader() -> str:
            nc = await nats.connect([n.url for n in rig["nodes"]])
            try:
                return (await nc.jetstream(timeout=30).stream_info(jetstream.STREAM)).cluster.leader
            finally:
                await nc.close()

        name = asyncio.run(leader())
        next(n for n in rig["nodes"] if n.server_name == name).stop(signal.SIGKILL)
        # the dead worker's partitions are taken by the others
        survivors = [st for _, st in workers[1:]]
        def moved() -> bool:
            return set(held) <= {k for st in survivors for k in read_status(st).get("partitions", [])}

        wait_until(moved, 120, "wk-1's partitions taken over")
        takeover_s = time.monotonic() - killed_at
        assert pub.drain(180), f"{len(outbox)} of {total} messages still in the outbox"
    finally:
        pub.stop()
        outbox.close()
    store = _store(rig)
    try:
        # whole nights: a night closed early (its frames paused while its partition moved) is
        # reopened by the frames after the pause and stored again, whole
        def whole(w: str) -> bool:
            n = store.nights(w)
            return bool(n) and float(n[0]["duration_s"]) >= HOURS * 3600 - 1

        wait_until(lambda: all(whole(w) for w in frames), 300, "every wearer's whole night stored", every=1.0)
        moved = [w for w in frames if _partition(w, rig) in held]
        cfg = DetectorConfig()
        for w in frames:
            ref = one_go_reference(sensors[w], frames[w], cfg).to_json()
            stored = store.events(w, "2026-11-24")
            mine, theirs = sorted(_key(e) for e in stored), sorted(_key(e) for e in ref["events"])
            assert mine == theirs, (w, set(mine) - set(theirs), set(theirs) - set(mine))
            sent = sum(int(HOURS * 3600 * fs) * ch for fs, ch in ((250.0, 1), (25.0, 3))) * 2
            assert store.count_samples(w, "emg") + store.count_samples(w, "acc") == sent, w
        shards = WearerMap(rig["users_db"], ["main", "b"]).all()
        assert sorted(shards) == sorted(frames) and set(shards.values()) == {"main", "b"}
        reordered = sum(read_status(st).get("detector", {}).get("reordered_frames", 0)
                        for _, st in workers[1:])
        print(f"frames reaching a detector out of counter order (its reorder buffer takes them): {reordered}")
        print(f"{total} messages from {WEARERS} wearers; wk-1 held {len(held)} partitions "
              f"({len(moved)} wearers), taken over {takeover_s:.1f} s after it died; "
              f"{pub.resent} sent again by the collector")
    finally:
        store.close()


def _partition(wearer: str, rig) -> int:
    """The partition the servers put a wearer in (read back from the stream)."""
    import asyncio

    import nats

    async def ask() -> int:
        nc = await nats.connect([n.url for n in rig["nodes"] if n.proc.poll() is None])
        try:
            info = await nc.jetstream(timeout=30).stream_info(jetstream.STREAM,
                                                              subjects_filter=f"nightcramp.p.*.v1.{wearer}.>")
            subject = next(iter(info.state.subjects or {}))
            return jetstream.partition_of_subject(subject)
        finally:
            await nc.close()

    return asyncio.run(ask())



def test_virtual_sensors_and_a_worker_from_the_command_line(scale_rig, cli):
    """`nightcramp simulate --live`, `nightcramp detect` and `nightcramp night close` with [transport]
    kind = "nats": the night of the virtual sensors is closed by the command (not by silence) and
    stored whole, every sample once."""
    rig, tmp = scale_rig, scale_rig["tmp"]
    _proc, st = _start_worker(rig, "solo", silence_s=3600.0)
    services = tmp / "solo.toml"
    wait_until(lambda: len(read_status(st).get("partitions", [])) == 64, 120,
               "the worker holding every partition")
    early = subprocess.run([cli, "night", "close", "--wearer", "sim-1", "--wait", "1", "--services",
                            str(services)], capture_output=True, text=True, timeout=120)
    assert early.returncode != 0 and "no worker has an open night for wearer 'sim-1'" in early.stderr
    r = subprocess.run([cli, "simulate", str(tmp / "truth"), "--live", "--hours", "0.05", "--speed", "600",
                        "--fs-emg", "250", "--fs-acc", "25", "--frame-s", "1", "--services", str(services)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    sent = json.loads(r.stdout.strip().splitlines()[-1])
    assert "NATS frames stream" in r.stderr
    close = subprocess.run([cli, "night", "close", "--wearer", "sim-1", "--services", str(services)],
                           capture_output=True, text=True, timeout=120)
    assert close.returncode == 0 and "asked the detector workers" in close.stdout, close.stderr
    store = _store(rig)
    try:
        def whole() -> bool:
            n = store.nights("sim-1")
            return bool(n) and float(n[0]["duration_s"]) >= 0.05 * 3600 - 1

        wait_until(whole, 120, "the night stored", every=0.5)
        assert store.count_samples("sim-1", "emg") + store.count_samples("sim-1", "acc") == sent["samples"]
        assert (tmp / "truth" / "sim-1.truth.json").exists()
    finally:
        store.close()
    assert read_status(st)["stats"]["messages"] >= sent["frames"]


def _nats(rig, job):
    """Run ``job(nc, js)`` on a fresh connection to the live servers, closed afterwards."""
    import asyncio

    import nats

    async def run():
        nc = await nats.connect([n.url for n in rig["nodes"] if n.proc.poll() is None])
        try:
            return await job(nc, nc.jetstream(timeout=30))
        finally:
            await nc.close()

    return asyncio.run(run())


def _publish(rig, tmp: Path, name: str, messages: list[tuple[str, bytes, bool]]) -> None:
    outbox = Outbox(tmp / f"{name}.sqlite")
    for topic, payload, retain in messages:
        outbox.put(topic, payload, retain)
    pub = JetStreamPublisher(outbox, [n.url for n in rig["nodes"]], max_inflight=128)
    pub.start()
    try:
        assert pub.drain(180), f"{len(outbox)} messages of {name} still in the outbox"
    finally:
        pub.stop()
        outbox.close()


@pytest.mark.parametrize("damage", ["deleted", "garbled"])
def test_a_partition_whose_checkpoint_object_is_lost_is_taken_and_loses_nothing(scale_rig, cli, damage):
    """The record of a partition names a checkpoint object that is gone from the object store (or
    is not a checkpoint): the next worker takes the partition all the same, from the record's
    sequence, with the sensors' statuses and the open night the record keeps; the night is
    reopened from its stored samples, so the frames after the commit join it and the stored night
    equals the analysis of all its frames in one go, every sample stored once."""
    rig, tmp = scale_rig, scale_rig["tmp"]
    hours, w = 0.1, "w-lost"
    plan = plan_night(NightOptions(hours=hours, seed=902, fs_emg=250.0, fs_acc=25.0, cramps_per_night=40.0))
    sensors = [VirtualSensor(w, "left-shank", "L", plan), VirtualSensor(w, "right-shank", "R", plan)]
    frames = sorted(((vs.sensor, stream, payload, t) for vs in sensors
                     for stream, payload, t in vs.frames(1.0)), key=lambda f: f[3])
    half = len(frames) // 2
    first = [(sensor_topic(w, vs.sensor, "status"), vs.status().payload(), True) for vs in sensors]
    first += [(sensor_topic(w, s, st), p, False) for s, st, p, _ in frames[:half]]
    proc_a, st_a = _start_worker(rig, "keeper", silence_s=3600.0)
    wait_until(lambda: len(read_status(st_a).get("partitions", [])) == 64, 120, "the first worker holding "
               "every partition")
    _publish(rig, tmp, "first-half", first)
    k = _partition(w, rig)

    async def committed(nc, js):
        last = (await js.stream_info(jetstream.STREAM)).state.last_seq
        try:
            rec = json.loads((await (await js.key_value("nightcramp_partitions")).get(f"p{k}")).value)
        except Exception:
            return None
        return rec if rec.get("seq") == last else None

    wait_until(lambda: _nats(rig, committed) is not None, 120, "the first half committed", every=0.5)
    proc_a.send_signal(signal.SIGTERM)  # it hands its partitions over: a last commit, leases deleted
    assert proc_a.wait(60) == 0
    rec = _nats(rig, committed)
    assert rec["note"]["open"] and rec["note"]["open"][0]["wearer"] == w

    async def damage_it(nc, js):
        objects = await js.object_store("nightcramp_checkpoints")
        if damage == "deleted":
            await objects.delete(rec["object"])
        else:
            await objects.put(rec["object"], b"not a checkpoint at all")

    _nats(rig, damage_it)
    _proc_b, st_b = _start_worker(rig, "taker", silence_s=3600.0)
    wait_until(lambda: len(read_status(st_b).get("partitions", [])) == 64, 120,
               "the second worker holding every partition, the damaged one too")
    status = read_status(st_b)
    assert status["stats"].get("checkpoints_lost") == 1 and status["open_nights"] == [w]
    assert "resumed from the partition record: 2 sensor status(es), 1 open night(s) reopened" in \
        (tmp / "taker.log").read_text()
    _publish(rig, tmp, "second-half", [(sensor_topic(w, s, st), p, False) for s, st, p, _ in frames[half:]])
    wait_until(lambda: read_status(st_b).get("stats", {}).get("messages", 0) >= len(frames) - half, 120,
               "the second half handled")
    close = subprocess.run([cli, "night", "close", "--wearer", w, "--services", str(tmp / "taker.toml")],
                           capture_output=True, text=True, timeout=120)
    assert close.returncode == 0, close.stderr
    store = _store(rig)
    try:
        def whole() -> bool:
            n = store.nights(w)
            return bool(n) and float(n[0]["duration_s"]) >= hours * 3600 - 1

        wait_until(whole, 120, "the whole night stored", every=0.5)
        ref = one_go_reference(sensors, frames, DetectorConfig()).to_json()
        stored = store.events(w, "2026-11-24")
        assert sorted(_key(e) for e in stored) == sorted(_key(e) for e in ref["events"])
        # events from before the damage (the reopened night) and after it (the frames that joined it)
        cut = frames[half][3] - frames[0][3]
        assert any(e["kind"] == "sustained_activity" and e["end_s"] < cut for e in stored)
        assert any(e["kind"] == "limb_movement" and e["start_s"] > cut for e in stored)
        sent = sum(int(hours * 3600 * fs) * ch for fs, ch in ((250.0, 1), (25.0, 3))) * 2
        assert store.count_samples(w, "emg") + store.count_samples(w, "acc") == sent
    finally:
        store.close()
