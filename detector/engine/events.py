"""Typed event records and how detected events are compared with a reference (truth)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector.engine.state import record

KINDS = ("cramp", "limb_movement", "sustained_activity", "plm_series", "rollover", "awakening", "bed_exit",
         "artifact", "signal_lost")


@record
@dataclass
class Event:
    """A detected interval. Times are seconds from the recording start."""

    kind: str
    start_s: float
    end_s: float
    side: str | None = None
    channel: str | None = None
    confidence: float = 1.0
    subtype: str = ""
    features: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def key(self) -> tuple[float, str, str, str, str]:
        return (round(self.start_s, 6), self.kind, self.side or "", self.channel or "", self.subtype)

    def to_json(self, start: dt.datetime) -> dict[str, Any]:
        d = {
            "kind": self.kind,
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "start": (start + dt.timedelta(seconds=self.start_s)).isoformat(),
            "duration_s": round(self.duration_s, 3),
            "side": self.side,
            "channel": self.channel,
            "confidence": round(float(self.confidence), 3),
        }
        if self.subtype:
            d["subtype"] = self.subtype
        if self.features:
            d["features"] = {k: _plain(v) for k, v in self.features.items()}
        return d


def clamp_to_recording(events: list[Event], duration_s: float) -> None:
    """Keep every event inside [0, duration_s] (in place): envelope delays can put an edge just
    outside the recording. Used by the file analysis and the live night alike."""
    for e in events:
        e.start_s = min(max(0.0, e.start_s), duration_s)
        e.end_s = min(max(e.start_s, e.end_s), duration_s)


@record
@dataclass
class CrampAlert:
    """A cramp suspected while it is still going on (live service), before its final decision.

    ``status``: ``suspected`` when first raised, later ``confirmed`` or ``retracted`` by the
    engine's final decision. Times are seconds from the recording start; ``met_at_s`` is the
    end of the data on which the cramp criteria were first met.
    """

    channel_index: int
    start_f: int
    side: str | None
    channel: str | None
    start_s: float
    met_at_s: float
    status: str = "suspected"
    features: dict[str, Any] = field(default_factory=dict)

    def to_json(self, start: dt.datetime) -> dict[str, Any]:
        return {
            "kind": "cramp",
            "provisional": True,
            "status": self.status,
            "start_s": round(self.start_s, 3),
            "start": (start + dt.timedelta(seconds=self.start_s)).isoformat(),
            "met_at_s": round(self.met_at_s, 3),
            "side": self.side,
            "channel": self.channel,
            "features": {k: _plain(v) for k, v in self.features.items()},
        }


def _plain(v: Any) -> Any:
    if isinstance(v, float | np.floating):
        return round(float(v), 4)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return v


@dataclass
class Match:
    """Result of matching detected intervals with reference intervals of one kind."""

    kind: str
    tp: int
    fp: int
    fn: int
    onset_errors_s: list[float]

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def f1(self) -> float:
        d = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / d if d else float("nan")

    def as_dict(self) -> dict[str, Any]:
        med = float(np.median(np.abs(self.onset_errors_s))) if self.onset_errors_s else float("nan")
        return {"kind": self.kind, "tp": self.tp, "fp": self.fp, "fn": self.fn,
                "precision": self.precision, "recall": self.recall, "f1": self.f1,
                "median_onset_error_s": med}


def compare_events(events: list[dict[str, Any]], truth: list[dict[str, Any]], kind: str, *,
                   ignore_kinds: tuple[str, ...] = (), subtypes: tuple[str, ...] | None = None,
                   sided: bool = True) -> Match:
    """Match event dicts (analysis JSON or store rows) of ``kind`` with truth event dicts.

    ``ignore_kinds`` names truth kinds (``kind`` or ``kind:subtype``) that are "don't care"
    regions; ``subtypes`` restricts the detected events to some subtypes.
    """
    def side(e: dict[str, Any]) -> str | None:
        s = e.get("side")
        return None if s in (None, "none") else s

    det = [(e["start_s"], e["end_s"], side(e)) for e in events
           if e["kind"] == kind and (subtypes is None or (e.get("subtype") or "") in subtypes)]
    ref = [(t["start_s"], t["end_s"], side(t)) for t in truth if t["kind"] == kind]
    ign = [(t["start_s"], t["end_s"], side(t)) for t in truth
           if t["kind"] in ignore_kinds or f"{t['kind']}:{t.get('subtype', '')}" in ignore_kinds]
    return match_intervals(det, ref, kind=kind, ignore=ign, sided=sided)


def match_intervals(detected: list[tuple[float, float, str | None]],
                    reference: list[tuple[float, float, str | None]],
                    *, kind: str = "", ignore: list[tuple[float, float, str | None]] | None = None,
                    sided: bool = True) -> Match:
    """One-to-one matching by overlap (same side when ``sided``), largest overlap first.

    ``ignore`` intervals are "don't care" regions (e.g. a voluntary contraction, or a leg
    movement hidden under a cramp on the same leg): references inside one are dropped, and
    detections inside one that match nothing count as neither true nor false.
    """
    def inside(a: float, b: float, s: str | None) -> bool:
        if not ignore:
            return False
        return any(min(b, d) - max(a, c) > 0 and (not sided or t is None or s is None or s == t)
                   for c, d, t in ignore)

    reference = [r for r in reference if not inside(*r)]
    pairs = []
    for i, (a, b, s) in enumerate(detected):
        for j, (c, d, t) in enumerate(reference):
            ov = min(b, d) - max(a, c)
            if ov > 0 and (not sided or s is None or t is None or s == t):
                pairs.append((ov, i, j))
    pairs.sort(reverse=True)
    used_d: set[int] = set()
    used_r: set[int] = set()
    errors: list[float] = []
    for _ov, i, j in pairs:
        if i in used_d or j in used_r:
            continue
        used_d.add(i)
        used_r.add(j)
        errors.append(detected[i][0] - reference[j][0])
    fp = 0
    for i, (a, b, s) in enumerate(detected):
        if i in used_d or inside(a, b, s):
            continue
        fp += 1
    return Match(kind, len(used_d), fp, len(reference) - len(used_r), errors)
