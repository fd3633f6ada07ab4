"""The wire contract on NATS JetStream (docs/scaling.md): subjects, the frames stream, message ids.

The payloads are the MQTT contract's (docs/mqtt-frames.md); only the addressing changes. An MQTT
topic ``nightcramp/v1/<wearer>/<sensor>/<kind>`` is the NATS subject
``nightcramp.v1.<wearer>.<sensor>.<kind>`` (ids are ``[a-z0-9-]``, safe as subject tokens). The
servers map every sensor subject onto one of ``PARTITIONS`` partitions by wearer
(``{{partition(P,1)}}``, :func:`server_mappings`), so all of one wearer's frames and statuses are
in one partition, in the order they were stored; the ``FRAMES`` stream keeps the mapped subjects
``nightcramp.p.<k>.v1.<wearer>.<sensor>.<kind>``, replicated and on disk.

A publisher sets ``Nats-Msg-Id`` to ``wearer/sensor/stream/first sample`` for a frame (a status:
its payload's hash): a message sent again after a lost acknowledgement, within the stream's
duplicate window, is stored once.
"""

from __future__ import annotations

import hashlib

from ingest.wire.frames import read_header
from ingest.wire.topics import ROOT, parse_topic

STREAM = "FRAMES"
PARTITIONS = 64  # fixed: far above the number of workers, so partitions move, wearers never split
SOURCE = "nightcramp.v1.*.*.*"  # what sensors publish (sensor subjects: five tokens)
CONTROL = "nightcramp.v1.*.control"  # commands for a wearer's night (nightcramp night close)
MAPPED = "nightcramp.p.{k}.v1.*.*.*"
MAPPED_CONTROL = "nightcramp.p.{k}.v1.*.control"


def subject(topic: str) -> str:
    """The NATS subject of an MQTT contract topic (ValueError-like TopicError if not one)."""
    parse_topic(topic)
    return topic.replace("/", ".")


def topic_of(subject: str) -> str:
    """The MQTT contract topic of a NATS subject, mapped (``nightcramp.p.<k>.v1…``) or not."""
    parts = subject.split(".")
    if parts[:2] == ["nightcramp", "p"] and len(parts) > 3:
        parts = ["nightcramp", *parts[3:]]
    topic = "/".join(parts)
    parse_topic(topic)
    return topic


def partition_of_subject(subject: str) -> int:
    """The partition a mapped subject is in."""
    parts = subject.split(".")
    if parts[:2] != ["nightcramp", "p"]:
        raise ValueError(f"{subject!r} is not a partitioned nightcramp subject")
    return int(parts[2])


def partition_subject(k: int | str) -> str:
    """Every subject of partition ``k`` (a consumer's filter): its frames, statuses and commands."""
    return f"nightcramp.p.{k}.v1.>"


def server_mappings(partitions: int = PARTITIONS) -> str:
    """The ``mappings`` block of a nats-server configuration: sensor subjects onto partitions by
    wearer (every server of a cluster needs the same)."""
    part = f"nightcramp.p.{{{{partition({partitions},1)}}}}.v1.{{{{wildcard(1)}}}}"
    # Commands go into the wearer's partition too (the same hash of the same token), so the worker
    # holding the wearer's night gets them, in order with the frames.
    return (f'mappings = {{\n  "{SOURCE}": "{part}.{{{{wildcard(2)}}}}.{{{{wildcard(3)}}}}"\n'
            f'  "{CONTROL}": "{part}.control"\n}}\n')


def msg_id(topic: str, payload: bytes) -> str:
    """``Nats-Msg-Id`` of a message: ``wearer/sensor/stream/first sample`` for a frame, the
    payload's hash for anything else (a status; a command carries its own time)."""
    t = parse_topic(topic)
    if t.sensor is None:
        return f"{t.wearer}/{t.kind}/{hashlib.sha256(payload).hexdigest()[:24]}"
    if t.kind in ("emg", "acc"):
        return f"{t.wearer}/{t.sensor}/{t.kind}/{read_header(payload).first_sample}"
    return f"{t.wearer}/{t.sensor}/{t.kind}/{hashlib.sha256(payload).hexdigest()[:24]}"


async def ensure_frames_stream(js, *, replicas: int = 3, max_age_s: float = 7 * 86400.0,
                               duplicate_window_s: float = 600.0):
    """Create the frames stream, or update it to these settings: every partition's subjects, file
    storage, ``replicas`` copies (R3: a majority survives one server), messages kept
    ``max_age_s`` (long enough for a worker to catch up after an outage; the store keeps them
    after that), duplicates of a message id refused for ``duplicate_window_s``."""
    from nats.js.api import StorageType, StreamConfig
    from nats.js.errors import NotFoundError

    cfg = StreamConfig(name=STREAM, subjects=[MAPPED.format(k="*"), MAPPED_CONTROL.format(k="*")],
                       storage=StorageType.FILE,
                       num_replicas=replicas, max_age=max_age_s, duplicate_window=duplicate_window_s)
    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        return await js.add_stream(cfg)
    return await js.update_stream(cfg)


async def kv_entries(js, bucket: str) -> dict[str, bytes]:
    """Every live key of a key-value bucket with its value.

    The keys come from the bucket stream's subject index (one request the stream leader answers),
    not from nats.py's ``KeyValue.keys()``: that watcher can end its initial replay before the
    messages already on their way arrive (nats.py issues #842, #995), and then reports an empty
    bucket that has keys — a worker reading that would take every partition, ``night close``
    would say no worker runs. A key deleted, purged or expired between the two reads is left out.
    ``BucketNotFoundError`` when the bucket does not exist.
    """
    from nats.js.errors import KeyNotFoundError

    kv = await js.key_value(bucket)
    prefix = f"$KV.{bucket}."
    info = await js.stream_info(f"KV_{bucket}", subjects_filter=f"{prefix}>")
    out: dict[str, bytes] = {}
    for subj in sorted(info.state.subjects or {}):
        key = subj[len(prefix):]
        try:
            e = await kv.get(key)
        except KeyNotFoundError:  # KeyDeletedError is one: a delete or purge marker is the last
            continue
        out[key] = e.value or b""
    return out


__all__ = ["CONTROL", "MAPPED", "MAPPED_CONTROL", "PARTITIONS", "ROOT", "SOURCE", "STREAM",
           "ensure_frames_stream", "kv_entries", "msg_id", "partition_of_subject", "partition_subject",
           "server_mappings", "subject", "topic_of"]
