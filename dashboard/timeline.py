"""The night at a glance as inline SVG: lights-off to final wake, a sleep/wake band, cramps by
side (left above, right below) shaded by intensity, awakenings and bed exits."""

from __future__ import annotations

import datetime as dt
from html import escape

import numpy as np

from detector.engine.intervals import runs

W, H = 800.0, 150.0
X0, X1 = 40.0, 790.0
BAND_Y, BAND_H = 62.0, 22.0


def hour_marks(start: dt.datetime, dur: float) -> list[tuple[float, str]]:
    """(seconds from ``start``, "HH:MM") of every full hour of the clock inside the night."""
    first = (start.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1) - start).total_seconds()
    return [(t, (start + dt.timedelta(seconds=t)).strftime("%H:%M")) for t in np.arange(first, dur, 3600.0)]


def timeline_svg(analysis: dict, hypnogram: dict | None, *, tz: str = "UTC") -> str:
    """The SVG; clock times in ``tz`` (an IANA zone)."""
    from zoneinfo import ZoneInfo

    rec = analysis["recording"]
    dur = max(float(rec["duration_s"]), 1.0)
    start = dt.datetime.fromisoformat(rec["start"]).astimezone(ZoneInfo(tz))

    def x(t: float) -> float:
        return X0 + (X1 - X0) * min(max(t, 0.0), dur) / dur

    long = " long" if dur > 6 * 3600 else ""  # on a phone, every other hour label is left out
    parts = [f'<svg class="timeline{long}" viewBox="0 0 {W:.0f} {H:.0f}" role="img" '
             f'aria-label="The night from {start:%H:%M} for {dur / 3600:.1f} hours">']
    for k, (t, lab) in enumerate(hour_marks(start, dur)):
        odd = " odd" if k % 2 else ""
        parts.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="18" y2="{H - 20:.0f}" class="tick"/>'
                     f'<text x="{x(t):.1f}" y="{H - 4:.0f}" class="label{odd}" '
                     f'text-anchor="middle">{lab}</text>')
    for side, y in (("L", BAND_Y - 22), ("R", BAND_Y + BAND_H + 32)):
        parts.append(f'<text x="{X0 - 4:.0f}" y="{y:.0f}" class="label" text-anchor="end">{side}</text>')
    if hypnogram and hypnogram.get("wake"):
        ep = float(hypnogram["epoch_s"])
        for ia, ib, w in runs(hypnogram["wake"]):
            cls = "wake" if w else "sleep"
            t_a, t_b = start + dt.timedelta(seconds=ia * ep), start + dt.timedelta(seconds=ib * ep)
            width = max(0.5, x(ib * ep) - x(ia * ep))
            parts.append(f'<rect class="{cls}" x="{x(ia * ep):.1f}" y="{BAND_Y}" width="{width:.1f}" '
                         f'height="{BAND_H}"><title>{"awake" if w else "asleep"} {t_a:%H:%M}–{t_b:%H:%M}'
                         f'</title></rect>')
    else:
        parts.append(f'<rect class="unknown" x="{X0}" y="{BAND_Y}" width="{X1 - X0}" height="{BAND_H}">'
                     '<title>sleep and wake not estimated</title></rect>')
    for e in analysis["events"]:
        if e.get("status") == "rejected":
            continue
        a, b = float(e["start_s"]), float(e["end_s"])
        when = f"{(start + dt.timedelta(seconds=a)):%H:%M}"
        if e["kind"] == "cramp":
            ratio = float((e.get("features") or {}).get("peak_ratio") or 3.0)
            shade = min(1.0, 0.35 + ratio / 12.0)
            y = BAND_Y - 34 if e.get("side") == "left" else BAND_Y + BAND_H + 8
            mins = (b - a) / 60
            side = escape(e.get("side") or "")
            width = max(8.0, x(b) - x(a))  # visible on a phone even for a short cramp
            parts.append(f'<rect class="cramp" x="{x(a):.1f}" y="{y:.0f}" width="{width:.1f}" height="26"'
                         f'  rx="3" fill-opacity="{shade:.2f}" data-kind="cramp">'
                         f'<title>cramp, {side} leg, {when}, {mins:.1f} min</title></rect>')
        elif e["kind"] == "awakening":
            parts.append(f'<line class="awakening" x1="{x(a):.1f}" x2="{x(a):.1f}" y1="{BAND_Y - 6}" '
                         f'y2="{BAND_Y + BAND_H + 6}"><title>awakening {when}</title></line>')
        elif e["kind"] == "bed_exit":
            parts.append(f'<path class="bed-exit" d="M{x(a):.1f},12 l6,10 h-12 z"><title>out of bed {when}'
                         f'</title></path>')
    parts.append("</svg>")
    return "".join(parts)
