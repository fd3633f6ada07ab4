"""``nightcramp detect``: the MQTT-subscribing detector service.

Subscribes to every sensor's frames with a persistent session (fixed client id, clean start
off, session expiry from config), runs one streaming engine per wearer over all of that
wearer's sensors (aligned on UTC by their sample counters), stores raw samples and events in
InfluxDB, publishes live events on ``nightcramp/v1/<wearer>/events``, and closes a night after
a silence or on ``nightcramp night close``. A frame is acknowledged to the broker only after
its samples were written to InfluxDB or its on-disk spool, so a crash loses nothing the broker
has not redelivered. Malformed input is counted by reason and logged; the service keeps going.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import fnmatch
import heapq
import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from detector.advice.diary import Diary
from detector.advice.rules import AdviceError, advise
from detector.analyze import Analysis
from detector.engine.config import DetectorConfig
from detector.engine.events import CrampAlert, Event, clamp_to_recording
from detector.engine.pipeline import Engine
from detector.engine.state import (
    StateError,
    from_plain,
    read_state_file,
    read_state_index,
    record,
    to_plain,
    write_state_file,
)
from detector.engine.summary import night_key, summarize
from detector.service.settings import Services
from detector.store.accounts import settings_for
from detector.store.influx import NightConflict, SpoolFull, StoreError
from detector.store.shards import Store, open_store
from ingest.recordings.labels import parse_label
from ingest.recordings.recording import Channel, Recording
from ingest.wire.frames import Frame, FrameError, decode
from ingest.wire.mqtt_client import DETECTOR, make_client
from ingest.wire.status import SensorStatus, StatusError, parse_status
from ingest.wire.topics import (
    CONTROL_SUB,
    SAMPLE_STREAMS,
    SENSORS_SUB,
    TopicError,
    parse_topic,
    sensor_topic,
    wearer_topic,
)

log = logging.getLogger("nightcramp.detect")
record(Channel)  # channels are part of a night's checkpoint

_FLUSH_BYTES = 4_000_000
_GAP_SLICE_S = 30.0  # [s] of a gap's missing samples handed to the engine at once
_MAX_ACK_RANGES = 32  # stored ranges kept and published per sensor stream
_MAX_ACK_SENSORS = 10_000


def _merge_ranges(ranges: list[list[int]]) -> list[list[int]]:
    """Sample ranges [a, b) sorted and joined where they touch or overlap."""
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


class StateDirBusy(OSError):
    """Another detector holds the state directory."""


@record
@dataclass
class _Stream:
    channels: list[int]
    labels: list[str]
    fs: float
    origin: int | None = None  # sensor counter of channel sample 0
    fed: int = 0  # channel samples accepted (given to the engine or waiting below)
    pending: list = field(default_factory=list)  # accepted samples not yet given to the engine
    given: int = 0  # channel samples given to the engine
    ahead: dict = field(default_factory=dict)  # start sample -> samples that came before a missing frame


@dataclass
class WearerNight:
    """One wearer's night in progress: the engine and how each sensor stream maps onto it."""

    wearer: str
    start_ns: int
    engine: Engine
    streams: dict[tuple[str, str], _Stream]
    channels: list[Channel]
    last_frame_wall: float = field(default_factory=time.monotonic)
    live_events: list[Event] = field(default_factory=list)
    _watch_due: bool = False

    @classmethod
    def open(cls, wearer: str, start_ns: int, statuses: Mapping[str, SensorStatus],
             cfg: DetectorConfig) -> WearerNight:
        channels: list[Channel] = []
        streams: dict[tuple[str, str], _Stream] = {}
        for sensor in sorted(statuses):
            st = statuses[sensor]
            for stream in ("emg", "acc"):
                labels = st.channels.get(stream, [])
                if not labels:
                    continue
                if stream not in st.fs:
                    raise ValueError(f"sensor {sensor}: status names {stream} channels but no rate")
                fs = float(st.fs[stream])
                idx = []
                for lab in labels:
                    p = parse_label(lab)
                    if p is None:
                        raise ValueError(f"sensor {sensor}: channel label {lab!r} is not a leg channel")
                    idx.append(len(channels))
                    channels.append(Channel(lab, p.kind, p.side, p.site, p.axis, fs,
                                            "uV" if stream == "emg" else "g", 0))
                streams[(sensor, stream)] = _Stream(idx, labels, fs)
        return cls(wearer, start_ns, Engine(channels, cfg), streams, channels)

    def end_ns(self) -> int:
        """UTC ns just after the last sample accepted on any stream."""
        return self.start_ns + int(max((s.fed / s.fs for s in self.streams.values()), default=0.0) * 1e9)

    def get_state(self) -> dict[str, Any]:
        """Plain data: the engine's state and how each sensor stream maps onto it."""
        return {"wearer": self.wearer, "start_ns": self.start_ns, "channels": to_plain(self.channels),
                "streams": to_plain(self.streams), "live_events": to_plain(self.live_events),
                "watch_due": self._watch_due, "engine": self.engine.get_state()}

    @classmethod
    def from_state(cls, state: dict[str, Any], cfg: DetectorConfig) -> WearerNight:
        """The night ``get_state`` described, its engine rebuilt from ``cfg`` and the channels."""
        channels = from_plain(state["channels"])
        engine = Engine(channels, cfg)
        engine.set_state(state["engine"])
        return cls(state["wearer"], state["start_ns"], engine, from_plain(state["streams"]), channels,
                   live_events=from_plain(state["live_events"]), _watch_due=state["watch_due"])

    def feed(self, sensor: str, stream: str, frame: Frame, stats: Counter,
             reorder_s: float, max_night_s: float = 64800.0) -> list[Event]:
        """Accept one frame; ``reorder_s`` (s of samples) may wait for a missing earlier frame.
        A frame starting more than ``max_night_s`` after the night's start (a sample counter
        that jumped, a forged frame) is counted as ``outside_night`` and not merged."""
        s = self.streams.get((sensor, stream))
        if s is None:
            stats["sensor_not_in_night"] += 1
            return []
        if abs(frame.rate_hz - s.fs) > 1e-6 * s.fs:
            stats["rate_changed"] += 1
            return []
        start = self._position(s, frame)
        if start > max_night_s * s.fs:
            stats["outside_night"] += 1
            if stats["outside_night"] == 1 or stats["outside_night"] % 1000 == 0:
                log.warning("%s/%s/%s: a frame %.1f h into the night (sample counter jump?) is kept "
                            "apart, not analysed (%d so far)", self.wearer, sensor, stream,
                            start / s.fs / 3600, stats["outside_night"])
            return []
        self.last_frame_wall = time.monotonic()
        events: list[Event] = []
        if start > s.fed:
            # Ahead of a missing frame: it waits for it while the waiting samples stay within
            # reorder_s; beyond that the gap is signal lost.
            if start not in s.ahead:
                s.ahead[start] = frame.samples
                stats["reordered_frames"] += 1
            if sum(len(v) for v in s.ahead.values()) <= reorder_s * s.fs:
                return []
            events += self._drain_ahead(s, stats, fill_first=True)
        else:
            self._accept(s, start, frame.samples, stats)
            events += self._drain_ahead(s, stats)
        return events + self._maybe_give(s, stream)

    def _position(self, s: _Stream, frame: Frame) -> int:
        """The frame's first sample on this night's sample axis: its counter, from the origin the
        stream's first frame set by its time."""
        if s.origin is None:
            pos = round((frame.first_time_ns - self.start_ns) * s.fs / 1e9)
            s.origin = frame.first_sample - pos
        return frame.first_sample - s.origin

    def placed_time_ns(self, sensor: str, stream: str, frame: Frame, tolerance_s: float,
                       max_night_s: float) -> int | None:
        """Where the frame's samples belong in time (UTC ns) when the sender's clock disagrees
        with its counter by more than ``tolerance_s`` (a wall clock that stepped mid-night): the
        time its counter gives on this night's axis, which is also where the analysis puts it.
        None when the frame's own time agrees, or the frame does not join this night."""
        s = self.streams.get((sensor, stream))
        if s is None or abs(frame.rate_hz - s.fs) > 1e-6 * s.fs:
            return None
        start = self._position(s, frame)
        if not -max_night_s * s.fs <= start <= max_night_s * s.fs:
            return None
        t_ns = self.start_ns + round(start * 1e9 / s.fs)
        return t_ns if abs(t_ns - frame.first_time_ns) > tolerance_s * 1e9 else None

    def _drain_ahead(self, s: _Stream, stats: Counter, fill_first: bool = False) -> list[Event]:
        """Accept the frames that waited and now follow on; with ``fill_first`` the gap before
        the first of them is given up as missing samples (NaN: signal lost), handed to the
        engine a slice at a time so memory does not grow with the gap's length."""
        events: list[Event] = []
        if fill_first and s.ahead:
            first = min(s.ahead)
            stats["gap_samples"] += first - s.fed
            width = s.ahead[first].shape[1]
            step = max(1, int(_GAP_SLICE_S * s.fs))
            while s.fed < first:
                n = min(step, first - s.fed)
                self._accept(s, s.fed, np.full((n, width), np.nan, np.float32), stats)
                events += self._give(s)
        while s.ahead and min(s.ahead) <= s.fed:
            k = min(s.ahead)
            self._accept(s, k, s.ahead.pop(k), stats)
        return events

    @staticmethod
    def _accept(s: _Stream, start: int, x: np.ndarray, stats: Counter) -> None:
        """Samples starting at channel sample ``start`` (≤ ``s.fed``): the new part is accepted."""
        skip = s.fed - start
        if skip >= len(x):  # a redelivered or stale frame: the engine already has these samples
            stats["stale_frame"] += 1
            return
        x = x[skip:] if skip > 0 else x
        s.fed += len(x)
        s.pending.append(x)

    def _maybe_give(self, s: _Stream, stream: str) -> list[Event]:
        # Samples go to the engine in steps, not per frame (the same events, far fewer calls):
        # EMG every alert step so a cramp in progress is seen within ~1 s, the accelerometer
        # every block, which is when the engine uses it.
        step = (self.engine.cfg.engine.alert_step_s if stream == "emg" else self.engine.block_s) * s.fs
        if int(s.fed // step) > int(s.given // step):
            return self._give(s, watch=stream == "emg")
        return []

    def alerts(self) -> list[CrampAlert]:
        """Cramp alerts raised or settled since the last call (only looks when data was given)."""
        if not self._watch_due:
            return []
        self._watch_due = False
        return self.engine.watch()

    def _give(self, s: _Stream, watch: bool = False) -> list[Event]:
        if not s.pending:
            return []
        x = np.concatenate(s.pending) if len(s.pending) > 1 else s.pending[0]
        s.pending = []
        s.given += len(x)
        self._watch_due = self._watch_due or watch
        return self.engine.update({ch: x[:, k] for k, ch in enumerate(s.channels)})

    def finish(self) -> Analysis:
        for s in self.streams.values():
            while s.ahead:  # the frames they waited for never came
                self._drain_ahead(s, Counter(), fill_first=True)
            self._give(s)
        result = self.engine.finish()
        fed = {ch: s.fed for s in self.streams.values() for ch in s.channels}
        self.channels = [Channel(c.label, c.kind, c.side, c.site, c.axis, c.fs, c.unit, fed.get(i, 0))
                         for i, c in enumerate(self.channels)]
        duration = max((s.fed / s.fs for s in self.streams.values()), default=0.0)
        start = dt.datetime.fromtimestamp(self.start_ns / 1e9, dt.UTC)
        rec = Recording(f"live-{self.wearer}", start, duration, self.channels, [])
        clamp_to_recording(result.events, duration)
        events = sorted(result.events, key=lambda e: (e.start_s, e.kind, e.side or "", e.channel or ""))
        return Analysis(rec, result.cfg, events, summarize(result, duration, events), result.hypnogram,
                        result.notes)


class DetectorService:
    def __init__(self, services: Services, cfg: DetectorConfig, store: Store | None = None, *,
                 client: mqtt.Client | None = None) -> None:
        """``client``: an MQTT client to use instead of the service's own (logged in as
        ``_detector``, see ingest/wire/mqtt_client.py); it gets the service's callbacks either way."""
        self.services, self.cfg = services, cfg
        self.store = store or open_store(settings_for(services.store, "detector"),
                                         services.dashboard.users_db)
        self.stats: Counter = Counter()
        self.statuses: dict[str, dict[str, SensorStatus]] = {}
        self.nights: dict[str, WearerNight] = {}
        self.closed: list[tuple[str, str]] = []
        self.unwritten: list[dict] = []  # closed nights the store could not take yet
        self.recent: dict[str, dict] = {}  # wearer -> the night closed last (late frames reopen it)
        # (wearer, sensor) -> stream -> stored sample ranges [a, b), what acknowledgements say
        self.stored_ranges: dict[tuple[str, str], dict[str, list[list[int]]]] = {}
        self._fresh: list[tuple[str, str, str, int, int]] = []  # buffered, not yet stored
        # buffered lines per store that keeps them (one, or a wearer's shard): (store, raw, envelope)
        self._buf: dict[int, tuple[Any, list[str], list[str]]] = {}
        self._buf_bytes = 0
        self._unacked: list[tuple[int, int]] = []
        self._outgoing: list[mqtt.MQTTMessageInfo] = []
        self._stop = False
        self._dirty = False
        self._store_ready = False
        self.spool_full_since: float | None = None
        self._lock_fh: Any = None
        self._metrics: Any = None  # the /metrics HTTP server, when settings ask for one
        self._last_checkpoint = time.monotonic()
        m = services.mqtt
        # Logged in as _detector (ingest/wire/mqtt_client.py): it may read every wearer's frames and
        # write events, nothing else.
        if client is None:
            self.client, self._port = make_client(m, DETECTOR, client_id=m.client_id, manual_ack=True)
        else:
            self.client, self._port = client, m.port
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._lock_state_dir()
        self._setup_store()
        self._restore()
        if self.services.service.metrics_port and self._metrics is None:
            from detector.service.metrics import serve_metrics

            self._metrics = serve_metrics(self, "127.0.0.1", self.services.service.metrics_port)
        self._connect()

    def _lock_state_dir(self) -> None:
        """One detector per state directory (its checkpoint and MQTT identity): a second one
        with the same state_dir refuses to start instead of taking the session back and forth."""
        d = Path(self.services.service.state_dir)
        d.mkdir(parents=True, exist_ok=True)
        fh = (d / "lock").open("a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            fh.close()
            raise StateDirBusy(f"another detector (pid {holder}) is running with state_dir {d} and MQTT "
                               f"client id {self.services.mqtt.client_id!r}; stop it, or give this one its "
                               "own [service] state_dir and [mqtt] client_id") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._lock_fh = fh
        for tmp in d.glob("*.tmp"):  # left by a crash or a full disk
            tmp.unlink(missing_ok=True)

    def _unlock_state_dir(self) -> None:
        if self._lock_fh is not None:
            self._lock_fh.close()  # closing the file releases the lock
            self._lock_fh = None

    def _setup_store(self) -> None:
        try:
            self.store.setup()
            self._store_ready = True
        except StoreError as exc:
            self._store_ready = False
            log.warning("InfluxDB not ready (%s); frames are spooled until it is", exc)

    def _connect(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.services.mqtt.session_expiry_s
        props.ReceiveMaximum = 65535  # acknowledgements wait for checkpoints
        m = self.services.mqtt
        self.client.connect(m.host, self._port, keepalive=30, clean_start=False, properties=props)

    def _reconnect(self) -> None:
        """The broker went away: keep trying with backoff; un-acknowledged frames come again."""
        self._unacked.clear()  # their acknowledgements died with the connection
        delay = 0.2
        while not self._stop:
            try:
                self.client.reconnect()
                log.info("reconnected to MQTT")
                # an outage of the broker is no silence of the wearer: restart the silence clocks
                for night in self.nights.values():
                    night.last_frame_wall = time.monotonic()
                return
            except OSError as exc:
                log.warning("MQTT reconnect failed (%s); retrying in %.1f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("MQTT connect refused: %s", reason_code)
            return
        client.subscribe([(SENSORS_SUB, 1), (CONTROL_SUB, 1)])
        log.info("connected to MQTT %s:%d (session present: %s)", self.services.mqtt.host,
                 self._port, flags.session_present)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        # Frames published before the broker granted this are not queued for a new session:
        # callers (tests, the demo) wait for this line before they publish.
        if any(rc.is_failure for rc in reason_codes):
            log.error("MQTT subscription refused: %s", [str(rc) for rc in reason_codes])
            return
        log.info("subscribed to frames and control")

    def run(self, until=None) -> None:
        """Serve until ``stop()`` (or ``until()`` returns True)."""
        self.start()
        tick = self.services.service.tick_s
        next_tick = time.monotonic() + tick
        while not self._stop and not (until and until()):
            rc = self.client.loop(timeout=min(0.1, tick))
            if rc != mqtt.MQTT_ERR_SUCCESS and not self._stop:
                log.warning("MQTT connection lost (%s)", rc)
                self._reconnect()
            if time.monotonic() >= next_tick:
                self.tick()
                next_tick = time.monotonic() + tick
        self.flush()
        self._drain_publishes()
        self.client.disconnect()
        self.store.close()
        self._write_status(running=False)
        if self._metrics is not None:
            self._metrics.shutdown()
            self._metrics.server_close()
            self._metrics = None
        self._unlock_state_dir()

    def stop(self) -> None:
        self._stop = True

    def _publish(self, topic: str, payload: str, retain: bool = False) -> None:
        """QoS 1 publish of an event; kept until the broker has it, so shutdown can wait."""
        self._outgoing.append(self.client.publish(topic, payload, qos=1, retain=retain))
        if len(self._outgoing) > 1000:
            self._outgoing = [m for m in self._outgoing if not m.is_published()]

    def _drain_publishes(self, timeout_s: float = 10.0) -> None:
        """Before disconnecting: let the broker acknowledge the events already published (a
        night_closed sent just before SIGTERM would otherwise die in the socket buffer)."""
        deadline = time.monotonic() + timeout_s
        while self.client.is_connected() and time.monotonic() < deadline:
            self._outgoing = [m for m in self._outgoing if not m.is_published()]
            if not self._outgoing:
                return
            self.client.loop(timeout=0.1)
        if self._outgoing:
            log.warning("%d events not acknowledged by the broker at shutdown", len(self._outgoing))

    def tick(self) -> None:
        self._write_status()
        if (time.monotonic() - self._last_checkpoint >= self.services.service.checkpoint_s
                or self.spool_full_since is not None):
            self.flush()
        if not self._store_ready:
            self._setup_store()
        if self._store_ready:
            self.store.flush_spool()
            self._retry_unwritten()
        silence = self.services.service.night_close_silence_s
        if not self.client.is_connected():
            return  # no frames can arrive: that is not the wearer's silence
        for wearer, night in list(self.nights.items()):
            if time.monotonic() - night.last_frame_wall >= silence:
                try:
                    self.close_night(wearer)
                except StoreError as exc:  # keep serving; the night is written when it can be
                    log.error("closing the night of %s failed: %s", wearer, exc)

    # ------------------------------------------------------------------ messages
    def _on_message(self, client, userdata, msg) -> None:
        try:
            self.handle(msg.topic, msg.payload)
        except Exception:  # one bad message must never stop the service
            log.exception("message on %s could not be handled", msg.topic)
            self.stats["handler_error"] += 1
        if msg.qos:
            self._unacked.append((msg.mid, msg.qos))
        if len(self._unacked) >= self.services.service.checkpoint_frames and self.spool_full_since is None:
            self.flush()

    def handle(self, topic: str, payload: bytes) -> None:
        try:
            t = parse_topic(topic)
        except TopicError as exc:
            self.stats[exc.reason] += 1
            if exc.reason == "bad_id":
                log.warning("%s", exc)
            return
        wearer = t.wearer
        if not any(fnmatch.fnmatchcase(wearer, p) for p in self.services.service.accept_wearers):
            self.stats["unknown_wearer"] += 1
            log.warning("frame from unknown wearer %r dropped", wearer)
            return
        if t.sensor is None:
            if t.kind == "control":
                self._control(wearer, payload)
            return  # our own events topic
        sensor, stream = t.sensor, t.kind
        if stream == "status":
            self._status(wearer, sensor, payload)
        elif stream in SAMPLE_STREAMS:
            self._frame(wearer, sensor, stream, payload)
        # else "ack": our own acknowledgements to the collectors

    def _status(self, wearer: str, sensor: str, payload: bytes) -> None:
        if not payload:
            return
        try:
            st = parse_status(payload)
        except StatusError as exc:
            self.stats["bad_status"] += 1
            log.warning("%s/%s: %s", wearer, sensor, exc)
            return
        if st.channels:
            self.statuses.setdefault(wearer, {})[sensor] = st
            self._dirty = True
        # Kept for the clinician's wearer page (battery, online or not), offline ones included.
        line = self.store.sensor_status_line(wearer, sensor, st.model_dump(), time.time_ns())
        self._buffer(wearer, "", line)

    def _control(self, wearer: str, payload: bytes) -> None:
        try:
            cmd = json.loads(payload or b"{}").get("cmd")
        except ValueError:
            cmd = None
        if cmd == "close-night":
            self.close_night(wearer)
        else:
            self.stats["bad_control"] += 1

    def _frame(self, wearer: str, sensor: str, stream: str, payload: bytes) -> None:
        try:
            frame = decode(payload)
        except FrameError as exc:
            # The message's wording up to its first value: a bounded set of keys, whatever comes.
            reason = re.split(r"[\d'\"\[(:,]", str(exc))[0].strip() or "other"
            key = f"malformed: {reason}"
            if key not in self.stats and sum(k.startswith("malformed: ") for k in self.stats) >= 20:
                key = "malformed: other"
            self.stats[key] += 1
            if self.stats[key] <= 10 or self.stats[key] % 1000 == 0:  # the log stays readable too
                log.warning("malformed frame on %s/%s/%s: %s (%d so far)", wearer, sensor, stream, exc,
                            self.stats[key])
            return
        if frame.stream != stream:
            self.stats["stream_mismatch"] += 1
            return
        status = self.statuses.get(wearer, {}).get(sensor)
        if status is None:
            self.stats["no_status"] += 1
            log.warning("frame from %s/%s before its status (channel names): dropped", wearer, sensor)
            return
        labels = status.channels.get(stream, [])
        if len(labels) != frame.channels:
            self.stats["channel_count_mismatch"] += 1
            return
        self.stats["frames"] += 1
        night = self.nights.get(wearer)
        if night is None:
            night = self._reopen(wearer, frame.first_time_ns)
        if night is None:
            night = WearerNight.open(wearer, frame.first_time_ns, self.statuses[wearer], self.cfg)
            self.nights[wearer] = night
            log.info("night opened for %s at %s", wearer,
                     dt.datetime.fromtimestamp(frame.first_time_ns / 1e9, dt.UTC).isoformat())
        svc = self.services.service
        placed = night.placed_time_ns(sensor, stream, frame, svc.clock_tolerance_s, svc.max_night_s)
        if placed is not None:
            # The samples are stored where the analysis puts them, so the viewer, the events and
            # a re-analysis of the stored night agree; the same frame again lands on the same key.
            self.stats["clock_mismatch_frames"] += 1
            if (k := self.stats["clock_mismatch_frames"]) in (1, 10, 100) or k % 1000 == 0:
                log.warning("%s/%s/%s: frame time %+.1f s from where its sample counter puts it (the "
                            "sender's clock stepped?): stored at the counter's time (%d such frames)",
                            wearer, sensor, stream, (frame.first_time_ns - placed) / 1e9,
                            self.stats["clock_mismatch_frames"])
        raw_text, env_text = self.store.frame_lines(wearer, sensor, stream, labels, frame.raw, frame.scale,
                                                    frame.rate_hz, frame.first_sample,
                                                    frame.first_time_ns if placed is None else placed)
        self._fresh.append((wearer, sensor, stream, frame.first_sample, frame.first_sample + len(frame.raw)))
        self._buffer(wearer, raw_text, env_text)
        for ev in night.feed(sensor, stream, frame, self.stats, self.services.service.reorder_s,
                             self.services.service.max_night_s):
            self._announce(wearer, night, ev)
        for alert in night.alerts():
            self._alert(wearer, night, alert)

    def _reopen(self, wearer: str, t_ns: int) -> WearerNight | None:
        """A frame from inside a night closed shortly before (a collector's outbox flushed after an
        outage, frames the broker held back): that night is opened again from its stored frames,
        so the late ones join it and closing it again re-analyses the whole night."""
        closed = self.recent.get(wearer)
        silence_ns = int(self.services.service.night_close_silence_s * 1e9)
        if closed is None or not closed["start_ns"] <= t_ns < closed["end_ns"] + silence_ns:
            return None
        del self.recent[wearer]
        night = WearerNight.open(wearer, closed["start_ns"], self.statuses[wearer], self.cfg)
        stats: Counter = Counter()
        n = 0
        try:
            self.flush()  # the late frames' own samples are in the store before it is read
            # Both streams by time, as they came: neither waits in the engine for the other.
            span = (closed["start_ns"], closed["end_ns"] + 10**9)
            def tagged(stream: str):
                for sensor, first, t, fs, labels, scales, raw in self.store.raw_frames(wearer, stream, *span):
                    yield t, stream, sensor, first, fs, labels, scales, raw

            for t, stream, sensor, first, fs, labels, scales, raw in heapq.merge(
                    tagged("emg"), tagged("acc"), key=lambda f: f[0]):
                known = self.statuses[wearer].get(sensor)
                want = known.channels.get(stream, []) if known else []
                if sorted(want) != labels:
                    continue
                order = [labels.index(lab) for lab in want]
                fr = Frame(stream, float(fs), first, t, tuple(scales[k] for k in order), raw[:, order])
                night.feed(sensor, stream, fr, stats, float("inf"), self.services.service.max_night_s)
                n += 1
        except StoreError as exc:
            log.error("late frames for %s: the stored night could not be read (%s); they start a new "
                      "fragment, kept apart when it closes", wearer, exc)
            return None
        self.nights[wearer] = night
        night.live_events = list(night.engine.events)  # announced when the night first closed
        self.stats["nights_reopened"] += 1
        log.info("night %s of %s reopened for late frames (%d stored frames read again)", closed["night"],
                 wearer, n)
        return night

    def _announce(self, wearer: str, night: WearerNight, ev: Event) -> None:
        night.live_events.append(ev)
        start = dt.datetime.fromtimestamp(night.start_ns / 1e9, dt.UTC)
        body = ev.to_json(start) | {"wearer": wearer, "night": night_key(start),
                                    "decided_at_s": night.engine.blocks * night.engine.block_s}
        self._publish(wearer_topic(wearer, "events"), json.dumps(body))
        self.stats["events_published"] += 1

    def _advice(self, wearer: str, key: str, analysis: Analysis) -> list[dict]:
        """Advice with the wearer's stored history and diary; this night alone if the store is
        unreachable (the night is still written, to the spool if need be)."""
        cramps = [e.to_json(analysis.recording.start) for e in analysis.of_kind("cramp")]
        try:
            history = [n for n in self.store.nights(wearer) if n["night"] != key]
            diaries = {k: Diary(**v) for k, v in self.store.diaries(wearer).items()}
        except (StoreError, ValueError) as exc:
            log.warning("history of %s not readable (%s): advice from this night only", wearer, exc)
            history, diaries = [], {}
        try:
            return advise(analysis.summary, events=cramps, history=history, diaries=diaries, night=key)
        except AdviceError as exc:  # a broken rule file must not cost the night
            log.error("advice rules not usable: %s", exc)
            return []

    def _alert(self, wearer: str, night: WearerNight, alert: CrampAlert) -> None:
        start = dt.datetime.fromtimestamp(night.start_ns / 1e9, dt.UTC)
        eng = night.engine
        decided = alert.met_at_s if alert.status == "suspected" else eng.blocks * eng.block_s
        body = alert.to_json(start) | {"wearer": wearer, "night": night_key(start), "decided_at_s": decided}
        self._publish(wearer_topic(wearer, "events"), json.dumps(body))
        self.stats[f"cramp_alerts_{alert.status}"] += 1
        log.info("cramp %s for %s: %s leg from %.1f s", alert.status, wearer, alert.side, alert.start_s)

    # ------------------------------------------------------------------ storage
    def _buffer(self, wearer: str, raw_text: str, env_text: str) -> None:
        target = self.store.of(wearer)
        _, raw, env = self._buf.setdefault(id(target), (target, [], []))
        if raw_text:
            raw.append(raw_text)
            self._buf_bytes += len(raw_text)
        if env_text:
            env.append(env_text)
        # While the disk is full only the tick tries again (not every frame).
        if self._buf_bytes >= _FLUSH_BYTES and self.spool_full_since is None:
            self.flush()

    def flush(self) -> bool:
        """Store buffered frames (or spool them), checkpoint the open nights, then acknowledge
        the frames to the broker: anything not acknowledged is redelivered after a crash.

        The buffers are let go only once the write (or the spool) has them. With InfluxDB down
        and the disk full, nothing is acknowledged: the service reports ``spool_full`` (log,
        ``state_dir/status.json``), keeps its buffers and tries again at every tick. False then.
        """
        try:
            for key, (target, raw, env) in list(self._buf.items()):
                if raw:
                    target.write("\n".join(raw), rp=target.s.raw_rp)
                    raw.clear()  # a retry after a failure below writes only what is left
                if env:
                    target.write("\n".join(env))
                del self._buf[key]
            self._buf_bytes = 0
            if self._unacked or self._dirty:
                self._checkpoint()
        except (SpoolFull, OSError) as exc:
            if self.spool_full_since is None:
                self.spool_full_since = time.time()
                self.stats["spool_full"] += 1
                self._write_status()
                log.error("spool_full: %s; frames are no longer acknowledged until there is room", exc)
            return False
        self._ack()
        self._confirm_stored()
        if self.spool_full_since is not None:
            since, self.spool_full_since = self.spool_full_since, None
            self._write_status()
            log.info("spool has room again after %.0f s: acknowledging frames", time.time() - since)
        return True

    def _confirm_stored(self) -> None:
        """Tell each sensor which of its sample ranges are stored (in InfluxDB or its spool),
        retained on ``nightcramp/v1/<wearer>/<sensor>/ack``: its collector then lets go of
        those frames (docs/mqtt-frames.md)."""
        if not self._fresh:
            return
        touched = set()
        for wearer, sensor, stream, a, b in self._fresh:
            self.stored_ranges.setdefault((wearer, sensor), {}).setdefault(stream, []).append([a, b])
            touched.add((wearer, sensor))
        self._fresh = []
        if len(self.stored_ranges) > _MAX_ACK_SENSORS:  # bounded: sensors not heard of for long go
            for k in list(self.stored_ranges)[:len(self.stored_ranges) - _MAX_ACK_SENSORS]:
                del self.stored_ranges[k]
        for key in touched:
            streams = self.stored_ranges[key]
            for stream, rs in streams.items():
                streams[stream] = _merge_ranges(rs)[-_MAX_ACK_RANGES:]
            self.stored_ranges[key] = self.stored_ranges.pop(key)  # most recent last
            self._publish(sensor_topic(key[0], key[1], "ack"), json.dumps({"stored": streams}), retain=True)
        self.stats["acks_published"] += len(touched)

    def _write_status(self, running: bool = True) -> None:
        """``state_dir/status.json``, rewritten every tick: what an operator (``nightcramp stack
        status``) and ``nightcramp night close`` read (is a detector running, which nights are open)."""
        d = Path(self.services.service.state_dir)
        body = {"pid": os.getpid(), "running": running, "tick_s": self.services.service.tick_s,
                "spool_full": self.spool_full_since is not None,
                "spool_full_since": self.spool_full_since, "open_nights": sorted(self.nights),
                "stats": dict(self.stats), "at": time.time()}
        try:
            tmp = d / "status.json.tmp"
            tmp.write_text(json.dumps(body))
            os.replace(tmp, d / "status.json")
        except OSError as exc:  # the disk may be the one that is full
            (d / "status.json.tmp").unlink(missing_ok=True)
            log.warning("status not written: %s", exc)

    # ------------------------------------------------------------------ checkpoints
    def _state_path(self) -> Path:
        d = Path(self.services.service.state_dir)
        d.mkdir(parents=True, exist_ok=True)
        return d / "nights.state"

    def _checkpoint(self) -> None:
        """Every open night's state as versioned plain data (detector.engine.state), beside an
        index (wearer, start, last sample time) that any later version can still read."""
        path = self._state_path()
        size = write_state_file(path, {
            "nights": {w: n.get_state() for w, n in self.nights.items()},
            "statuses": self._plain_statuses(), "unwritten": self.unwritten,
            "stored_ranges": to_plain(self.stored_ranges), "recent": self.recent}, index=self._open_index())
        self._dirty = False
        self._last_checkpoint = time.monotonic()
        self.stats["checkpoints"] += 1
        self.stats["checkpoint_bytes"] = size

    def _restore(self) -> None:
        path = self._state_path()
        old = path.with_name("nights.pickle")
        if old.exists():
            # Written by a detector before checkpoints were plain data: never unpickled (a
            # pickle can run code), kept for the operator.
            old.rename(old.with_name("nights.pickle.refused"))
            log.error("checkpoint %s is from an earlier nightcramp (pickled objects) and is not loaded; "
                      "kept as %s. The nights open in it are not resumed (it has no index to reopen them "
                      "by); their samples stay in InfluxDB.", old, old.with_name("nights.pickle.refused"))
        if not path.exists():
            return
        try:
            state = read_state_file(path)
            nights = {w: WearerNight.from_state(s, self.cfg) for w, s in state["nights"].items()}
            statuses = self._parse_statuses(state["statuses"])
        except (StateError, ValueError, KeyError, TypeError) as exc:
            self._refuse_checkpoint(path, exc)
            return
        self.nights = nights
        for night in self.nights.values():
            night.last_frame_wall = time.monotonic()
        self.statuses = statuses
        self.unwritten = state["unwritten"]
        self.stored_ranges = from_plain(state["stored_ranges"])
        self.recent = state["recent"]
        log.info("resumed %d open night(s) from %s", len(self.nights), path)

    def _plain_statuses(self) -> dict:
        """Every sensor's status as plain data (checkpoint, partition record)."""
        return {w: {k: st.model_dump(exclude_none=True) for k, st in per.items()}
                for w, per in self.statuses.items()}

    @staticmethod
    def _parse_statuses(plain: dict) -> dict[str, dict[str, SensorStatus]]:
        return {w: {k: SensorStatus.model_validate(st) for k, st in per.items()} for w, per in plain.items()}

    def _open_index(self) -> list[dict]:
        """The open nights as (wearer, start, last sample time): what reopens them from the store."""
        return [{"wearer": w, "start_ns": n.start_ns, "end_ns": n.end_ns()} for w, n in self.nights.items()]

    def _mark_closed(self, index: list[dict]) -> None:
        """Nights of ``index`` counted as closed shortly before, so ``_reopen`` rebuilds them from
        their stored samples."""
        for entry in index:
            start = dt.datetime.fromtimestamp(entry["start_ns"] / 1e9, dt.UTC)
            self.recent[entry["wearer"]] = {"night": night_key(start), "start_ns": entry["start_ns"],
                                            "end_ns": entry["end_ns"]}

    def _refuse_checkpoint(self, path: Path, why: Exception) -> None:
        """A checkpoint this version cannot resume: set aside, and each night it held is marked as
        closed so that the wearer's next frames reopen it from the stored samples (``_reopen``),
        which re-analyses the whole night."""
        refused = path.with_name(path.name + ".refused")
        os.replace(path, refused)
        index = read_state_index(refused)
        self._mark_closed(index)
        self.stats["checkpoint_refused"] += 1
        log.error("checkpoint not resumed (%s); kept as %s. %d open night(s) in it are re-analysed from "
                  "their stored samples when their sensors send again.", why, refused, len(index))

    def _ack(self) -> None:
        for mid, qos in self._unacked:
            self.client.ack(mid, qos)
        self._unacked.clear()

    def _write_night(self, wearer: str, key: str, body: dict) -> None:
        """Store a closed night. One that cannot be stored now waits in the checkpoint
        (``unwritten``) and is written by a later tick; a shorter fragment of a longer stored
        night is kept apart in ``state_dir/kept-apart/``, never merged and never replacing it."""
        try:
            self.store.write_analysis(wearer, key, body)
        except NightConflict as exc:
            try:
                self._keep_apart(wearer, key, body, exc)
            except OSError as err:  # no room even for that: it waits in the checkpoint instead
                log.error("fragment of night %s of %s not kept apart (%s): retried later", key, wearer, err)
                self.unwritten.append({"wearer": wearer, "night": key, "analysis": body})
        except StoreError as exc:
            self.stats["night_write_deferred"] += 1
            self.unwritten.append({"wearer": wearer, "night": key, "analysis": body})
            log.error("night %s of %s not stored (%s): kept in the checkpoint and retried", key, wearer, exc)

    def _keep_apart(self, wearer: str, key: str, body: dict, why: Exception) -> None:
        self.stats["fragment_kept_apart"] += 1
        d = Path(self.services.service.state_dir) / "kept-apart"
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{wearer}_{key}_{time.time_ns()}.json"
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps({"wearer": wearer, "night": key, "analysis": body}))
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        log.warning("%s: kept apart in %s", why, path)

    def _retry_unwritten(self) -> None:
        while self.unwritten:
            item = self.unwritten[0]
            try:
                self.store.write_analysis(item["wearer"], item["night"], item["analysis"])
            except NightConflict as exc:
                try:
                    self._keep_apart(item["wearer"], item["night"], item["analysis"], exc)
                except OSError:
                    return
            except StoreError as exc:
                log.warning("night %s of %s still not stored: %s", item["night"], item["wearer"], exc)
                return
            else:
                log.info("night %s of %s stored after waiting", item["night"], item["wearer"])
            self.unwritten.pop(0)
            self._dirty = True

    def close_night(self, wearer: str) -> Analysis | None:
        if wearer not in self.nights:
            return None
        if not self.flush():  # the disk is full: the night stays open until its frames are kept
            return None
        night = self.nights.pop(wearer)
        analysis = night.finish()
        announced = {e.key() for e in night.live_events}
        for ev in analysis.events:
            if ev.key() not in announced:
                self._announce(wearer, night, ev)
        for alert in night.engine.watch():
            self._alert(wearer, night, alert)
        key = night_key(analysis.recording.start)
        self.recent[wearer] = {"night": key, "start_ns": night.start_ns,
                               "end_ns": night.start_ns + int(analysis.recording.duration_s * 1e9)}
        analysis.advice = self._advice(wearer, key, analysis)
        self._write_night(wearer, key, analysis.to_json())
        self._dirty = True
        self._checkpoint()
        self.closed.append((wearer, key))
        log.info("night %s of %s closed: %d events, %d cramps", key, wearer, len(analysis.events),
                 analysis.summary.cramps)
        self._publish(wearer_topic(wearer, "events"),
                            json.dumps({"kind": "night_closed", "wearer": wearer, "night": key,
                                        "summary": analysis.summary.to_json()}))
        return analysis
