"""Periodic limb movement series (AASM 2018 or WASM 2016 rules, selectable in config).

Leg movements are consumed in onset order once they are final. Movements on both legs that
overlap or are closer than ``activation.bilateral_gap_s`` count as one bilateral movement;
onset-to-onset intervals between the minimum and ``plm.max_interval_s`` chain movements into a
series of at least ``plm.min_count``. A shorter interval skips the movement under AASM and ends
the series under WASM; a longer one, a cramp or a long movement (> ``activation.max_lm_s``)
ends it under both.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from detector.engine.config import DetectorConfig
from detector.engine.events import Event
from detector.engine.state import Stateful, record


@record
@dataclass
class _Combined:
    onset: float
    end: float
    sides: set[str] = field(default_factory=set)


@record
@dataclass
class Series:
    start_s: float
    end_s: float
    onsets: list[float]
    sides: set[str]
    in_sleep: bool = True


class PlmTracker(Stateful):
    _derived = frozenset({"cfg"})

    def __init__(self, cfg: DetectorConfig) -> None:
        self.cfg = cfg
        p = cfg.plm
        self.min_imi = p.aasm_min_interval_s if p.rules == "aasm" else p.wasm_min_interval_s
        self.max_imi = p.max_interval_s
        self._cursor = 0
        self._pending: list[Event] = []
        self._run: list[_Combined] = []
        self._closed: list[list[_Combined]] = []
        self.series: list[Series] = []

    def advance(self, events: list[Event], wake: np.ndarray, complete_before: float,
                final: bool) -> list[Event]:
        """Take the night's events (the engine's growing list; only new ones are read), and
        return PLM series that are closed and whose epochs are all scored in ``wake`` (per
        epoch, 1 wake). ``complete_before``: no leg movement starting earlier can still come."""
        for ev in events[self._cursor:]:
            if ev.kind == "cramp" or (ev.kind == "limb_movement"):
                self._pending.append(ev)
        self._cursor = len(events)
        self._pending.sort(key=lambda e: (e.start_s, e.side or ""))
        limit = float("inf") if final else complete_before
        take = [e for e in self._pending if e.start_s < limit]
        self._pending = [e for e in self._pending if e.start_s >= limit]
        for ev in take:
            self._consume(ev)
        if self._run and (final or limit > self._run[-1].onset + self.max_imi):
            self._close()
        return self._flush_closed(wake, final)

    def _consume(self, ev: Event) -> None:
        act = self.cfg.activation
        if ev.kind == "cramp" or ev.subtype != "lm":
            self._close()
            return
        if self._run:
            last = self._run[-1]
            if (ev.side not in last.sides and ev.start_s <= last.end + act.bilateral_gap_s
                    and max(last.end, ev.end_s) - last.onset <= act.max_bilateral_lm_s):
                last.end = max(last.end, ev.end_s)
                last.sides.add(ev.side or "")
                return
            imi = ev.start_s - last.onset
            if imi < self.min_imi:
                if self.cfg.plm.rules == "aasm":
                    return  # AASM: the movement is not counted; the series goes on
                self._close()  # WASM: a short interval ends the series
            elif imi > self.max_imi:
                self._close()
        self._run.append(_Combined(ev.start_s, ev.end_s, {ev.side or ""}))

    def _close(self) -> None:
        run, self._run = self._run, []
        if len(run) >= self.cfg.plm.min_count:
            self._closed.append(run)

    def _flush_closed(self, wake: np.ndarray, final: bool) -> list[Event]:
        """Closed series whose epochs are all scored (their sleep share is then final)."""
        ep = self.cfg.sleep.epoch_s
        out = []
        while self._closed:
            run = self._closed[0]
            if not final and wake.size <= int(run[-1].onset // ep):
                break
            self._closed.pop(0)
            out.append(self._emit(run, wake))
        return out

    def _emit(self, run: list[_Combined], wake: np.ndarray) -> Event:
        sides = set().union(*(c.sides for c in run))
        onsets = [c.onset for c in run]
        s = Series(run[0].onset, max(c.end for c in run), onsets, sides)
        self.series.append(s)
        side = next(iter(sides)) if len(sides) == 1 else None
        ep = self.cfg.sleep.epoch_s
        asleep = [not wake[int(t // ep)] for t in onsets if int(t // ep) < len(wake)]
        in_sleep = sum(asleep) / len(onsets)
        s.in_sleep = in_sleep >= 0.5
        intervals = [b - a for a, b in itertools.pairwise(onsets)]
        return Event(
            "plm_series", s.start_s, s.end_s, side, None, 0.9, "sleep" if s.in_sleep else "wake",
            {"rules": self.cfg.plm.rules, "sleep_fraction": in_sleep, "count": len(run),
             "mean_interval_s": sum(intervals) / len(intervals),
             "bilateral_count": sum(len(c.sides) > 1 for c in run)})


def find_series(movements: list[Event], cfg: DetectorConfig) -> list[Series]:
    """PLM series among leg movements (``limb_movement`` events, subtype ``lm`` counts; a longer
    movement or a cramp ends a series) by the same rules as the engine, without sleep tagging.
    For movements scored elsewhere (a scoring import) as well as detected ones."""
    t = PlmTracker(cfg)
    for ev in sorted(movements, key=lambda e: (e.start_s, e.side or "")):
        t._consume(ev)
    t._close()
    return [Series(run[0].onset, max(c.end for c in run), [c.onset for c in run],
                   set().union(*(c.sides for c in run))) for run in t._closed]
