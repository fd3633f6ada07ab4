"""Virtual sensors: simulated nights published over MQTT frame for frame, as a collector would.

Each wearer ``sim-<k>`` wears two sensors, ``left-shank`` and ``right-shank``, each with one calf
EMG and a 3-axis accelerometer. Samples are the simulator's, quantised exactly as the EDF writer
quantises them, so the same night analysed from its EDF file gives the same events.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.simulate import NightOptions, NightPlan, plan_night, render
from ingest.simulate.render import BLOCK_S
from ingest.simulate.writer import truth_json
from ingest.wire.frames import encode, read_header
from ingest.wire.mqtt_client import make_client
from ingest.wire.status import SensorStatus
from ingest.wire.topics import sensor_topic

log = logging.getLogger("nightcramp.simulate")

EMG_SCALE = 3000.0 / 32767  # µV per count: the simulator's ±3 mV amplifier range
ACC_SCALE = 8.0 / 32767  # g per count: ±8 g


@dataclass(frozen=True)
class VirtualSensor:
    wearer: str
    sensor: str
    side: str  # "L" or "R"
    plan: NightPlan

    @property
    def emg_labels(self) -> list[str]:
        return [f"EMG {self.side}-{self.plan.options.emg_site}"]

    @property
    def acc_labels(self) -> list[str]:
        return [f"ACC {self.side}-Shank {a}" for a in "XYZ"]

    def status(self, state: Literal["online", "offline"] = "online") -> SensorStatus:
        o = self.plan.options
        return SensorStatus(state=state, battery_pct=100, link="simulated",
                            channels={"emg": self.emg_labels, "acc": self.acc_labels},
                            fs={"emg": o.fs_emg, "acc": o.fs_acc})

    def frames(self, frame_s: float):
        """(stream, bytes, night time s) of every frame, EMG and ACC interleaved by time."""
        o = self.plan.options
        t0_ns = int(o.start.timestamp() * 1e9)
        streams = [("emg", o.fs_emg, self.emg_labels, EMG_SCALE),
                   ("acc", o.fs_acc, self.acc_labels, ACC_SCALE)]
        total = {s: int(round(self.plan.duration_s * fs)) for s, fs, _, _ in streams}
        per = {s: max(1, int(round(frame_s * fs))) for s, fs, _, _ in streams}
        pos = dict.fromkeys(total, 0)
        cache: dict[str, tuple[int, np.ndarray]] = {}  # stream -> (first sample, rendered counts)
        while any(pos[s] < total[s] for s in pos):
            s, fs, labels, scale = min((x for x in streams if pos[x[0]] < total[x[0]]),
                                       key=lambda x: pos[x[0]] / x[1])
            a, b = pos[s], min(total[s], pos[s] + per[s])
            c0, block = cache.get(s, (0, np.zeros((0, len(labels)), np.int16)))
            if b > c0 + len(block):  # render the next stretch of this stream at once
                end = min(total[s], a + max(per[s], int(BLOCK_S * fs)))
                cols = [render(self.plan, lab, a, end) for lab in labels]
                block = np.round(np.clip(np.stack(cols, axis=1) / scale, -32767, 32767)).astype(np.int16)
                c0 = a
                cache[s] = (c0, block)
            raw = block[a - c0:b - c0]
            first_ns = t0_ns + round(a * 1e9 / fs)
            yield s, encode(s, fs, a, first_ns, [scale] * len(labels), raw), a / fs
            pos[s] = b


class PubAcks:
    """Counts PUBACKs. Messages published while the broker is away are queued by the client and
    sent again when it reconnects; each is acknowledged once."""

    def __init__(self, client: mqtt.Client, who: str = "") -> None:
        self.sent = 0
        self.acked = 0
        self.refused = 0
        self.reason = ""
        self.who = who
        self._lock = threading.Lock()
        client.on_publish = self._on_publish

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            self.acked += 1
            if reason_code.is_failure:
                self.refused += 1
                self.reason = str(reason_code)

    def publish(self, client: mqtt.Client, t: str, payload, retain: bool = False) -> None:
        with self._lock:
            self.sent += 1
        client.publish(t, payload, qos=1, retain=retain)

    def wait(self, backlog: int = 0, timeout: float = 300.0) -> None:
        """Until at most ``backlog`` messages wait for their PUBACK."""
        deadline = time.monotonic() + timeout
        while self.sent - self.acked > backlog:
            self._check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the broker did not acknowledge {self.sent - self.acked} frames "
                                   f"within {timeout:g} s")
            time.sleep(0.02)
        self._check()

    def _check(self) -> None:
        if self.refused:
            who = self.who or "this client"
            raise PermissionError(f"the broker refused {self.refused} messages of {who} ({self.reason}): "
                                  f"does its account exist? 'nightcramp users add-sensor {who}' makes it")


class JetStreamAcks:
    """The virtual sensors' side of the frames stream (``[transport] kind = "nats"``): the same
    publish/wait interface as :class:`PubAcks`, each message published with its ``Nats-Msg-Id``
    (ingest.wire.jetstream) and sent again until the stream acknowledges it."""

    def __init__(self, servers: list[str], timeout_s: float = 5.0, login: dict | None = None) -> None:
        from ingest.wire.nats_bus import Bus

        self.sent = self.acked = self.resent = 0
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self.bus = Bus(servers, "nightcramp-simulate", login=login)

    async def _send(self, subject: str, payload: bytes, mid: str) -> None:
        import asyncio

        while True:
            try:
                await self.bus.js.publish(subject, payload, timeout=self.timeout_s,
                                          headers={"Nats-Msg-Id": mid})
                break
            except Exception:  # no acknowledgement (a leader election): the same id again
                with self._lock:
                    self.resent += 1
                await asyncio.sleep(0.2)
        with self._lock:
            self.acked += 1

    def publish(self, client, t: str, payload, retain: bool = False) -> None:

        from ingest.wire.jetstream import msg_id, subject

        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        with self._lock:
            self.sent += 1
        self.bus.submit(self._send(subject(t), data, msg_id(t, data)))

    def wait(self, backlog: int = 0, timeout: float = 300.0) -> None:
        """Until at most ``backlog`` messages wait for the stream's acknowledgement."""
        deadline = time.monotonic() + timeout
        while self.sent - self.acked > backlog:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the frames stream did not acknowledge {self.sent - self.acked} frames "
                                   f"within {timeout:g} s")
            time.sleep(0.02)

    def close(self) -> None:
        self.bus.close()


def publish_nights_nats(servers: list[str], opts: NightOptions, *, n_wearers: int = 1, speed: float = 60.0,
                        frame_s: float | None = None, truth_dir: Path | None = None, progress=None,
                        credentials_dir: Path | None = None) -> dict:
    """:func:`publish_nights` into the NATS JetStream frames stream (docs/scaling.md). A wearer
    with an account in ``credentials_dir`` publishes as that account (a cluster with accounts
    lets it publish only its own frames); the others share one connection."""
    from ingest.wire.nats_bus import login

    frame_s, groups = _nights(opts, n_wearers, speed, frame_s, truth_dir)
    conns: dict[str, tuple[None, JetStreamAcks]] = {}
    shared: JetStreamAcks | None = None
    try:
        for g in groups:
            who = login(credentials_dir, g[0].wearer)
            if "user" in who:
                conns[g[0].wearer] = (None, JetStreamAcks(servers, login=who))
            else:
                shared = shared or JetStreamAcks(servers)
                conns[g[0].wearer] = (None, shared)
        return _publish_all(groups, conns, speed, frame_s, progress)
    finally:
        for acks in {id(a): a for _, a in conns.values()}.values():
            acks.close()


def _nights(opts: NightOptions, n_wearers: int, speed: float, frame_s: float | None,
            truth_dir: Path | None) -> tuple[float, list[list[VirtualSensor]]]:
    """The frame length (default: 0.1 s like a real sensor, longer at high speed, at most 10 s)
    and the wearers' sensors; their truth written to ``truth_dir``."""
    groups = wearers(n_wearers, opts)
    if truth_dir:
        truth_dir.mkdir(parents=True, exist_ok=True)
        for g in groups:
            (truth_dir / f"{g[0].wearer}.truth.json").write_text(json.dumps(truth_json(g[0].plan), indent=1))
    return frame_s or max(0.1, min(10.0, speed / 100.0)), groups


def wearers(n: int, opts: NightOptions) -> list[list[VirtualSensor]]:
    out = []
    for k in range(1, n + 1):
        plan = plan_night(NightOptions(**{**opts.__dict__, "seed": opts.seed + k - 1}))
        out.append([VirtualSensor(f"sim-{k}", "left-shank", "L", plan),
                    VirtualSensor(f"sim-{k}", "right-shank", "R", plan)])
    return out


def publish_nights(mqtt_settings, opts: NightOptions, *, n_wearers: int = 1, speed: float = 60.0,
                   frame_s: float | None = None, truth_dir: Path | None = None, progress=None) -> dict:
    """Publish ``n_wearers`` simulated nights at ``speed`` x real time; returns counts sent.

    Each wearer's sensors publish over a connection of their own, logged in as that wearer (the
    broker lets a collector publish only under its own wearer id; ingest/wire/mqtt_client.py)."""
    frame_s, groups = _nights(opts, n_wearers, speed, frame_s, truth_dir)
    conns: dict[str, tuple[mqtt.Client, PubAcks]] = {}
    try:
        for g in groups:
            w = g[0].wearer
            client, port = make_client(mqtt_settings, w, client_id=f"nightcramp-sim-{w}-{time.time_ns()}")
            client.max_inflight_messages_set(200)
            client.max_queued_messages_set(0)
            client.reconnect_delay_set(0.2, 5)  # type: ignore[arg-type]  # paho takes float seconds
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600  # frames in flight survive a broker restart
            client.connect(mqtt_settings.host, port, keepalive=30, clean_start=True, properties=props)
            client.loop_start()
            conns[w] = (client, PubAcks(client, w))
        return _publish_all(groups, conns, speed, frame_s, progress)
    finally:
        for client, _ in conns.values():
            client.loop_stop()
            client.disconnect()


def _publish_all(groups, conns, speed: float, frame_s: float, progress) -> dict:
    sent = {"frames": 0, "samples": 0}
    for g in groups:
        for vs in g:
            client, acks = conns[vs.wearer]
            acks.publish(client, sensor_topic(vs.wearer, vs.sensor, "status"), vs.status().payload(),
                         retain=True)
    for _, acks in conns.values():
        acks.wait()
    gens = [(vs, vs.frames(frame_s)) for g in groups for vs in g]
    heads: list[tuple[Any, Any, Any]] = [(vs, next(gen, None), gen) for vs, gen in gens]
    wall0 = time.monotonic()
    while True:
        live = [(i, h) for i, h in enumerate(heads) if h[1] is not None]
        if not live:
            break
        i, (vs, item, gen) = min(live, key=lambda x: x[1][1][2])
        stream, payload, t_night = item
        delay = t_night / speed - (time.monotonic() - wall0)
        if delay > 0:
            time.sleep(delay)
        client, acks = conns[vs.wearer]
        acks.publish(client, sensor_topic(vs.wearer, vs.sensor, stream), payload)
        sent["frames"] += 1
        head = read_header(payload)
        sent["samples"] += head.n * head.channels
        heads[i] = (vs, next(gen, None), gen)
        if progress and sent["frames"] % 500 == 0:
            progress(sent, t_night)
        acks.wait(backlog=5000)
    for _, acks in conns.values():
        acks.wait()  # every frame has its PUBACK
    for g in groups:
        for vs in g:
            client, acks = conns[vs.wearer]
            acks.publish(client, sensor_topic(vs.wearer, vs.sensor, "status"), vs.status("offline").payload(),
                         retain=True)
    for _, acks in conns.values():
        acks.wait()
    return sent
