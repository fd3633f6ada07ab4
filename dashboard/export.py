"""Exports of a stored night: EDF+ (signals from the raw store, events with their review as
annotations), the events as CSV."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
from edfio import Edf, EdfAnnotation, EdfSignal, Patient, Recording

from dashboard.report import CSV_COLUMNS, csv_table

UNITS = {"emg": "uV", "acc": "g"}
TRANSDUCERS = {"emg": "surface EMG electrodes", "acc": "3-axis accelerometer"}
# The samples are exported as the sensor sent them: no filter applied (EDF+ prefiltering field).
PREFILTERING = "none (raw sensor samples)"
CHUNK_S = 600  # seconds of raw samples per query


def annotation_text(e: dict) -> str:
    side = f" {e['side']}" if e.get("side") else ""
    text = f"{e['kind']}{side}"
    if e.get("status") and e["status"] != "detected":
        who = f" by {e['reviewed_by']}" if e.get("reviewed_by") else ""
        was = f" (detected as {e['detected_kind']})" if e["status"] == "relabelled" else ""
        text += f" [{e['status']}{who}{was}]"
    return text


def night_edf(store, wearer: str, analysis: dict, events: list[dict], path: Path) -> dict:
    """Write the night as EDF+ to ``path``: every stored channel at its rate (µV, g) and one
    annotation per event (review status in the text). Missing samples are written as 0 and
    annotated ``signal lost``. Returns counts for the caller's log."""
    rec = analysis["recording"]
    start = dt.datetime.fromisoformat(rec["start"])
    t0 = int(start.timestamp() * 1e9)
    seconds = max(1, math.ceil(float(rec["duration_s"])))  # whole 1-s data records
    signals, lost = [], []
    for ch in rec["channels"]:
        fs = float(ch["fs"])
        n = round(seconds * fs)
        x = np.zeros(n)
        have = np.zeros(n, bool)
        for a in range(0, seconds, CHUNK_S):  # bounded queries: a night is millions of samples
            b = min(seconds, a + CHUNK_S)
            ts, vs = store.raw(wearer, ch["label"], ch["kind"], t0 + a * 10**9, t0 + b * 10**9)
            idx = np.round((ts - t0) * fs / 1e9).astype(np.int64)
            ok = (idx >= 0) & (idx < n)
            x[idx[ok]] = vs[ok]
            have[idx[ok]] = True
        lost += _gaps(have, fs, ch["label"])
        lo, hi = float(x.min()), float(x.max())
        if hi <= lo:
            lo, hi = lo - 1.0, hi + 1.0
        signals.append(EdfSignal(x, fs, label=ch["label"], physical_dimension=UNITS.get(ch["kind"], ""),
                                 physical_range=(lo, hi), transducer_type=TRANSDUCERS.get(ch["kind"], ""),
                                 prefiltering=PREFILTERING))
    if not signals:
        raise ValueError(f"night of {wearer}: no stored channels to export")
    notes = [EdfAnnotation(float(e["start_s"]), float(e["end_s"]) - float(e["start_s"]), annotation_text(e))
             for e in events]
    notes += [EdfAnnotation(a, b - a, f"signal lost {label}") for label, a, b in lost]
    edf = Edf(signals, annotations=sorted(notes, key=lambda a: a.onset),
              starttime=start.time().replace(microsecond=0),
              patient=Patient(code=wearer),  # the pseudonymous id: no name, sex or birth date
              recording=Recording(startdate=start.date(), equipment_code="nightcramp"))
    edf.write(path)
    return {"channels": len(signals), "annotations": len(notes), "seconds": seconds}


def _gaps(have: np.ndarray, fs: float, label: str, min_s: float = 1.0) -> list[tuple[str, float, float]]:
    """Runs of missing samples of at least ``min_s`` seconds: (label, start s, end s)."""
    d = np.diff(np.r_[0, (~have).astype(np.int8), 0])
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return [(label, a / fs, b / fs) for a, b in zip(starts, ends, strict=True) if (b - a) / fs >= min_s]


def events_csv(events: list[dict], start: dt.datetime) -> str:
    """Reviewed events as CSV: the analysis columns (``start`` as UTC time from the recording's
    ``start``) plus review status, who and when."""
    rows = [e | {"start": (start + dt.timedelta(seconds=float(e["start_s"]))).isoformat()} for e in events]
    return csv_table(rows, [*CSV_COLUMNS, "status", "reviewed_by", "reviewed_at"])
