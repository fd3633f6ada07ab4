"""The clinician's review: the wearer list, the night viewer, its traces and review edits."""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from dashboard import display_filter
from dashboard.review import ReviewError, make_review, parse_review_request
from dashboard.web.common import (
    FastJSON,
    Sess,
    clinician,
    csrf_ok,
    finite_span,
    may_see,
    night_data,
    page,
    refresh_night_advice,
    store,
)
from detector.advice.rules import AdviceError, default_rules
from detector.engine.summary import NightSummary

router = APIRouter()
Filter = Literal["off", "hp10", "bp20-450"]  # dashboard.display_filter.FILTERS
Notch = Literal["auto", "off"]


ATTENTION_NIGHTS = 14  # nights back that the wearer list looks for red flags and unreviewed nights


@router.get("/wearers", response_class=HTMLResponse)
def wearers_page(request: Request, s: Sess):
    """The clinician's wearers, those who need attention first: red-flag check-ins or advice in
    the last ``ATTENTION_NIGHTS`` nights, and nights with cramps or red flags not yet reviewed."""
    clinician(s)
    try:
        flags = {lr.rule.id: lr.rule.title for lr in default_rules() if lr.rule.red_flag}
    except AdviceError:
        flags = {}
    st = store(request)
    out = []
    for w in request.app.state.users.visible_wearers(s.user):
        nights = st.nights(w)
        last = nights[-1] if nights else None
        reviewed = st.reviewed_nights(w) if nights else set()
        if last is not None and last["night"] in reviewed:
            last = {**last, "summary": night_data(request, w, last["night"])["summary"]}
        links = st.advice_links(w) if nights else {}
        recent = nights[-ATTENTION_NIGHTS:]
        red = [(n["night"], flags[r]) for n in recent for r in links.get(n["night"], []) if r in flags]
        red_nights = {night for night, _ in red}
        waiting = [n["night"] for n in recent if n["night"] not in reviewed
                   and (n["night"] in red_nights or NightSummary.of(n["summary"]).cramps)]
        out.append({"wearer": w, "nights": len(nights), "last": last["night"] if last else None,
                    "last_cramps": NightSummary.of(last["summary"]).cramps if last else None,
                    "red_flags": red[::-1], "waiting": waiting[::-1]})
    out.sort(key=lambda r: (not r["red_flags"], not r["waiting"], r["wearer"]))
    return page(request, "wearers.html", s, wearers=out, attention_nights=ATTENTION_NIGHTS)


@router.get("/w/{wearer}/{night}/view", response_class=HTMLResponse)
def viewer(request: Request, wearer: str, night: str, s: Sess):
    may_see(request, s, wearer)
    clinician(s)
    a = night_data(request, wearer, night)
    saved = request.app.state.users.pref(s.user.name, "montage")
    try:
        montage = Montage.model_validate(saved or {}).model_dump()
    except ValueError:  # kept by an older version: start again from the defaults
        montage = Montage().model_dump()
    return page(request, "viewer.html", s, wearer=wearer, night=night, a=a, montage=montage,
                filters=display_filter.FILTERS, second=second_scorer(request, wearer, night, a),
                scoring_error=request.query_params.get("scoring_error", "")[:300])


def second_scorer(request: Request, wearer: str, night: str, a: dict) -> dict | None:
    """The night's imported scoring and how far nightcramp (with the reviews) agrees with it;
    None when none was imported."""
    from detector.agreement import agreement

    st = store(request)
    info = st.scoring_info(wearer, night)
    sc = st.scoring(wearer, night, info) if info else None
    if info is None or sc is None:
        return None
    try:
        ag = agreement(a | {"hypnogram": st.hypnogram(wearer, night)}, sc).as_dict()
        error = ""
    except ValueError as exc:  # stored before the night was re-analysed with another start
        ag, error = None, str(exc)
    kinds: dict[str, int] = {}
    for e in sc.events:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    return {"info": info, "agreement": ag, "error": error, "kinds": sorted(kinds.items())}


MAX_SCORING_BYTES = 200 * 2**20  # an EDF+ with its signals; a Noxturnal CSV is kilobytes


@router.post("/w/{wearer}/{night}/scoring")
async def import_scoring(request: Request, wearer: str, night: str, s: Sess):
    """A clinician imports a PSG scoring (Noxturnal CSV or EDF+ annotations) as the night's
    second scorer; back to the viewer, which shows the agreement (or what was wrong)."""
    import tempfile
    from pathlib import Path
    from urllib.parse import quote

    from fastapi.responses import RedirectResponse

    from ingest.recordings.recording import RecordingError
    from ingest.recordings.scoring import read_scoring

    may_see(request, s, wearer)
    clinician(s)
    night_data(request, wearer, night)  # 404 for a night that is not stored
    form = await request.form(max_files=1, max_fields=4)
    try:
        token = form.get("csrf")
        csrf_ok(s, token if isinstance(token, str) else None)
        up = form.get("file")
        if up is None or isinstance(up, str) or not up.filename:
            raise HTTPException(400, "choose a scoring file (Noxturnal CSV or EDF+) to import")
        name = Path(up.filename).name[:200]
        with tempfile.TemporaryDirectory(prefix="nightcramp-scoring-") as tmp:
            path = Path(tmp) / (name or "scoring.csv")
            size = 0
            with path.open("wb") as out:
                while chunk := await up.read(2**20):
                    size += len(chunk)
                    if size > MAX_SCORING_BYTES:
                        raise HTTPException(413, f"{name}: larger than {MAX_SCORING_BYTES // 2**20} MB")
                    out.write(chunk)
            try:
                sc = read_scoring(path)
            except (RecordingError, ValueError, OSError, UnicodeError) as exc:
                msg = str(exc) or f"{name}: not a scoring nightcramp reads"
                return RedirectResponse(f"/w/{wearer}/{night}/view?scoring_error={quote(msg[:300])}#scoring",
                                        status_code=303)
    finally:
        await form.close()
    store(request).write_scoring(wearer, night, sc, by=s.user.name)
    return RedirectResponse(f"/w/{wearer}/{night}/view#scoring", status_code=303)


Label = Annotated[str, StringConstraints(max_length=200)]


class Montage(BaseModel):
    """The viewer's channel montage a clinician keeps: order, hidden channels, gain per channel
    (µV or g per division; absent = automatic scale), display filter, window length (s)."""

    model_config = ConfigDict(extra="forbid")
    order: list[Label] = Field(default_factory=list, max_length=64)
    hidden: list[Label] = Field(default_factory=list, max_length=64)
    gain: dict[Label, Annotated[float, Field(gt=0, le=1e5)]] = Field(default_factory=dict, max_length=64)
    filter: Filter = "hp10"  # display_filter.DEFAULT
    envelope: bool = False
    window_s: float | None = Field(None, gt=0, le=7 * 86400)


@router.put("/api/prefs/montage")
async def save_montage(request: Request, s: Sess):
    """Remember the clinician's montage (their own, whichever night they look at)."""
    clinician(s)
    csrf_ok(s, request.headers.get("x-csrf-token"))
    try:
        m = Montage.model_validate(await request.json())
    except ValueError as exc:
        raise HTTPException(422, f"montage: {exc}") from None
    request.app.state.users.set_pref(s.user.name, "montage", m.model_dump())
    return m.model_dump()


@router.get("/api/w/{wearer}/{night}/meta")
def meta(request: Request, wearer: str, night: str, s: Sess):
    may_see(request, s, wearer)
    a = night_data(request, wearer, night)
    return {"recording": a["recording"], "events": a["events"], "summary": a["summary"],
            "hypnogram": store(request).hypnogram(wearer, night), "csrf": s.csrf}


def recording(request: Request, wearer: str, night: str) -> dict:
    """A night's recording description (channels, start), cached briefly: every trace request
    needs it, and it changes only when the night is analysed again."""
    cache: dict[tuple[str, str], tuple[float, dict]] = request.app.state.recording_cache
    key, now = (wearer, night), time.monotonic()
    hit = cache.get(key)
    if hit and now - hit[0] < 30:
        return hit[1]
    st = store(request)
    rec = st.recording(wearer, night)
    if rec is None:
        raise HTTPException(404, f"no stored night {night} for {wearer}")
    stored = st.nights(wearer, night)
    quality = (stored[0]["summary"].get("signal_quality") or {}) if stored else {}
    mains = {c: q.get("mains_hz") or 0.0 for c, q in quality.items() if q.get("kind") == "emg"}
    rec = {**rec, "_mains": mains}  # the notch each EMG channel is drawn with
    if len(cache) > 256:
        cache.clear()
    cache[key] = (now, rec)
    return rec


def view_traces(request: Request, wearer: str, rec: dict, names: list[str], t0: float, t1: float,
                px: int, *, filt: str = "off", notch: bool = True) -> dict:
    """Traces of the named channels (and ``activity L|R``) for [t0, t1) s in ``px`` buckets, EMG
    through the display filter ``filt`` (and the notch at each channel's detected mains)."""
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
    mains = rec.get("_mains", {}) if notch else {}
    filters = display_filter.for_channels({n: k for n, k in want.items() if n in names}, filt, mains)
    got = store(request).traces(wearer, want, *span, px, filters=filters,
                                pad_ns=int(display_filter.PAD_S * 1e9))
    for n in filters:  # zoomed out: the stored peak without wander and hum, drawn both ways
        tr = got.get(n)
        if tr is not None and tr["source"] == "envelope" and tr.get("pk") is not None:
            pk = [None if v is None else float(v) for v in tr["pk"]]
            got[n] = {**tr, "min": [None if v is None else -v for v in pk], "max": pk}
    filtered = {n for n in filters
                if n in got and (got[n]["source"] == "raw" or got[n].get("pk") is not None)}
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
    out = {n: plain_trace(n, got[n], start_ns, t0, t1, px) for n in names}
    for n in out:
        out[n]["filter"] = filt if n in filtered else "off"
        out[n]["notch_hz"] = float(mains.get(n) or 0.0) if n in filtered and filt != "off" else 0.0
    return out


@router.get("/api/w/{wearer}/{night}/trace")
def trace(request: Request, wearer: str, night: str, s: Sess, channel: str = Query(max_length=200),
          t0: float = Query(ge=0), t1: float = Query(gt=0), px: int = Query(800, ge=10, le=4000),
          filter: Filter = "off", notch: Notch = "auto"):
    """Min/max of one channel over [t0, t1) s in ``px`` buckets (at most 2 values per pixel)."""
    may_see(request, s, wearer)
    rec = recording(request, wearer, night)
    t0, t1 = finite_span(t0, t1, rec)
    return FastJSON(view_traces(request, wearer, rec, [channel], t0, t1, px, filt=filter,
                                notch=notch == "auto")[channel])


@router.get("/api/w/{wearer}/{night}/traces")
def traces(request: Request, wearer: str, night: str, s: Sess, channels: str = Query(max_length=4000),
           t0: float = Query(ge=0), t1: float = Query(gt=0), px: int = Query(800, ge=10, le=4000),
           filter: Filter = "off", notch: Notch = "auto"):
    """Every listed channel (comma-separated) for one view: one round trip per zoom step,
    the channels' queries run side by side in InfluxDB. EMG goes through the display
    ``filter`` (off, hp10, bp20-450) and, with ``notch=auto``, the notch at its detected mains."""
    may_see(request, s, wearer)
    rec = recording(request, wearer, night)
    t0, t1 = finite_span(t0, t1, rec)
    names = [c for c in channels.split(",") if c]
    if not names or len(names) > 32:
        raise HTTPException(400, "list 1 to 32 channels")
    return FastJSON({"t0": t0, "t1": t1, "px": px,
                     "traces": view_traces(request, wearer, rec, names, t0, t1, px, filt=filter,
                                           notch=notch == "auto")})


@router.post("/api/w/{wearer}/{night}/review")
async def review(request: Request, wearer: str, night: str, s: Sess):
    may_see(request, s, wearer)
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
    st = store(request)
    a = st.analysis(wearer, night)
    if a is None:
        raise HTTPException(404, f"no stored night {night} for {wearer}")
    try:
        r = make_review(req.action, s.user.name, event=req.event, kind=req.kind, start_s=req.start_s,
                        end_s=req.end_s, side=req.side, note=req.note,
                        duration_s=a["recording"]["duration_s"])
    except ReviewError as exc:
        raise HTTPException(422, str(exc)) from None
    st.write_review(wearer, night, r)
    refresh_night_advice(st, wearer, night)
    d = night_data(request, wearer, night)
    return {"review": r, "events": d["events"], "summary": d["summary"]}


def plain_trace(channel: str, tr: dict, start_ns: int, t0: float, t1: float, px: int) -> dict:
    """A trace as JSON-ready lists: times in s from the night's start to the ms, values to 1e-4
    (µV or g; what a screen can show) — a view of 11 channels stays a few hundred kB."""
    t = np.round((np.asarray(tr["t_ns"], np.int64) - start_ns) / 1e9, 3)
    out = {"channel": channel, "t0": t0, "t1": t1, "px": px, "source": tr["source"],
           "bucket_s": tr["bucket_ns"] / 1e9, "t": t.tolist()}
    for k in ("min", "max", "mav"):
        if tr.get(k) is None:
            out[k] = None
            continue
        v = np.round(np.asarray(tr[k], np.float64), 4)  # None (empty bucket) becomes NaN
        vals = v.tolist()
        out[k] = vals if np.isfinite(v).all() else [x if np.isfinite(x) else None for x in vals]
    return out
