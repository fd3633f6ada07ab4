"""The collector's outbox on NATS JetStream: a real 3-server cluster on loopback, the frames stream
replicated 3 times, the stream's leader SIGKILLed while frames are on the way — every frame stored
once, in its wearer's partition, and the outbox empty."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter

import pytest

from dashboard.services import start_nats_cluster
from ingest.ble.nats_publisher import JetStreamPublisher
from ingest.ble.outbox import Outbox
from ingest.wire import jetstream
from ingest.wire.frames import read_header
from ingest.wire.topics import parse_topic, sensor_topic
from tests.live_helpers import until_answered
from tests.test_collector import _all_packets, _collect

WEARERS = 20

pytestmark = pytest.mark.scale


@pytest.fixture()
def cluster(tmp_path):
    nodes = start_nats_cluster(tmp_path / "nats", 3)
    yield nodes
    for n in nodes:
        n.stop()


def run(coro):
    return asyncio.run(coro)


async def _with_js(nodes, fn):
    import nats

    nc = await nats.connect([n.url for n in nodes if n.proc.poll() is None], connect_timeout=2)
    try:
        # a fresh cluster's first replicated stream may take longer than nats.py's 5 s to make
        # on a busy machine (its group elects a leader first)
        return await fn(nc.jetstream(timeout=30))
    finally:
        await nc.close()


async def _stored(js) -> list[tuple[str, str]]:
    """(subject, Nats-Msg-Id) of every message in the frames stream, in stream order."""
    import nats.errors
    import nats.js.errors

    deadline = time.monotonic() + 120
    while True:
        # after a server's death the stream's new leader may not yet answer a consumer's creation
        # within the client's 5 s on a busy machine: ask again until the deadline
        try:
            info = await js.stream_info(jetstream.STREAM)
            sub = await js.pull_subscribe(jetstream.partition_subject("*"), durable=None,
                                          stream=jetstream.STREAM)
            break
        except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    out: list[tuple[str, str]] = []
    while len(out) < info.state.messages and time.monotonic() < deadline:
        try:
            got = await sub.fetch(1000, timeout=5)
        except TimeoutError:  # a busy machine: ask again until the deadline
            continue
        for m in got:
            out.append((m.subject, (m.headers or {}).get("Nats-Msg-Id", "")))
            await m.ack()
    await sub.unsubscribe()
    return out


def test_a_stream_leader_killed_mid_night_loses_and_doubles_no_frame(tmp_path, cluster):
    # the real capture through the collector's decoder, once; then the same frames for 20 wearers
    one = Outbox(tmp_path / "capture.sqlite")
    _collect(one, _all_packets, speed=100)
    rows = one.pending(limit=10_000)
    one.close()
    outbox = Outbox(tmp_path / "outbox.sqlite")
    expected = set()
    for w in range(1, WEARERS + 1):
        for _, topic, payload, retain in rows:
            t = parse_topic(topic)
            new = sensor_topic(f"w-{w}", t.sensor, t.kind)
            outbox.put(new, payload, retain)
            expected.add(jetstream.msg_id(new, payload))
    total = len(outbox)
    assert total == WEARERS * (299 + 150 + 2) == len(expected)
    run(_with_js(cluster, lambda js: until_answered(lambda: jetstream.ensure_frames_stream(js, replicas=3),
                                                     "the frames stream made")))
    pub = JetStreamPublisher(outbox, [n.url for n in cluster], max_inflight=128)
    pub.start()
    try:
        # a third of the night is in the stream: its leader dies without a word
        deadline = time.monotonic() + 120
        while pub.sent < total // 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert total // 3 <= pub.sent < total, f"{pub.sent} of {total} sent when the leader was to die"
        leader = run(_with_js(cluster, lambda js: js.stream_info(jetstream.STREAM))).cluster.leader
        victim = next(n for n in cluster if n.server_name == leader)
        victim.stop(signal.SIGKILL)
        assert pub.drain(120), f"outbox not empty: {len(outbox)} of {total} left, {pub.sent} sent"
    finally:
        pub.stop()
        outbox.close()
    stored = run(_with_js(cluster, _stored))
    ids = Counter(i for _, i in stored)
    assert len(stored) == total and set(ids) == expected and max(ids.values()) == 1
    # each wearer in one partition, all of its sensors' subjects with it
    parts: dict[str, set[int]] = {}
    for subject, _ in stored:
        t = parse_topic(jetstream.topic_of(subject))
        parts.setdefault(t.wearer, set()).add(jetstream.partition_of_subject(subject))
    assert all(len(p) == 1 for p in parts.values()) and len(parts) == WEARERS
    assert len({next(iter(p)) for p in parts.values()}) > 1  # and the wearers spread over partitions
    # per wearer and stream, frames in counter order except where a lost acknowledgement made the
    # publisher send a window again (the detector's reorder buffer takes those)
    inversions = 0
    last: dict[tuple[str, str], int] = {}
    for subject, mid in stored:
        t = parse_topic(jetstream.topic_of(subject))
        if t.kind in ("emg", "acc"):
            first = int(mid.rsplit("/", 1)[1])
            key = (t.wearer, t.kind)
            inversions += first < last.get(key, -1)
            last[key] = max(first, last.get(key, -1))
    print(f"{total} messages, {pub.resent} sent again, {pub.duplicates} duplicates refused, "
          f"{inversions} order inversions")
    assert pub.sent == total


def test_message_ids_and_subjects_follow_the_wire_contract():
    import numpy as np

    from ingest.wire.frames import encode

    frame = encode("emg", 1000.0, 4200, 1_700_000_000 * 10**9, (0.5,), np.zeros((100, 1), np.int16))
    topic = sensor_topic("w-3", "left-shank", "emg")
    assert jetstream.subject(topic) == "nightcramp.v1.w-3.left-shank.emg"
    assert jetstream.msg_id(topic, frame) == "w-3/left-shank/emg/4200"
    assert read_header(frame).first_sample == 4200
    status = sensor_topic("w-3", "left-shank", "status")
    assert jetstream.msg_id(status, b'{"state":"online"}') != jetstream.msg_id(status, b'{"state":"offline"}')
    assert jetstream.topic_of("nightcramp.p.17.v1.w-3.left-shank.emg") == topic
    assert jetstream.partition_of_subject("nightcramp.p.17.v1.w-3.left-shank.emg") == 17
    with pytest.raises(ValueError):
        jetstream.subject("nightcramp/v1/W 3/left-shank/emg")


def test_the_collect_command_publishes_to_jetstream_when_the_transport_is_nats(tmp_path, cluster, cli):
    """`nightcramp collect` with [transport] kind = "nats": the replayed capture's frames reach the
    frames stream, and the outbox is empty once the stream has them all."""
    import json
    import subprocess

    from tests.test_collector import CAPTURE

    run(_with_js(cluster, lambda js: until_answered(lambda: jetstream.ensure_frames_stream(js, replicas=3),
                                                     "the frames stream made")))
    services = tmp_path / "services.toml"
    servers = json.dumps([n.url for n in cluster])
    services.write_text(f'[transport]\nkind = "nats"\n[nats]\nservers = {servers}\n'
                        f'[stack]\ndata_dir = "{tmp_path / "var"}"\n')
    r = subprocess.run([cli, "collect", "--wearer", "w-7", "--sensor", "left-shank", "--address",
                        "AA:BB:CC:DD:EE:01", "--side", "L", "--replay", str(CAPTURE), "--speed", "50",
                        "--seconds", "2", "--services", str(services)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["stats"]["packets"] == 449 and out["waiting"] == 0
    stored = run(_with_js(cluster, _stored))
    kinds = Counter(jetstream.topic_of(s).rsplit("/", 1)[1] for s, _ in stored)
    assert kinds["emg"] == 299 and kinds["acc"] == 150 and kinds["status"] >= 1
    assert out["sent"] == len(stored)


def test_the_workers_bucket_reads_whole_while_workers_write_to_it(cluster):
    """Who runs comes from the ``nightcramp_workers`` bucket while three workers renew their keys
    every 10 ms on a 3-server cluster: each of 300 reads sees all three (nats.py's
    ``KeyValue.keys()`` missed some in about 1 read in 100 here: a worker reading that takes
    every partition, ``night close`` says no worker runs); a worker that said goodbye (its key
    deleted) is not among them; no bucket reads as no workers."""
    import json

    from nats.js.api import KeyValueConfig, StorageType

    from dashboard.cli.live import _workers_open_nights

    async def main(js):
        assert await _workers_open_nights(js) == {}
        cfg = KeyValueConfig(bucket="nightcramp_workers", ttl=10, replicas=3, storage=StorageType.FILE)
        kv = await until_answered(lambda: js.create_key_value(cfg), "the workers bucket made")
        await kv.put("gone", b"{}")
        await kv.delete("gone")
        stop = asyncio.Event()

        async def beat(name: str) -> None:
            while not stop.is_set():
                await kv.put(name, json.dumps({"open_nights": [f"{name}-wearer"]}).encode())
                await asyncio.sleep(0.01)

        beats = [asyncio.create_task(beat(f"wk-{i}")) for i in range(3)]
        try:
            while len(await jetstream.kv_entries(js, "nightcramp_workers")) < 3:
                await asyncio.sleep(0.05)
            short = []
            for _ in range(300):
                seen = await _workers_open_nights(js)
                if seen != {f"wk-{i}": [f"wk-{i}-wearer"] for i in range(3)}:
                    short.append(seen)
            assert short == []
        finally:
            stop.set()
            await asyncio.gather(*beats)

    run(_with_js(cluster, main))
