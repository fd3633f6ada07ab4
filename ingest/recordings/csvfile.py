"""CSV recordings: one sampling rate per file, a documented header (see docs/formats.md).

Layout::

    # nightcramp-csv/1
    # start: 2026-11-24T22:30:00Z        (optional; without it the start is reported as unknown)
    # fs: 1000                           (optional when a time_s column is present)
    time_s,EMG L-Gastroc [uV],ACC L-Shank X [g],...
    0.000,3.1,0.01,...

An empty cell is a missing sample (read as NaN, reported as signal lost).
"""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

import numpy as np

from ingest.recordings.labels import channel_table, parse_label, unit_scale, with_aliases
from ingest.recordings.recording import Channel, Recording, RecordingError, check_rates, existing_file

_EMPTY = re.compile(r"(?m)(^|,)(?=,|$)")
_COL = re.compile(r"^\s*(.*?)\s*\[\s*([^\]]*)\s*\]\s*$")


def read_csv_recording(path: str | Path, *, aliases: dict[str, str] | None = None) -> Recording:
    """Read a CSV recording; raises RecordingError naming the file and the problem."""
    path = existing_file(path)
    name = path.name
    meta: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    if any("\x00" in line for line in lines[:5]):
        raise RecordingError(f"{name}: not a text file (binary bytes in the first lines)")
    body_at = 0
    for body_at, line in enumerate(lines):  # noqa: B007 - index kept for the header row
        if not line.startswith("#"):
            break
        if ":" in line:
            key, _, value = line[1:].partition(":")
            meta[key.strip().lower()] = value.strip()
    else:
        raise RecordingError(f"{name}: no header row with column names")
    header = [h.strip() for h in lines[body_at].split(",")]
    rows = lines[body_at + 1:]
    if not rows:
        raise RecordingError(f"{name}: no data rows")
    # An empty cell (an empty line when there is one column) is a missing sample.
    body = _EMPTY.sub(r"\1nan", "\n".join(rows))
    try:
        data = np.loadtxt(io.StringIO(body), delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise RecordingError(f"{name}: malformed data row: {exc}") from None
    if data.shape[1] != len(header):
        raise RecordingError(f"{name}: {data.shape[1]} values per row but {len(header)} columns")
    odd_notes = []
    inf = np.isinf(data)
    if inf.any():
        data[inf] = np.nan
        odd_notes.append(f"{name}: {int(inf.sum())} infinite values read as missing samples")
    fs = _rate(name, meta, header, data)
    start = _start(name, meta.get("start"))
    table = with_aliases(channel_table(), aliases)
    channels: list[Channel] = []
    sources = []
    ignored: list[str] = []
    for col, label in enumerate(header):
        if label.lower() in ("time_s", "time", "t"):
            continue
        m = _COL.match(label)
        base, unit = (m.group(1), m.group(2)) if m else (label, "")
        parsed = parse_label(base, table)
        if parsed is None:
            ignored.append(label)
            continue
        if not unit:
            raise RecordingError(f"{name}: column {label!r} has no unit; write it as "
                                 f"'{base} [{'uV' if parsed.kind == 'emg' else 'g'}]'")
        try:
            scale = unit_scale(parsed.kind, unit, label=base, table=table)
        except ValueError as exc:
            raise RecordingError(f"{name}: {exc}") from None
        arr = (data[:, col] * scale).astype(np.float32)
        channels.append(Channel(base, parsed.kind, parsed.side, parsed.site, parsed.axis,
                                fs, unit, len(arr)))
        sources.append(lambda a, b, arr=arr: arr[a:b])
    check_rates(name, channels)
    notes = [] if meta.get("start") else [
        "start time unknown: the file has no '# start:' line, so times are from the start of the file "
        "and the night's date (1970-01-01) means nothing"]
    return Recording(name, start, len(data) / fs, channels, sources, [], [], ignored, odd_notes + notes)


def _rate(name: str, meta: dict[str, str], header: list[str], data: np.ndarray) -> float:
    if "fs" in meta:
        try:
            fs = float(meta["fs"])
        except ValueError:
            raise RecordingError(f"{name}: '# fs: {meta['fs']}' is not a number") from None
    elif header and header[0].lower() in ("time_s", "time", "t") and len(data) > 1:
        steps = np.diff(data[:, 0])
        step = float(np.median(steps))
        if not np.isfinite(step) or step <= 0:
            raise RecordingError(f"{name}: time column does not increase")
        back = np.flatnonzero(~(steps > 0))
        if back.size:
            raise RecordingError(f"{name}: time column does not increase at data row {int(back[0]) + 2} "
                                 f"({data[back[0], 0]:g} s then {data[back[0] + 1, 0]:g} s)")
        # 1/step of a decimal step is not exact (999.9999999999991): keep 9 significant digits.
        fs = float(f"{1.0 / step:.9g}")
    else:
        raise RecordingError(f"{name}: no sampling rate: add '# fs: <Hz>' or a time_s column")
    if not np.isfinite(fs) or fs <= 0:
        raise RecordingError(f"{name}: sampling rate {meta.get('fs', fs)} Hz is not a positive number")
    return fs


def _start(name: str, text: str | None) -> dt.datetime:
    if not text:
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    try:
        start = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise RecordingError(f"{name}: '# start: {text}' is not an ISO-8601 time") from None
    return start.replace(tzinfo=dt.UTC) if start.tzinfo is None else start.astimezone(dt.UTC)
