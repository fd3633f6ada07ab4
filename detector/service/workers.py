"""Detector workers on a NATS JetStream cluster (``[transport] kind = "nats"``, docs/scaling.md).

The frames stream is split into partitions by wearer (ingest.wire.jetstream). A worker runs one
detector (:class:`~detector.service.live.DetectorService`, the same code as on one machine) per
partition it holds, fed from that partition's durable consumer, and:

- **owns** a partition by a lease in the KV bucket ``nightcramp_leases`` (the bucket's TTL is the
  lease; heartbeats renew it); partitions are spread over the live workers (``nightcramp_workers``)
  by rendezvous hashing, so a worker that joins or leaves moves only its share;
- **takes** a partition by loading its last committed checkpoint (object store
  ``nightcramp_checkpoints``, named by the record ``p<k>`` in ``nightcramp_partitions``) and
  re-creating the partition's consumer at the checkpoint's stream sequence + 1: whatever the
  previous owner received after its last commit is delivered again, in stream order, and nothing
  it received before comes back;
- **commits** a checkpoint by writing it to the object store under a new name and then updating
  the partition record with a compare-and-set on the revision it read when it took the
  partition (the fence: an owner whose lease lapsed finds the record changed, stops, and leaves
  its messages unacknowledged); messages are acknowledged only after the commit.

Storage keys make the replays harmless (a frame stored twice lands on the same point; a night
re-written replaces itself), so the effect is exactly once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import queue
import shutil
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.engine.config import DetectorConfig
from detector.service.live import DetectorService
from detector.service.settings import Services
from detector.store.accounts import settings_for
from detector.store.shards import Store, open_store
from ingest.wire import jetstream
from ingest.wire.mqtt_client import DETECTOR
from ingest.wire.nats_bus import Bus, login

log = logging.getLogger("nightcramp.workers")

LEASES, PARTS, WORKERS, CHECKPOINTS = ("nightcramp_leases", "nightcramp_partitions", "nightcramp_workers",
                                       "nightcramp_checkpoints")


TAKE_PER_TURN = 8
RELEASE_S = 20.0  # at most this long handing partitions over when stopping


class Fenced(RuntimeError):
    """This worker no longer owns the partition (its commit found the record changed)."""


class CommitFailed(OSError):
    """A checkpoint JetStream did not take in time (a leader election, a lost server): like a full
    spool, nothing is acknowledged and the next tick tries again."""


class _Published:
    """What the service's publish gets back: core NATS publishes are fire-and-forget."""

    def is_published(self) -> bool:
        return True


class BusClient:
    """The part of the MQTT client a DetectorService uses, over NATS: events go out as core NATS
    messages (``nightcramp.v1.<wearer>.events``); stored-range acknowledgements are not sent
    (collectors on NATS let go of a frame on the stream's acknowledgement)."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.on_message = self.on_connect = self.on_subscribe = None

    def publish(self, topic: str, payload, qos: int = 1, retain: bool = False) -> _Published:
        if not topic.endswith("/ack"):
            data = payload.encode() if isinstance(payload, str) else payload
            self.bus.loop.call_soon_threadsafe(asyncio.ensure_future,
                                               self.bus.nc.publish(topic.replace("/", "."), data))
        return _Published()

    def is_connected(self) -> bool:
        return self.bus.connected()

    def max_inflight_messages_set(self, n: int) -> None:
        pass

    def max_queued_messages_set(self, n: int) -> None:
        pass

    def disconnect(self) -> None:
        pass


class PartitionService(DetectorService):
    """The detector of one partition: its checkpoint committed to JetStream, its messages
    acknowledged after that."""

    def __init__(self, services: Services, cfg: DetectorConfig, store: Store, client: BusClient,
                 part: Partition, worker: Worker) -> None:
        super().__init__(services, cfg, store, client=client)  # type: ignore[arg-type]
        self.part, self.worker = part, worker

    def _checkpoint(self) -> None:
        super()._checkpoint()
        self.worker.commit(self.part, self._state_path().read_bytes(), self.recovery_note())

    def recovery_note(self) -> dict:
        """What the partition record keeps beside the checkpoint's name, so that a partition
        whose checkpoint object is lost or unreadable is taken all the same and loses nothing:
        each sensor's status (its channel names, without which its frames cannot be read), the
        open nights (wearer, start, last sample time: reopened from their stored samples) and the
        nights closed shortly before (late frames reopen them). A few hundred bytes a wearer."""
        return {"statuses": self._plain_statuses(), "open": self._open_index(), "recent": self.recent}

    def recover(self, note: dict, why: str) -> None:
        """Resume from the partition record's note instead of a checkpoint (see
        :meth:`recovery_note`): statuses set again, and every night that was open reopened from
        its stored samples, so the frames after the committed sequence join it (``_reopen``)."""
        self.statuses = self._parse_statuses(note.get("statuses") or {}) | self.statuses
        self.recent = (note.get("recent") or {}) | self.recent
        opened = [e for e in note.get("open") or [] if e["wearer"] in self.statuses
                  and e["wearer"] not in self.nights]
        self._mark_closed(opened)
        reopened = sum(self._reopen(e["wearer"], e["end_ns"]) is not None for e in opened)
        self.stats["checkpoint_recovered"] += 1
        self._dirty = True
        log.error("partition %d: checkpoint %s; resumed from the partition record: %d sensor status(es), "
                  "%d open night(s) reopened from their stored samples", self.part.k, why,
                  sum(len(v) for v in self.statuses.values()), reopened)

    def _ack(self) -> None:
        self.worker.ack(self.part)
        self._unacked.clear()

    def _write_status(self, running: bool = True) -> None:
        pass  # the worker reports for all its partitions


@dataclass
class Partition:
    k: int
    revision: int  # of the partition record when taken (the fence)
    seq: int  # last stream sequence handled
    committed_seq: int
    lease_rev: int
    svc: PartitionService | None = None
    sid: Any = None  # the push subscription
    pending: list = field(default_factory=list)  # messages handled, not yet acknowledged
    gen: int = 0  # which consumer of the partition its messages came from
    checkpoint: str = ""  # object name of the last committed checkpoint
    cseq: int = 0  # last delivery (consumer) sequence seen from the current consumer


def rendezvous(k: int, workers: list[str]) -> str:
    """The worker that should hold partition ``k``: highest hash of (partition, worker)."""
    return max(workers, key=lambda w: hashlib.sha256(f"{k}/{w}".encode()).digest())


class Worker:
    """``nightcramp detect --worker``: holds its share of the partitions and runs their detectors."""

    def __init__(self, services: Services, cfg: DetectorConfig, *, store: Store | None = None) -> None:
        self.services, self.cfg = services, cfg
        n = services.nats
        self.id = n.worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.store = store or open_store(settings_for(services.store, "detector"),
                                         services.dashboard.users_db)
        self.base = Path(services.service.state_dir) / "partitions"
        self.parts: dict[int, Partition] = {}
        self.inbox: queue.Queue = queue.Queue()
        self.stats: dict[str, float] = {"taken": 0, "released": 0, "fenced": 0, "messages": 0,
                                      "commits": 0}
        self._stop = False
        self._bus: Bus | None = None
        self._alive_at = time.monotonic()  # the main loop's last turn (the heartbeat checks it)
        self._lost: set[int] = set()  # partitions whose lease the heartbeat found gone
        self._restarting: set[int] = set()  # partitions whose consumer is being re-created
        self._restart_slots: asyncio.Semaphore | None = None

    @property
    def bus(self) -> Bus:
        if self._bus is None:
            raise RuntimeError("the worker is not started")
        return self._bus

    # ---------------------------------------------------------------- set-up
    def start(self) -> None:
        n = self.services.nats
        self._bus = Bus(n.servers, f"nightcramp-worker-{self.id}", on_reconnect=self._reconnected,
                        login=login(self.services.mqtt.credentials_dir, DETECTOR))
        # Several workers starting together set up the same stream and buckets; a JetStream API
        # call can time out while the cluster is still electing their leaders: try again.
        for attempt in range(6):
            try:
                self.bus.call(self._setup(), timeout=60)
                break
            except Exception as exc:
                if attempt == 5:
                    raise
                log.warning("JetStream set-up not answered yet (%s); again", exc)
                time.sleep(1.0 + attempt)
        self.client = BusClient(self.bus)
        self.bus.loop.call_soon_threadsafe(lambda: self.bus.loop.create_task(self._beat()))
        self.store.setup()
        if self.base.exists():
            shutil.rmtree(self.base)  # local copies only: the committed checkpoints are in JetStream
        self.base.mkdir(parents=True)
        log.info("worker %s connected to %s", self.id, ", ".join(n.servers))

    async def _setup(self) -> None:
        from nats.js.api import KeyValueConfig, ObjectStoreConfig, StorageType

        js, n = self.bus.js, self.services.nats
        await jetstream.ensure_frames_stream(js, replicas=n.replicas, max_age_s=n.max_age_h * 3600)
        reps = min(n.replicas, 3)
        self.leases = await js.create_key_value(KeyValueConfig(bucket=LEASES, ttl=n.lease_s, replicas=reps,
                                                               storage=StorageType.FILE))
        self.workers = await js.create_key_value(KeyValueConfig(bucket=WORKERS, ttl=n.lease_s, replicas=reps,
                                                                storage=StorageType.FILE))
        self.records = await js.create_key_value(KeyValueConfig(bucket=PARTS, replicas=reps,
                                                                storage=StorageType.FILE))
        cfg = ObjectStoreConfig(bucket=CHECKPOINTS, replicas=reps, storage=StorageType.FILE)
        self.objects = await js.create_object_store(CHECKPOINTS, config=cfg)

    # ---------------------------------------------------------------- the loop
    def run(self, until=None) -> None:
        self.start()
        n, tick = self.services.nats, self.services.service.tick_s
        # Let workers starting together see each other before any takes a partition (else the
        # first one takes all 64 and gives most of them back a moment later).
        next_beat, next_tick = time.monotonic() + 2 * n.heartbeat_s, 0.0
        try:
            while not self._stop and not (until and until()):
                now = time.monotonic()
                self._alive_at = now
                for k in list(self._lost):
                    self._lost.discard(k)
                    if k in self.parts:
                        self.stats["fenced"] += 1
                        log.warning("partition %d: its lease lapsed; given up", k)
                        self._drop(self.parts[k])
                if now >= next_beat:
                    try:
                        self._rebalance()
                    except Exception as exc:  # the cluster is electing a leader: next beat
                        log.warning("rebalance not done (%s: %s)", type(exc).__name__, exc)
                    self._write_status()
                    next_beat = now + n.heartbeat_s
                self._drain_inbox(deadline=time.monotonic() + 0.2)
                if time.monotonic() >= next_tick:
                    for p in list(self.parts.values()):
                        self._guard(p, lambda p=p: p.svc.tick())
                    next_tick = time.monotonic() + tick
                    self._write_status()
        finally:
            # Hand the partitions over cleanly while there is time and a cluster to commit to;
            # the rest resume from their last commit (nothing is lost, a little is replayed).
            deadline = time.monotonic() + RELEASE_S
            for p in list(self.parts.values()):
                if time.monotonic() < deadline and self.bus.connected():
                    self._release(p)
                else:
                    self._drop(p)
            self.bus.call(self.workers.delete(self.id)) if self.bus.connected() else None
            self.bus.close()
            self.store.close()
            self._write_status(running=False)

    def stop(self) -> None:
        self._stop = True

    def _drain_inbox(self, deadline: float) -> None:
        frames = self.services.service.checkpoint_frames
        while time.monotonic() < deadline:
            try:
                k, gen, msg = self.inbox.get(timeout=0.05)
            except queue.Empty:
                return
            p = self.parts.get(k)
            if p is None or p.gen != gen or not msg.reply:
                continue  # for a consumer given up since: the new one starts from the checkpoint
            cseq = msg.metadata.sequence.consumer
            if cseq > p.cseq + 1:
                # Deliveries lost on the way (pushed while this worker reconnected): JetStream
                # would send them again only after ack_wait, behind newer frames.
                self.stats["delivery_gaps"] = self.stats.get("delivery_gaps", 0) + 1
                self._restart_consumer(p)
                continue
            p.cseq = cseq
            seq = msg.metadata.sequence.stream
            if seq <= p.seq:
                continue  # delivered before the consumer was moved back: already handled
            p.seq = seq
            self.stats["messages"] += 1
            now = time.time()
            self.stats.setdefault("first_message_at", now)  # wall times: the bench's throughput
            self.stats["last_message_at"] = now

            def handle(p=p, msg=msg, seq=seq) -> None:
                p.svc.handle(jetstream.topic_of(msg.subject), msg.data)
                p.pending.append(msg)
                p.svc._unacked.append((seq, 1))
                if len(p.svc._unacked) >= frames:
                    p.svc.flush()

            self._guard(p, handle)

    def _reconnected(self) -> None:
        """On the bus loop, after the connection came back: whatever was pushed meanwhile is lost,
        so every held partition's consumer starts again after its last message handled."""
        self.stats["reconnects"] = self.stats.get("reconnects", 0) + 1
        for p in list(self.parts.values()):
            self._restart_consumer(p)

    def _restart_consumer(self, p: Partition) -> None:
        """Re-create ``p``'s consumer at the last stream sequence handled + 1, in the background.

        On the bus loop, a few at a time: the main loop goes on (so the heartbeat keeps the
        leases) while the cluster may take seconds per consumer during a leader election. A start
        before the true next frame is harmless: frames at or below ``p.seq`` are skipped."""
        if p.k in self._restarting:
            return
        self._restarting.add(p.k)

        async def restart() -> None:
            if self._restart_slots is None:
                self._restart_slots = asyncio.Semaphore(4)
            try:
                for attempt in range(30):
                    if self.parts.get(p.k) is not p or self._stop:
                        return  # given up or moved meanwhile
                    try:
                        async with self._restart_slots:
                            await self._consume(p)
                        self.stats["consumer_restarts"] = self.stats.get("consumer_restarts", 0) + 1
                        log.info("partition %d: consumer restarted at stream sequence %d", p.k, p.seq + 1)
                        return
                    except Exception as exc:
                        log.warning("partition %d: consumer not restarted yet (%s: %s)", p.k,
                                    type(exc).__name__, exc)
                        await asyncio.sleep(min(5.0, 0.5 * (attempt + 1)))
            finally:
                self._restarting.discard(p.k)

        if self._bus is not None:
            self.bus.submit(restart())
        else:
            self._restarting.discard(p.k)

    def _guard(self, p: Partition, fn) -> None:
        """Run ``fn`` for partition ``p``; a fenced partition is given up on the spot."""
        try:
            fn()
        except Fenced as exc:
            self.stats["fenced"] += 1
            log.warning("partition %d: %s; given up", p.k, exc)
            self._drop(p)
        except Exception:  # one bad message must never stop the worker
            log.exception("partition %d: message not handled", p.k)

    # ---------------------------------------------------------------- ownership
    async def _beat(self) -> None:
        """The heartbeat, on the bus's loop so that slow work in the detectors (a night closing,
        a commit waiting for a leader election) never lets a lease lapse: every ``heartbeat_s``
        this worker's key and the leases of its partitions are renewed — but only while the
        main loop is alive (a stuck worker lets its partitions go). A lease found gone or held by
        another worker marks the partition lost; the main loop gives it up."""
        from nats.js.errors import KeyWrongLastSequenceError

        n = self.services.nats
        while not self._stop:
            if time.monotonic() - self._alive_at < n.lease_s:
                try:
                    nights = sorted(w for p in list(self.parts.values()) if p.svc for w in list(p.svc.nights))
                    await self.workers.put(self.id, json.dumps({"at": time.time(),
                                                                "open_nights": nights}).encode())
                except Exception as exc:
                    log.warning("heartbeat not stored (%s: %s)", type(exc).__name__, exc)
                for k, p in list(self.parts.items()):
                    try:
                        p.lease_rev = await self.leases.update(f"p{k}", self.id.encode(), last=p.lease_rev)
                    except KeyWrongLastSequenceError:
                        self._lost.add(k)
                    except Exception as exc:  # a leader election: the lease outlives a few of these
                        log.warning("partition %d: lease not renewed yet (%s: %s)", k, type(exc).__name__,
                                    exc)
            await asyncio.sleep(n.heartbeat_s)

    def live_workers(self) -> list[str] | None:
        """The workers with a fresh heartbeat; None when the bucket cannot be read now (then
        nothing moves: guessing "only me" would take every partition)."""
        try:
            return sorted(self.bus.call(jetstream.kv_entries(self.bus.js, WORKERS), timeout=10))
        except Exception as exc:
            log.warning("live workers not read (%s: %s); partitions stay where they are",
                        type(exc).__name__, exc)
            return None

    def _rebalance(self) -> None:
        live = self.live_workers()
        if live is None:
            return
        if self.id not in live:
            live.append(self.id)
        mine = {k for k in range(self.services.nats.partitions) if rendezvous(k, live) == self.id}
        for k in sorted(set(self.parts) - mine):
            self._release(self.parts[k])
            self._alive_at = time.monotonic()
        # A few at a time: taking one can take seconds while the cluster recovers, and the
        # partitions already held must keep being served (and their leases renewed) meanwhile.
        for k in sorted(mine - set(self.parts))[:TAKE_PER_TURN]:
            self._take(k)
            self._alive_at = time.monotonic()

    def _take(self, k: int) -> None:
        from nats.js.errors import KeyWrongLastSequenceError

        try:
            lease_rev = self.bus.call(self.leases.create(f"p{k}", self.id.encode()))
        except KeyWrongLastSequenceError:
            return  # its owner still holds it (it releases on rebalance, or its lease lapses)
        try:
            self._load(k, lease_rev)
        except Exception as exc:  # give the lease back: this or another worker tries again
            log.warning("partition %d not taken (%s: %s)", k, type(exc).__name__, exc)
            p = self.parts.get(k)
            if p is not None:
                self._drop(p)
            try:
                self.bus.call(self.leases.delete(f"p{k}", last=lease_rev))
            except Exception:
                pass

    def _load(self, k: int, lease_rev: int) -> None:
        from nats.js.errors import NotFoundError

        rec, rev = self._record(k)
        d = self.base / f"p{k}"
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        lost = ""
        if rec.get("object"):
            try:
                data = self.bus.call(self.objects.get(rec["object"])).data
            except NotFoundError:
                # Retrying would hold the partition's wearers up for good; the record says enough
                # to go on from its sequence (PartitionService.recover).
                lost = f"object {rec['object']} is missing from {CHECKPOINTS}"
            else:
                (d / "nights.state").write_bytes(data or b"")
        seq = int(rec.get("seq", 0))
        p = Partition(k, rev, seq, seq, lease_rev, checkpoint=rec.get("object", ""))
        sv = self.services.model_copy(deep=True)
        sv.service.state_dir = d
        sv.service.metrics_port = 0
        p.svc = PartitionService(sv, self.cfg, self.store, self.client, p, self)
        p.svc._lock_state_dir()
        p.svc._store_ready = True
        p.svc._restore()
        if p.svc.stats["checkpoint_refused"]:
            lost = f"object {rec['object']} is not a checkpoint this detector can read"
        if lost:
            self.stats["checkpoints_lost"] = self.stats.get("checkpoints_lost", 0) + 1
            p.svc.recover(rec.get("note") or {}, lost)
        self.parts[k] = p
        self.bus.call(self._consume(p))
        # Checkpoints a previous owner wrote but never committed (it died between the two steps).
        self._forget_older(p, p.checkpoint)
        self.stats["taken"] += 1
        log.info("partition %d taken at stream sequence %d", k, seq + 1)

    def _record(self, k: int) -> tuple[dict, int]:
        """The partition's record (last committed sequence and checkpoint) and its revision,
        created empty if there is none (revision 0 then means: create)."""
        from nats.js.errors import KeyNotFoundError

        try:
            e = self.bus.call(self.records.get(f"p{k}"))
            return json.loads(e.value or b"{}"), e.revision
        except KeyNotFoundError:
            return {}, 0

    async def _consume(self, p: Partition) -> None:
        """Move the partition's durable consumer to the committed sequence + 1 and push its
        messages into this worker's inbox."""
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
        from nats.js.errors import NotFoundError

        js, name = self.bus.js, f"part-{p.k}"
        p.gen += 1  # from here on, what the old consumer still delivers is ignored
        if p.sid is not None:
            try:
                await p.sid.unsubscribe()
            except Exception:
                pass
            p.sid = None
        try:
            await js.delete_consumer(jetstream.STREAM, name)
        except NotFoundError:
            pass
        inbox = self.bus.nc.new_inbox()
        p.cseq = 0
        cfg = ConsumerConfig(durable_name=name, deliver_subject=inbox, ack_policy=AckPolicy.EXPLICIT,
                             filter_subject=jetstream.partition_subject(p.k), ack_wait=300,
                             max_ack_pending=4 * self.services.service.checkpoint_frames,
                             deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=p.seq + 1)
        k, gen = p.k, p.gen

        async def cb(msg) -> None:
            self.inbox.put((k, gen, msg))

        p.sid = await self.bus.nc.subscribe(inbox, cb=cb, pending_msgs_limit=-1, pending_bytes_limit=-1)
        await js.add_consumer(jetstream.STREAM, cfg)

    def commit(self, p: Partition, state: bytes, note: dict | None = None) -> None:
        """The partition's checkpoint: stored under a new name, then named by the partition
        record with a compare-and-set (Fenced if another worker has taken the partition). The
        record also keeps ``note`` (PartitionService.recovery_note), what a taker needs should the
        object be lost."""
        from nats.js.errors import KeyWrongLastSequenceError

        name = f"p{p.k}/{p.seq}-{self.id}"
        body = json.dumps({"seq": p.seq, "object": name, "owner": self.id, "at": time.time(),
                           "note": note or {}}).encode()
        for attempt in range(3):
            try:
                self.bus.call(self.objects.put(name, state), timeout=20)
                if p.revision == 0:
                    p.revision = self.bus.call(self.records.create(f"p{p.k}", body), timeout=20)
                else:
                    p.revision = self.bus.call(self.records.update(f"p{p.k}", body, last=p.revision),
                                               timeout=20)
                break
            except KeyWrongLastSequenceError:
                # An earlier attempt that timed out (a stream leader dying) may have landed: the
                # record then names this very checkpoint, which must not be deleted.
                rec, rev = self._record(p.k)
                if rec.get("object") == name and rec.get("owner") == self.id:
                    p.revision = rev
                    break
                self._forget(name)
                raise Fenced(f"partition {p.k} was taken over by another worker") from None
            except Exception as exc:
                if attempt == 2:
                    raise CommitFailed(f"checkpoint of partition {p.k} not committed to JetStream "
                                       f"({type(exc).__name__}: {exc})") from None
                time.sleep(0.5 * (attempt + 1))
        p.committed_seq = p.seq
        self.stats["commits"] += 1
        old, p.checkpoint = p.checkpoint, name
        if old and old != name:
            self._forget(old)

    def ack(self, p: Partition) -> None:
        msgs, p.pending = p.pending, []

        async def ack_all() -> None:
            for m in msgs:
                await m.ack()

        if msgs:
            self.bus.call(ack_all())

    def _forget(self, name: str) -> None:
        try:
            self.bus.call(self.objects.delete(name))
        except Exception:
            pass

    def _forget_older(self, p: Partition, keep: str) -> None:
        """Every checkpoint object of the partition but ``keep`` (best effort: a leftover is only
        space). Lists the whole store, so only when a partition is taken."""
        async def sweep() -> None:
            try:
                infos = await self.objects.list()
            except Exception:
                return
            for info in infos:
                if info.name.startswith(f"p{p.k}/") and info.name != keep and not info.deleted:
                    try:
                        await self.objects.delete(info.name)
                    except Exception:
                        pass

        self.bus.call(sweep())

    def _release(self, p: Partition) -> None:
        """Give a partition up cleanly: its buffers stored, its checkpoint committed, its lease
        deleted (the next owner takes it at once)."""
        try:
            if p.svc is not None:
                p.svc._dirty = True
                p.svc.flush()
        except Fenced:
            self.stats["fenced"] += 1
        except Exception:
            log.exception("partition %d: not committed on release", p.k)
        self._drop(p)
        try:
            self.bus.call(self.leases.delete(f"p{p.k}", last=p.lease_rev))
        except Exception:
            pass
        self.stats["released"] += 1

    def _drop(self, p: Partition) -> None:
        self.parts.pop(p.k, None)
        if p.sid is not None:
            try:
                self.bus.call(p.sid.unsubscribe())
            except Exception:
                pass
        if p.svc is not None:
            p.svc._unlock_state_dir()

    def _write_status(self, running: bool = True) -> None:
        d = Path(self.services.service.state_dir)
        detector: Counter = Counter()  # the partitions' detectors, added up (frames, reordered, …)
        for p in self.parts.values():
            if p.svc is not None:
                detector.update(p.svc.stats)
        body = {"pid": os.getpid(), "worker": self.id, "running": running, "partitions": sorted(self.parts),
                "open_nights": sorted(w for p in self.parts.values() if p.svc for w in p.svc.nights),
                "stats": self.stats, "detector": dict(detector), "at": time.time()}
        try:
            d.mkdir(parents=True, exist_ok=True)
            tmp = d / "status.json.tmp"
            tmp.write_text(json.dumps(body))
            os.replace(tmp, d / "status.json")
        except OSError as exc:
            log.warning("status not written: %s", exc)


__all__ = ["Bus", "BusClient", "Fenced", "PartitionService", "Worker", "rendezvous"]
