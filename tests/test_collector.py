"""The BLE collector with the stand-in radio (real packet bytes through bleak) and a real Mosquitto."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt

from dashboard.services import free_port, start_mosquitto
from detector.service.settings import load_services
from detector.store.influx import InfluxStore
from ingest.ble.collector import Collector, Publisher, SensorSpec, connect_replay
from ingest.ble.outbox import Outbox
from ingest.ble.profile import decode_v1, load_profile
from ingest.ble.replay import read_capture
from ingest.wire.frames import decode
from tests.live_helpers import start_detector, wait_for_line

CAPTURE = Path(__file__).parent / "data" / "ble-capture-left-shank.txt"
PROFILE = load_profile("nightcramp-leg-v1")
SPEC = SensorSpec("w-7", "left-shank", "AA:BB:CC:DD:EE:01", "L")


def factory(**replay):
    return connect_replay(CAPTURE, PROFILE, **replay)


class Sink:
    """A real MQTT subscriber recording what arrives for the sensor; ready once the broker has
    granted the subscription."""

    def __init__(self, port: int) -> None:
        self.msgs: list[mqtt.MQTTMessage] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        subscribed = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.c.on_message = self._on_message
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe("nightcramp/v1/w-7/#", qos=1)
        self.c.on_subscribe = lambda c, u, mid, rcs, p=None: subscribed.set()
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        assert subscribed.wait(30), "the broker never granted the test subscription"

    def _on_message(self, c, u, m) -> None:
        with self._arrived:
            self.msgs.append(m)
            self._arrived.notify_all()

    def frames(self, stream: str):
        with self._lock:
            msgs = list(self.msgs)
        return [decode(m.payload) for m in msgs if m.topic.endswith("/" + stream)]

    def wait_frames(self, emg: int, acc: int, timeout: float = 60.0) -> tuple[int, int]:
        """Wait until at least ``emg`` and ``acc`` frames have arrived (or the timeout);
        the counts seen."""
        def counts() -> tuple[int, int]:
            return (sum(m.topic.endswith("/emg") for m in self.msgs),
                    sum(m.topic.endswith("/acc") for m in self.msgs))
        with self._arrived:
            self._arrived.wait_for(lambda: counts()[0] >= emg and counts()[1] >= acc, timeout)
            return counts()

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


CAPTURE_PACKETS = 299 + 150  # EMG and accelerometer notifications in the capture


def _collect(outbox, until, timeout: float = 120.0, **replay) -> Collector:
    """Run the collector on the replayed capture until ``until(collector)`` holds (a condition,
    not a wall-clock guess: a starved machine replays slower), then stop it."""
    col = Collector(SPEC, PROFILE, outbox, factory(**replay), silence_s=0.5)

    async def main():
        stop = asyncio.Event()
        task = asyncio.create_task(col.run(stop))
        deadline = time.monotonic() + timeout
        while not until(col) and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.02)
        stop.set()
        await task

    asyncio.run(main())
    assert until(col), f"collector condition not met within {timeout:g} s: {col.stats}"
    return col


def _all_packets(col: Collector) -> bool:
    return col.stats["packets"] >= CAPTURE_PACKETS


def _publisher(outbox, port):
    p = Publisher(outbox, "127.0.0.1", port, f"col-{time.time_ns()}",
                  "nightcramp/v1/w-7/left-shank/status", json.dumps({"state": "offline"}))
    p.start()
    return p


def test_capture_reaches_mqtt_as_frames_with_the_gap_kept(tmp_path, mosquitto):
    sink = Sink(mosquitto.port)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    pub = _publisher(outbox, mosquitto.port)
    col = _collect(outbox, _all_packets, speed=100)
    assert pub.drain(30), "every frame acknowledged and removed from the outbox"
    sink.wait_frames(299, 150)
    pub.stop()
    sink.close()
    emg, acc = sink.frames("emg"), sink.frames("acc")
    assert (len(emg), len(acc)) == (299, 150)
    steps = np.diff([f.first_sample for f in emg])
    assert sorted(set(steps.tolist())) == [100, 200]  # the lost packet is 100 missing samples
    assert col.stats["lost_packets"] == 1
    # the collector set the rates and started streaming through the control characteristic
    assert col.client._backend.writes == [(PROFILE.control_uuid, b"\x03\xe8\x03\x32\x00"),
                                          (PROFILE.control_uuid, b"\x01")]
    sent = read_capture(CAPTURE)["emg"]
    np.testing.assert_array_equal(np.concatenate([f.raw for f in emg]),
                                  np.concatenate([decode_v1(p).raw for p in sent]))
    status = [json.loads(m.payload) for m in sink.msgs if m.topic.endswith("/status")]
    assert status[0]["state"] == "online" and status[0]["battery_pct"] == 87
    assert status[0]["channels"]["acc"] == ["ACC L-Shank X", "ACC L-Shank Y", "ACC L-Shank Z"]


def test_collector_killed_with_a_full_outbox_loses_nothing(tmp_path, mosquitto):
    path = tmp_path / "outbox.sqlite"
    outbox = Outbox(path)
    down = _publisher(outbox, free_port())  # no broker there: frames stay in the outbox
    _collect(outbox, _all_packets, speed=100)
    down.stop()
    outbox.close()  # the collector process ends here, its outbox on disk
    assert len(Outbox(path)) == 299 + 150 + 2  # frames and two status messages
    sink = Sink(mosquitto.port)
    again = Outbox(path)
    pub = _publisher(again, mosquitto.port)  # restarted, the broker reachable now
    assert pub.drain(30)
    sink.wait_frames(299, 150)
    pub.stop()
    sink.close()
    assert (len(sink.frames("emg")), len(sink.frames("acc"))) == (299, 150)


def test_silent_link_triggers_the_watchdog_and_a_reconnect(tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite")
    col = _collect(outbox, lambda c: c.stats["watchdog"] >= 1 and c.stats["reconnects"] >= 1,
                   speed=100, silence_after_s=5.0)
    assert col.stats["watchdog"] >= 1 and col.stats["reconnects"] >= 1


def _collect_services(tmp_path, mqtt_port: int, influx_port: int) -> Path:
    services = tmp_path / "services.toml"
    services.write_text(f"[mqtt]\nport = {mqtt_port}\nclient_id = \"det-{tmp_path.name}\"\n"
                        f"[store]\nurl = \"http://127.0.0.1:{influx_port}\"\n"
                        f"database = \"col_{tmp_path.name[-8:]}\"\n"
                        f"spool_dir = \"{tmp_path / 'spool'}\"\n"
                        f"[service]\nstate_dir = \"{tmp_path / 'state'}\"\ncheckpoint_s = 0.5\ntick_s = 0.2\n"
                        f"night_close_silence_s = 3600\n[stack]\ndata_dir = \"{tmp_path}\"\n")
    return services


def _collect_cmd(cli, services, seconds: float = 2.0, speed: float = 50.0) -> subprocess.Popen:
    return subprocess.Popen([cli, "collect", "--wearer", "w-7", "--sensor", "left-shank", "--address",
                             "AA:BB:CC:DD:EE:01", "--side", "L", "--replay", str(CAPTURE),
                             "--speed", str(speed), "--seconds", str(seconds), "--resend-s", "2",
                             "--services", str(services)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _capture_samples(stream: str) -> int:
    """Samples (x channels) of a stream in the capture: what must be stored, each once."""
    return sum(decode_v1(p).raw.size for p in read_capture(CAPTURE)[stream])


def test_collect_command_replays_a_capture_and_frames_leave_once_stored(tmp_path, mosquitto, influxd, cli):
    """End to end: the collector lets go of a frame only when the detector has stored it."""
    services = _collect_services(tmp_path, mosquitto.port, influxd.port)
    det = start_detector(cli, services, tmp_path / "detector.log")
    store = InfluxStore(load_services(services).store)
    sink = Sink(mosquitto.port)
    try:
        col = _collect_cmd(cli, services)
        out_text, err = col.communicate(timeout=120)
        assert col.returncode == 0, err
        out = json.loads(out_text.strip().splitlines()[-1])
        assert out["stats"]["packets"] == 449 and out["stats"]["lost_packets"] == 1
        assert out["waiting"] == 0 and out["confirmed"] == 449  # every frame confirmed stored
        assert (len(sink.frames("emg")), len(sink.frames("acc"))) >= (299, 150)
        acks = [m for m in sink.msgs if m.topic.endswith("/ack")]
        assert acks and "emg" in json.loads(acks[-1].payload)["stored"]
        assert store.count_samples("w-7", "emg") == _capture_samples("emg")
    finally:
        sink.close()
        store.close()
        det.send_signal(signal.SIGTERM)
        det.wait(30)


def test_a_broker_killed_mid_night_loses_no_frame_end_to_end(tmp_path, influxd, cli):
    """Mosquitto SIGKILLed while frames flow (it loses what it acknowledged but had not saved):
    the collector sends every unconfirmed frame again and the detector stores each once."""
    mosq = start_mosquitto(tmp_path / "mosquitto")
    services = _collect_services(tmp_path, mosq.port, influxd.port)
    det = start_detector(cli, services, tmp_path / "detector.log")
    store = InfluxStore(load_services(services).store)
    try:
        col = _collect_cmd(cli, services, seconds=9.0, speed=4.0)  # the capture once (7.5 s)
        wait_for_line(tmp_path / "detector.log", "night opened for w-7", proc=det)
        mosq.stop(signal.SIGKILL)  # no time to save anything
        mosq = start_mosquitto(tmp_path / "mosquitto", mosq.port)
        out_text, err = col.communicate(timeout=180)
        assert col.returncode == 0, err
        out = json.loads(out_text.strip().splitlines()[-1])
        assert out["waiting"] == 0 and out["broker_connects"] >= 2, out  # it saw the broker go
        assert out["stats"]["packets"] == 449, out
        assert store.count_samples("w-7", "emg") == _capture_samples("emg"), (out, err[-2000:])
        assert store.count_samples("w-7", "acc") == _capture_samples("acc")
    finally:
        store.close()
        det.send_signal(signal.SIGTERM)
        det.wait(30)
        mosq.stop()
