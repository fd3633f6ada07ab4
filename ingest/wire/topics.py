"""Every MQTT topic of the wire contract (docs/mqtt-frames.md), built and parsed in one place.

``nightcramp/v1/<wearer>/<sensor>/<stream>`` with stream ``emg`` or ``acc`` (frames), ``status``
(retained sensor status) and ``ack`` (retained stored ranges, from the detector);
``nightcramp/v1/<wearer>/events`` (the detector's live events) and
``nightcramp/v1/<wearer>/control`` (commands such as closing a night).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ingest.wire.ids import check_id, is_id

ROOT = "nightcramp/v1"
SAMPLE_STREAMS = ("emg", "acc")
SENSOR_KINDS = (*SAMPLE_STREAMS, "status", "ack")
WEARER_KINDS = ("events", "control")

# Subscriptions: everything sensors send, commands, and the live events.
SENSORS_SUB = f"{ROOT}/+/+/+"
CONTROL_SUB = f"{ROOT}/+/control"
EVENTS_SUB = f"{ROOT}/+/events"


def sensor_topic(wearer: str, sensor: str, kind: str) -> str:
    """``nightcramp/v1/<wearer>/<sensor>/<kind>``: kind ``emg``, ``acc``, ``status`` or ``ack``."""
    if kind not in SENSOR_KINDS:
        raise ValueError(f"topic kind {kind!r}: one of {', '.join(SENSOR_KINDS)}")
    return f"{ROOT}/{check_id(wearer, 'wearer')}/{check_id(sensor, 'sensor')}/{kind}"


def wearer_topic(wearer: str, kind: Literal["events", "control"]) -> str:
    """``nightcramp/v1/<wearer>/events`` or ``.../control``."""
    if kind not in WEARER_KINDS:
        raise ValueError(f"topic kind {kind!r}: one of {', '.join(WEARER_KINDS)}")
    return f"{ROOT}/{check_id(wearer, 'wearer')}/{kind}"


class TopicError(ValueError):
    """A topic outside the contract; ``reason`` is ``bad_topic`` or ``bad_id`` (for counters)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Topic:
    wearer: str
    sensor: str | None  # None for the wearer's own topics (events, control)
    kind: str


def parse_topic(topic: str) -> Topic:
    """The parts of a contract topic; TopicError says what is wrong with any other."""
    parts = topic.split("/")
    root = ROOT.split("/")
    if parts[:2] != root or len(parts) not in (4, 5):
        raise TopicError("bad_topic", f"topic {topic!r} is not nightcramp/v1/<wearer>/...")
    ids = parts[2:-1]
    if not all(is_id(p) for p in ids):
        raise TopicError("bad_id", f"topic {topic!r}: wearer and sensor ids must be [a-z0-9-]{{1,32}}")
    kinds = WEARER_KINDS if len(parts) == 4 else SENSOR_KINDS
    if parts[-1] not in kinds:
        raise TopicError("bad_topic", f"topic {topic!r}: {parts[-1]!r} is not one of {', '.join(kinds)}")
    return Topic(parts[2], parts[3] if len(parts) == 5 else None, parts[-1])
