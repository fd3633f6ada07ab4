"""The wearer's pages: the nights table with trends, one night's morning summary, the diary."""

from __future__ import annotations

import datetime as dt
from statistics import mean
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from dashboard.review import reviewed_nights
from dashboard.timeline import timeline_svg
from dashboard.web.common import (
    Sess,
    csrf_ok,
    local_start,
    may_see,
    night_data,
    page,
    refresh_night_advice,
    store,
    text_field,
)
from detector.advice.diary import AGE_BANDS, EXERCISE, MEDICATIONS, SWELLING, Evening, Morning, save_checkin
from detector.engine.summary import NightSummary

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def home(request: Request, s: Sess):
    if s.user.role == "wearer" and s.user.wearer is not None:
        nights = store(request).nights(s.user.wearer)
        if nights:
            return RedirectResponse(f"/w/{s.user.wearer}/{nights[-1]['night']}", status_code=303)
        return page(request, "empty.html", s, wearer=s.user.wearer)
    return RedirectResponse("/wearers", status_code=303)


@router.get("/w/{wearer}", response_class=HTMLResponse)
def nights_page(request: Request, wearer: str, s: Sess, sort: str = "night", desc: bool = True):
    may_see(request, s, wearer)
    stored = reviewed_nights(store(request), wearer)
    rows = [night_row(n) for n in stored]
    keys = {"night", "cramps", "cramp_min", "awakenings", "sleep_efficiency", "plm_index", "signal"}
    sort = sort if sort in keys else "night"
    table = sorted(rows, key=lambda r: (r[sort] is not None, r[sort] or 0), reverse=desc)
    trend = {k: [r[k] for r in rows] for k in ("night", "cramps", "cramp_min", "awakenings",
                                                "sleep_efficiency")}
    return page(request, "nights.html", s, wearer=wearer, rows=table, sort=sort, desc=desc,
                trend=trend, sensors=sensor_rows(store(request).sensors(wearer), s.user.tz),
                quality=quality_rows(stored[-1]) if stored else [],
                quality_night=stored[-1]["night"] if stored else None)


LOW_BATTERY_PCT = 20  # below this a sensor may not last a night (docs/dashboard.md)


def sensor_rows(sensors: list[dict], tz: str) -> list[dict]:
    """What each sensor last said about itself, for the nights page: battery (and whether it is
    low), online or not, and when it was heard, in the viewer's local time."""
    zone = ZoneInfo(tz)
    out = []
    for x in sensors:
        at = dt.datetime.fromtimestamp(x["at_ns"] / 1e9, dt.UTC).astimezone(zone)
        b = x["battery_pct"]
        out.append({"sensor": x["sensor"], "state": x["state"] or "unknown", "link": x["link"] or "",
                    "battery": f"{b}%" if b is not None else "not reported",
                    "low": b is not None and b < LOW_BATTERY_PCT,
                    "heard": at.strftime("%Y-%m-%d %H:%M ") + (at.tzname() or "")})
    return out


def quality_rows(night: dict) -> list[dict]:
    """Per channel of a night: resting level, shares with artefacts or no signal, mains found."""
    out = []
    for label, v in sorted(NightSummary.of(night["summary"]).signal_quality.items()):
        if v.get("kind") == "emg":
            base = v.get("baseline_uV")
            mains = v.get("mains_hz")
            out.append({"channel": label, "resting": f"{base:.1f} µV" if base is not None else "–",
                        "artifact": f"{float(v.get('artifact_pct') or 0):.1f}%",
                        "lost": f"{float(v.get('lost_pct') or 0):.1f}%",
                        "mains": f"{mains:g} Hz" if mains else "none found"})
        else:
            out.append({"channel": f"Accelerometer, {label.removeprefix('ACC ')} leg", "resting": "–",
                        "artifact": "–", "lost": f"{float(v.get('lost_pct') or 0):.1f}%", "mains": "–"})
    return out


@router.get("/w/{wearer}/{night}", response_class=HTMLResponse)
def night_page(request: Request, wearer: str, night: str, s: Sess, saved: str = ""):
    may_see(request, s, wearer)
    a = night_data(request, wearer, night)
    st = store(request)
    hyp = st.hypnogram(wearer, night)
    past = [n for n in reviewed_nights(st, wearer) if n["night"] < night][-14:]
    diary = st.diaries(wearer).get(night, {})
    summary = NightSummary.of(a["summary"])
    return page(request, "night.html", s, wearer=wearer, night=night, a=a, summary=summary,
                timeline=timeline_svg(a, hyp, tz=s.user.tz), compare=compare_to_usual(summary, past),
                advice=a["advice"], diary=diary, medications=MEDICATIONS,
                exercise=EXERCISE, age_bands=AGE_BANDS, swelling=SWELLING,
                start=local_start(a, s), saved=saved if saved in ("evening", "morning") else "")


@router.post("/w/{wearer}/{night}/diary")
async def diary_post(request: Request, wearer: str, night: str, s: Sess):
    may_see(request, s, wearer)
    form = await request.form()
    csrf_ok(s, text_field(form.get("csrf")))
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
        v = text_field(form.get(name))
        if v in (None, ""):
            continue
        answers[name] = {"yes": True, "no": False}.get(v, v) if field.annotation in (bool | None,) else v
    try:
        save_checkin(store(request), wearer, night, part, answers)
    except ValueError as exc:
        raise HTTPException(400, f"diary: {exc}") from None
    refresh_night_advice(store(request), wearer, night)
    return RedirectResponse(f"/w/{wearer}/{night}?saved={part}#diary", status_code=303)


def night_row(n: dict) -> dict:
    """One row of the nights table (and a point of each trend) from a stored night."""
    s = NightSummary.of(n["summary"])
    q = [v for v in s.signal_quality.values() if v.get("kind") == "emg"]
    worst = max((float(v.get("artifact_pct") or 0) + float(v.get("lost_pct") or 0) for v in q), default=0.0)
    se = s.sleep_efficiency
    return {"night": n["night"], "cramps": s.cramps,
            "cramp_min": round(s.cramp_total_s / 60, 1), "awakenings": s.awakenings,
            "sleep_efficiency": round(100 * se, 1) if se is not None else None,
            "plm_index": s.plms_index_per_h, "signal": round(100 - worst, 1)}


def compare_to_usual(summary: NightSummary, past: list[dict]) -> dict | None:
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
