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
                 password: str | None = None) -> None:
        self.outbox, self.servers, self.name = outbox, servers, name
        self.max_inflight, self.ack_timeout_s = max_inflight, ack_timeout_s
        self.user, self.password = user, password
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

        nc = await nats.connect(servers=self.servers, name=self.name, user=self.user, password=self.password,
                                allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=0.2,
                                connect_timeout=2, reconnected_cb=connected)
        self.connects += 1
        js = nc.jetstream(publish_async_max_pending=self.max_inflight)
        try:
            while not self._stop.is_set():
                rows = self.outbox.pending(after=0, limit=self.max_inflight)
                if not rows:
                    await asyncio.sleep(0.02)
                    continue
                await self._send(js, rows)
        finally:
            await nc.drain() if nc.is_connected else await nc.close()

    async def _send(self, js, rows: list[tuple[int, str, bytes, bool]]) -> None:
        """One window of the outbox: all sent, then every acknowledgement awaited. A row without
        one stays in the outbox; the next window starts again from the oldest row left."""
        from nats.js.errors import APIError

        futs = []
        for row, topic, payload, _retain in rows:
            try:
                fut = await js.publish_async(subject(topic), payload, wait_stall=self.ack_timeout_s,
                                             headers={"Nats-Msg-Id": msg_id(topic, payload)})
            except Exception as exc:  # disconnected, stalled: the rest of the window waits
                log.debug("publish of outbox row %d deferred: %s", row, exc)
                break
            futs.append((row, fut))
        failed = 0
        done: list[int] = []
        for row, fut in futs:
            try:
                ack = await asyncio.wait_for(fut, self.ack_timeout_s)
            except APIError as exc:
                # The stream said no (not a timeout): sending it again cannot help until the
                # stream is set up; say so once, keep the message.
                self.refused += 1
                if self.refused == 1:
                    log.error("the frames stream refused a message (%s): it stays in the outbox; "
                              "is the stream set up ('nightcramp stack up --cluster')?", exc)
                failed += 1
                continue
            except Exception:  # no acknowledgement in time (leader election, a dead server)
                failed += 1
                continue
            done.append(row)
            self.duplicates += bool(ack.duplicate)
        self.outbox.done_many(done)  # one disk sync per window
        self.sent += len(done)
        unsent = len(rows) - len(futs)
        if failed or unsent:
            self.resent += failed
            await asyncio.sleep(0.2)  # a new leader is elected within seconds; do not spin

    def drain(self, timeout: float = 60.0) -> bool:
        """Wait until the outbox is empty (every message stored by the stream)."""
        deadline = time.monotonic() + timeout
        while len(self.outbox) and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.05)
        return len(self.outbox) == 0

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
