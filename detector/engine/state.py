"""Checkpoint state as versioned plain data.

A stateful part of the engine is rebuilt from the configuration and the channels the normal way
(its filters designed, its thresholds derived) and then handed what it accumulated:
``get_state()`` returns that as plain data (numbers, strings, lists, maps, NumPy arrays and
tagged records), ``set_state()`` puts it back into a freshly built part. Nothing in a checkpoint
names code to run: a state file is read with ``allow_pickle=False`` (``write_state_file``,
``read_state_file``), so a tampered or outdated file can only be refused, never executed.

``STATE_VERSION`` changes whenever a part's state changes shape; a checkpoint of another
version, or one whose fields do not match the part it is put into, raises ``StateError`` naming
what differs (tests/test_state.py).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import zipfile
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

STATE_VERSION = 3  # 2: per-frame histories trimmed (Growable.start), whole-night quality counts;
# 3: both mains lines always notched (no separate hum check in the EMG front end)
FILE_FORMAT = "nightcramp.checkpoint"

T = TypeVar("T")
_RECORDS: dict[str, type] = {}


class StateError(ValueError):
    """A checkpoint's state does not fit this version of the detector; the message says what."""


def record(cls: type[T]) -> type[T]:
    """Register a dataclass whose instances may appear in a state (events, frames, intervals)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__} is not a dataclass")
    _RECORDS[cls.__name__] = cls
    return cls


class Stateful:
    """A part whose accumulated state can be taken out and put back as plain data.

    ``_derived`` names attributes rebuilt by ``__init__`` from the configuration, the channels or
    the runtime (a thread pool); everything else in ``vars(self)`` is state.
    """

    _derived: ClassVar[frozenset[str]] = frozenset()
    _parts: ClassVar[dict[str, type[Stateful]]] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        Stateful._parts[cls.__name__] = cls

    def _state_names(self) -> list[str]:
        return sorted(k for k in vars(self) if k not in self._derived)

    def get_state(self) -> dict[str, Any]:
        out = {}
        for k in self._state_names():
            try:
                out[k] = to_plain(getattr(self, k))
            except StateError as exc:
                raise StateError(f"{type(self).__name__}.{k}: {exc}") from None
        return out

    def set_state(self, state: dict[str, Any]) -> None:
        mine = set(self._state_names())
        if set(state) != mine:
            missing, unknown = sorted(mine - set(state)), sorted(set(state) - mine)
            raise StateError(f"{type(self).__name__}: state does not fit (missing {missing}, "
                             f"unknown {unknown})")
        for k, v in state.items():
            setattr(self, k, from_plain(v, getattr(self, k)))


def to_plain(v: Any) -> Any:
    """Plain data for ``v``: JSON types, NumPy arrays, tagged tuples/maps/records/parts."""
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, np.ndarray):
        if v.dtype.hasobject:
            raise StateError("an object array cannot be checkpointed")
        return v
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, Stateful):
        return {"__part__": type(v).__name__, "state": v.get_state()}
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        name = type(v).__name__
        if _RECORDS.get(name) is not type(v):
            raise StateError(f"{name} is not a registered state record")
        return {"__record__": name,
                "fields": {f.name: to_plain(getattr(v, f.name)) for f in dataclasses.fields(v)}}
    if isinstance(v, list):
        return [to_plain(x) for x in v]
    if isinstance(v, set | frozenset):
        return {"__set__": [to_plain(x) for x in sorted(v)], "frozen": isinstance(v, frozenset)}
    if isinstance(v, deque):
        return {"__deque__": [to_plain(x) for x in v], "maxlen": v.maxlen}
    if isinstance(v, tuple):
        return {"__tuple__": [to_plain(x) for x in v]}
    if isinstance(v, dict):
        return {"__map__": [[to_plain(k), to_plain(x)] for k, x in v.items()]}
    raise StateError(f"a {type(v).__name__} cannot be checkpointed")


def from_plain(p: Any, current: Any = None) -> Any:
    """The value for plain data ``p``; parts are restored into ``current`` (the freshly built
    one), so a part's configuration is never taken from a checkpoint."""
    if isinstance(p, dict):
        if "__part__" in p:
            cls = Stateful._parts.get(p["__part__"])
            if current is None and cls is not None and not cls._derived \
                    and cls.get_state is Stateful.get_state:
                # A part made after construction (a notch designed once the mains is known):
                # it has nothing derived, so its state is all of it.
                current = object.__new__(cls)
                for k, x in p["state"].items():
                    setattr(current, k, from_plain(x))
                return current
            if not isinstance(current, Stateful) or type(current).__name__ != p["__part__"]:
                got = type(current).__name__ if current is not None else "nothing"
                raise StateError(f"state of a {p['__part__']} where this detector has {got}")
            current.set_state(p["state"])
            return current
        if "__record__" in p:
            cls = _RECORDS.get(p["__record__"])
            if cls is None:
                raise StateError(f"unknown record {p['__record__']!r} in the state")
            return cls(**{k: from_plain(x) for k, x in p["fields"].items()})
        if "__set__" in p:
            items = [from_plain(x) for x in p["__set__"]]
            return frozenset(items) if p["frozen"] else set(items)
        if "__deque__" in p:
            return deque((from_plain(x) for x in p["__deque__"]), maxlen=p["maxlen"])
        if "__tuple__" in p:
            return tuple(from_plain(x) for x in p["__tuple__"])
        if "__map__" in p:
            cur = current if isinstance(current, dict) else {}
            out = {}
            for k, x in p["__map__"]:
                key = from_plain(k)
                out[key] = from_plain(x, cur.get(key))
            return out
        raise StateError(f"untagged map in the state: {sorted(p)[:5]}")
    if isinstance(p, list):
        cur_list = current if isinstance(current, list) and len(current) == len(p) else [None] * len(p)
        return [from_plain(x, c) for x, c in zip(p, cur_list, strict=True)]
    return p


# ---------------------------------------------------------------------------- files
def _split_arrays(p: Any, arrays: list[np.ndarray]) -> Any:
    if isinstance(p, np.ndarray):
        arrays.append(p)
        return {"__array__": len(arrays) - 1}
    if isinstance(p, list):
        return [_split_arrays(x, arrays) for x in p]
    if isinstance(p, dict):
        return {k: _split_arrays(x, arrays) for k, x in p.items()}
    return p


def _join_arrays(p: Any, arrays: Callable[[int], np.ndarray]) -> Any:
    if isinstance(p, list):
        return [_join_arrays(x, arrays) for x in p]
    if isinstance(p, dict):
        if set(p) == {"__array__"}:
            return arrays(p["__array__"])
        return {k: _join_arrays(x, arrays) for k, x in p.items()}
    return p


def write_state_file(path: Path, plain: Any, *, index: Any = None) -> int:
    """Write plain data atomically (``path.tmp`` then rename, fsynced): a JSON header with
    ``FILE_FORMAT``, ``STATE_VERSION``, an ``index`` (plain JSON any version can read back with
    ``read_state_index``: what the state is about) and the arrays beside it, as one ``.npz``.
    Returns the file's size in bytes."""
    arrays: list[np.ndarray] = []
    body = _split_arrays(plain, arrays)
    header = json.dumps({"format": FILE_FORMAT, "state_version": STATE_VERSION, "index": index,
                         "state": body},
                        allow_nan=True, separators=(",", ":")).encode()
    buf = io.BytesIO()
    # arr_0 is the header, arr_1… the arrays in the order the header numbers them.
    np.savez(buf, np.frombuffer(header, np.uint8), *arrays)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("wb") as fh:
            fh.write(buf.getbuffer())
            fh.flush()
            os.fsync(fh.fileno())
    except OSError:
        tmp.unlink(missing_ok=True)  # the old file stays whole
        raise
    os.replace(tmp, path)  # a crash leaves the old or the new file, never half
    return buf.tell()


def _header(z: Any, path: Path) -> dict[str, Any]:
    header = json.loads(bytes(z["arr_0"]).decode())
    if not isinstance(header, dict) or header.get("format") != FILE_FORMAT:
        raise StateError(f"{path}: not a nightcramp checkpoint")
    return header


def read_state_index(path: Path) -> Any:
    """The index written with a state, whatever its state version ([] when unreadable)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return _header(z, path).get("index") or []
    except (StateError, OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return []


def read_state_file(path: Path) -> Any:
    """Plain data from ``write_state_file``; StateError when the file is not a nightcramp
    checkpoint or was written with another state version."""
    try:
        with np.load(path, allow_pickle=False) as z:
            header = _header(z, path)
            if header.get("state_version") != STATE_VERSION:
                raise StateError(f"{path}: written with state version {header.get('state_version')}, "
                                 f"this detector reads version {STATE_VERSION}")
            return _join_arrays(header["state"], lambda i: z[f"arr_{i + 1}"])
    except StateError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise StateError(f"{path}: unreadable checkpoint ({exc})") from None
