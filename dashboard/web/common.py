"""What every page and API route of the dashboard shares: the session, the access checks, the
page renderer and the night a route shows (reviewed, through the one ``summarize``)."""

from __future__ import annotations

import datetime as dt
import hmac
import json
import math
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from dashboard.review import refresh_advice, reviewed_analysis
from dashboard.users import Session
from detector.advice.rules import DISCLAIMER, AdviceError
from detector.advice.wording import because
from detector.engine.events import KINDS
from detector.store.influx import InfluxStore

HERE = Path(__file__).resolve().parent
COOKIE = "nc_session"
LOGIN_CSRF = "nc_login"

def duration_text(seconds: float) -> str:
    """A duration as people say it: "45 s", "2.5 min", "1 h 05 min"."""
    s = float(seconds)
    if s < 59.5:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    h, m = divmod(round(s / 60), 60)
    return f"{h} h {m:02d} min"


templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals.update(disclaimer=DISCLAIMER, kinds=KINDS, timedelta=dt.timedelta, because=because,
                             duration=duration_text)


class FastJSON(Response):
    """JSON of plain lists and numbers, dumped directly: FastAPI's default encoder walks every
    value of a large trace one by one."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":"), allow_nan=False).encode()


class NeedLogin(Exception):
    pass


def text_field(v: object) -> str | None:
    """A form field's text; an uploaded file where text was expected counts as no answer."""
    return v if isinstance(v, str) else None


def current_session(request: Request) -> Session:
    """The logged-in session, or a redirect to the login page (401 for the API)."""
    s = request.app.state.users.session(request.cookies.get(COOKIE))
    if s is None:
        raise NeedLogin()
    return s


Sess = Annotated[Session, Depends(current_session)]


def store(request: Request) -> InfluxStore:
    st: InfluxStore = request.app.state.store
    return st


def csrf_ok(s: Session, token: str | None) -> None:
    if not token or not hmac.compare_digest(token, s.csrf):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")


def may_see(request: Request, s: Session, wearer: str) -> None:
    if not request.app.state.users.may_see(s.user, wearer):
        raise HTTPException(403, f"{s.user.name} may not see wearer {wearer}")


def clinician(s: Session) -> None:
    if s.user.role not in ("clinician", "admin"):
        raise HTTPException(403, "for clinicians only")


def night_data(request: Request, wearer: str, night: str) -> dict:
    """The stored night with the clinicians' reviews applied (404 when there is none)."""
    analysis = reviewed_analysis(store(request), wearer, night)
    if analysis is None:
        raise HTTPException(404, f"no stored night {night} for {wearer}")
    return analysis


def finite_span(t0: float, t1: float, rec: dict) -> tuple[float, float]:
    """[t0, t1) s checked against the night: finite, ordered, starting before its end."""
    if not (math.isfinite(t0) and math.isfinite(t1)):
        raise HTTPException(422, "t0 and t1 must be finite numbers of seconds")
    if t1 <= t0:
        raise HTTPException(422, "t1 must be after t0")
    dur = float(rec.get("duration_s") or 0.0)
    if t0 >= dur + 60:
        raise HTTPException(422, f"t0 {t0:g} s is after the end of the night ({dur:.0f} s)")
    return t0, min(t1, dur + 60)


def local_start(a: dict, s: Session) -> dt.datetime:
    """The night's recording start in the user's time zone (times on the pages add to it)."""
    from zoneinfo import ZoneInfo

    return dt.datetime.fromisoformat(a["recording"]["start"]).astimezone(ZoneInfo(s.user.tz))


def page(request: Request, name: str, s: Session | None, **ctx: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"s": s, **ctx})


def refresh_night_advice(st: InfluxStore, wearer: str, night: str) -> None:
    """Advice after a review or check-in; a broken rule file leaves the stored advice as it was."""
    try:
        refresh_advice(st, wearer, night)
    except (AdviceError, LookupError):
        pass
