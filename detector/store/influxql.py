"""InfluxQL and line-protocol pieces the store's parts share: literals, times, versions.

Pure functions; nothing here talks to a server.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time

from detector.store import lineproto
from detector.store import schema as store_schema


def point(measurement: str, tags: dict[str, str], fields: dict, ts_ns: int) -> str:
    """One line of a declared measurement, its fields in their stored types (store_schema)."""
    return lineproto.point(measurement, tags, store_schema.coerce(measurement, fields), ts_ns)


def new_version() -> str:
    """A fresh version id for a night's points; readers take the one the night's summary names
    (never the "latest", which a wall clock that stepped back would get wrong)."""
    return f"{time.time_ns():x}{secrets.token_hex(2)}"


def night_ns(night: str) -> int:
    d = dt.date.fromisoformat(night)
    return int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp()) * 1_000_000_000


def iso_ns(iso: str) -> int:
    t = dt.datetime.fromisoformat(iso)
    return int(t.timestamp()) * 10**9 + t.microsecond * 1000


def regex_literal(label: str) -> str:
    """A channel label as a literal inside an InfluxQL /regex/."""
    return "".join("\\" + ch if ch in "\\.+*?()|[]{}^$/" else ch for ch in label)


def lit(s: str) -> str:
    return str(s).replace("\\", "\\\\").replace("'", "\\'")


def duration_ns(text: str) -> int:
    """An InfluxQL duration (``30d``, ``720h0m0s``) in ns; 0 for infinite or unreadable."""
    units = {"ns": 1, "u": 10**3, "µ": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9,
             "d": 86400 * 10**9, "w": 7 * 86400 * 10**9}
    total = 0
    for num, unit in re.findall(r"(\d+)(ns|ms|u|µ|s|m|h|d|w)", str(text)):
        total += int(num) * units[unit]
    return total

