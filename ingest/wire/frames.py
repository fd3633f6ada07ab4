"""The MQTT sample frame: a versioned little-endian binary format (docs/mqtt-frames.md).

A frame carries one stream (EMG or ACC) of one sensor: channel count, sample rate, the sample
counter of its first sample (the storage key, so a redelivered frame overwrites itself), the
UTC time of its first sample, a scale per channel to physical units (µV or g), and the samples,
interleaved, as int16 or float32; a CRC-32 closes it.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

MAGIC = b"NC"
VERSION = 1
STREAMS = {1: "emg", 2: "acc"}
STREAM_IDS = {v: k for k, v in STREAMS.items()}
ENCODINGS: dict[int, np.dtype] = {1: np.dtype("<i2"), 2: np.dtype("<f4")}
MAX_RATE_HZ = 100_000.0
MAX_SAMPLES = 65_535

# magic, version, stream, channels, encoding, flags, rate, first sample, first time (ns), count
_HEAD = struct.Struct("<2sBBBBHdQqH")


class FrameError(ValueError):
    """A frame cannot be decoded; the message says which field is wrong."""


@dataclass(frozen=True)
class Frame:
    """Samples of one stream: ``samples`` is (n, channels) in physical units (µV or g)."""

    stream: str
    rate_hz: float
    first_sample: int
    first_time_ns: int
    scale: tuple[float, ...]
    raw: np.ndarray  # (n, channels) as transmitted (int16 or float32)

    @property
    def channels(self) -> int:
        return self.raw.shape[1]

    @property
    def n(self) -> int:
        return self.raw.shape[0]

    @property
    def samples(self) -> np.ndarray:
        return self.raw.astype(np.float32) * np.asarray(self.scale, np.float32)


def encode(stream: str, rate_hz: float, first_sample: int, first_time_ns: int,
           scale: tuple[float, ...] | list[float], raw: np.ndarray) -> bytes:
    """Encode one frame. ``raw`` is (n, channels) int16 or float32 samples before scaling."""
    raw = np.asarray(raw)
    if raw.ndim == 1:
        raw = raw[:, None]
    if stream not in STREAM_IDS:
        raise FrameError(f"unknown stream {stream!r} (emg or acc)")
    enc = next((k for k, v in ENCODINGS.items() if v == raw.dtype.newbyteorder("<")), None)
    if enc is None:
        raise FrameError(f"samples must be int16 or float32, not {raw.dtype}")
    n, c = raw.shape
    if not 1 <= c <= 255 or len(scale) != c:
        raise FrameError(f"{c} channels with {len(scale)} scales")
    if n > MAX_SAMPLES:
        raise FrameError(f"{n} samples per channel (at most {MAX_SAMPLES})")
    _check(rate_hz, scale)
    head = _HEAD.pack(MAGIC, VERSION, STREAM_IDS[stream], c, enc, 0, float(rate_hz),
                      int(first_sample), int(first_time_ns), n)
    body = head + struct.pack(f"<{c}f", *scale) + np.ascontiguousarray(raw, ENCODINGS[enc]).tobytes()
    return body + struct.pack("<I", zlib.crc32(body))


def decode(data: bytes) -> Frame:
    """Decode one frame; FrameError names the problem (truncated, version, rate, scale, CRC)."""
    if len(data) < _HEAD.size + 4:
        raise FrameError(f"truncated: {len(data)} bytes, a frame has at least {_HEAD.size + 4}")
    magic, version, stream, c, enc, _flags, rate, first, t_ns, n = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise FrameError(f"not a nightcramp frame (magic {magic!r})")
    if version != VERSION:
        raise FrameError(f"unknown frame version {version} (this reader knows {VERSION})")
    if stream not in STREAMS:
        raise FrameError(f"unknown stream kind {stream}")
    if enc not in ENCODINGS or c == 0:
        raise FrameError(f"unknown sample encoding {enc} or no channels")
    dt = ENCODINGS[enc]
    expected = _HEAD.size + 4 * c + n * c * dt.itemsize + 4
    if len(data) != expected:
        raise FrameError(f"truncated or padded: {len(data)} bytes, header says {expected}")
    (crc,) = struct.unpack_from("<I", data, expected - 4)
    if crc != zlib.crc32(data[: expected - 4]):
        raise FrameError("CRC mismatch: the frame was corrupted")
    scale = struct.unpack_from(f"<{c}f", data, _HEAD.size)
    _check(rate, scale)
    raw = np.frombuffer(data, dt, n * c, _HEAD.size + 4 * c).reshape(n, c)
    return Frame(STREAMS[stream], rate, first, t_ns, tuple(float(s) for s in scale), raw)


@dataclass(frozen=True)
class Header:
    """The fixed part of a frame, read without decoding the samples."""

    stream: str
    channels: int
    rate_hz: float
    first_sample: int
    first_time_ns: int
    n: int

    @property
    def duration_s(self) -> float:
        return self.n / self.rate_hz


def read_header(data: bytes) -> Header:
    """The header of frame ``data`` (FrameError if it is not one of this version)."""
    if len(data) < _HEAD.size:
        raise FrameError(f"frame too short ({len(data)} bytes)")
    magic, version, stream, c, _enc, _flags, rate, first, t_ns, n = _HEAD.unpack_from(data)
    if magic != MAGIC or version != VERSION or stream not in STREAMS:
        raise FrameError("not a nightcramp v1 frame")
    return Header(STREAMS[stream], c, rate, first, t_ns, n)


def _check(rate: float, scale) -> None:
    if not (math.isfinite(rate) and 0 < rate <= MAX_RATE_HZ):
        raise FrameError(f"impossible sample rate {rate!r} Hz")
    if not all(math.isfinite(s) and s != 0 for s in scale):
        raise FrameError(f"scale must be finite and non-zero, got {list(scale)}")
