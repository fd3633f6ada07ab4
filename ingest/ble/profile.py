"""The nightcramp leg-sensor GATT profile (docs/ble-profile.md): packets and device profiles.

A notification packet carries one stream of one sensor: a version byte, a 16-bit packet
sequence number, the sensor's 32-bit microsecond clock at the first sample, the scale to µV or g,
the channel and sample counts, and little-endian int16 samples, interleaved. Decoders turn
packet bytes into :class:`Packet`; a device profile (config/sensors/*.toml) names the UUIDs,
rates, channel labels and which decoder to use.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ingest.paths import config_file, read_toml

_HEAD = struct.Struct("<BBHIfBB")  # version, flags, seq, t_us, scale, channels, samples
MAX_PACKET = 244  # ATT payload with a 247-byte MTU


class PacketError(ValueError):
    """A notification is not a valid packet; the message names the field."""


@dataclass(frozen=True)
class Packet:
    seq: int  # 0..65535, wraps
    t_us: int  # sensor clock at the first sample, µs, wraps at 2**32
    scale: float  # µV or g per count
    raw: np.ndarray  # (n, channels) int16


class Decoder(Protocol):
    def __call__(self, data: bytes | bytearray) -> Packet: ...


def decode_v1(data: bytes | bytearray) -> Packet:
    """Decode a nightcramp-v1 packet."""
    if len(data) < _HEAD.size:
        raise PacketError(f"packet of {len(data)} bytes is shorter than its {_HEAD.size}-byte header")
    version, _flags, seq, t_us, scale, c, n = _HEAD.unpack_from(data)
    if version != 1:
        raise PacketError(f"unknown packet version {version}")
    if c == 0 or not np.isfinite(scale) or scale == 0:
        raise PacketError(f"bad header: {c} channels, scale {scale}")
    if len(data) != _HEAD.size + 2 * c * n:
        raise PacketError(f"packet of {len(data)} bytes, header says {_HEAD.size + 2 * c * n}")
    raw = np.frombuffer(bytes(data), "<i2", n * c, _HEAD.size).reshape(n, c)
    return Packet(seq, t_us, float(scale), raw)


def encode_v1(seq: int, t_us: int, scale: float, raw: np.ndarray) -> bytes:
    """Encode a nightcramp-v1 packet (what the sensor firmware sends; used by virtual sensors)."""
    raw = np.asarray(raw, "<i2")
    if raw.ndim == 1:
        raw = raw[:, None]
    n, c = raw.shape
    out = _HEAD.pack(1, 0, seq & 0xFFFF, t_us & 0xFFFFFFFF, scale, c, n) + raw.tobytes()
    if len(out) > MAX_PACKET:
        raise PacketError(f"{len(out)}-byte packet exceeds the {MAX_PACKET}-byte notification")
    return out


DECODERS: dict[str, Decoder] = {"nightcramp-v1": decode_v1}


@dataclass(frozen=True)
class StreamProfile:
    uuid: str
    fs: float
    channels: tuple[str, ...]


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    decoder: Decoder
    service_uuid: str
    control_uuid: str
    battery_uuid: str
    streams: dict[str, StreamProfile]

    def labels(self, stream: str, side: str) -> list[str]:
        """Channel labels of ``stream`` for a sensor worn on ``side`` ('L' or 'R')."""
        return [c.format(side=side) for c in self.streams[stream].channels]


def load_profile(name: str, directory: Path | None = None) -> DeviceProfile:
    """Load ``config/sensors/<name>.toml``; ValueError names the file and the problem."""
    path = directory / f"{name}.toml" if directory else config_file(f"sensors/{name}.toml")
    d = read_toml(path, "device profile")  # ConfigFileError is a ValueError
    if d.get("decoder") not in DECODERS:
        raise ValueError(f"{path}: unknown decoder {d.get('decoder')!r} (known: {', '.join(DECODERS)})")
    streams = {k: StreamProfile(v["uuid"], float(v["fs"]), tuple(v["channels"]))
               for k, v in d.get("streams", {}).items()}
    unknown = set(streams) - {"emg", "acc"}
    if unknown:
        raise ValueError(f"{path}: unknown stream(s) {sorted(unknown)}")
    return DeviceProfile(d["name"], DECODERS[d["decoder"]], d["service_uuid"], d["control_uuid"],
                         d["battery_uuid"], streams)

