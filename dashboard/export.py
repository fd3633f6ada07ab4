"""Exports of a stored night: EDF+ (signals from the raw store, events with their review as
annotations), the events as CSV."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np

from dashboard.report import CSV_COLUMNS, csv_table

UNITS = {"emg": "uV", "acc": "g"}
TRANSDUCERS = {"emg": "surface EMG electrodes", "acc": "3-axis accelerometer"}
# The samples are exported as the sensor sent them: no filter applied (EDF+ prefiltering field).
PREFILTERING = "none (raw sensor samples)"
CHUNK_S = 600  # seconds of raw samples per query


def edf_bound(x: float, *, up: bool) -> float:
    """``x`` rounded outward (up for a maximum, down for a minimum) to the 8 characters an EDF
    header holds: a truncated maximum would clip the samples above it."""
    for digits in range(7, -1, -1):
        k = 10.0**digits
        v = (math.ceil(x * k) if up else math.floor(x * k)) / k
        if len(str(v)) <= 8 and "e" not in str(v):  # EDF headers hold plain decimals
            return v
    return float(math.ceil(x) if up else math.floor(x))


def annotation_text(e: dict) -> str:
    side = f" {e['side']}" if e.get("side") else ""
    text = f"{e['kind']}{side}"
    if e.get("status") and e["status"] != "detected":
        who = f" by {e['reviewed_by']}" if e.get("reviewed_by") else ""
        was = f" (detected as {e['detected_kind']})" if e["status"] == "relabelled" else ""
        text += f" [{e['status']}{who}{was}]"
    return text


def night_edf(store, wearer: str, analysis: dict, events: list[dict], path: Path) -> dict:
    """Write the night as EDF+ to ``path``, streamed ``CHUNK_S`` seconds at a time (memory stays
    bounded however long the night): every stored channel at its rate (µV, g) and one annotation
    per event (review status in the text). Missing samples are written as 0 and annotated
    ``signal lost``. Returns counts for the caller's log."""
    import pyedflib

    rec = analysis["recording"]
    start = dt.datetime.fromisoformat(rec["start"])
    t0 = int(start.timestamp() * 1e9)
    seconds = max(1, math.ceil(float(rec["duration_s"])))  # whole 1-s data records
    chans = rec["channels"]
    if not chans:
        raise ValueError(f"night of {wearer}: no stored channels to export")
    ranges = store.value_range(wearer, t0, t0 + seconds * 10**9)
    headers = []
    for ch in chans:
        lo, hi = ranges.get(ch["label"], (-1.0, 1.0))
        lo, hi = min(lo, 0.0), max(hi, 0.0)  # 0 stands for missing samples
        if hi <= lo:
            lo, hi = lo - 1.0, hi + 1.0
        lo, hi = edf_bound(lo, up=False), edf_bound(hi, up=True)
        headers.append({"label": ch["label"], "dimension": UNITS.get(ch["kind"], ""),
                        "sample_frequency": float(ch["fs"]), "physical_min": lo, "physical_max": hi,
                        "digital_min": -32768, "digital_max": 32767,
                        "transducer": TRANSDUCERS.get(ch["kind"], ""), "prefilter": PREFILTERING})
    by_stream: dict[str, list[int]] = {}
    for k, ch in enumerate(chans):
        by_stream.setdefault(ch["kind"], []).append(k)
    lost: list[tuple[str, float, float]] = []
    gap_open: list[float | None] = [None] * len(chans)
    w = pyedflib.EdfWriter(str(path), len(chans), file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        w.setPatientCode(wearer)  # the pseudonymous id: no name, sex or birth date
        w.setEquipment("nightcramp")
        w.setStartdatetime(start.astimezone(dt.UTC).replace(tzinfo=None, microsecond=0))
        w.setSignalHeaders(headers)
        pool = store.read_pool()
        t_end = t0 + seconds * 10**9
        # A channel whose frames all share one encoding, scale and rate (the usual night) is read
        # as its samples column alone, one query per channel, channels side by side.
        fmts = dict(zip([ch["label"] for ch in chans], pool.map(
            lambda ch: store.frame_format(wearer, ch["label"], ch["kind"], t0 - 10**9, t_end), chans),
            strict=True))

        def read(a: int) -> list:
            """The chunk from second ``a``: per stream, label -> future of that channel's frames."""
            b = min(seconds, a + CHUNK_S)
            lo, hi = t0 + a * 10**9, t0 + b * 10**9
            out = []
            for stream, idx in by_stream.items():
                labels = [chans[k]["label"] for k in idx]
                mixed = [lab for lab in labels if fmts[lab] is None]
                futs = {lab: pool.submit(store.raw_frames_uniform, wearer, lab, stream, lo, hi, fmts[lab])
                        for lab in labels if fmts[lab] is not None}
                if mixed:
                    together = pool.submit(store.raw_frames_of, wearer, mixed, stream, lo, hi)
                    futs |= {lab: _pick(together, lab) for lab in mixed}
                out.append(futs)
            return out

        # The next chunk is read while this one is written (InfluxDB works while Python decodes):
        # at most two chunks in memory.
        ahead = read(0)
        for a in range(0, seconds, CHUNK_S):  # bounded queries and buffers
            b = min(seconds, a + CHUNK_S)
            block: list[np.ndarray] = [np.zeros(0)] * len(chans)
            reads, ahead = ahead, (read(b) if b < seconds else [])
            for (_, idx), futs in zip(by_stream.items(), reads, strict=True):
                for k in idx:
                    fs = float(chans[k]["fs"])
                    n = round((b - a) * fs)
                    x, have = np.zeros(n), np.zeros(n, bool)
                    frames = futs[chans[k]["label"]].result()
                    pos = frames.positions(t0, fs) - round(a * fs)
                    ok = (pos >= 0) & (pos < n)
                    x[pos[ok]], have[pos[ok]] = frames.values[ok], True
                    block[k] = x
                    runs, gap_open[k] = _gap_runs(have, fs, a, chans[k]["label"], gap_open[k],
                                                  last=b == seconds)
                    lost += runs
            _write_records(w, block)
        notes = [(float(e["start_s"]), float(e["end_s"]) - float(e["start_s"]), annotation_text(e))
                 for e in events]
        notes += [(s, e - s, f"signal lost {label}") for label, s, e in lost]
        for onset, duration, text in sorted(notes):
            w.writeAnnotation(onset, duration, text)
    finally:
        w.close()
    return {"channels": len(chans), "annotations": len(notes), "seconds": seconds}


def _write_records(w, block: list[np.ndarray]) -> None:
    """Whole 1-s data records of every channel (physical units), interleaved as EDF wants them,
    one call per record: pyedflib's writeSamples builds each record with np.append, which cost a
    third of the export's own time."""
    per = [w.get_smp_per_record(i) for i in range(len(block))]
    n_rec = min(len(x) // p for x, p in zip(block, per, strict=True))
    rows = np.concatenate([np.asarray(x[:n_rec * p], np.float64).reshape(n_rec, p)
                           for x, p in zip(block, per, strict=True)], axis=1)
    for r in range(n_rec):
        if w.blockWritePhysicalSamples(rows[r]) < 0:
            raise OSError(f"EDF+ record {r} of a chunk not written")


class _pick:
    """One channel of a several-channel read, with a future's ``result()``."""

    def __init__(self, fut, label: str) -> None:
        self.fut, self.label = fut, label

    def result(self):
        return self.fut.result()[self.label]


def _gap_runs(have: np.ndarray, fs: float, offset_s: float, label: str, open_since: float | None, *,
              last: bool, min_s: float = 1.0) -> tuple[list[tuple[str, float, float]], float | None]:
    """Runs of missing samples of at least ``min_s`` s in one chunk that starts at ``offset_s``
    s: (label, start s, end s). A run still open at the chunk's end is returned as the new
    ``open_since`` (its start) and finished by the next chunk."""
    runs: list[tuple[str, float, float]] = []
    d = np.diff(np.r_[0, (~have).astype(np.int8), 0])
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    if open_since is not None and not (len(starts) and starts[0] == 0):
        if offset_s - open_since >= min_s:  # the run ended exactly at the chunk boundary
            runs.append((label, open_since, offset_s))
        open_since = None
    for s, e in zip(starts, ends, strict=True):
        begin = float(offset_s + s / fs)
        if s == 0 and open_since is not None:
            begin, open_since = open_since, None
        if e == len(have) and not last:
            open_since = begin
            continue
        if offset_s + e / fs - begin >= min_s:
            runs.append((label, begin, offset_s + e / fs))
    return runs, open_since


def events_csv(events: list[dict], start: dt.datetime) -> str:
    """Reviewed events as CSV: the analysis columns (``start`` as UTC time from the recording's
    ``start``) plus review status, who and when."""
    rows = [e | {"start": (start + dt.timedelta(seconds=float(e["start_s"]))).isoformat()} for e in events]
    return csv_table(rows, [*CSV_COLUMNS, "status", "reviewed_by", "reviewed_at"])
