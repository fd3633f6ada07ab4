"""Another scorer's events for a night: the Noxturnal CSV export (UTF-16 or UTF-8, French or
English labels), mapped onto nightcramp's kinds through ``config/scoring.toml``.

Clinicians validate a scorer against a PSG lab's scoring; this reader gives those events in
nightcramp's terms (seconds from a reference time, kinds, sleep stages), so the detector's PLM
logic and the agreement report can use them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from pathlib import Path

from ingest.paths import ConfigFileError, config_file, read_toml
from ingest.recordings.recording import RecordingError

STAGES = ("wake", "n1", "n2", "n3", "rem")


@dataclass(frozen=True)
class ScoredEvent:
    """One scored interval: ``kind`` an analysis kind, a sleep stage, ``arousal`` or ``other``."""

    label: str  # as written by the scorer
    kind: str
    start: dt.datetime
    end: dt.datetime
    side: str | None = None  # "left" or "right" when the label says

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass
class Scoring:
    """A scorer's events for one night (times as the export gives them, taken as UTC)."""

    source: str
    events: list[ScoredEvent]
    unmapped: dict[str, int] = field(default_factory=dict)  # label -> count, kept as "other"

    @property
    def start(self) -> dt.datetime:
        return min(e.start for e in self.events)

    def of_kind(self, kind: str) -> list[ScoredEvent]:
        return [e for e in self.events if e.kind == kind]

    def seconds(self, e: ScoredEvent, origin: dt.datetime | None = None) -> tuple[float, float]:
        """(start_s, end_s) of ``e`` from ``origin`` (default: the first scored event)."""
        o = origin or self.start
        return (e.start - o).total_seconds(), (e.end - o).total_seconds()


def scoring_table(path: Path | None = None, section: str = "noxturnal") -> dict[str, str]:
    p = path or config_file("scoring.toml")
    try:
        table = read_toml(p, "scoring label table").get(section, {})
    except ConfigFileError as exc:
        raise RecordingError(str(exc)) from None
    return {k.strip().casefold(): v for k, v in table.items()}


def _decode(raw: bytes, name: str) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RecordingError(f"{name}: neither UTF-16 with a byte-order mark nor UTF-8") from None


_TIME_FORMATS = ("%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S",
                 "%Y-%m-%d %H:%M:%S.%f")


def _time(text: str, name: str, row: int) -> dt.datetime:
    for f in _TIME_FORMATS:
        try:
            return dt.datetime.strptime(text.strip(), f).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
    raise RecordingError(f"{name}: row {row}: time {text!r} is not a date and time (dd/mm/yyyy hh:mm:ss)")


def read_noxturnal_csv(path: str | Path, table: dict[str, str] | None = None) -> Scoring:
    """Read a Noxturnal scoring export (``Heure de début,Heure de fin,Événement,Durée`` or the
    English ``Start Time,End Time,Event,Duration``), skipping its units row."""
    path = Path(path)
    name = path.name
    try:
        text = _decode(path.read_bytes(), name)
    except OSError as exc:
        raise RecordingError(f"{name}: {exc.strerror or exc}") from None
    table = scoring_table() if table is None else table
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or len(rows[0]) < 3:
        raise RecordingError(f"{name}: not a Noxturnal export (no start, end, event header)")
    events: list[ScoredEvent] = []
    unmapped: dict[str, int] = {}
    for k, row in enumerate(rows[1:], start=2):
        if len(row) < 3 or not row[0].strip() or row[0].strip().startswith("["):
            continue  # the units row ("[],[],[],[s]") and blank lines
        label = row[2].strip()
        kind = table.get(label.casefold())
        if kind == "ignore":
            continue
        if kind is None:
            unmapped[label] = unmapped.get(label, 0) + 1
            kind = "other"
        start, end = _time(row[0], name, k), _time(row[1], name, k)
        if end < start:
            raise RecordingError(f"{name}: row {k}: {label} ends before it starts")
        events.append(ScoredEvent(label, kind, start, end))
    if not events:
        raise RecordingError(f"{name}: no scored events")
    events.sort(key=lambda e: (e.start, e.kind))
    return Scoring(name, events, unmapped)


def _side(label: str) -> str | None:
    words = set(label.casefold().replace("(", " ").replace(")", " ").replace("-", " ").split())
    if words & {"left", "gauche", "l"}:
        return "left"
    if words & {"right", "droite", "r"} and label.strip().casefold() != "r":  # "R" alone is REM
        return "right"
    return None


def read_edf_scoring(path: str | Path, table: dict[str, str] | None = None) -> Scoring:
    """Scored events from an EDF+ file's annotations (``[edf]`` of config/scoring.toml; a label
    matches with a trailing "left"/"right" too, which gives the event its side)."""
    from ingest.recordings.edf import read_edf_recording

    path = Path(path)
    rec = read_edf_recording(path)
    table = scoring_table(section="edf") if table is None else table
    events: list[ScoredEvent] = []
    unmapped: dict[str, int] = {}
    for a in rec.annotations:
        label = a.text.strip()
        if not label:
            continue
        side = _side(label)
        key = label.casefold()
        kind = table.get(key)
        if kind is None and side is not None:  # "Limb movement (left)": the label without its side
            key = key.replace("(", " ").replace(")", " ").rsplit(None, 1)[0].strip()
            kind = table.get(key)
        if kind == "ignore":
            continue
        if kind is None:
            unmapped[label] = unmapped.get(label, 0) + 1
            kind = "other"
        start = rec.start + dt.timedelta(seconds=a.onset_s)
        events.append(ScoredEvent(label, kind, start, start + dt.timedelta(seconds=a.duration_s or 0.0),
                                  side if kind not in STAGES else None))
    if not events:
        raise RecordingError(f"{path.name}: no scored events among its annotations")
    events.sort(key=lambda e: (e.start, e.kind))
    return Scoring(path.name, events, unmapped)


def read_scoring(path: str | Path) -> Scoring:
    """Another scorer's events from a Noxturnal CSV export or an EDF+ file's annotations."""
    suffix = Path(path).suffix.casefold()
    if suffix in (".edf", ".bdf", ".rec"):
        return read_edf_scoring(path)
    return read_noxturnal_csv(path)
