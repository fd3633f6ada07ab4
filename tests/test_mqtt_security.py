"""The broker as the stack sets it up, against strangers (a real Mosquitto with the stack's
password file, ACL and TLS listener): no anonymous clients, each collector only under its own
wearer, no reading other wearers, control only from the operator, TLS with the CA only."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from dashboard import broker_auth
from dashboard.services import start_mosquitto
from detector.service.settings import load_services
from detector.store.influx import InfluxStore
from ingest.wire.mqtt_client import DETECTOR, OPERATOR, read_secret, secret_path
from tests.live_helpers import close_night_and_wait, start_detector


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mqttsec")
    cdir = broker_auth.ensure(tmp / "secrets")
    for w in ("w-a", "w-b"):
        broker_auth.add_account(cdir, w)
    server = start_mosquitto(tmp / "mosquitto", credentials_dir=cdir)
    yield server, cdir
    server.stop()


class Client:
    """A connected MQTT v5 client that records CONNACK, PUBACK reason codes and messages."""

    def __init__(self, port: int, user: str | None = None, password: str | None = None, *,
                 ca: str | None = None, tls_port: int | None = None) -> None:
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if user is not None:
            self.c.username_pw_set(user, password)
        if ca is not None:
            self.c.tls_set(ca_certs=ca)
        self.connack: mqtt.ReasonCode | None = None
        self.pubacks: dict[int, mqtt.ReasonCode] = {}
        self.messages: list[tuple[str, bytes]] = []
        self.subacks: list[list] = []
        self._ev = threading.Event()
        self.c.on_connect = lambda c, u, f, rc, p: (setattr(self, "connack", rc), self._ev.set())
        self.c.on_publish = lambda c, u, mid, rc, p: self.pubacks.__setitem__(mid, rc)
        self.c.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.append(rcs)
        self.c.connect("127.0.0.1", tls_port or port, properties=Properties(PacketTypes.CONNECT))
        self.c.loop_start()
        assert self._ev.wait(10), "no CONNACK"

    def publish(self, topic: str, payload: bytes = b"x") -> mqtt.ReasonCode:
        mid = self.c.publish(topic, payload, qos=1).mid
        _until(lambda: mid in self.pubacks)
        return self.pubacks[mid]

    def subscribe(self, topic: str) -> None:
        n = len(self.subacks)
        self.c.subscribe(topic, qos=1)
        _until(lambda: len(self.subacks) > n)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def _until(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def _secret(cdir, account: str) -> str:
    return read_secret(secret_path(cdir, account))


def test_anonymous_and_wrong_passwords_are_refused(broker):
    server, _ = broker
    for user, pw in ((None, None), ("w-a", "wrong"), (DETECTOR, "wrong"), ("nobody", "x")):
        c = Client(server.port, user, pw)
        assert c.connack.is_failure and c.connack.value in (0x86, 0x87, 0x8C), (user, c.connack)
        c.close()


def test_a_collector_publishes_only_under_its_own_wearer(broker):
    server, cdir = broker
    det = Client(server.port, DETECTOR, _secret(cdir, DETECTOR))
    det.subscribe("nightcramp/v1/+/+/+")
    a = Client(server.port, "w-a", _secret(cdir, "w-a"))
    try:
        assert not a.connack.is_failure
        assert not a.publish("nightcramp/v1/w-a/left-shank/emg", b"own").is_failure
        refused = [a.publish(t, b"forged") for t in ("nightcramp/v1/w-b/left-shank/emg",
                                                       "nightcramp/v1/w-b/left-shank/status",
                                                       "nightcramp/v1/w-a/control",
                                                       "nightcramp/v1/w-b/events")]
        assert all(rc.value == 0x87 for rc in refused), refused  # not authorized
        _until(lambda: any(p == b"own" for _, p in det.messages))
        a.publish("nightcramp/v1/w-a/left-shank/acc", b"marker")
        _until(lambda: any(p == b"marker" for _, p in det.messages))
        assert not [t for t, p in det.messages if p == b"forged"], det.messages
    finally:
        a.close()
        det.close()


def test_a_wearer_cannot_read_another_wearer_and_only_the_operator_controls(broker):
    server, cdir = broker
    a = Client(server.port, "w-a", _secret(cdir, "w-a"))
    b = Client(server.port, "w-b", _secret(cdir, "w-b"))
    op = Client(server.port, OPERATOR, _secret(cdir, OPERATOR))
    det = Client(server.port, DETECTOR, _secret(cdir, DETECTOR))
    try:
        a.subscribe("nightcramp/v1/#")
        det.subscribe("nightcramp/v1/+/control")
        det.subscribe("nightcramp/v1/+/+/+")
        b.publish("nightcramp/v1/w-b/right-shank/emg", b"b-frame")
        assert not op.publish("nightcramp/v1/w-b/control", b'{"cmd": "close-night"}').is_failure
        assert b.publish("nightcramp/v1/w-b/control", b'{"cmd": "close-night"}').value == 0x87
        assert not det.publish("nightcramp/v1/w-b/events", b"event").is_failure
        _until(lambda: {p for _, p in det.messages} >= {b"b-frame", b'{"cmd": "close-night"}'})
        a.publish("nightcramp/v1/w-a/right-shank/emg", b"a-own")
        _until(lambda: any(p == b"a-own" for _, p in det.messages))
        assert not a.messages, a.messages  # nothing of w-b's, not even its events
    finally:
        for c in (a, b, op, det):
            c.close()


def test_tls_works_with_the_stack_ca_and_fails_without(broker):
    server, cdir = broker
    good = Client(server.port, "w-a", _secret(cdir, "w-a"), ca=str(cdir / "ca.pem"), tls_port=server.tls_port)
    assert not good.connack.is_failure
    assert not good.publish("nightcramp/v1/w-a/left-shank/emg", b"over tls").is_failure
    good.close()
    # Without the stack's CA (the system's CAs only), the server certificate is not trusted.
    ctx = ssl.create_default_context()
    with socket.create_connection(("127.0.0.1", server.tls_port), timeout=10) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    with_ca = ssl.create_default_context(cafile=str(cdir / "ca.pem"))
    with socket.create_connection(("127.0.0.1", server.tls_port), timeout=10) as raw:
        with with_ca.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_secret_files_are_private_and_never_on_a_command_line(broker, tmp_path):
    _, cdir = broker
    for f in cdir.glob("*.secret"):
        assert f.stat().st_mode & 0o777 == 0o600, f
    assert cdir.stat().st_mode & 0o777 == 0o700
    hashed = (cdir / "mqtt.passwd").read_text()
    assert _secret(cdir, "w-a") not in hashed and "w-a:$7$" in hashed
    leaky = tmp_path / "mqtt-x.secret"
    leaky.write_text("s3cret")
    leaky.chmod(0o644)
    with pytest.raises(OSError, match="readable by other users"):
        read_secret(leaky)


def test_the_live_pipeline_works_with_accounts_and_a_forger_stores_nothing(broker, influxd, cli, tmp_path):
    """The detector (_detector), a simulated collector (its wearer's account) and the night-close
    command (_operator) through the ACL; frames forged by another wearer's account are refused by
    the broker and never stored."""
    server, cdir = broker
    broker_auth.add_account(cdir, "sim-1")
    broker_auth.reload(server.pid)
    services = tmp_path / "services.toml"
    services.write_text(f"[mqtt]\nport = {server.port}\ntls_port = {server.tls_port}\n"
                        f"client_id = \"det-sec\"\ncredentials_dir = \"{cdir}\"\n"
                        f"[store]\nurl = \"http://127.0.0.1:{influxd.port}\"\ndatabase = \"mqtt_sec\"\n"
                        f"spool_dir = \"{tmp_path / 'spool'}\"\n"
                        f"[service]\nnight_close_silence_s = 3600\nstate_dir = \"{tmp_path / 'state'}\"\n"
                        "reorder_s = 3600\n")
    det = start_detector(cli, services, tmp_path / "detector.log")
    store = InfluxStore(load_services(services).store)
    forger = Client(server.port, "w-a", _secret(cdir, "w-a"))
    try:
        status = json.dumps({"state": "online", "channels": {"emg": ["EMG L-Gastroc"]}, "fs": {"emg": 250.0}})
        assert forger.publish("nightcramp/v1/w-b/left-shank/status", status.encode()).value == 0x87
        assert forger.publish("nightcramp/v1/sim-1/left-shank/emg", b"NC" + b"\x00" * 60).value == 0x87
        assert forger.publish("nightcramp/v1/sim-1/control", b'{"cmd": "close-night"}').value == 0x87
        night = ["--hours", "0.1", "--seed", "3", "--fs-emg", "250", "--fs-acc", "25", "--speed", "600"]
        r = subprocess.run([cli, "simulate", str(tmp_path / "truth"), "--live", *night,
                            "--services", str(services)], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        sent = json.loads(r.stdout.strip().splitlines()[-1])
        close_night_and_wait(cli, services, store)
        assert store.nights("sim-1")
        stored = store.count_samples("sim-1", "emg") + store.count_samples("sim-1", "acc")
        assert stored == sent["samples"]  # the forged frame is not among them
        assert store.nights("w-b") == [] and store.count_samples("w-b", "emg") == 0
    finally:
        forger.close()
        store.close()
        det.send_signal(signal.SIGTERM)
        det.wait(30)
