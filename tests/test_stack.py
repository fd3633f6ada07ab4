"""`nightcramp stack up|status|down` as a user runs it: three real servers on loopback, stopped
again; a taken port is reported in one line and nothing is left running."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time

import httpx
import paho.mqtt.client as mqtt

from dashboard.services import free_port, free_port_block, wait_until
from detector.service.settings import load_services
from tests.live_helpers import until_answered


def _services(tmp_path, dash_port: int):
    p = tmp_path / "services.toml"
    p.write_text(f"[mqtt]\nport = {free_port()}\ntls_port = {free_port()}\n"
                 f"credentials_dir = \"{tmp_path / 'secrets'}\"\n"
                 f"[store]\nurl = \"http://127.0.0.1:{free_port()}\"\n"
                 f"credentials_dir = \"{tmp_path / 'secrets'}\"\n"
                 f"[dashboard]\nport = {dash_port}\nusers_db = \"{tmp_path / 'users.sqlite'}\"\n"
                 f"[stack]\ndata_dir = \"{tmp_path / 'var'}\"\n")
    return p


def run(cli, *args):
    return subprocess.run([cli, *args], capture_output=True, text=True, timeout=120)


def test_stack_up_status_down(tmp_path, cli):
    port = free_port()
    sv = _services(tmp_path, port)
    try:
        r = run(cli, "stack", "up", "--services", str(sv))
        assert r.returncode == 0, r.stderr
        assert all(name in r.stdout for name in ("mosquitto", "influxd", "dashboard"))
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
        assert health == {"ok": True, "influxdb": True}
        assert run(cli, "stack", "status", "--services", str(sv)).stdout.count("running") == 3
        # The broker refuses strangers; accounts are made by the stack and by users add-sensor.
        mq = load_services(sv).mqtt
        anon = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        refused = []
        anon.on_connect = lambda c, u, f, rc, p: refused.append(rc)
        anon.connect("127.0.0.1", mq.port)
        anon.loop_start()
        deadline = time.monotonic() + 10
        while not refused and time.monotonic() < deadline:
            time.sleep(0.02)
        anon.loop_stop()
        anon.disconnect()
        assert refused and refused[0].is_failure
        # InfluxDB as well: strangers get 401, the dashboard's own user reads.
        st = load_services(sv).store
        assert httpx.get(f"{st.url}/query", params={"q": "SHOW DATABASES"}).status_code == 401
        assert (tmp_path / "secrets" / "influx-nc_dashboard.secret").stat().st_mode & 0o777 == 0o600
        r = run(cli, "users", "add-sensor", "w-7", "--services", str(sv))
        assert r.returncode == 0 and "mqtt-w-7.secret" in r.stdout and "reloaded" in r.stdout, r.stderr
        secret = (tmp_path / "secrets" / "mqtt-w-7.secret")
        assert secret.stat().st_mode & 0o777 == 0o600 and secret.read_text().strip() not in r.stdout
    finally:
        down = run(cli, "stack", "down", "--services", str(sv))
    assert down.returncode == 0 and "mosquitto, influxd, dashboard" in down.stdout
    assert "nothing running" in run(cli, "stack", "status", "--services", str(sv)).stdout


def test_a_taken_dashboard_port_is_reported_and_nothing_is_left_running(tmp_path, cli):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        sv = _services(tmp_path, taken.getsockname()[1])
        try:
            r = run(cli, "stack", "up", "--services", str(sv))
            assert r.returncode == 2 and "is in use" in r.stderr and "Traceback" not in r.stderr
        finally:
            down = run(cli, "stack", "down", "--services", str(sv))
    assert "mosquitto, influxd" in down.stdout  # what did start is found and stopped


def test_a_taken_nats_cluster_port_is_named_before_any_member_starts(tmp_path, cli):
    """``[nats] servers`` gives each member's client port; its cluster (+1000) and monitoring
    (+2000) ports follow. One of those taken is said at once, by port and role: before, the
    member died, and the first member waited 30 s for a route to it and was blamed."""
    import json

    sv = _services(tmp_path, free_port())
    ports = [free_port_block() for _ in range(3)]
    sv.write_text(sv.read_text() + "[transport]\nkind = \"nats\"\n[nats]\nservers = "
                  + json.dumps([f"nats://127.0.0.1:{p}" for p in ports]) + "\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports[2] + 2000))
        taken.listen()
        try:
            r = run(cli, "stack", "up", "--cluster", "3", "--services", str(sv))
            assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
            said = (f"port {ports[2] + 2000}, the monitoring (client + 2000) port of the NATS member "
                    f"on {ports[2]}")
            assert said in r.stderr, r.stderr
        finally:
            down = run(cli, "stack", "down", "--services", str(sv))
    assert "nats-n" not in down.stdout and "mosquitto, influxd" in down.stdout


def test_a_cluster_member_that_dies_is_named_at_once_with_its_log(tmp_path):
    """Members are waited for together: one that exits fails the start at once with its own log,
    not after another member's time-out."""
    from dashboard.services import Server, ServiceError, _wait_all

    log_ok, log_dead = tmp_path / "ok.log", tmp_path / "dead.log"
    with log_ok.open("wb") as a, log_dead.open("wb") as b:
        alive = subprocess.Popen(["sleep", "300"], stdout=a, stderr=a)
        why = "listen tcp 127.0.0.1:9: bind: address already in use"
        dead = subprocess.Popen(["sh", "-c", f"echo '{why}' >&2; exit 1"], stdout=b, stderr=b)
    servers = [Server("nats-server n1", 1, alive, log_ok), Server("nats-server n3", 3, dead, log_dead)]
    t0 = time.monotonic()
    try:
        try:
            _wait_all([(s, lambda: False) for s in servers], timeout=600)
            raise AssertionError("a dead member went unnoticed")
        except ServiceError as exc:
            said = str(exc)
        assert "nats-server n3 exited with code 1" in said and "address already in use" in said, said
        assert time.monotonic() - t0 < 300  # not the time-out (600 s): the death itself
        # and one that never answers is named with its log's end when the time is up
        try:
            _wait_all([(servers[0], lambda: False)], timeout=0.3)
            raise AssertionError("no time-out")
        except ServiceError as exc:
            assert "nats-server n1 did not answer on 127.0.0.1:1 within 0.3 s; its log ends" in str(exc)
        assert alive.poll() is not None  # stopped on its time-out
    finally:
        for s in servers:
            s.stop()


def test_stack_up_cluster_starts_a_nats_jetstream_cluster_for_workers(tmp_path, cli):
    import asyncio
    import json

    import nats

    from ingest.wire.mqtt_client import DETECTOR, read_secret, secret_path
    from ingest.wire.nats_bus import login

    sv = _services(tmp_path, free_port())
    ports = [free_port_block() for _ in range(3)]  # client, +1000 cluster, +2000 monitoring
    sv.write_text(sv.read_text() + "[transport]\nkind = \"nats\"\n[nats]\nservers = "
                  + json.dumps([f"nats://127.0.0.1:{p}" for p in ports]) + "\n")
    try:
        r = run(cli, "stack", "up", "--cluster", "3", "--services", str(sv))
        assert r.returncode == 0, r.stderr
        assert all(f"nats-n{i}" in r.stdout for i in (1, 2, 3))
        status = run(cli, "stack", "status", "--services", str(sv)).stdout
        assert status.count("running") == 6, status

        secrets = tmp_path / "secrets"

        def hello(port: int, user: str, password: str) -> bytes:
            """The server's answer to a login (INFO in clear, then TLS against the stack's CA)."""
            ctx = ssl.create_default_context(cafile=str(secrets / "ca.pem"))
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                info = b""
                while not info.endswith(b"\n"):
                    info += raw.recv(1)
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as c:
                    login_msg = json.dumps({"verbose": False, "user": user, "pass": password}).encode()
                    c.sendall(b"CONNECT " + login_msg + b"\r\nPING\r\n")
                    f = c.makefile("rb")
                    line = f.readline()
                    f.close()
                    return line

        async def cluster_size(account: str) -> int:
            nc = await nats.connect(f"nats://127.0.0.1:{ports[1]}", connect_timeout=5,
                                    **login(secrets, account))
            try:
                info = await nc.jetstream(timeout=30).account_info()  # JetStream answers
                assert info is not None
                return len(nc._server_pool)  # the client learnt every member
            finally:
                await nc.close()

        # the broker's accounts are the cluster's, over TLS only: the detector's logs in, a stranger
        # does not, and a client without TLS is turned away before it can send a password
        with socket.create_connection(("127.0.0.1", ports[0]), timeout=10) as raw:
            assert json.loads(raw.recv(4096).split(b"\r\n")[0][5:])["tls_required"]
        assert asyncio.run(cluster_size(DETECTOR)) == 3
        assert b"Authorization Violation" in hello(ports[0], "w-9", "guess")
        # a sensor account added while the cluster runs: every member reloads and lets it in
        r = run(cli, "users", "add-sensor", "w-9", "--services", str(sv))
        assert r.returncode == 0 and "3 nats-servers" in r.stdout, r.stdout + r.stderr

        w9 = read_secret(secret_path(secrets, "w-9"))
        wait_until(lambda: all(b"PONG" in hello(p, "w-9", w9) for p in ports), 30,
                   "every member reloaded its accounts", every=0.2)

        async def publish_as_sensor() -> None:
            from ingest.wire import jetstream
            from ingest.wire.topics import sensor_topic

            nc = await nats.connect(f"nats://127.0.0.1:{ports[2]}", connect_timeout=5,
                                    **login(secrets, "w-9"))
            try:
                det = await nats.connect(f"nats://127.0.0.1:{ports[0]}", **login(secrets, DETECTOR))
                djs = det.jetstream(timeout=15)
                await until_answered(lambda: jetstream.ensure_frames_stream(djs, replicas=3),
                                     "the frames stream made")
                await det.close()
                ack = await nc.jetstream(timeout=30).publish(
                    jetstream.subject(sensor_topic("w-9", "left-shank", "status")), b"{}", timeout=10)
                assert ack.stream == jetstream.STREAM
            finally:
                await nc.close()

        asyncio.run(publish_as_sensor())
        # the operator's command reaches the stream over TLS (no worker runs: --force)
        r = run(cli, "night", "close", "--wearer", "w-9", "--force", "--services", str(sv))
        assert r.returncode == 0 and "asked the detector workers" in r.stdout, r.stdout + r.stderr
    finally:
        down = run(cli, "stack", "down", "--services", str(sv))
    assert down.returncode == 0 and "nats-n1" in down.stdout and "nats-n3" in down.stdout
    assert "nothing running" in run(cli, "stack", "status", "--services", str(sv)).stdout


def test_free_ports_are_never_handed_out_twice():
    # The kernel reuses a closed probe's ephemeral port; Mosquitto's plain and TLS listeners were
    # once both given 46691 and the broker refused to start ("Address already in use").
    ports = [free_port() for _ in range(2000)]
    assert len(set(ports)) == len(ports)
