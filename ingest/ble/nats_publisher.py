"""The collector's outbox sent to NATS JetStream (``[transport] kind = "nats"``, docs/scaling.md).

A message leaves the outbox only when the frames stream acknowledges it: the stream has stored
it on a majority of its replicas, so a server killed afterwards loses nothing. Until then it stays
in the outbox and is sent again (after a timeout, a reconnect, a new stream leader) with the same
``Nats-Msg-Id``, which the stream stores once. Unlike the MQTT path there is no wait for the
detector: JetStream itself is the durable hand-over, and the detector workers read it at their
own pace.

NATS has no retained messages or last will: sensor statuses go into the same stream (in order
with the frames, in the wearer's partition), and a sensor that falls silent is seen by the
absence of frames.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from ingest.ble.outbox import Outbox
from ingest.wire.jetstream import msg_id, subject

log = logging.getLogger("nightcramp.collector")


class JetStreamPublisher:
    """Sends the outbox to the frames stream in order, ``max_inflight`` messages awaiting their
    acknowledgement at a time (``servers``: nats://host:port of one or more cluster members)."""

    def __init__(self, outbox: Outbox, servers: list[str], *, name: str = "nightcramp-collector",
                 max_inflight: int = 256, ack_timeout_s: float = 5.0, user: str | None = None,
                 password: str | None = None, inbox_prefix: str = "_INBOX") -> None:
        self.outbox, self.servers, self.name = outbox, servers, name
        self.max_inflight, self.ack_timeout_s = max_inflight, ack_timeout_s
        self.user, self.password, self.inbox_prefix = user, password, inbox_prefix
        self.sent = 0  # acknowledged by the stream and removed from the outbox
        self.duplicates = 0  # acknowledged as already stored (sent twice)
        self.resent = 0  # sent again after no or a failed acknowledgement
        self.refused = 0  # refused by the stream (no such stream, a subject outside it)
        self.connects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="jetstream-publisher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        import nats

        async def connected() -> None:
            self.connects += 1

        nc = None
        while nc is None and not self._stop.is_set():
            try:
                nc = await nats.connect(servers=self.servers, name=self.name, user=self.user,
                                        password=self.password, inbox_prefix=self.inbox_prefix,
                                        allow_reconnect=True,
                                        max_reconnect_attempts=-1, reconnect_time_wait=0.2, connect_timeout=2,
                                        reconnected_cb=connected)
            except Exception as exc:  # no server up yet: the outbox keeps everything meanwhile
                log.warning("no NATS server answered at %s (%s); trying again", ", ".join(self.servers), exc)
                await asyncio.sleep(1.0)
        if nc is None:
            return
        self.connects += 1
        js = nc.jetstream()
        try:
            while not self._stop.is_set():
                rows = self.outbox.pending(after=0, limit=self.max_inflight)
                if not rows:
                    await asyncio.sleep(0.02)
                    continue
                await self._send(js, rows)
        finally:
            try:
                await asyncio.wait_for(nc.close(), 5)
            except Exception:
                pass  # the servers are gone: nothing left to say to them

    async def _send(self, js, rows: list[tuple[int, str, bytes, bool]]) -> None:
        """One window of the outbox, sent at once, each message waiting at most ``ack_timeout_s``
        for its acknowledgement. A row without one stays in the outbox; the next window starts
        again from the oldest row left. (Not publish_async: its futures never time out, and ones
        whose acknowledgement died with a server would hold its in-flight slots for ever.)"""
        from nats.js.errors import APIError

        async def one(row: int, topic: str, payload: bytes):
            try:
                ack = await js.publish(subject(topic), payload, timeout=self.ack_timeout_s,
                                       headers={"Nats-Msg-Id": msg_id(topic, payload)})
                return row, ack, None
            except Exception as exc:  # no acknowledgement in time, a refusal, a lost connection
                return row, None, exc

        results = await asyncio.gather(*(one(row, topic, payload) for row, topic, payload, _ in rows))
        done = [row for row, ack, _ in results if ack is not None]
        self.duplicates += sum(bool(ack.duplicate) for _, ack, _ in results if ack is not None)
        refused = [exc for _, ack, exc in results if isinstance(exc, APIError)]
        if refused:
            # The stream said no (not a timeout): sending again cannot help until the stream is
            # set up; say so once, keep the messages.
            self.refused += len(refused)
            if self.refused == len(refused):
                log.error("the frames stream refused a message (%s): it stays in the outbox; is the "
                          "stream set up (a detector worker makes it)?", refused[0])
        self.outbox.done_many(done)  # one disk sync per window
        self.sent += len(done)
        failed = len(rows) - len(done)
        if failed:
            self.resent += failed
            await asyncio.sleep(0.2)  # a new leader is elected within seconds; do not spin

    def drain(self, timeout: float = 60.0) -> bool:
        """Wait until the outbox is empty (every message stored by the stream)."""
        deadline = time.monotonic() + timeout
        while len(self.outbox) and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.05)
        return len(self.outbox) == 0

    def stop(self) -> None:
        """Stop after the window in flight (at most ``ack_timeout_s`` and a close): the outbox
        is not touched after this returns."""
        self._stop.set()
        self._thread.join(self.ack_timeout_s + 30)
