"""Sleep and PLM scoring driven with plain data, no engine: epoch activity in, awakenings out;
leg-movement events and scored epochs in, PLM series out."""

from __future__ import annotations

import numpy as np

from detector.engine.config import DetectorConfig
from detector.engine.events import Event
from detector.engine.plm import PlmTracker
from detector.engine.sleep import SleepScorer

CFG = DetectorConfig()
EP = CFG.sleep.epoch_s


def _night(wake_epochs: range, n: int = 120) -> np.ndarray:
    """Per-epoch activity (s): still, except a restless stretch over ``wake_epochs``."""
    act = np.zeros(n)
    act[list(wake_epochs)] = 40.0
    return act


def test_an_awakening_from_epoch_activity_alone():
    sl = SleepScorer(CFG, has_acc=True, has_emg=True)
    sl.add_epochs(_night(range(60, 66)))
    sl.score(final=True)
    out = sl.emit(True, cramps=[], undecided_from=[])
    assert len(out) == 1 and out[0].kind == "awakening" and out[0].subtype == ""
    a, b = out[0].start_s / EP, out[0].end_s / EP
    assert 56 <= a <= 60 and 66 <= b <= 70  # the scoring window smears the edges by a few epochs
    assert sl.emit(True, cramps=[], undecided_from=[]) == []  # each awakening once


def test_an_awakening_after_a_cramp_and_one_held_back_by_an_undecided_contraction():
    cramp = Event("cramp", 59 * EP - 30, 59 * EP + 20, "left", "EMG L-Gastroc", 0.9)
    sl = SleepScorer(CFG, has_acc=True, has_emg=True)
    sl.add_epochs(_night(range(60, 66)))
    sl.score(final=False)
    # A contraction not yet decided just after the bout could still be a cramp that extends it.
    assert sl.emit(False, cramps=[cramp], undecided_from=[67 * EP]) == []
    out = sl.emit(False, cramps=[cramp], undecided_from=[])
    assert [e.subtype for e in out] == ["after_cramp"]
    assert out[0].features["after_cramp_s"] == cramp.start_s


def test_a_cramp_lain_through_still_is_an_awakening():
    """No movement at all: a 25-s cramp wakes the wearer before it eases, and the pain keeps them
    awake for sleep.cramp_wake_tail_s after it (the source article)."""
    sl = SleepScorer(CFG, has_acc=True, has_emg=True)
    sl.add_epochs(np.zeros(120))
    onset, end = 60 * EP, 60 * EP + 25
    sl.add_cramp(onset, end)
    sl.score(final=True)
    out = sl.emit(True, cramps=[Event("cramp", onset, end, "left", "EMG L-Gastroc", 0.9)], undecided_from=[])
    assert [e.subtype for e in out] == ["after_cramp"]
    assert abs(out[0].start_s - end) <= EP and abs(out[0].end_s - (end + CFG.sleep.cramp_wake_tail_s)) <= EP


def test_the_final_wake_is_no_awakening_even_with_a_sleep_minute_at_the_very_end():
    act = _night(range(100, 116))  # restless until a minute before the end: the morning
    sl = SleepScorer(CFG, has_acc=True, has_emg=True)
    sl.add_epochs(act)
    sl.score(final=True)
    assert list(sl.wake.view[-3:]) == [1, 0, 0]  # the last minute alone scores sleep
    assert sl.emit(True, cramps=[], undecided_from=[]) == []


def _lm(t: float, side: str = "left") -> Event:
    return Event("limb_movement", t, t + 1.5, side, f"EMG {side[0].upper()}-TA", 0.9, "lm")


def test_plm_series_from_leg_movements_and_scored_epochs():
    lms = [_lm(3000.0 + 25.0 * k) for k in range(10)]  # 25-s intervals: one series
    tr = PlmTracker(CFG)
    asleep = np.zeros(200, np.uint8)
    out = tr.advance(lms, asleep, complete_before=float("inf"), final=True)
    assert len(out) == 1 and out[0].kind == "plm_series" and out[0].subtype == "sleep"
    assert out[0].features["count"] == 10 and out[0].side == "left"
    awake = np.ones(200, np.uint8)
    again = PlmTracker(CFG).advance(lms, awake, complete_before=float("inf"), final=True)
    assert again[0].subtype == "wake"


def test_plm_series_waits_for_its_epochs_to_be_scored():
    lms = [_lm(3000.0 + 25.0 * k) for k in range(6)]
    tr = PlmTracker(CFG)
    events = list(lms)
    # Closed (nothing more can join) but the last onset's epoch is not scored yet: held back.
    assert tr.advance(events, np.zeros(100, np.uint8), complete_before=4000.0, final=False) == []
    out = tr.advance(events, np.zeros(200, np.uint8), complete_before=4000.0, final=False)
    assert len(out) == 1 and out[0].features["count"] == 6
