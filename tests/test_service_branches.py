"""The live detector's branches, fast: a wearer's night fed frames as decoded from the wire
(no server), and the service with an injected MQTT client that records what it is asked to do
(on a real InfluxDB). The real-broker paths are covered by test_live_pipeline and test_faults."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from detector.engine.config import DetectorConfig
from detector.engine.state import STATE_VERSION
from detector.service.live import DetectorService, WearerNight
from detector.service.settings import load_services
from ingest.wire.frames import decode
from ingest.wire.topics import CONTROL_SUB, SENSORS_SUB, sensor_topic
from tests.live_helpers import virtual_night

CFG = DetectorConfig()


@pytest.fixture(scope="module")
def night():
    sensors, frames = virtual_night(hours=0.1)
    statuses = {vs.sensor: vs.status() for vs in sensors}
    return sensors, statuses, [(s, st, decode(p)) for s, st, p, _ in frames]


def _open(statuses, frames) -> WearerNight:
    return WearerNight.open("w-1", frames[0][2].first_time_ns, statuses, CFG)


def test_a_frame_that_never_comes_becomes_lost_signal_after_the_reorder_window(night):
    _, statuses, frames = night
    left_emg = [k for k, (s, st, _) in enumerate(frames) if s == "left-shank" and st == "emg"]
    gone = left_emg[3]
    wn, stats = _open(statuses, frames), Counter()
    for k, (s, st, fr) in enumerate(frames):
        if k != gone:
            wn.feed(s, st, fr, stats, reorder_s=10.0)
    a = wn.finish()
    missing = frames[gone][2]
    assert stats["gap_samples"] == missing.n
    t0 = (missing.first_time_ns - frames[0][2].first_time_ns) / 1e9
    lost = [e for e in a.events if e.kind == "signal_lost" and e.side == "left"]
    t1 = t0 + missing.n / missing.rate_hz
    assert any(e.start_s <= t0 + 0.1 and e.end_s >= t1 - 0.1 for e in lost), lost


def test_a_redelivered_frame_changes_nothing(night):
    _, statuses, frames = night
    once, twice = _open(statuses, frames), _open(statuses, frames)
    s1, s2 = Counter(), Counter()
    for k, (s, st, fr) in enumerate(frames):
        once.feed(s, st, fr, s1, reorder_s=10.0)
        twice.feed(s, st, fr, s2, reorder_s=10.0)
        if k % 7 == 3:  # QoS 1 delivers at least once
            twice.feed(s, st, fr, s2, reorder_s=10.0)
    assert s2["stale_frame"] == len(range(3, len(frames), 7)) and s1["stale_frame"] == 0
    a, b = once.finish(), twice.finish()
    assert [(e.kind, e.start_s, e.end_s, e.side) for e in a.events] == \
        [(e.kind, e.start_s, e.end_s, e.side) for e in b.events]
    assert a.recording.duration_s == b.recording.duration_s


def test_a_rate_change_mid_night_is_refused_and_counted(night):
    _, statuses, frames = night
    wn, stats = _open(statuses, frames), Counter()
    s, st, fr = frames[0]
    wn.feed(s, st, fr, stats, reorder_s=10.0)
    fed = wn.streams[(s, st)].fed
    wn.feed(s, st, replace(fr, rate_hz=fr.rate_hz * 2, first_sample=fr.first_sample + fr.n), stats, 10.0)
    assert stats["rate_changed"] == 1 and wn.streams[(s, st)].fed == fed


def test_a_sensor_that_joins_an_open_night_is_counted_not_mixed_in(night):
    _, statuses, frames = night
    left_only = {k: v for k, v in statuses.items() if k == "left-shank"}
    wn, stats = _open(left_only, frames), Counter()
    for s, st, fr in frames:
        wn.feed(s, st, fr, stats, reorder_s=10.0)
    assert stats["sensor_not_in_night"] == sum(1 for s, _, _ in frames if s == "right-shank")
    a = wn.finish()
    assert {c.side for c in a.recording.channels} == {"left"}


class RecordingClient:
    """Stands in for paho's client: records subscriptions, publishes and acknowledgements."""

    def __init__(self) -> None:
        self.subscribed: list = []
        self.published: list[tuple[str, str, bool]] = []
        self.acked: list[int] = []
        self.on_message = self.on_connect = self.on_subscribe = None

    def max_inflight_messages_set(self, n): ...
    def max_queued_messages_set(self, n): ...
    def is_connected(self) -> bool:
        return True

    def subscribe(self, topics):
        self.subscribed += topics

    def publish(self, topic, payload, qos=0, retain=False):
        self.published.append((topic, payload, retain))

        class Info:
            @staticmethod
            def is_published() -> bool:
                return True
        return Info()

    def ack(self, mid, qos):
        self.acked.append(mid)


class Msg:
    def __init__(self, topic: str, payload: bytes, mid: int) -> None:
        self.topic, self.payload, self.mid, self.qos = topic, payload, mid, 1


def test_the_service_subscribes_acks_only_after_storing_and_publishes_through_its_client(tmp_path, influxd):
    services = tmp_path / "services.toml"
    services.write_text(f"[store]\nurl = \"http://127.0.0.1:{influxd.port}\"\ndatabase = \"branches\"\n"
                        f"spool_dir = \"{tmp_path / 'spool'}\"\n"
                        f"[service]\nstate_dir = \"{tmp_path / 'state'}\"\ncheckpoint_frames = 1000\n")
    fake = RecordingClient()
    svc = DetectorService(load_services(services), CFG, client=fake)
    svc._lock_state_dir()
    svc.store.setup()
    try:
        class Flags:
            session_present = False

        class Ok:
            is_failure = False
        svc._on_connect(fake, None, Flags(), Ok(), None)
        assert [t for t, _ in fake.subscribed] == [SENSORS_SUB, CONTROL_SUB]
        sensors, frames = virtual_night(hours=0.05)
        mid = 0
        for vs in sensors:
            mid += 1
            status = Msg(sensor_topic("w-1", vs.sensor, "status"), vs.status().payload(), mid)
            svc._on_message(fake, None, status)
        for s, st, payload, _ in frames:
            mid += 1
            svc._on_message(fake, None, Msg(sensor_topic("w-1", s, st), payload, mid))
        assert fake.acked == []  # nothing acknowledged before it is stored
        svc.flush()
        assert fake.acked == list(range(1, mid + 1))
        acks = [t for t, _, retain in fake.published if t.endswith("/ack") and retain]
        assert sorted(acks) == sorted(sensor_topic("w-1", vs.sensor, "ack") for vs in sensors)
        svc._on_message(fake, None, Msg("nightcramp/v1/w-1/left-shank/ecg", b"", mid + 1))
        svc._on_message(fake, None, Msg("nightcramp/v1/W 1/left-shank/emg", b"", mid + 2))
        assert svc.stats["bad_topic"] == 1 and svc.stats["bad_id"] == 1
        a = svc.close_night("w-1")
        assert a is not None and np.isclose(a.recording.duration_s, 0.05 * 3600, atol=6)
        assert any(t == "nightcramp/v1/w-1/events" and "night_closed" in p for t, p, _ in fake.published)
    finally:
        svc._unlock_state_dir()
        svc.store.close()


def test_a_checkpoint_resumes_and_an_unreadable_one_is_refused_and_reanalysed(tmp_path, influxd, monkeypatch):
    """The checkpoint is versioned plain data: a second service resumes the open night from it; a
    checkpoint of another state version (or an old pickle) is set aside unread, and the night it
    held is re-analysed from the stored samples when its sensor sends again."""
    services = tmp_path / "services.toml"
    services.write_text(f"[store]\nurl = \"http://127.0.0.1:{influxd.port}\"\ndatabase = \"resume\"\n"
                        f"spool_dir = \"{tmp_path / 'spool'}\"\n"
                        f"[service]\nstate_dir = \"{tmp_path / 'state'}\"\ncheckpoint_frames = 100000\n")
    fake = RecordingClient()

    def service():
        svc = DetectorService(load_services(services), CFG, client=fake)
        svc.store.setup()
        return svc

    sensors, frames = virtual_night(hours=0.05)
    a = service()
    try:
        for k, vs in enumerate(sensors):
            a._on_message(fake, None, Msg(sensor_topic("w-1", vs.sensor, "status"), vs.status().payload(), k))
        for k, (s, st, payload, _) in enumerate(frames[:-1]):
            a._on_message(fake, None, Msg(sensor_topic("w-1", s, st), payload, 100 + k))
        a.flush()
        a._checkpoint()
        fed = {key: s.fed for key, s in a.nights["w-1"].streams.items()}
    finally:
        a.store.close()
    (tmp_path / "state" / "nights.pickle").write_bytes(b"\x80\x04 an old pickled checkpoint")

    b = service()
    try:
        b._restore()
        assert {key: s.fed for key, s in b.nights["w-1"].streams.items()} == fed
        assert (tmp_path / "state" / "nights.pickle.refused").exists()
        assert not (tmp_path / "state" / "nights.pickle").exists()
        monkeypatch.setattr("detector.engine.state.STATE_VERSION", STATE_VERSION + 1)  # a newer detector
        b._checkpoint()
        monkeypatch.undo()
    finally:
        b.store.close()

    c = service()
    try:
        c._restore()
        assert c.nights == {} and c.stats["checkpoint_refused"] == 1
        assert (tmp_path / "state" / "nights.state.refused").exists()
        s, st, payload, _ = frames[-1]
        for k, vs in enumerate(sensors):
            c._on_message(fake, None, Msg(sensor_topic("w-1", vs.sensor, "status"), vs.status().payload(), k))
        c._on_message(fake, None, Msg(sensor_topic("w-1", s, st), payload, 10**6))
        assert c.stats["nights_reopened"] == 1
        night = c.nights["w-1"]
        assert sum(x.fed for x in night.streams.values()) >= sum(fed.values())
    finally:
        c.store.close()


class _LandedThenTimedOut:
    """JetStream as seen through a stream leader dying: the first record update lands but its
    reply is lost (a timeout); the retry then finds the record already moved on."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {"p7/10-wk-1": b"old"}
        self.record = {"seq": 10, "object": "p7/10-wk-1", "owner": "wk-1"}
        self.revision = 5
        self.updates = 0

    def call(self, result, timeout=None):
        kind, *args = result
        if kind == "put":
            self.objects[args[0]] = args[1]
        elif kind == "delete":
            self.objects.pop(args[0], None)
        elif kind == "update":
            body, last = args
            from nats.js.errors import KeyWrongLastSequenceError
            if last != self.revision:
                raise KeyWrongLastSequenceError()
            self.record, self.revision = json.loads(body), self.revision + 1
            self.updates += 1
            if self.updates == 1:
                raise TimeoutError("nats: timeout")
            return self.revision
        elif kind == "get":
            return type("Entry", (), {"value": json.dumps(self.record).encode(), "revision": self.revision})()
        return None


def test_a_commit_whose_reply_was_lost_keeps_its_checkpoint(monkeypatch):
    """A checkpoint commit whose record update landed although its reply timed out (the stream
    leader died) is committed: its checkpoint object stays, nothing is reported as fenced. It had
    been deleted as 'taken over', leaving the record naming a missing object, and no worker could
    take the partition again."""
    from detector.service import workers as W

    js = _LandedThenTimedOut()
    w = W.Worker.__new__(W.Worker)
    w.id, w.stats = "wk-1", Counter()
    w._bus = js
    w.objects = type("Objects", (), {"put": staticmethod(lambda n, d: ("put", n, d)),
                                     "delete": staticmethod(lambda n: ("delete", n))})()
    w.records = type("Records", (), {"update": staticmethod(lambda k, b, last: ("update", b, last)),
                                     "get": staticmethod(lambda k: ("get",))})()
    monkeypatch.setattr(W.time, "sleep", lambda s: None)
    p = W.Partition(7, revision=5, seq=20, committed_seq=10, lease_rev=1, checkpoint="p7/10-wk-1")
    w.commit(p, b"state at 20")
    assert js.record["object"] == "p7/20-wk-1" and js.objects["p7/20-wk-1"] == b"state at 20"
    assert "p7/10-wk-1" not in js.objects  # the superseded checkpoint is cleaned up
    assert p.checkpoint == "p7/20-wk-1" and p.revision == js.revision and p.committed_seq == 20
    # Another worker's newer record is still a fence, and the orphaned object is removed.
    js.record, js.revision = {"seq": 30, "object": "p7/30-wk-2", "owner": "wk-2"}, 9
    p.seq = 40
    with pytest.raises(W.Fenced):
        w.commit(p, b"state at 40")
    assert "p7/40-wk-1" not in js.objects
