"""The printable night report as a PDF (fpdf2, built-in fonts: no files, no network)."""

from __future__ import annotations

import datetime as dt

from fpdf import FPDF

from dashboard.timeline import hour_marks
from detector.advice.rules import DISCLAIMER
from detector.engine.intervals import runs
from detector.engine.summary import NightSummary


def _latin1(text: str) -> str:
    # The built-in PDF fonts are Latin-1; keep the meaning of the few characters outside it.
    for a, b in (("–", "-"), ("—", "-"), ("µ", "u"), ("’", "'"), ("“", '"'), ("”", '"'), ("…", "..."),
                 ("≥", ">="), ("≤", "<="), ("×", "x"), ("→", "->")):
        text = text.replace(a, b)
    return text.encode("latin-1", "replace").decode("latin-1")


class _Report(FPDF):
    """A4 pages that each say whose night they belong to, and which page of how many."""

    def __init__(self, wearer: str, night: str) -> None:
        super().__init__(format="A4")
        self.who = _latin1(f"nightcramp report - {wearer}, night of {night}")

    def header(self) -> None:
        if self.page_no() > 1:  # the first page has the title itself
            self.set_font("Helvetica", "", 8)
            self.set_text_color(90)
            self.cell(0, 5, self.who, new_x="LMARGIN", new_y="NEXT")
            self.set_text_color(0)
            self.ln(2)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", "", 8)
        self.set_text_color(90)
        # fpdf2 puts the page count in place of {nb} when the document is closed.
        self.cell(0, 5, f"{self.who} - page {self.page_no()} of {{nb}}", align="C")
        self.set_text_color(0)


# Timeline colours (RGB), as on the summary page.
SLEEP, WAKE, CRAMP = (176, 196, 222), (240, 173, 78), (176, 32, 32)
BED_EXIT, AWAKENING = (106, 61, 154), (60, 60, 60)


def _timeline(pdf: FPDF, analysis: dict, hypnogram: dict | None, start: dt.datetime) -> None:
    """The night at a glance, 180 mm wide: the sleep/wake band (from the hypnogram), cramps of the
    left leg above it and of the right leg below, awakenings outlined, bed exits, hour ticks."""
    x0, w, y0 = pdf.l_margin, pdf.epw, pdf.get_y() + 2
    dur = max(float(analysis["recording"]["duration_s"]), 1.0)

    def x(t: float) -> float:
        return x0 + w * min(max(t, 0.0), dur) / dur

    band_y, band_h = y0 + 9, 6
    pdf.set_draw_color(150)
    if hypnogram and hypnogram.get("wake"):
        ep = float(hypnogram["epoch_s"])
        for k, j, awake in runs(hypnogram["wake"]):
            pdf.set_fill_color(*(WAKE if awake else SLEEP))
            pdf.rect(x(k * ep), band_y, max(0.2, x(j * ep) - x(k * ep)), band_h, style="F")
    else:
        pdf.set_fill_color(230)
        pdf.rect(x0, band_y, w, band_h, style="F")
    for e in analysis["events"]:
        if e.get("status") == "rejected":  # as on the summary page: a clinician said it was not
            continue
        a, b = float(e["start_s"]), float(e["end_s"])
        if e["kind"] == "cramp":
            pdf.set_fill_color(*CRAMP)
            y = y0 + 2 if e.get("side") != "right" else band_y + band_h + 1
            pdf.rect(x(a), y, max(0.6, x(b) - x(a)), 6, style="F")
        elif e["kind"] == "awakening":
            pdf.set_draw_color(*AWAKENING)
            pdf.rect(x(a), band_y - 0.5, max(0.4, x(b) - x(a)), band_h + 1, style="D")
        elif e["kind"] == "bed_exit":
            pdf.set_fill_color(*BED_EXIT)
            pdf.rect(x(a), y0, max(0.6, x(b) - x(a)), 1.5, style="F")
    pdf.set_draw_color(120)
    pdf.set_font("Helvetica", "", 7)
    for t, lab in hour_marks(start, dur):
        pdf.line(x(t), y0 + 1, x(t), y0 + 24)
        pdf.text(x(t) - 3.5, y0 + 27.5, lab)
    pdf.set_xy(x0, y0 + 29)
    pdf.set_font("Helvetica", "", 7)
    pdf.multi_cell(0, 3.5, _latin1(f"Left leg's cramps above the band, right leg's below (red); band: "
                                   f"sleep blue, wake orange; awakenings outlined; bed exits purple on top. "
                                   f"Clock times {start:%Z}."), new_x="LMARGIN", new_y="NEXT")
    pdf.set_draw_color(0)


def night_pdf(wearer: str, night: str, analysis: dict, advice: list[dict], *, tz: str = "UTC",
              hypnogram: dict | None = None) -> bytes:
    """Summary with the night's timeline, events (with review status) and advice of one night,
    with the disclaimer; every page names the wearer's pseudonymous id, the night and its page
    number. Clock times in ``tz`` (an IANA zone); ``hypnogram`` ({"epoch_s", "wake"}) draws
    the sleep/wake band."""
    from zoneinfo import ZoneInfo

    s = NightSummary.of(analysis["summary"])
    start = dt.datetime.fromisoformat(analysis["recording"]["start"]).astimezone(ZoneInfo(tz))
    pdf = _Report(wearer, night)
    pdf.set_auto_page_break(True, margin=18)
    pdf.add_page()

    def line(text: str, size: int = 10, style: str = "") -> None:
        pdf.set_font("Helvetica", style, size)
        pdf.multi_cell(0, size * 0.5, _latin1(text), new_x="LMARGIN", new_y="NEXT")

    line(f"nightcramp report - {wearer}, night of {night}", 15, "B")
    line(f"Recorded from {start:%Y-%m-%d %H:%M %Z} for {analysis['recording']['duration_s'] / 3600:.1f} h"
         + ("; events reviewed by a clinician" if s.reviewed else ""))
    _timeline(pdf, analysis, hypnogram, start)
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
