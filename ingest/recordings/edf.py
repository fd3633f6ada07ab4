"""EDF, EDF+ (continuous and discontinuous), BDF and BDF+ import through edfio.

Only the header and the requested sample ranges are read (EDF is memory-mapped lazily by
edfio; BDF is held as its 24-bit digital values, never as float64 of the whole night).
"""

from __future__ import annotations

import datetime as dt
import re
import warnings
from pathlib import Path

import edfio
import numpy as np

from ingest.recordings.labels import channel_table, parse_label, unit_scale, with_aliases
from ingest.recordings.recording import (
    Annotation,
    Channel,
    Recording,
    RecordingError,
    check_rates,
    existing_file,
)

_TAL_ONSET = re.compile(rb"^([+-]\d+(?:\.\d*)?)\x14\x14")


def read_edf_recording(path: str | Path, *, aliases: dict[str, str] | None = None) -> Recording:
    """Open an EDF/EDF+/BDF/BDF+ file as a :class:`Recording` of its leg channels.

    ``aliases`` adds label mappings (``{"Leg 1": "EMG L-TibAnt"}``) to those in config.
    Raises RecordingError with the file name and the problem for files that cannot be used.
    """
    path = existing_file(path)
    name = path.name
    raw = _open(path)
    start, start_notes = _start(raw, name)
    if raw.num_data_records <= 0:
        raise RecordingError(f"{name}: the file holds no data records (header says "
                             f"{raw.num_data_records})")
    try:
        record_s = float(raw.data_record_duration)
    except ValueError:
        raise RecordingError(f"{name}: data record duration {raw._data_record_duration!r} is not a "
                             "number") from None
    # EDF+ allows 0 for files holding annotations only (no signal needs a rate).
    if not np.isfinite(record_s) or record_s < 0 or (record_s == 0 and raw.signals):
        raise RecordingError(f"{name}: data record duration {record_s:g} s is not positive")
    onsets = _record_onsets(raw, name)
    table = with_aliases(channel_table(), aliases)
    channels: list[Channel] = []
    sources = []
    ignored: list[str] = []
    for sig in raw.signals:
        parsed = parse_label(sig.label, table)
        if parsed is None:
            ignored.append(sig.label)
            continue
        try:
            fs = float(sig.sampling_frequency)
            pmin, pmax = sig.physical_range
            dmin, dmax = sig.digital_range
        except ValueError as exc:  # edfio parses header fields when they are first read
            raise RecordingError(f"{name}: {sig.label}: unreadable header field ({exc})") from None
        if not np.isfinite(fs) or fs <= 0:
            raise RecordingError(f"{name}: {sig.label}: sampling rate {fs!r} Hz is not positive")
        try:
            scale = unit_scale(parsed.kind, sig.physical_dimension, label=sig.label, table=table)
        except ValueError as exc:
            raise RecordingError(f"{name}: {exc}") from None
        if pmax == pmin or dmax == dmin:
            raise RecordingError(f"{name}: {sig.label}: physical or digital range is empty "
                                 f"({pmin}..{pmax}, {dmin}..{dmax})")
        gain = (pmax - pmin) / (dmax - dmin) * scale
        offset = (pmax / ((pmax - pmin) / (dmax - dmin)) - dmax)
        spr = round(fs * record_s)
        if onsets is None:
            n = spr * raw.num_data_records
            src: _ContinuousSource | _GappedSource = _ContinuousSource(sig, fs, gain, offset)
        else:
            n = round((onsets[-1] + record_s) * fs)
            src = _GappedSource(sig, spr, fs, onsets, gain, offset, n)
        channels.append(Channel(sig.label, parsed.kind, parsed.side, parsed.site, parsed.axis,
                                fs, sig.physical_dimension.strip(), n, abs(gain)))
        sources.append(src)
    check_rates(name, channels)
    duration = (onsets[-1] + record_s) if onsets is not None else raw.duration
    gaps: list[tuple[float, float]] = []
    if onsets is not None:
        ends = onsets + record_s
        for a, b in zip(ends[:-1], onsets[1:], strict=True):
            if b - a > 1e-6:
                gaps.append((float(a), float(b)))
    notes = []
    declared = _declared_records(path)
    if declared == -1:
        notes.append(f"{name}: the header gives the number of data records as -1 (still recording); "
                     f"{raw.num_data_records} read from the file's length")
    elif declared is not None and 0 <= declared < raw.num_data_records:
        notes.append(f"{name}: the header gives {declared} data records but the file holds "
                     f"{raw.num_data_records}; all are read")
    elif declared is not None and declared > raw.num_data_records:
        notes.append(f"{name}: file is truncated: {raw.num_data_records} of {declared} data records "
                     f"present; analysing the first {raw.num_data_records * record_s:g} s")
    annotations = [Annotation(float(a.onset), None if a.duration is None else float(a.duration),
                              a.text) for a in _annotations(raw)]
    return Recording(name, start, float(duration), channels, sources, annotations, gaps, ignored,
                     notes + start_notes)


def _declared_records(path: Path) -> int | None:
    with path.open("rb") as fh:
        head = fh.read(256)
    try:
        return int(head[236:244].decode("ascii").strip())
    except ValueError:
        return None


def _open(path: Path):
    name = path.name
    is_bdf = path.suffix.lower() == ".bdf"
    expected_version = b"\xffBIOSEMI" if is_bdf else b"0       "
    with path.open("rb") as fh:
        head = fh.read(256)
    if len(head) < 256:
        raise RecordingError(f"{name}: file is shorter than an EDF header ({len(head)} bytes)")
    if head[:8] != expected_version:
        what = "BDF" if is_bdf else "EDF"
        raise RecordingError(f"{name}: not an {what} file (version field {head[:8]!r})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = edfio.read_bdf(path) if is_bdf else edfio.read_edf(path)
    except Exception as exc:  # edfio raises plain ValueErrors for header problems
        raise RecordingError(f"{name}: cannot read header: {exc}") from None
    return raw


def _start(raw, name: str) -> tuple[dt.datetime, list[str]]:
    """The recording's start (UTC) and notes on how it was read. The header's own date and time
    fields are used when edfio cannot read the EDF+ start (a damaged time-keeping record, an
    EDF+ ``Startdate`` it does not parse)."""
    date_txt = raw._startdate.decode("ascii", "replace").strip()
    time_txt = raw._starttime.decode("ascii", "replace").strip()
    try:
        start = raw.startdatetime
        notes: list[str] = []
    except edfio.AnonymizedDateError:
        # EDF+ allows an anonymised start date ("X"); the legacy header field still holds one.
        day = _edf_date(date_txt) or dt.date(1985, 1, 1)
        start = dt.datetime.combine(day, _edf_time(name, time_txt))
        notes = []
    except (ValueError, IndexError, KeyError):
        legacy = _edf_date(date_txt)
        if legacy is None:
            raise RecordingError(f"{name}: header start date {date_txt!r} is not a valid date "
                                 "(dd.mm.yy)") from None
        start = dt.datetime.combine(legacy, _edf_time(name, time_txt))
        notes = [f"{name}: the EDF+ start (sub-second offset or Startdate) is unreadable; the header's "
                 f"{date_txt} {time_txt} is used"]
    return (start.replace(tzinfo=dt.UTC) if start.tzinfo is None else start.astimezone(dt.UTC)), notes


def _edf_date(text: str) -> dt.date | None:
    """An EDF header date dd.mm.yy: years 85-99 are 19yy, 00-84 are 20yy (EDF spec)."""
    m = re.fullmatch(r"(\d{2})\.(\d{2})\.(\d{2})", text)
    if m is None:
        return None
    d, mo, y = (int(g) for g in m.groups())
    try:
        return dt.date(1900 + y if y >= 85 else 2000 + y, mo, d)
    except ValueError:
        return None


def _edf_time(name: str, text: str) -> dt.time:
    m = re.fullmatch(r"(\d{2})\.(\d{2})\.(\d{2})", text)
    try:
        if m is None:
            raise ValueError(text)
        hh, mm, ss = (int(g) for g in m.groups())
        return dt.time(hh, mm, ss)
    except ValueError:
        raise RecordingError(f"{name}: header start time {text!r} is not a valid time (hh.mm.ss)") from None


def _record_onsets(raw, name: str) -> np.ndarray | None:
    """Data-record onsets (s) of an EDF+D/BDF+D file; None when the file is continuous."""
    if not raw.reserved.strip().endswith("+D"):
        return None
    tk = next((s for s in raw._signals if s._is_annotation_signal), None)
    if tk is None:
        raise RecordingError(f"{name}: discontinuous file without an annotation signal")
    records = tk.digital.reshape(raw.num_data_records, -1)
    onsets = np.empty(raw.num_data_records)
    for i, rec in enumerate(records):
        m = _TAL_ONSET.match(rec.tobytes())
        if m is None:
            raise RecordingError(f"{name}: data record {i} has no timekeeping annotation")
        onsets[i] = float(m.group(1))
    onsets -= onsets[0]
    if np.any(np.diff(onsets) < 0):
        raise RecordingError(f"{name}: data record onsets go backwards in time")
    return onsets


def _annotations(raw):
    try:
        return raw.annotations
    except Exception:  # malformed TALs must not hide the signals
        return ()


class _ContinuousSource:
    def __init__(self, sig, fs: float, gain: float, offset: float) -> None:
        self.sig, self.fs, self.gain, self.offset = sig, fs, gain, offset

    def __call__(self, start: int, stop: int) -> np.ndarray:
        digital = self.sig.get_digital_slice(start / self.fs, stop / self.fs)
        out = digital.astype(np.float32)
        out += np.float32(self.offset)
        out *= np.float32(self.gain)
        return out


class _GappedSource:
    """Reads a discontinuous signal onto a continuous timeline with NaN in the gaps."""

    def __init__(self, sig, spr, fs, onsets, gain, offset, n) -> None:
        self.sig, self.spr, self.fs, self.gain, self.offset, self.n = sig, spr, fs, gain, offset, n
        self.first = np.round(onsets * fs).astype(np.int64)
        self._timeline: np.ndarray | None = None

    def __call__(self, start: int, stop: int) -> np.ndarray:
        if self._timeline is None:
            tl = np.full(self.n, np.nan, dtype=np.float32)
            digital = self.sig.digital.reshape(-1, self.spr)
            for first, rec in zip(self.first, digital, strict=True):
                seg = (rec.astype(np.float32) + np.float32(self.offset)) * np.float32(self.gain)
                tl[first:first + self.spr] = seg[: max(0, self.n - first)]
            self._timeline = tl
        return self._timeline[start:stop]
