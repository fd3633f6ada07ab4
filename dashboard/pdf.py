"""The printable night report as a PDF (fpdf2, built-in fonts: no files, no network)."""

from __future__ import annotations

import datetime as dt

from fpdf import FPDF

from detector.advice.rules import DISCLAIMER
from detector.engine.summary import NightSummary


def _latin1(text: str) -> str:
    # The built-in PDF fonts are Latin-1; keep the meaning of the few characters outside it.
    for a, b in (("–", "-"), ("—", "-"), ("µ", "u"), ("’", "'"), ("“", '"'), ("”", '"'), ("…", "..."),
                 ("≥", ">="), ("≤", "<="), ("×", "x"), ("→", "->")):
        text = text.replace(a, b)
    return text.encode("latin-1", "replace").decode("latin-1")


def night_pdf(wearer: str, night: str, analysis: dict, advice: list[dict], *, tz: str = "UTC") -> bytes:
    """Summary, events (with review status) and advice of one night, with the disclaimer; clock
    times in ``tz`` (an IANA zone)."""
    from zoneinfo import ZoneInfo

    s = NightSummary.of(analysis["summary"])
    start = dt.datetime.fromisoformat(analysis["recording"]["start"]).astimezone(ZoneInfo(tz))
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()

    def line(text: str, size: int = 10, style: str = "") -> None:
        pdf.set_font("Helvetica", style, size)
        pdf.multi_cell(0, size * 0.5, _latin1(text), new_x="LMARGIN", new_y="NEXT")

    line(f"nightcramp report - {wearer}, night of {night}", 15, "B")
    line(f"Recorded from {start:%Y-%m-%d %H:%M %Z} for {analysis['recording']['duration_s'] / 3600:.1f} h"
         + ("; events reviewed by a clinician" if s.reviewed else ""))
    pdf.ln(2)
    line("Summary", 12, "B")
    se = s.sleep_efficiency
    for text in (
        f"Cramps: {s.cramps} ({s.cramps_left} left, {s.cramps_right} right), "
        f"{s.cramp_total_s / 60:.1f} min in all, longest {s.cramp_longest_s / 60:.1f} min",
        f"Awakenings: {s.awakenings} ({s.awakenings_after_cramp} after a cramp)",
        f"Sleep efficiency: {100 * se:.0f}%" if se is not None else "Sleep efficiency: not estimated",
        f"Leg movements: {s.limb_movements}; PLM index: {s.plms_index_per_h} /h",
        f"Rollovers: {s.rollovers}; out of bed: {s.bed_exits}",
    ):
        line(text)
    pdf.ln(2)
    line("Events", 12, "B")
    for e in analysis["events"]:
        if e["kind"] == "limb_movement":
            continue
        t = start + dt.timedelta(seconds=float(e["start_s"]))
        who = f" by {e['reviewed_by']}" if e.get("reviewed_by") else ""
        dur = float(e["end_s"]) - float(e["start_s"])
        line(f"{t:%H:%M:%S}  {e['kind']:<12} {e.get('side') or '':<6} {dur:7.1f} s  "
             f"{e.get('status', 'detected')}{who}", 9)
    pdf.ln(2)
    line("Advice", 12, "B")
    for a in advice:
        line(f"{a['title']} [{a['level']}]", 10, "B")
        line(f"{a['text']} Source: {a['source']}.", 9)
    pdf.ln(3)
    line(DISCLAIMER, 8, "I")
    return bytes(pdf.output())
