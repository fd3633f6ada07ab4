"""How far two scorers agree on one night: nightcramp against a sleep lab's scoring.

This is how a lab validates a scorer: per event kind, one-to-one matching by overlap (the same
leg when both scorers say which), with precision, recall, F1 and the onset difference of matched
events; per 30-s epoch, sleep against wake with Cohen's kappa, which corrects the raw agreement
for chance (always guessing "asleep" agrees on most epochs of a night, DOMAIN.md).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from detector.engine.events import match_intervals
from ingest.recordings.scoring import STAGES, Scoring

# Kinds a sleep lab scores that nightcramp reports too (the others are listed, not compared).
COMPARED = ("limb_movement", "plm_series", "cramp", "awakening", "artifact", "rollover", "bed_exit")


@dataclass(frozen=True)
class KindAgreement:
    kind: str
    ours: int
    theirs: int
    matched: int
    precision: float | None  # of ours, the share the other scorer has too
    recall: float | None  # of theirs, the share we found
    f1: float | None
    onset_median_s: float | None  # median |our onset - theirs| over matched events
    onset_mean_s: float | None  # mean signed difference: > 0 when ours start later


@dataclass(frozen=True)
class EpochAgreement:
    epoch_s: float
    epochs: int  # scored by both
    both_wake: int
    both_sleep: int
    wake_ours_only: int
    wake_theirs_only: int
    accuracy: float
    kappa: float | None  # Cohen's kappa, sleep against wake; None when it is undefined
    wake_sensitivity: float | None  # of the epochs they scored wake, the share we did


@dataclass(frozen=True)
class Agreement:
    source: str  # the other scorer's file
    kinds: list[KindAgreement]
    epochs: EpochAgreement | None
    not_compared: dict[str, int]  # the other scorer's kinds nightcramp does not report

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "kinds": [asdict(k) for k in self.kinds],
                "epochs": asdict(self.epochs) if self.epochs else None, "not_compared": self.not_compared}


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float | None:
    """Cohen's kappa of two label arrays of equal length: (observed - chance) / (1 - chance);
    None when chance agreement is 1 (both scorers gave one and the same label throughout)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.size == 0:
        raise ValueError("kappa needs two label arrays of the same, non-zero length")
    labels = np.union1d(a, b)
    po = float(np.mean(a == b))
    pe = float(sum(np.mean(a == k) * np.mean(b == k) for k in labels))
    return None if pe >= 1.0 else (po - pe) / (1.0 - pe)


def stage_epochs(stages: list[tuple[float, float, str]], n: int, epoch_s: float) -> np.ndarray:
    """Per epoch from 0 s: 1 wake, 0 sleep, -1 not scored, from (start s, end s, stage) intervals;
    an epoch takes the stage covering most of it."""
    out = np.full(n, -1, np.int8)
    best = np.zeros(n)
    for a, b, st in stages:
        k0, k1 = max(0, int(np.floor(a / epoch_s))), min(n, int(np.ceil(b / epoch_s)))
        for k in range(k0, k1):
            cover = min(b, (k + 1) * epoch_s) - max(a, k * epoch_s)
            if cover > best[k]:
                best[k], out[k] = cover, 1 if st == "wake" else 0
    return out


def _kind(kind: str, ours: list[dict[str, Any]],
          theirs: list[tuple[float, float, str | None]]) -> KindAgreement:
    def side(e: dict[str, Any]) -> str | None:
        s = e.get("side")
        return None if s in (None, "none") else s

    det = [(float(e["start_s"]), float(e["end_s"]), side(e)) for e in ours if e["kind"] == kind]
    m = match_intervals(det, theirs, kind=kind, sided=True)
    err = np.asarray(m.onset_errors_s)

    def ratio(x: int, y: int) -> float | None:
        return round(x / y, 4) if y else None

    d = 2 * m.tp + m.fp + m.fn
    return KindAgreement(kind, len(det), len(theirs), m.tp, ratio(m.tp, m.tp + m.fp),
                         ratio(m.tp, m.tp + m.fn), round(2 * m.tp / d, 4) if d else None,
                         round(float(np.median(np.abs(err))), 3) if err.size else None,
                         round(float(np.mean(err)), 3) if err.size else None)


def agreement(analysis: dict[str, Any], scoring: Scoring) -> Agreement:
    """nightcramp's analysis of a night (the analysis JSON, reviewed or not) against another
    scorer's events for the same night, placed by clock time on the recording's start."""
    origin = dt.datetime.fromisoformat(analysis["recording"]["start"])
    if origin.tzinfo is None:
        origin = origin.replace(tzinfo=dt.UTC)
    dur = float(analysis["recording"]["duration_s"])

    placed = [(e, *scoring.seconds(e, origin)) for e in scoring.events]
    inside = [(e, a, b) for e, a, b in placed if b > 0 and a < dur]
    if scoring.events and not inside:
        first = min(e.start for e in scoring.events)
        raise ValueError(f"{scoring.source}: its events (from {first:%Y-%m-%d %H:%M:%S}) do not fall inside "
                         f"the recording ({origin:%Y-%m-%d %H:%M:%S} for {dur / 3600:.1f} h): another night?")
    theirs_kinds = {e.kind for e, _, _ in inside}
    kinds = [_kind(k, analysis["events"], [(a, b, e.side) for e, a, b in inside if e.kind == k])
             for k in COMPARED if k in theirs_kinds]
    not_compared: dict[str, int] = {}
    for e, _, _ in inside:
        if e.kind not in COMPARED and e.kind not in STAGES:
            not_compared[e.label] = not_compared.get(e.label, 0) + 1
    epochs = None
    stages = [(a, b, e.kind) for e, a, b in inside if e.kind in STAGES]
    hyp = analysis.get("hypnogram")
    if stages and hyp and hyp.get("wake"):
        ep = float(hyp["epoch_s"])
        ours = np.asarray(hyp["wake"], np.int8)
        theirs = stage_epochs(stages, len(ours), ep)
        both = theirs >= 0
        a, b = ours[both], theirs[both]
        if a.size:
            tw = int(np.sum(b == 1))
            epochs = EpochAgreement(
                ep, int(a.size), int(np.sum((a == 1) & (b == 1))), int(np.sum((a == 0) & (b == 0))),
                int(np.sum((a == 1) & (b == 0))), int(np.sum((a == 0) & (b == 1))),
                round(float(np.mean(a == b)), 4),
                None if (k := cohen_kappa(a, b)) is None else round(k, 4),
                round(float(np.sum((a == 1) & (b == 1)) / tw), 4) if tw else None)
    return Agreement(scoring.source, kinds, epochs, not_compared)
