"""Clinician review of a night's events: accept, reject, relabel, add, undo — with an audit trail.

Reviews are stored as a list of actions (who, when, what) and applied in order on top of the
detected events; nothing detected is ever overwritten. The night's event counts, and so its
advice, are recomputed from the reviewed events. Times are seconds from the recording start.
"""

from __future__ import annotations

import datetime as dt
import math
import secrets
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from detector.advice.rules import LoadedRule, default_rules, evaluate, stored_night_features
from detector.engine.events import KINDS
from detector.engine.summary import NightSummary

ACTIONS = ("accept", "reject", "relabel", "add", "undo")


class ReviewError(ValueError):
    """A review action that cannot be applied; the message says why."""


class ReviewRequest(BaseModel):
    """What the viewer sends for one review action (``POST …/review``); times in seconds from
    the recording start. Numbers may come as integers (``parseFloat("0.0")`` is 0): they are
    stored as floats."""

    model_config = ConfigDict(extra="forbid", strict=False)
    action: Literal["accept", "reject", "relabel", "add", "undo"]
    event: str | None = Field(None, max_length=200, description="event key (not for add)")
    kind: Literal[KINDS] | None = None  # type: ignore[valid-type]
    start_s: float | None = Field(None, ge=0, le=7 * 86400)
    end_s: float | None = Field(None, ge=0, le=7 * 86400)
    side: Literal["left", "right"] | None = None
    note: str | None = Field(None, max_length=2000, description="the clinician's comment")

    @field_validator("start_s", "end_s", mode="before")
    @classmethod
    def _number(cls, v):
        # JSON true would otherwise be read as 1.0, and "12" as 12.0.
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise ValueError("must be a number of seconds")
        if v is not None and not math.isfinite(v):
            raise ValueError("must be finite")
        return v


def parse_review_request(body) -> ReviewRequest:
    """A validated review request, or ReviewError naming each field that is wrong."""
    if not isinstance(body, dict):
        raise ReviewError(f"the review must be a JSON object, not {type(body).__name__}")
    try:
        return ReviewRequest.model_validate(body)
    except ValidationError as exc:
        raise ReviewError("; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}"
                                    for e in exc.errors())) from None


def event_key(e: dict) -> str:
    """Stable identity of a detected event (kind, start, side, channel)."""
    return f"{e['kind']}:{float(e['start_s']):.3f}:{e.get('side') or 'none'}:{e.get('channel') or ''}"


def make_review(action: str, by: str, *, event: str | None = None, kind: str | None = None,
                start_s: float | None = None, end_s: float | None = None, side: str | None = None,
                note: str | None = None, duration_s: float | None = None) -> dict:
    """A validated review action, stamped with who and when (UTC)."""
    if action not in ACTIONS:
        raise ReviewError(f"action {action!r}: choose {', '.join(ACTIONS)}")
    if kind is not None and kind not in KINDS:
        raise ReviewError(f"kind {kind!r}: choose {', '.join(KINDS)}")
    if side not in (None, "left", "right"):
        raise ReviewError(f"side {side!r}: left, right or none")
    if action == "add":
        if kind is None or start_s is None or end_s is None:
            raise ReviewError("add needs kind, start_s and end_s")
        if not 0 <= start_s < end_s or (duration_s is not None and end_s > duration_s):
            raise ReviewError(f"add: {start_s}–{end_s} s is not a time span inside the night")
        event = f"added:{secrets.token_hex(6)}"
    elif not event:
        raise ReviewError(f"{action} needs the event it applies to")
    if action == "relabel" and kind is None:
        raise ReviewError("relabel needs the new kind")
    at = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
    return {"event": event, "action": action, "kind": kind, "start_s": start_s, "end_s": end_s,
            "side": side, "note": note, "by": by, "at": at}


def apply_reviews(events: list[dict], reviews: list[dict]) -> list[dict]:
    """Detected events with reviews applied, in time order. Each gets ``key`` and ``status``
    (detected, accepted, rejected, relabelled, added), ``detected_kind`` and, when reviewed,
    ``reviewed_by``/``reviewed_at``/``review_note``. Rejected events stay in the list, marked.
    An ``undo`` cancels the latest earlier action on its event that is not already undone (an
    undone ``add`` removes the added event); both stay in the audit trail."""
    out: dict[str, dict] = {}
    for e in events:
        d = dict(e)
        d.update(key=event_key(e), status="detected", detected_kind=e["kind"])
        out[d["key"]] = d
    for r in _not_undone(reviews):
        k = r["event"]
        if r["action"] == "add":
            t0, t1 = float(r["start_s"]), float(r["end_s"])
            out[k] = {"kind": r["kind"], "start_s": t0, "end_s": t1, "duration_s": t1 - t0,
                      "side": r.get("side"), "channel": None, "confidence": 1.0, "key": k,
                      "status": "added", "detected_kind": None}
        elif k not in out:
            continue  # its event is no longer detected (night re-analysed): in the audit trail only
        elif r["action"] == "reject":
            out[k]["status"] = "rejected"
        elif r["action"] == "accept":  # also undoes a rejection, keeping any relabel
            e = out[k]
            e["status"] = ("added" if e["detected_kind"] is None
                           else "accepted" if e["kind"] == e["detected_kind"] else "relabelled")
        elif r["action"] == "relabel":
            out[k]["kind"] = r["kind"]
            out[k]["status"] = "relabelled"
        out[k]["reviewed_by"], out[k]["reviewed_at"] = r["by"], r["at"]
        out[k]["review_note"] = r.get("note") or None
    return sorted(out.values(), key=lambda e: (e["start_s"], e["kind"]))


def _not_undone(reviews: list[dict]) -> list[dict]:
    """The review actions in time order with each ``undo`` and the action it cancels taken out."""
    kept: list[dict] = []
    for r in sorted(reviews, key=lambda r: r["at"]):
        if r["action"] != "undo":
            kept.append(r)
            continue
        for i in range(len(kept) - 1, -1, -1):
            if kept[i]["event"] == r["event"]:
                del kept[i]
                break
    return kept


def reviewed_summary(summary: NightSummary | dict, events: list[dict]) -> NightSummary:
    """The night's summary with every event-derived count taken from the reviewed events
    (rejected ones left out), counted as the analysis counts them (``count_events``); sleep
    measures stay as detected. Long cramps are counted against the red-flag duration the night
    was analysed with (``red_flag_s`` in its summary; nights stored before it was recorded: the
    configured default)."""
    return NightSummary.of(summary).reviewed_with(events)


def reviewed_nights(store, wearer: str) -> list[dict]:
    """``store.nights(wearer)`` with each reviewed night's summary recounted from its reviewed
    events: what the nights table, the trends, the wearer list and the advice history show."""
    nights = store.nights(wearer)
    reviewed = store.reviewed_nights(wearer)
    for n in nights:
        if n["night"] in reviewed:
            a = reviewed_analysis(store, wearer, n["night"])
            if a is not None:
                n["summary"] = a["summary"]
    return nights


def reviewed_analysis(store, wearer: str, night: str) -> dict | None:
    """A stored night with its reviews applied: events marked, counts recomputed."""
    a = store.analysis(wearer, night)
    if a is None:
        return None
    a["events"] = apply_reviews(a["events"], store.reviews(wearer, night))
    a["summary"] = reviewed_summary(a["summary"], a["events"]).to_json()
    return a


def refresh_advice(store, wearer: str, night: str, *, rules: list[LoadedRule] | None = None,
                   write: bool = True) -> tuple[dict, list[dict]]:
    """(features, advice items) of a stored night from its reviewed events, the history and the
    diary; with ``write`` the night's advice links are replaced. LookupError if not stored."""
    a = reviewed_analysis(store, wearer, night)
    if a is None:
        raise LookupError(f"no stored night {night} for wearer {wearer!r}")
    live = {**a, "events": [e for e in a["events"] if e.get("status") != "rejected"]}
    f = stored_night_features(store, wearer, night, analysis=live, nights=reviewed_nights(store, wearer))
    items = [x.to_json() for x in evaluate(rules if rules is not None else default_rules(), f)]
    if write:
        store.write_advice(wearer, night, items)
    return f, items
