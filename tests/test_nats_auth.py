"""Who may do what on the NATS cluster: a real nats-server started with the accounts of a
credentials directory (dashboard.nats_auth), TLS only. A stranger is refused; a collector publishes only its
own wearer's frames and reads nothing else; the operator closes a night but reads no frame; an
account added later works after the servers reload."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl

import pytest

from dashboard import broker_auth, nats_auth
from dashboard.services import start_nats_cluster, wait_until
from ingest.wire import jetstream
from ingest.wire.mqtt_client import DETECTOR, OPERATOR, read_secret, secret_path
from ingest.wire.nats_bus import login
from ingest.wire.topics import sensor_topic, wearer_topic

pytestmark = pytest.mark.scale


@pytest.fixture()
def secured(tmp_path):
    cdir = tmp_path / "secrets"
    broker_auth.ensure(cdir)
    broker_auth.add_account(cdir, "w-1")
    nodes = start_nats_cluster(tmp_path / "nats", 1, accounts=cdir)
    yield nodes[0], cdir
    nodes[0].stop()


async def _connect(node, cdir, account: str, password: str | None = None):
    import nats

    kw = login(cdir, account)
    if password is not None:
        kw["password"] = password
    errors: list[Exception] = []

    async def on_error(e: Exception) -> None:
        errors.append(e)

    nc = await nats.connect(node.url, connect_timeout=3, allow_reconnect=False, error_cb=on_error, **kw)
    return nc, errors


def _hello(node, creds: dict, cdir) -> str:
    """What the server answers a client that logs in with ``creds`` (the protocol's bytes: INFO
    in clear, then TLS checked against the stack's CA, then CONNECT)."""
    ctx = ssl.create_default_context(cafile=str(cdir / "ca.pem"))
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as raw:
        info = b""
        while not info.endswith(b"\n"):
            info += raw.recv(1)
        assert info.startswith(b"INFO ") and json.loads(info[5:])["tls_required"]
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(b"CONNECT " + json.dumps({"verbose": False, "pedantic": False, **creds}).encode()
                      + b"\r\nPING\r\n")
            f = s.makefile("rb")
            line = f.readline().decode()
            f.close()
            return line


def _frame_subject(wearer: str) -> str:
    return jetstream.subject(sensor_topic(wearer, "left-shank", "status"))


def test_only_known_accounts_connect_and_each_does_only_its_part(secured):
    node, cdir = secured

    async def main() -> None:
        from nats.errors import NoRespondersError
        from nats.errors import TimeoutError as NatsTimeout

        # nobody, and a wrong password, are refused
        assert "Authorization Violation" in _hello(node, {}, cdir)
        assert "Authorization Violation" in _hello(node, {"user": "w-1", "pass": "not-the-secret"}, cdir)
        assert "PONG" in _hello(node, {"user": "w-1", "pass": read_secret(secret_path(cdir, "w-1"))}, cdir)

        det, _ = await _connect(node, cdir, DETECTOR)
        js = det.jetstream(timeout=30)
        await jetstream.ensure_frames_stream(js, replicas=1)
        sub = await det.subscribe(jetstream.partition_subject("*") + "")  # what a detector reads

        # the collector publishes its own wearer's frames and they are stored
        col, col_errors = await _connect(node, cdir, "w-1")
        cjs = col.jetstream()
        ack = await cjs.publish(_frame_subject("w-1"), b'{"state": "online"}', timeout=5)
        assert ack.stream == jetstream.STREAM
        # ... but not another wearer's, nor a command: no acknowledgement, a permission error
        for subj in (_frame_subject("w-2"), jetstream.subject(wearer_topic("w-1", "control"))):
            with pytest.raises((NatsTimeout, NoRespondersError, asyncio.TimeoutError)):
                await cjs.publish(subj, b"{}", timeout=1)
        # ... and it reads nothing: neither the frames nor the detector's inboxes
        for subj in ("nightcramp.>", "_INBOX.>", "$JS.API.>"):
            await col.subscribe(subj)
        await col.flush()
        await asyncio.sleep(0.2)  # the server's -ERR arrives asynchronously after the flush
        denied = " ".join(str(e) for e in col_errors).lower()
        assert denied.count("permissions violation") >= 5, col_errors
        with pytest.raises((NatsTimeout, NoRespondersError, asyncio.TimeoutError)):
            await cjs.stream_info(jetstream.STREAM)

        # the operator sends a command into the stream and reads the workers' bucket, no frames
        op, op_errors = await _connect(node, cdir, OPERATOR)
        ojs = op.jetstream()
        topic = wearer_topic("w-1", "control")
        ack = await ojs.publish(jetstream.subject(topic), json.dumps({"cmd": "close-night"}).encode(),
                                timeout=5)
        assert ack.stream == jetstream.STREAM
        with pytest.raises((NatsTimeout, NoRespondersError, asyncio.TimeoutError)):
            await ojs.publish(_frame_subject("w-1"), b"{}", timeout=1)
        from nats.js.api import KeyValueConfig

        kv = await js.create_key_value(KeyValueConfig(bucket="nightcramp_workers"))
        await kv.put("wk-1", b'{"open_nights": ["w-1"]}')
        from dashboard.cli.live import _workers_open_nights

        assert await _workers_open_nights(ojs) == {"wk-1": ["w-1"]}
        await op.subscribe("nightcramp.>")
        await op.flush()
        await asyncio.sleep(0.2)
        assert "permissions violation" in " ".join(str(e) for e in op_errors).lower()

        # the detector got the collector's frame and the command, nothing refused
        got = []
        for _ in range(2):
            got.append((await sub.next_msg(timeout=5)).subject)
        assert got == [jetstream.subject(sensor_topic("w-1", "left-shank", "status")).replace(
            "nightcramp.v1", f"nightcramp.p.{jetstream.partition_of_subject(got[0])}.v1"),
            f"nightcramp.p.{jetstream.partition_of_subject(got[1])}.v1.w-1.control"]
        for nc in (det, col, op):
            await nc.close()

    asyncio.run(main())


def test_an_account_added_later_connects_after_the_servers_reload(secured):
    node, cdir = secured
    broker_auth.add_account(cdir, "w-2")
    nats_auth.rewrite(node.config, cdir)
    nats_auth.reload(node.pid)

    # the reload is asynchronous: wait until the server knows the account (clean sockets only)
    secret = read_secret(secret_path(cdir, "w-2"))
    wait_until(lambda: "PONG" in _hello(node, {"user": "w-2", "pass": secret}, cdir), 30,
               "the accounts reloaded", every=0.2)

    async def main() -> None:
        nc, _ = await _connect(node, cdir, "w-2")
        det, _ = await _connect(node, cdir, DETECTOR)
        await jetstream.ensure_frames_stream(det.jetstream(timeout=30), replicas=1)
        ack = await nc.jetstream().publish(_frame_subject("w-2"), b"{}", timeout=5)
        assert ack.seq == 1
        await nc.close()
        await det.close()

    asyncio.run(main())
