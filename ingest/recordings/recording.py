"""The recording model every reader produces: leg channels in physical units, read in blocks.

A :class:`Recording` exposes its leg channels (EMG in µV, acceleration in g) on one continuous
timeline starting at ``start`` (UTC). Gaps in discontinuous files read as NaN and are listed in
``gaps``. Readers never load a whole night of float64; callers pull sample ranges per channel.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ingest.recordings.labels import Kind, Side


def existing_file(path: str | Path) -> Path:
    """``path`` as a Path, or RecordingError naming the file when it is missing or a directory."""
    path = Path(path)
    if path.is_dir():
        raise RecordingError(f"{path.name}: is a directory, not a recording")
    if not path.is_file():
        raise RecordingError(f"{path.name}: no such file")
    return path


class RecordingError(ValueError):
    """A recording cannot be used; the message names the file and the problem."""


# Sampling rates a leg channel may have (Hz): below, EMG cannot hold the 10-100 Hz band that
# shows muscle activity (nor an accelerometer a movement); above, the header is more likely wrong
# than the sensor (EMG amplifiers sample at most a few kHz, accelerometers at most 1 kHz).
RATE_LIMITS_HZ = {"emg": (44.0, 20_000.0), "acc": (1.0, 1_000.0)}


def check_rates(name: str, channels: list[Channel]) -> None:
    """RecordingError naming the channel when a leg channel's rate is outside RATE_LIMITS_HZ."""
    for c in channels:
        lo, hi = RATE_LIMITS_HZ[c.kind]
        if not np.isfinite(c.fs) or not lo <= c.fs <= hi:
            what = "EMG" if c.kind == "emg" else "acceleration"
            raise RecordingError(f"{name}: {c.label}: sampling rate {c.fs:g} Hz is outside {lo:g} Hz-"
                                 f"{hi:g} Hz, the range nightcramp reads for {what} (header or file wrong?)")


@dataclass(frozen=True, slots=True)
class Channel:
    """One leg channel as found in a recording.

    ``fs`` is in Hz (any positive value the file declares); samples returned by
    :meth:`Recording.read` are already in µV (EMG) or g (ACC).
    """

    label: str
    kind: Kind
    side: Side
    site: str
    axis: str | None
    fs: float
    unit: str
    n_samples: int
    resolution: float | None = None  # one digital step, µV (EMG) or g (ACC), when the file says

    def as_dict(self) -> dict:
        d = {"label": self.label, "kind": self.kind, "side": self.side,
             "fs": float(f"{self.fs:.9g}"), "unit": self.unit}
        if self.resolution is not None:
            d["resolution"] = float(f"{self.resolution:.6g}")
        return d


@dataclass(frozen=True, slots=True)
class Annotation:
    """A text annotation from the file: onset and duration in seconds from the start."""

    onset_s: float
    duration_s: float | None
    text: str


class SampleSource(Protocol):
    def __call__(self, start: int, stop: int) -> np.ndarray: ...


@dataclass
class Recording:
    """A recording's leg channels with a block reader per channel."""

    name: str
    start: dt.datetime
    duration_s: float
    channels: list[Channel]
    sources: Sequence[SampleSource] = field(repr=False)
    annotations: list[Annotation] = field(default_factory=list)
    gaps: list[tuple[float, float]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def read(self, index: int, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` of channel ``index`` as float32 µV or g (NaN in gaps)."""
        ch = self.channels[index]
        start = max(0, start)
        stop = min(stop, ch.n_samples)
        if stop <= start:
            return np.empty(0, dtype=np.float32)
        return np.asarray(self.sources[index](start, stop), dtype=np.float32)


def array_recording(
    name: str,
    start: dt.datetime,
    signals: dict[str, tuple[np.ndarray, float]],
    *,
    annotations: list[Annotation] | None = None,
) -> Recording:
    """An in-memory recording from ``{label: (samples in µV or g, fs in Hz)}``.

    Labels must follow the convention (or an alias); used by the simulator, tests and benches.
    """
    from ingest.recordings.labels import parse_label

    channels: list[Channel] = []
    sources: list[SampleSource] = []
    ignored: list[str] = []
    duration = 0.0
    for label, (data, fs) in signals.items():
        parsed = parse_label(label)
        if parsed is None:
            ignored.append(label)
            continue
        arr = np.asarray(data, dtype=np.float32)
        unit = "uV" if parsed.kind == "emg" else "g"
        channels.append(Channel(parsed.canonical, parsed.kind, parsed.side, parsed.site,
                                parsed.axis, float(fs), unit, len(arr)))
        sources.append(lambda a, b, arr=arr: arr[a:b])
        duration = max(duration, len(arr) / fs)
    return Recording(name, start, duration, channels, sources, annotations or [], [], ignored)
