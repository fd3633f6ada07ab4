"""Plain-language terminal summary of an analysis, and the events table as CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io

from detector.advice.rules import format_advice
from detector.analyze import Analysis
from detector.engine.summary import NightSummary, night_key


def hm(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = round(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h} h {m:02d} min"
    if m:
        return f"{m} min {s:02d} s" if m < 10 and s else f"{m} min"
    return f"{s} s"


def clock(start: dt.datetime, seconds: float) -> str:
    return (start + dt.timedelta(seconds=seconds)).strftime("%H:%M")


def text_summary(a: Analysis | dict) -> str:
    """The morning summary in plain words, from an Analysis or its JSON (as stored)."""
    obj = a.to_json() if isinstance(a, Analysis) else a
    rec, s = obj["recording"], NightSummary.of(obj["summary"])
    start = dt.datetime.fromisoformat(rec["start"])
    unknown = any(n.startswith("start time unknown") for n in obj.get("notes", []))
    night = "unknown date (no start time in the file)" if unknown else night_key(start)
    lines = [f"nightcramp — night of {night} ({rec['name']})",
             f"Recording {clock(start, 0)} → {clock(start, rec['duration_s'])} UTC "
             f"({hm(rec['duration_s'])}); "
             + ", ".join(f"{c['label']} {c['fs']:g} Hz" for c in rec["channels"])]
    if s.sleep_onset_s is not None and s.sleep_efficiency is not None:
        lines.append(f"Sleep: fell asleep after {hm(s.sleep_onset_latency_s)}, "
                     f"slept {hm(s.total_sleep_time_s)} "
                     f"(sleep efficiency {100 * s.sleep_efficiency:.0f}%), "
                     f"awake {hm(s.waso_s)} after falling asleep")
    else:
        lines.append("Sleep: no sleep period found (too short a recording, or restless throughout)")
    lines.append(f"Awakenings: {s.awakenings} ({s.awakenings_after_cramp} after a cramp) — "
                 f"counted as {s.awakening_definition}")
    cramps = [e for e in obj["events"] if e["kind"] == "cramp"]
    if cramps:
        parts = [f"{c['side']} leg at {clock(start, c['start_s'])} for {hm(c['end_s'] - c['start_s'])}"
                 for c in cramps]
        lines.append(f"Cramps: {len(cramps)} — " + "; ".join(parts))
        if s.cramps_over_red_flag:
            lines.append(f"  ! {s.cramps_over_red_flag} cramp(s) lasted longer than "
                         f"{s.red_flag_s / 60:g} minutes: "
                         "worth showing to a clinician")
    else:
        lines.append("Cramps: none found")
    plmi = s.plms_index_per_h
    lines.append(f"Leg movements: {s.limb_movements}; periodic series: {s.plm_series}; "
                 f"periodic movements in sleep: {s.plms}"
                 + (f" ({plmi:.1f} per hour of sleep, {s.plm_rules.upper()} rules)"
                    if plmi is not None else ""))
    lines.append(f"Position changes: {s.rollovers}; out of bed: {s.bed_exits}")
    q = []
    for label, v in s.signal_quality.items():
        if v["kind"] == "emg":
            base = f"{v['baseline_uV']:.1f} µV" if v["baseline_uV"] is not None else "n/a"
            mains = f", mains {v['mains_hz']:g} Hz" if v["mains_hz"] else ""
            q.append(f"{label}: resting {base}, artefact {v['artifact_pct']:.1f}%, "
                     f"lost {v['lost_pct']:.1f}%{mains}")
        else:
            q.append(f"{label}: lost {v['lost_pct']:.1f}%")
    lines.append("Signal: " + "; ".join(q))
    for n in obj.get("notes", []):
        lines.append(f"Note: {n}")
    lines.append("What may help (rules from the source article and studies; `nightcramp advice --explain` "
                 "says why):")
    lines.append(format_advice(obj.get("advice", [])))
    return "\n".join(lines)


CSV_COLUMNS = ["kind", "start_s", "end_s", "start", "duration_s", "side", "channel", "confidence", "subtype"]


def events_csv(a: Analysis) -> str:
    return csv_table([e.to_json(a.recording.start) for e in a.events], CSV_COLUMNS)


def csv_table(rows: list[dict], columns: list[str]) -> str:
    """Rows as CSV with a header; keys outside ``columns`` are left out."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()
