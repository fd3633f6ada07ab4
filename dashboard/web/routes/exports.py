"""Exports of a night: events as CSV, the signals as EDF+ (clinicians), the report as HTML and PDF.
At most ``dashboard.max_exports`` large exports are built at once (503 with Retry-After beyond)."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.background import BackgroundTask

from dashboard.export import events_csv, night_edf
from dashboard.timeline import timeline_svg
from dashboard.web.common import Sess, clinician, local_start, may_see, night_data, page, store
from detector.engine.summary import NightSummary

router = APIRouter()


def _busy() -> HTTPException:
    return HTTPException(503, "other exports are being built: try again in a minute",
                         headers={"Retry-After": "30"})


@router.get("/w/{wearer}/{night}/export.csv")
def export_csv(request: Request, wearer: str, night: str, s: Sess):
    may_see(request, s, wearer)
    a = night_data(request, wearer, night)
    start = dt.datetime.fromisoformat(a["recording"]["start"])
    request.app.state.metrics.exports.labels("csv").inc()
    return PlainTextResponse(events_csv(a["events"], start), media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="nightcramp-{wearer}-{night}.csv"'})


@router.get("/w/{wearer}/{night}/export.edf")
def export_edf(request: Request, wearer: str, night: str, s: Sess):
    may_see(request, s, wearer)
    clinician(s)  # the raw signals of a whole night: for clinicians (docs/dashboard.md)
    a = night_data(request, wearer, night)
    exports = request.app.state.exports
    if not exports.acquire(blocking=False):
        raise _busy()
    fd, name = tempfile.mkstemp(suffix=".edf")
    os.close(fd)
    tmp = Path(name)
    try:
        night_edf(store(request), wearer, a, a["events"], tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        exports.release()
    request.app.state.metrics.exports.labels("edf").inc()
    return FileResponse(tmp, media_type="application/octet-stream",
                        filename=f"nightcramp-{wearer}-{night}.edf",
                        background=BackgroundTask(tmp.unlink, missing_ok=True))


@router.get("/w/{wearer}/{night}/report", response_class=HTMLResponse)
def report(request: Request, wearer: str, night: str, s: Sess):
    may_see(request, s, wearer)
    a = night_data(request, wearer, night)
    return page(request, "report.html", s, wearer=wearer, night=night, a=a,
                summary=NightSummary.of(a["summary"]),
                timeline=timeline_svg(a, store(request).hypnogram(wearer, night), tz=s.user.tz),
                advice=a["advice"],
                start=local_start(a, s))


@router.get("/w/{wearer}/{night}/report.pdf")
def report_pdf(request: Request, wearer: str, night: str, s: Sess):
    from dashboard.pdf import night_pdf

    may_see(request, s, wearer)
    a = night_data(request, wearer, night)
    exports = request.app.state.exports
    if not exports.acquire(blocking=False):
        raise _busy()
    try:
        pdf = night_pdf(wearer, night, a, a["advice"], tz=s.user.tz,
                        hypnogram=store(request).hypnogram(wearer, night))
    finally:
        exports.release()
    request.app.state.metrics.exports.labels("pdf").inc()
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="nightcramp-{wearer}-{night}.pdf"'})
