"""The BLE collector: sensor notifications -> frames -> durable outbox -> MQTT (QoS 1).

For one sensor: connect with bleak (retrying with backoff), read the battery, subscribe to the
EMG and ACC notifications, decode each packet with the device profile's decoder, keep a running
sample counter per stream (a jump in the packet sequence advances it by the lost samples, so
the gap reaches the detector as missing data), map the sensor clock to UTC with drift tracking
(arrival times from a monotonic clock anchored to the wall clock once per night, so a wall-clock
step mid-night moves no frame), and put each frame in the SQLite outbox. A publisher thread sends
the outbox in order and deletes a frame only when the detector's acknowledgement says it is
stored (docs/mqtt-frames.md). A silence watchdog reconnects when notifications stop while
the link claims to be up. The sensor's status (battery, link) is published retained, and
"offline" is its Last Will.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as mqtt

from ingest.ble.clock import ClockMap, SteadyWall, Unwrapper
from ingest.ble.outbox import Outbox
from ingest.ble.profile import DeviceProfile, PacketError
from ingest.wire.frames import encode
from ingest.wire.mqtt_client import Identity, apply_identity
from ingest.wire.status import SensorStatus
from ingest.wire.topics import sensor_topic

log = logging.getLogger("nightcramp.collect")


@dataclass
class SensorSpec:
    wearer: str
    sensor: str
    address: str
    side: str  # "L" or "R"


@dataclass
class _StreamState:
    seq: Unwrapper = field(default_factory=lambda: Unwrapper(16))
    clock: Unwrapper = field(default_factory=lambda: Unwrapper(32))
    next_seq: int | None = None
    counter: int = 0
    per_packet: int = 0
    last_arrival_ns: int = 0

    def dump(self) -> str:
        return json.dumps({"seq": [self.seq.last, self.seq.base], "clock": [self.clock.last, self.clock.base],
                           "next_seq": self.next_seq, "counter": self.counter, "per_packet": self.per_packet,
                           "last_arrival_ns": self.last_arrival_ns})

    @classmethod
    def load(cls, text: str) -> _StreamState:
        d = json.loads(text)
        st = cls(next_seq=d["next_seq"], counter=d["counter"], per_packet=d["per_packet"],
                 last_arrival_ns=d.get("last_arrival_ns", 0))
        st.seq.last, st.seq.base = d["seq"]
        st.clock.last, st.clock.base = d["clock"]
        return st


# A packet sequence number this far behind the expected one is not a repeat but a sensor that
# started again (its counters reset): the stream is picked up where the wall clock says.
RESYNC_PACKETS = 256
CLOCK_STEP_NS = 1_000_000_000  # a wall-clock jump larger than this is reported as a step
NEW_NIGHT_SILENCE_S = 1800.0  # after this long without packets the wall clock is read again


class Publisher:
    """Sends the outbox over MQTT in order.

    With ``ack_topic`` (end to end, what ``nightcramp collect`` uses) a frame leaves the outbox
    only when the detector says it has stored it (``nightcramp/v1/<wearer>/<sensor>/ack``); on
    every reconnect the frames not yet confirmed are sent again, so a broker that died before
    saving them loses nothing. Without it a frame leaves on its PUBACK."""

    def __init__(self, outbox: Outbox, host: str, port: int, client_id: str, will_topic: str,
                 will_payload: str, max_inflight: int = 500, identity: Identity | None = None,
                 ack_topic: str | None = None, resend_s: float = 30.0) -> None:
        """``identity``: the wearer's broker account and TLS (ingest.wire.mqtt_client.identity)."""
        self.outbox = outbox
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if identity is not None:
            apply_identity(self.client, identity)
        self.client.will_set(will_topic, will_payload, qos=1, retain=True)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.reconnect_delay_set(0.2, 5)  # type: ignore[arg-type]  # paho takes float seconds
        self.client.on_publish = self._on_publish
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_ack
        self.host, self.port, self.max_inflight = host, port, max_inflight
        self.ack_topic = ack_topic
        self.resend_s = resend_s  # unconfirmed this long after its PUBACK: sent again
        self.resent = 0
        self._inflight: dict[int, int] = {}  # mid -> outbox row
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._resend = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.sent = 0
        self.refused = 0
        self.confirmed = 0  # frames the detector confirmed stored
        self.connects = 0

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        self._thread.start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("MQTT connect refused: %s (this collector's account?)", reason_code)
            return
        if self.ack_topic:
            client.subscribe(self.ack_topic, qos=1)
        self.connects += 1
        self._resend.set()  # whatever the broker may have lost goes again

    def _on_ack(self, client, userdata, msg) -> None:
        try:
            body = json.loads(msg.payload)
            ranges = {s: [(int(a), int(b)) for a, b in body["stored"][s]] for s in body["stored"]}
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable acknowledgement on %s", msg.topic)
            return
        for stream, rs in ranges.items():
            self.confirmed += self.outbox.stored(stream, rs)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            row = self._inflight.pop(mid, None)
        if row is None:
            return
        if reason_code.is_failure:
            # Refused (not authorized, quota): the frame stays in the outbox; sending it again
            # cannot help until the account is fixed, so say so once.
            self.refused += 1
            if self.refused == 1:
                log.error("the broker refused a frame (%s): it stays in the outbox; check this "
                          "collector's account ('nightcramp users add-sensor')", reason_code)
            return
        self.outbox.sent(row, keep_frames=self.ack_topic is not None)
        self.sent += 1

    def _run(self) -> None:
        last = 0
        next_check = time.monotonic() + self.resend_s
        while not self._stop.is_set():
            if not self.client.is_connected():
                time.sleep(0.1)
                continue
            if self._resend.is_set():
                # After a (re)connect, send again whatever was not confirmed.
                self._resend.clear()
                last = 0
                with self._lock:
                    self._inflight.clear()
            with self._lock:
                room = self.max_inflight - len(self._inflight)
            rows = self.outbox.pending(after=last, limit=max(0, room)) if room > 0 else []
            if self.ack_topic and not rows and room > 0 and time.monotonic() >= next_check:
                # Acknowledged by the broker long ago and still not confirmed stored: lost on the
                # way (a restarted broker, a detector that was not subscribed yet). Again.
                next_check = time.monotonic() + min(self.resend_s, 5.0)
                rows = self.outbox.unconfirmed_since(time.time() - self.resend_s, limit=room)
                self.resent += len(rows)
            if not rows:
                time.sleep(0.02)
                continue
            for row, t, payload, retain in rows:
                info = self.client.publish(t, payload, qos=1, retain=retain)
                with self._lock:
                    self._inflight[info.mid] = row
                last = max(last, row)

    def drain(self, timeout: float = 60.0) -> bool:
        """Wait until the outbox is empty (every frame acknowledged, end to end when on)."""
        deadline = time.monotonic() + timeout
        while len(self.outbox) and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(self.outbox) == 0

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.client.loop_stop()
        self.client.disconnect()


class Collector:
    def __init__(self, spec: SensorSpec, profile: DeviceProfile, outbox: Outbox,
                 connect: Callable[[str, Callable], Awaitable[Any]] | None, *, silence_s: float = 5.0,
                 backoff_max_s: float = 30.0) -> None:
        """``connect(address, on_disconnect)`` returns a connected bleak client
        (:func:`connect_ble` for a real sensor, :func:`connect_replay` for the stand-in)."""
        self.spec, self.profile, self.outbox = spec, profile, outbox
        self.connect = connect
        self.silence_s, self.backoff_max_s = silence_s, backoff_max_s
        saved = outbox.stream_states()
        self.streams = {s: _StreamState.load(saved[s]) if s in saved else _StreamState()
                        for s in profile.streams}
        self.clock = ClockMap()
        self.wall = SteadyWall()
        self._wall_step_ns = 0  # the wall clock's step already reported
        self._last_arrival_mono: float | None = None  # monotonic s of the last packet
        self.stats = {"packets": 0, "lost_packets": 0, "bad_packets": 0, "reconnects": 0, "watchdog": 0}
        self._last_packet = time.monotonic()
        self._disconnected = asyncio.Event()
        self.client: Any = None  # the bleak client of the current connection

    def status(self, state: Literal["online", "offline"], battery: int | None = None) -> SensorStatus:
        return SensorStatus(state=state, battery_pct=battery, link="ble", address=self.spec.address,
                            channels={s: self.profile.labels(s, self.spec.side)
                                      for s in self.profile.streams},
                            fs={s: p.fs for s, p in self.profile.streams.items()}, stats=dict(self.stats))

    def _put_status(self, state: Literal["online", "offline"], battery: int | None = None) -> None:
        self.outbox.put(sensor_topic(self.spec.wearer, self.spec.sensor, "status"),
                        self.status(state, battery).payload(), retain=True)

    def on_packet(self, stream: str, data: bytearray, arrival_ns: int | None = None) -> None:
        """Decode one notification into a frame in the outbox (bleak callback path)."""
        if arrival_ns is None:
            now = time.monotonic()
            if self._last_arrival_mono is None or now - self._last_arrival_mono > NEW_NIGHT_SILENCE_S:
                self._new_time_base()
            self._last_arrival_mono = now
            arrival_ns = self.wall.now_ns()
        self._last_packet = time.monotonic()
        try:
            p = self.profile.decoder(data)
        except PacketError as exc:
            self.stats["bad_packets"] += 1
            log.warning("%s %s: bad packet: %s", self.spec.sensor, stream, exc)
            return
        st = self.streams[stream]
        seq = st.seq(p.seq)
        t_us = st.clock(p.t_us)
        n = len(p.raw)
        if st.next_seq is not None and seq > st.next_seq:
            lost = seq - st.next_seq
            self.stats["lost_packets"] += lost
            st.counter += lost * (st.per_packet or n)  # the detector sees these samples missing
        elif st.next_seq is not None and seq < st.next_seq - RESYNC_PACKETS:
            # The sensor started again (its sequence and clock reset): carry on with the counter
            # where the time since the last packet puts it, and learn its new clock.
            fs_now = self.profile.streams[stream].fs
            elapsed = max(0.0, (arrival_ns - st.last_arrival_ns) / 1e9) if st.last_arrival_ns else 0.0
            skipped = max(0, round(elapsed * fs_now) - n)
            st.counter += skipped
            self.stats["sensor_restarts"] = self.stats.get("sensor_restarts", 0) + 1
            log.warning("%s %s: packet sequence went back from %d to %d: the sensor restarted; %d samples "
                        "missing", self.spec.sensor, stream, st.next_seq, seq, skipped)
            st.seq, st.clock = Unwrapper(16), Unwrapper(32)
            seq, t_us = st.seq(p.seq), st.clock(p.t_us)
            self.clock = ClockMap()
        elif st.next_seq is not None and seq < st.next_seq:
            self.stats["bad_packets"] += 1  # a stale repeat
            return
        st.next_seq = seq + 1
        st.per_packet = n
        st.last_arrival_ns = arrival_ns
        self.clock.observe(t_us, arrival_ns)
        fs = self.profile.streams[stream].fs
        frame = encode(stream, fs, st.counter, self.clock.utc_ns(t_us), [p.scale] * p.raw.shape[1], p.raw)
        first = st.counter
        st.counter += n
        self.outbox.put(sensor_topic(self.spec.wearer, self.spec.sensor, stream), frame,
                        frame=(stream, first, int(p.raw.shape[0])), state=st.dump())
        self.stats["packets"] += 1

    def _new_time_base(self) -> None:
        """After a long silence (a new night) the wall clock is taken again, steps and all."""
        self.wall.anchor()
        self._wall_step_ns = 0
        self.clock = ClockMap()

    def check_wall_clock(self) -> None:
        """Report a step of the wall clock once: frames keep the night's time base."""
        step = self.wall.step_ns()
        if abs(step - self._wall_step_ns) > CLOCK_STEP_NS:
            self.stats["clock_steps"] = self.stats.get("clock_steps", 0) + 1
            log.warning("%s: the wall clock stepped by %+.1f s (now %+.1f s from this night's time base); "
                        "frames keep the night's time base until the sensor has been silent for %.0f min",
                        self.spec.sensor, (step - self._wall_step_ns) / 1e9, step / 1e9,
                        NEW_NIGHT_SILENCE_S / 60)
            self._wall_step_ns = step

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, stream, and reconnect with backoff until ``stop`` is set."""
        delay = 0.5
        while not stop.is_set():
            self._disconnected.clear()
            client = None
            try:
                if self.connect is None:
                    raise RuntimeError("no way to connect to the sensor was given")
                client = await self.connect(self.spec.address, lambda _c: self._disconnected.set())
                self.client = client
                battery = int((await client.read_gatt_char(self.profile.battery_uuid))[0])
                fs = self.profile.streams
                rates = struct.pack("<BHH", 0x03, round(fs["emg"].fs), round(fs["acc"].fs))
                await client.write_gatt_char(self.profile.control_uuid, rates, response=True)
                await client.write_gatt_char(self.profile.control_uuid, b"\x01", response=True)  # start
                self._put_status("online", battery)
                for s, sp in self.profile.streams.items():
                    await client.start_notify(sp.uuid, lambda _ch, data, s=s: self.on_packet(s, data))
                delay = 0.5
                self._last_packet = time.monotonic()
                while not stop.is_set() and not self._disconnected.is_set():
                    await asyncio.sleep(0.1)
                    self.check_wall_clock()
                    if time.monotonic() - self._last_packet > self.silence_s:
                        self.stats["watchdog"] += 1
                        log.warning("%s: no notifications for %.1f s while connected: reconnecting",
                                    self.spec.sensor, self.silence_s)
                        break
            except Exception as exc:  # a failed connection is retried, never fatal
                log.warning("%s: link failed (%s); retrying in %.1f s", self.spec.sensor, exc, delay)
            finally:
                try:
                    if client is not None:
                        await client.disconnect()
                except Exception:
                    pass
            if stop.is_set():
                break
            self.stats["reconnects"] += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max_s)
        self._put_status("offline")


def bluetooth_missing(environ: dict[str, str] | None = None, platform: str | None = None) -> str | None:
    """Why no BLE radio can be reached here, in one line; None when one may be. On Linux bleak
    talks to BlueZ over the D-Bus system bus: without its socket every connect fails with
    ``[Errno 2]``, however often it is retried."""
    import os
    import sys

    env = os.environ if environ is None else environ
    if (platform or sys.platform) != "linux":
        return None
    addr = env.get("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/run/dbus/system_bus_socket")
    paths = [part.split("=", 1)[1] for part in addr.split(";")[0].split(":", 1)[-1].split(",")
             if part.startswith("path=")]
    if paths and not any(Path(x).exists() for x in paths):
        return (f"no Bluetooth stack: the D-Bus system bus ({paths[0]}) that BlueZ answers on is missing; "
                "install and start BlueZ (Debian: apt-get install bluez dbus, then start the bluetooth "
                "service), or replay a capture with --replay")
    return None


async def connect_ble(address: str, on_disconnect: Callable, *, name: str = "leg sensor",
                      scan_timeout: float = 10.0):
    """Find a real sensor by address and connect through bleak-retry-connector."""
    from bleak import BleakClient, BleakScanner
    from bleak_retry_connector import establish_connection

    device = await BleakScanner.find_device_by_address(address, timeout=scan_timeout)
    if device is None:
        raise ConnectionError(f"sensor {address} not found within {scan_timeout:g} s")
    return await establish_connection(BleakClient, device, name, disconnected_callback=on_disconnect,
                                      max_attempts=3)


def connect_replay(capture: Path, profile: DeviceProfile, **replay):
    """A ``connect`` for the stand-in radio replaying ``capture`` (ingest.ble.replay)."""
    from bleak import BleakClient

    from ingest.ble.replay import ReplayBackend

    async def connect(address: str, on_disconnect: Callable):
        client = BleakClient(address, disconnected_callback=on_disconnect, backend=ReplayBackend,
                             capture=capture, profile=profile, **replay)
        await client.connect()
        return client

    return connect
