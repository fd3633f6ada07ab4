"""`nightcramp serve`: the wearer's morning summary and the clinician's night review.

FastAPI with server-side pages (Jinja2) and small scripts; traces come from InfluxDB through the
detector's store read API, min/max-downsampled on the server to at most two values per pixel.
Every page needs a session; every form and edit carries the session's CSRF token.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import math
import os
import secrets
import tempfile
import threading
import time
from pathlib import Path
from statistics import mean
from typing import Annotated

import numpy as np
from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from dashboard.export import events_csv, night_edf
from dashboard.review import ReviewError, make_review, parse_review_request, refresh_advice, reviewed_analysis
from dashboard.timeline import timeline_svg
from dashboard.users import Session, Users
from dashboard.web.security import LoginLimiter, security_headers
from detector.advice.diary import AGE_BANDS, EXERCISE, MEDICATIONS, SWELLING, Evening, Morning, save_checkin
from detector.advice.rules import DISCLAIMER, AdviceError
from detector.engine.events import KINDS
from detector.engine.summary import NightSummary
from detector.service.settings import Services
from detector.store.accounts import settings_for
from detector.store.influx import InfluxStore, StoreError

HERE = Path(__file__).resolve().parent
COOKIE = "nc_session"
LOGIN_CSRF = "nc_login"


class FastJSON(Response):
    """JSON of plain lists and numbers, dumped directly: FastAPI's default encoder walks every
    value of a large trace one by one."""

    media_type = "application/json"

    def render(self, content) -> bytes:
        return json.dumps(content, separators=(",", ":"), allow_nan=False).encode()


class NeedLogin(Exception):
    pass


def _text(v: object) -> str | None:
    """A form field's text; an uploaded file where text was expected counts as no answer."""
    return v if isinstance(v, str) else None


def current_session(request: Request) -> Session:
    """The logged-in session, or a redirect to the login page (401 for the API)."""
    s = request.app.state.users.session(request.cookies.get(COOKIE))
    if s is None:
        raise NeedLogin()
    return s


Sess = Annotated[Session, Depends(current_session)]


def create_app(services: Services, *, users: Users | None = None,
               store: InfluxStore | None = None) -> FastAPI:
    app = FastAPI(title="nightcramp", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.users = users or Users(services.dashboard.users_db)
    app.state.store = store or InfluxStore(settings_for(services.store, "dashboard"))
    app.state.secure = services.dashboard.secure_cookies
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals.update(disclaimer=DISCLAIMER, kinds=KINDS, timedelta=dt.timedelta)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    d = services.dashboard
    limiter = LoginLimiter(max_failures=d.login_max_failures, lockout_s=d.login_lockout_s)
    exports = threading.BoundedSemaphore(d.max_exports)

    @app.middleware("http")
    async def _headers(request: Request, call_next):
        response = await call_next(request)
        for k, v in security_headers(request.url.path).items():
            response.headers.setdefault(k, v)
        return response

    @app.exception_handler(NeedLogin)
    async def _to_login(request: Request, exc: NeedLogin):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "log in first"}, status_code=401)
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)

    def _error(request: Request, status: int, message: str, headers: dict | None = None):
        """JSON for the API, a page for a browser."""
        if request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", ""):
            return JSONResponse({"detail": message}, status_code=status, headers=headers)
        titles = {400: "That request was not understood", 403: "Not allowed", 404: "Not found",
                  405: "Not allowed", 422: "That request was not understood", 429: "Too many attempts",
                  503: "Temporarily unavailable"}
        s = request.app.state.users.session(request.cookies.get(COOKIE))
        r = templates.TemplateResponse(request, "error.html", {
            "s": s, "status": status, "title": titles.get(status, "Something went wrong"),
            "message": message}, status_code=status)
        r.headers.update(headers or {})
        return r

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return _error(request, exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError):
        what = "; ".join(f"{'.'.join(str(x) for x in e['loc'][1:]) or 'request'}: {e['msg']}"
                         for e in exc.errors()[:5])
        return _error(request, 422, what or "malformed request")

    @app.exception_handler(StoreError)
    async def _store_down(request: Request, exc: StoreError):
        return _error(request, 503, "The night database (InfluxDB) cannot be reached just now; "
                      "try again in a minute.", {"Retry-After": "30"})

    def finite_span(t0: float, t1: float, rec: dict) -> tuple[float, float]:
        if not (math.isfinite(t0) and math.isfinite(t1)):
            raise HTTPException(422, "t0 and t1 must be finite numbers of seconds")
        if t1 <= t0:
            raise HTTPException(422, "t1 must be after t0")
        dur = float(rec.get("duration_s") or 0.0)
        if t0 >= dur + 60:
            raise HTTPException(422, f"t0 {t0:g} s is after the end of the night ({dur:.0f} s)")
        return t0, min(t1, dur + 60)

    def csrf_ok(s: Session, token: str | None) -> None:
        if not token or not hmac.compare_digest(token, s.csrf):
            raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")

    def may_see(s: Session, wearer: str) -> None:
        if not app.state.users.may_see(s.user, wearer):
            raise HTTPException(403, f"{s.user.name} may not see wearer {wearer}")

    def clinician(s: Session) -> None:
        if s.user.role not in ("clinician", "admin"):
            raise HTTPException(403, "for clinicians only")

    def night_data(wearer: str, night: str) -> dict:
        analysis = reviewed_analysis(app.state.store, wearer, night)
        if analysis is None:
            raise HTTPException(404, f"no stored night {night} for {wearer}")
        return analysis

    def page(request: Request, name: str, s: Session | None, **ctx) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"s": s, **ctx})

    # ------------------------------------------------------------------ login
    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/", error: str = ""):
        token = secrets.token_urlsafe(24)
        r = page(request, "login.html", None, next=next if next.startswith("/") else "/", error=error,
                 csrf=token)
        r.set_cookie(LOGIN_CSRF, token, httponly=True, samesite="strict", secure=app.state.secure)
        return r

    @app.post("/login")
    def login(request: Request, name: Annotated[str, Form(max_length=200)],
              password: Annotated[str, Form(max_length=1000)],
              csrf: Annotated[str, Form(max_length=200)], next: Annotated[str, Form(max_length=2000)] = "/"):
        cookie = request.cookies.get(LOGIN_CSRF, "")
        if not cookie or not hmac.compare_digest(cookie, csrf):
            raise HTTPException(403, "missing or wrong CSRF token: reload the login page")
        address = request.client.host if request.client else "?"
        wait = limiter.retry_after(name.strip(), address)
        if wait > 0:
            raise HTTPException(429, f"Too many wrong passwords: try again in {math.ceil(wait)} s.",
                                headers={"Retry-After": str(math.ceil(wait))})
        s = app.state.users.login(name.strip(), password)
        if s is None:
            limiter.failed(name.strip(), address)
            return RedirectResponse("/login?error=1", status_code=303)
        limiter.succeeded(name.strip(), address)
        local = next.startswith("/") and not next.startswith("//")  # never off-site
        r = RedirectResponse(next if local else "/", status_code=303)
        r.set_cookie(COOKIE, s.token, httponly=True, samesite="lax", secure=app.state.secure,
                     max_age=12 * 3600)
        r.delete_cookie(LOGIN_CSRF)
        return r

    @app.post("/logout")
    def logout(s: Sess, csrf: Annotated[str, Form()]):
        csrf_ok(s, csrf)
        app.state.users.logout(s.token)
        r = RedirectResponse("/login", status_code=303)
        r.delete_cookie(COOKIE)
        return r

    # ------------------------------------------------------------------ wearer
    @app.get("/", response_class=HTMLResponse)
    def home(request: Request, s: Sess):
        if s.user.role == "wearer":
            nights = app.state.store.nights(s.user.wearer)
            if nights:
                return RedirectResponse(f"/w/{s.user.wearer}/{nights[-1]['night']}", status_code=303)
            return page(request, "empty.html", s, wearer=s.user.wearer)
        return RedirectResponse("/wearers", status_code=303)

    @app.get("/w/{wearer}", response_class=HTMLResponse)
    def nights_page(request: Request, wearer: str, s: Sess, sort: str = "night", desc: bool = True):
        may_see(s, wearer)
        rows = [_night_row(n) for n in app.state.store.nights(wearer)]
        keys = {"night", "cramps", "cramp_min", "awakenings", "sleep_efficiency", "plm_index", "signal"}
        sort = sort if sort in keys else "night"
        table = sorted(rows, key=lambda r: (r[sort] is not None, r[sort] or 0), reverse=desc)
        trend = {k: [r[k] for r in rows] for k in ("night", "cramps", "cramp_min", "awakenings",
                                                    "sleep_efficiency")}
        return page(request, "nights.html", s, wearer=wearer, rows=table, sort=sort, desc=desc,
                    trend=trend)

    @app.get("/w/{wearer}/{night}", response_class=HTMLResponse)
    def night_page(request: Request, wearer: str, night: str, s: Sess):
        may_see(s, wearer)
        a = night_data(wearer, night)
        st: InfluxStore = app.state.store
        hyp = st.hypnogram(wearer, night)
        past = [n for n in st.nights(wearer) if n["night"] < night][-14:]
        diary = st.diaries(wearer).get(night, {})
        summary = NightSummary.of(a["summary"])
        return page(request, "night.html", s, wearer=wearer, night=night, a=a, summary=summary,
                    timeline=timeline_svg(a, hyp), compare=_compare(summary, past),
                    advice=a["advice"], diary=diary, medications=MEDICATIONS,
                    exercise=EXERCISE, age_bands=AGE_BANDS, swelling=SWELLING,
                    start=dt.datetime.fromisoformat(a["recording"]["start"]))

    @app.post("/w/{wearer}/{night}/diary")
    async def diary_post(request: Request, wearer: str, night: str, s: Sess):
        may_see(s, wearer)
        form = await request.form()
        csrf_ok(s, _text(form.get("csrf")))
        part = form.get("part")
        if part not in ("evening", "morning"):
            raise HTTPException(400, "part must be evening or morning")
        model = Evening if part == "evening" else Morning
        answers: dict = {}
        for name, field in model.model_fields.items():
            if name == "medications":
                meds = form.getlist("medications")
                if meds or form.get("medications_answered"):
                    answers[name] = [m for m in meds if m]
                continue
            v = _text(form.get(name))
            if v in (None, ""):
                continue
            answers[name] = {"yes": True, "no": False}.get(v, v) if field.annotation in (bool | None,) else v
        try:
            save_checkin(app.state.store, wearer, night, part, answers)
        except ValueError as exc:
            raise HTTPException(400, f"diary: {exc}") from None
        _refresh_advice(app.state.store, wearer, night)
        return RedirectResponse(f"/w/{wearer}/{night}#diary", status_code=303)

    # ------------------------------------------------------------------ clinician
    @app.get("/wearers", response_class=HTMLResponse)
    def wearers_page(request: Request, s: Sess):
        clinician(s)
        out = []
        for w in app.state.users.visible_wearers(s.user):
            nights = app.state.store.nights(w)
            last = nights[-1] if nights else None
            out.append({"wearer": w, "nights": len(nights), "last": last["night"] if last else None,
                        "last_cramps": NightSummary.of(last["summary"]).cramps if last else None})
        return page(request, "wearers.html", s, wearers=out)

    @app.get("/w/{wearer}/{night}/view", response_class=HTMLResponse)
    def viewer(request: Request, wearer: str, night: str, s: Sess):
        may_see(s, wearer)
        clinician(s)
        a = night_data(wearer, night)
        return page(request, "viewer.html", s, wearer=wearer, night=night, a=a)

    @app.get("/api/w/{wearer}/{night}/meta")
    def meta(wearer: str, night: str, s: Sess):
        may_see(s, wearer)
        a = night_data(wearer, night)
        return {"recording": a["recording"], "events": a["events"], "summary": a["summary"],
                "hypnogram": app.state.store.hypnogram(wearer, night), "csrf": s.csrf}

    def recording(wearer: str, night: str) -> dict:
        """A night's recording description (channels, start), cached briefly: every trace
        request needs it, and it changes only when the night is analysed again."""
        key, now = (wearer, night), time.monotonic()
        hit = rec_cache.get(key)
        if hit and now - hit[0] < 30:
            return hit[1]
        rec = app.state.store.recording(wearer, night)
        if rec is None:
            raise HTTPException(404, f"no stored night {night} for {wearer}")
        if len(rec_cache) > 256:
            rec_cache.clear()
        rec_cache[key] = (now, rec)
        return rec

    rec_cache: dict[tuple[str, str], tuple[float, dict]] = {}

    def view_traces(wearer: str, rec: dict, names: list[str], t0: float, t1: float, px: int) -> dict:
        """Traces of the named channels (and ``activity L|R``) for [t0, t1) s in ``px`` buckets."""
        chans = {c["label"]: c["kind"] for c in rec["channels"]}
        unknown = [n for n in names if n not in chans and n not in ("activity L", "activity R")]
        if unknown:
            raise HTTPException(404, f"no channel {unknown[0]!r} in this night")
        want = {n: chans[n] for n in names if n in chans}
        for side in ("L", "R"):  # a leg's activity is the largest range of its accelerometer axes
            if f"activity {side}" in names:
                want |= {c: k for c, k in chans.items() if k == "acc" and c.startswith(f"ACC {side}-")}
        start_ns = int(dt.datetime.fromisoformat(rec["start"]).timestamp() * 1e9)
        span = (start_ns + int(t0 * 1e9), start_ns + int(t1 * 1e9))
        got = app.state.store.traces(wearer, want, *span, px)
        for side in ("L", "R"):
            if f"activity {side}" in names:
                best: dict[int, float] = {}
                for c, tr in got.items():
                    if c.startswith(f"ACC {side}-"):
                        for t, lo, hi in zip(tr["t_ns"], tr["min"], tr["max"], strict=True):
                            if lo is not None and hi is not None:
                                best[t] = max(best.get(t, 0.0), hi - lo)
                ts = sorted(best)
                got[f"activity {side}"] = {"t_ns": ts, "min": [0.0] * len(ts), "max": [best[t] for t in ts],
                                           "mav": None, "bucket_ns": max(1, (span[1] - span[0]) // px),
                                           "source": "envelope"}
        return {n: _plain_trace(n, got[n], start_ns, t0, t1, px) for n in names}

    @app.get("/api/w/{wearer}/{night}/trace")
    def trace(wearer: str, night: str, s: Sess, channel: str = Query(max_length=200), t0: float = Query(ge=0),
              t1: float = Query(gt=0), px: int = Query(800, ge=10, le=4000)):
        """Min/max of one channel over [t0, t1) s in ``px`` buckets (at most 2 values per pixel)."""
        may_see(s, wearer)
        rec = recording(wearer, night)
        t0, t1 = finite_span(t0, t1, rec)
        return FastJSON(view_traces(wearer, rec, [channel], t0, t1, px)[channel])

    @app.get("/api/w/{wearer}/{night}/traces")
    def traces(wearer: str, night: str, s: Sess, channels: str = Query(max_length=4000),
               t0: float = Query(ge=0), t1: float = Query(gt=0), px: int = Query(800, ge=10, le=4000)):
        """Every listed channel (comma-separated) for one view: one round trip per zoom step,
        the channels' queries run side by side in InfluxDB."""
        may_see(s, wearer)
        rec = recording(wearer, night)
        t0, t1 = finite_span(t0, t1, rec)
        names = [c for c in channels.split(",") if c]
        if not names or len(names) > 32:
            raise HTTPException(400, "list 1 to 32 channels")
        return FastJSON({"t0": t0, "t1": t1, "px": px, "traces": view_traces(wearer, rec, names, t0, t1, px)})

    @app.post("/api/w/{wearer}/{night}/review")
    async def review(request: Request, wearer: str, night: str, s: Sess):
        may_see(s, wearer)
        clinician(s)
        csrf_ok(s, request.headers.get("x-csrf-token"))
        try:
            body = await request.json()
        except ValueError:
            raise HTTPException(400, "the review must be JSON") from None
        try:
            req = parse_review_request(body)
        except ReviewError as exc:
            raise HTTPException(422, str(exc)) from None
        a = app.state.store.analysis(wearer, night)
        if a is None:
            raise HTTPException(404, f"no stored night {night} for {wearer}")
        try:
            r = make_review(req.action, s.user.name, event=req.event, kind=req.kind, start_s=req.start_s,
                            end_s=req.end_s, side=req.side, note=req.note,
                            duration_s=a["recording"]["duration_s"])
        except ReviewError as exc:
            raise HTTPException(422, str(exc)) from None
        st: InfluxStore = app.state.store
        st.write_review(wearer, night, r)
        _refresh_advice(st, wearer, night)
        d = night_data(wearer, night)
        return {"review": r, "events": d["events"], "summary": d["summary"]}

    # ------------------------------------------------------------------ exports
    @app.get("/w/{wearer}/{night}/export.csv")
    def export_csv(wearer: str, night: str, s: Sess):
        may_see(s, wearer)
        a = night_data(wearer, night)
        return PlainTextResponse(events_csv(a["events"]), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="nightcramp-{wearer}-{night}.csv"'})

    @app.get("/w/{wearer}/{night}/export.edf")
    def export_edf(wearer: str, night: str, s: Sess):
        may_see(s, wearer)
        clinician(s)  # the raw signals of a whole night: for clinicians (docs/dashboard.md)
        a = night_data(wearer, night)
        if not exports.acquire(blocking=False):
            raise HTTPException(503, "other exports are being built: try again in a minute",
                                headers={"Retry-After": "30"})
        fd, name = tempfile.mkstemp(suffix=".edf")
        os.close(fd)
        tmp = Path(name)
        try:
            night_edf(app.state.store, wearer, a, a["events"], tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            exports.release()
        return FileResponse(tmp, media_type="application/octet-stream",
                            filename=f"nightcramp-{wearer}-{night}.edf",
                            background=BackgroundTask(tmp.unlink, missing_ok=True))

    @app.get("/w/{wearer}/{night}/report", response_class=HTMLResponse)
    def report(request: Request, wearer: str, night: str, s: Sess):
        may_see(s, wearer)
        a = night_data(wearer, night)
        st: InfluxStore = app.state.store
        return page(request, "report.html", s, wearer=wearer, night=night, a=a,
                    summary=NightSummary.of(a["summary"]),
                    timeline=timeline_svg(a, st.hypnogram(wearer, night)), advice=a["advice"],
                    start=dt.datetime.fromisoformat(a["recording"]["start"]))

    @app.get("/w/{wearer}/{night}/report.pdf")
    def report_pdf(wearer: str, night: str, s: Sess):
        from dashboard.pdf import night_pdf

        may_see(s, wearer)
        a = night_data(wearer, night)
        if not exports.acquire(blocking=False):
            raise HTTPException(503, "other exports are being built: try again in a minute",
                                headers={"Retry-After": "30"})
        try:
            pdf = night_pdf(wearer, night, a, a["advice"])
        finally:
            exports.release()
        return Response(pdf, media_type="application/pdf", headers={
            "Content-Disposition": f'attachment; filename="nightcramp-{wearer}-{night}.pdf"'})

    @app.get("/healthz")
    def healthz():
        return {"ok": True, "influxdb": app.state.store.ping()}

    return app


def _plain_trace(channel: str, tr: dict, start_ns: int, t0: float, t1: float, px: int) -> dict:
    """A trace as JSON-ready lists: times in s from the night's start to the ms, values to 1e-4
    (µV or g; what a screen can show) — a view of 11 channels stays a few hundred kB."""
    t = np.round((np.asarray(tr["t_ns"], np.int64) - start_ns) / 1e9, 3)
    out = {"channel": channel, "t0": t0, "t1": t1, "px": px, "source": tr["source"],
           "bucket_s": tr["bucket_ns"] / 1e9, "t": t.tolist()}
    for k in ("min", "max", "mav"):
        if tr[k] is None:
            out[k] = None
            continue
        v = np.round(np.asarray(tr[k], np.float64), 4)  # None (empty bucket) becomes NaN
        vals = v.tolist()
        out[k] = vals if np.isfinite(v).all() else [x if np.isfinite(x) else None for x in vals]
    return out


def _refresh_advice(st: InfluxStore, wearer: str, night: str) -> None:
    """Advice after a review or check-in; a broken rule file leaves the stored advice as it was."""
    try:
        refresh_advice(st, wearer, night)
    except (AdviceError, LookupError):
        pass


def _night_row(n: dict) -> dict:
    s = NightSummary.of(n["summary"])
    q = [v for v in s.signal_quality.values() if v.get("kind") == "emg"]
    worst = max((float(v.get("artifact_pct") or 0) + float(v.get("lost_pct") or 0) for v in q), default=0.0)
    se = s.sleep_efficiency
    return {"night": n["night"], "cramps": s.cramps,
            "cramp_min": round(s.cramp_total_s / 60, 1), "awakenings": s.awakenings,
            "sleep_efficiency": round(100 * se, 1) if se is not None else None,
            "plm_index": s.plms_index_per_h, "signal": round(100 - worst, 1)}


def _compare(summary: NightSummary, past: list[dict]) -> dict | None:
    """This night against the mean of up to 14 nights before it, in plain words."""
    if not past:
        return None
    out: dict[str, object] = {"nights": len(past)}
    for key, label in (("cramps", "cramps"), ("awakenings", "awakenings")):
        usual = mean(float(getattr(NightSummary.of(n["summary"]), key)) for n in past)
        now = float(getattr(summary, key))
        word = "about as many as" if abs(now - usual) < 0.5 else "more than" if now > usual else "fewer than"
        out[key] = {"now": now, "usual": round(usual, 1), "text": f"{int(now)} {label}: {word} your usual "
                    f"{usual:.1f} a night"}
    return out
