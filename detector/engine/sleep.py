"""Sleep and wake per epoch from leg movement, sleep onset, awakenings and final wake.

An epoch's activity is the sum over its seconds of movement intensity: dynamic acceleration
above ``acc.move_g`` in units of ``acc.move_g`` (capped), the louder leg each second, leaving
out detected position changes; without an accelerometer, its EMG-active seconds. A Cole-Kripke-
style weighted sum over epochs -4..+2 above ``sleep.wake_threshold`` scores it wake. Sleep runs
shorter than ``sleep.min_sleep_run_s`` between wake are rescored wake. Sleep onset is the first
sleep run of ``sleep.onset_run_s``; an awakening is a wake bout of at least
``sleep.awakening_min_s`` between sleep onset and the final wake. Quiet wakefulness without
movement cannot be seen by a leg sensor and is scored sleep.
"""

from __future__ import annotations

import numpy as np

from detector.engine.config import DetectorConfig
from detector.engine.events import Event
from detector.engine.intervals import runs
from detector.engine.state import Stateful
from detector.engine.stream import Growable


class SleepScorer(Stateful):
    _derived = frozenset({"cfg"})

    def __init__(self, cfg: DetectorConfig, *, has_acc: bool, has_emg: bool) -> None:
        self.cfg = cfg
        self.has_acc, self.has_emg = has_acc, has_emg
        s = cfg.sleep
        self.epoch_s = s.epoch_s
        self.weights = np.asarray(s.weights)
        self.ahead = len(self.weights) - 5  # weights cover epochs -4..+(len-5)
        self.activity = Growable(np.float64)  # per epoch, seconds
        self.wake = Growable(np.uint8)  # scored epochs
        self.emitted: set[int] = set()
        self.cramp_wake: list[tuple[float, float]] = []  # seconds the pain of a cramp keeps the wearer awake
        self.onset_epoch: int | None = None
        self.final = False


    @property
    def min_sleep_run(self) -> int:
        return max(1, round(self.cfg.sleep.min_sleep_run_s / self.epoch_s))

    def add_epochs(self, activity: np.ndarray) -> None:
        """The next epochs' activity (movement-intensity seconds per epoch, in order), given by
        the engine once each epoch is complete and the position changes around it are known."""
        self.activity.extend(np.asarray(activity, np.float64))

    @property
    def threshold(self) -> float:
        s = self.cfg.sleep
        return s.wake_threshold if self.has_acc else s.emg_wake_threshold

    def score(self, final: bool) -> None:
        """Score every epoch whose look-ahead is complete (all of them when ``final``)."""
        n = self.activity.n
        upto = n if final else n - self.ahead
        if upto > self.wake.n:
            act = self.activity.view
            w = self.weights
            scores = np.zeros(upto - self.wake.n)
            for j, e in enumerate(range(self.wake.n, upto)):
                lo, hi = e - 4, e + self.ahead + 1
                seg = act[max(0, lo):min(n, hi)]
                ws = w[max(0, lo) - lo:len(w) - (hi - min(n, hi))]
                scores[j] = float(np.dot(ws, seg))
            self.wake.extend((scores > self.threshold).astype(np.uint8))

    def emit(self, final: bool, *, cramps: list[Event], undecided_from: list[float]) -> list[Event]:
        """Awakenings that can no longer change, each once. ``cramps``: the cramps decided so far
        (an awakening starting within ``sleep.cramp_link_window_s`` of one is after it);
        ``undecided_from``: where contractions not yet decided begin (s), which could still be
        cramps that extend a bout."""
        out = self._emit(final, cramps, undecided_from)
        self.final = final
        return out

    def add_cramp(self, onset_s: float, end_s: float) -> None:
        """A detected cramp (onset and end, s): from ``sleep.cramp_wake_after_s`` after its onset
        (at the latest from its end) to ``sleep.cramp_wake_tail_s`` after its end the wearer is
        awake, moving or not. Chaney & Sherman: EMG rises ~41 s before waking in pain; a cramp
        that eases sooner has woken the wearer by then, and the pain keeps them from falling
        straight back asleep (the source article)."""
        s = self.cfg.sleep
        t0 = onset_s + min(s.cramp_wake_after_s, max(0.0, end_s - onset_s))
        t1 = end_s + s.cramp_wake_tail_s
        if t1 > t0:
            self.cramp_wake.append((t0, t1))

    def bouts(self, final: bool | None = None) -> list[tuple[int, int, int]]:
        """Runs (start epoch, end epoch, wake flag) after rescoring short sleep runs as wake; once
        the recording is complete (``final``, by default as last emitted) also a short one at its
        end: a minute of sleep scored where the recording stops does not make the morning's final
        wake an awakening."""
        fin = self.final if final is None else final
        w = self.wake.view.astype(bool).copy()
        for t0, t1 in self.cramp_wake:  # epochs mostly inside a cramp's painful part
            a, b = int(round(t0 / self.epoch_s)), int(round(t1 / self.epoch_s))
            w[a:min(b, w.size)] = True
        first = runs(w)
        for k, (a, b, v) in enumerate(first):
            if not v and 0 < k and (k < len(first) - 1 or fin) and b - a < self.min_sleep_run:
                w[a:b] = True
        return runs(w)

    def hypnogram(self) -> np.ndarray:
        """Per epoch 1 (wake) or 0 (sleep), after rescoring."""
        out = np.zeros(self.wake.n, np.uint8)
        for a, b, v in self.bouts():
            out[a:b] = v
        return out

    def _emit(self, final: bool, cramps: list[Event], undecided_from: list[float]) -> list[Event]:
        out: list[Event] = []
        runs = self.bouts(final)
        if not runs:
            return out
        onset_run = max(1, round(self.cfg.sleep.onset_run_s / self.epoch_s))
        if self.onset_epoch is None:
            for a, b, v in runs:
                if not v and b - a >= onset_run and (b < self.wake.n or final):
                    self.onset_epoch = a
                    break
        if self.onset_epoch is None:
            return out
        last_sleep_end = max((b for a, b, v in runs if not v), default=0)
        min_len = self.cfg.sleep.awakening_min_s / self.epoch_s
        for k, (a, b, v) in enumerate(runs):
            if not v or a < self.onset_epoch or a in self.emitted or b - a < min_len:
                continue
            closed = k + 1 < len(runs) and (runs[k + 1][1] - runs[k + 1][0] >= self.min_sleep_run
                                            or (final and b <= last_sleep_end))
            if not closed:
                continue
            t0, t1 = a * self.epoch_s, b * self.epoch_s
            # A contraction still undecided this close could be a cramp that extends the bout.
            # (An epoch more: a cramp's wake can begin a few seconds after its onset.)
            reach = t1 + self.cfg.sleep.min_sleep_run_s + self.epoch_s
            if not final and any(t <= reach for t in undecided_from):
                continue
            self.emitted.add(a)
            win = self.cfg.sleep.cramp_link_window_s
            linked = [c for c in cramps if t0 - win <= c.start_s <= t1]
            feats = {"epochs": b - a, "definition": self.definition()}
            if linked:
                feats["after_cramp_s"] = linked[0].start_s
            out.append(Event("awakening", t0, t1, None, None, 0.8,
                             "after_cramp" if linked else "", feats))
        return out

    def definition(self) -> str:
        s = self.cfg.sleep
        return (f"a wake bout of at least {s.awakening_min_s:g} s after sleep onset (first "
                f"{s.onset_run_s:g} s of continuous sleep), scored in {s.epoch_s:g}-s epochs from "
                f"leg movement; sleep interruptions shorter than {s.min_sleep_run_s:g} s are "
                "part of the same awakening")
