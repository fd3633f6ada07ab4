"""Per-EMG-channel frame stage: envelopes, adaptive resting baseline, artefacts, activations.

Processes frames in fixed blocks (``baseline.block_s``) so its results do not depend on how
samples arrived. Outputs frame-index intervals; the engine turns them into events.
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector.engine.config import DetectorConfig
from detector.engine.dsp import moving_median, quantile, sorted_quantile
from detector.engine.frontend import EmgFrames
from detector.engine.state import Stateful
from detector.engine.stream import Growable, Hysteresis

POP, LEAD_OFF, FLAT, CLIPPED, LOST = 1, 2, 4, 8, 16
BAD_NAMES = {POP: "pop", LEAD_OFF: "lead_off", FLAT: "flat", CLIPPED: "saturation", LOST: "lost"}


@dataclass
class StageOut:
    lms: list[tuple[int, int]] = field(default_factory=list)
    sustained: list[tuple[int, int]] = field(default_factory=list)
    artifacts: list[tuple[int, int]] = field(default_factory=list)
    lost: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class SustainedPeek:
    """Where sustained activity stands after frames not yet processed (see ``EmgStage.peek``)."""

    open_since: int | None  # frame where the sustained interval still open at ``end`` began
    end: int  # one past the last frame looked at
    on: np.ndarray  # bool per looked-at frame: slow envelope above the sustained-on level
    bad: np.ndarray  # uint8 artefact flags per looked-at frame


class EmgStage(Stateful):
    """Frame-level state of one EMG channel (µV envelopes, baseline, open intervals)."""

    _derived = frozenset({"cfg"})

    def __init__(self, cfg: DetectorConfig) -> None:
        fe, bl, act, cr, art = cfg.front_end, cfg.baseline, cfg.activation, cfg.cramp, cfg.artifact
        self.cfg = cfg
        fps = 1.0 / fe.frame_s
        self.smooth_n = max(1, round(fe.smooth_s * fps))
        self.slow_n = max(1, round(fe.slow_s * fps))
        self.fast_delay = (self.smooth_n - 1) / 2
        self.slow_delay = (self.slow_n - 1) / 2
        self.pop_n = max(1, round(art.pop_level_s * fps))
        self.pop_blank = round(art.pop_blank_s * fps)
        self._fast_hist: np.ndarray | None = None
        self._slow_hist: np.ndarray | None = None
        self._level_hist = np.zeros(2 * self.pop_n - 1)
        self._level_started = False
        self._blank_left = 0
        self.stats: deque[float] = deque(maxlen=max(1, round(bl.window_s / bl.block_s)))
        self.hum_stats: deque[float] = deque(maxlen=self.stats.maxlen)  # µV, mains band of resting blocks
        self.block_n = max(1, round(bl.block_s * fps))
        self.lm = Hysteresis(round(act.offset_quiet_s * fps))
        self.sus = Hysteresis(round(cr.off_hold_s * fps))
        self.art = Hysteresis(max(1, round(art.merge_gap_s * fps)))
        self.lost = Hysteresis(max(1, round(art.merge_gap_s * fps)))
        self.mav = Growable()
        self.dmav = Growable()  # µV per sample, mean sample-to-sample change (detector.engine.spectral)
        self.env_fast = Growable()
        self.env_slow = Growable()
        self.baseline = Growable()
        self.bad = Growable(np.uint8)
        self.baseline_now = float("nan")
        # Whole-night figures for the signal-quality report, kept apart from the per-frame
        # history (which the engine trims): frames flagged, and each block's resting level.
        self.n_artifact = 0
        self.n_lost = 0
        self.block_base = Growable(np.float32)  # µV, one per block
        self.block_len = Growable(np.int32)  # frames in that block


    def thresholds(self, b: np.ndarray | float) -> tuple[Any, Any, Any, Any]:
        """LM onset/offset and sustained on/off levels (µV) for baseline ``b`` (µV)."""
        act, cr = self.cfg.activation, self.cfg.cramp
        on = b + np.maximum(act.onset_above_uV, (act.onset_min_ratio - 1) * b)
        off = b + np.maximum(act.offset_above_uV, (act.offset_max_ratio - 1) * b)
        s_on = np.maximum(b * cr.on_ratio, b + cr.on_above_uV)
        s_off = b * cr.off_ratio
        return on, off, s_on, s_off

    def process(self, fr: EmgFrames) -> StageOut:
        """Frames of whole blocks (``baseline.block_s``; the last call may be shorter)."""
        n = len(fr)
        out = StageOut()
        if n == 0:
            return out
        mav = np.where(fr.lost, 0.0, fr.mav)
        fast = moving_median(mav, self.smooth_n, self._fast_hist)
        slow = moving_median(mav, self.slow_n, self._slow_hist)
        self._fast_hist = np.concatenate([self._fast_hist if self._fast_hist is not None else
                                          np.full(self.smooth_n - 1, mav[0]), mav])[-(self.smooth_n - 1):] \
            if self.smooth_n > 1 else np.zeros(0)
        self._slow_hist = np.concatenate([self._slow_hist if self._slow_hist is not None else
                                          np.full(self.slow_n - 1, mav[0]), mav])[-(self.slow_n - 1):] \
            if self.slow_n > 1 else np.zeros(0)

        bad = self._frame_flags(fr)
        bad[self._pops(fr.level, fr.lost)] |= np.uint8(POP)

        # The resting baseline and the usual hum move once per block and depend on the blocks
        # before it.
        base = np.empty(n)
        stats = self._block_stats(fast, bad)
        hums = self._block_hum(fr.mains)
        for j, a in enumerate(range(0, n, self.block_n)):
            z = slice(a, min(n, a + self.block_n))
            if self._flag_hum(fr.mains[z], mav[z], bad[z]):
                stats[j] = self._block_stats(fast[z], bad[z])[0]
            base[z] = self._block_baseline(stats[j], hums[j], slow[z], bad[z])
        known = np.isfinite(base)
        b = np.where(known, base, 1.0)
        on, off, s_on, s_off = self.thresholds(b)
        # Pops are short transients the median envelope already ignores; only a dead or
        # saturated signal stops activity detection.
        usable = ((bad & ~np.uint8(POP)) == 0) & known
        lm_on = (fast > on) & usable
        lm_off = (fast < off) | ~usable
        sus_on, sus_off = _sustained_on_off(slow, s_on, s_off, bad, known)
        b = base
        out.lms = self.lm.update(lm_on, lm_off)
        out.sustained = self.sus.update(sus_on, sus_off)
        art_on = (bad & ~np.uint8(LOST)) > 0
        out.artifacts = self.art.update(art_on, ~art_on)
        lost = (bad & LOST) > 0
        out.lost = self.lost.update(lost, ~lost)
        self.mav.extend(mav.astype(np.float32))
        self.dmav.extend(np.where(fr.lost, 0.0, fr.dmav).astype(np.float32))
        self.env_fast.extend(fast.astype(np.float32))
        self.env_slow.extend(slow.astype(np.float32))
        self.baseline.extend(b.astype(np.float32))
        self.bad.extend(bad)
        self.n_artifact += int(np.count_nonzero((bad & ~np.uint8(LOST)) > 0))
        self.n_lost += int(np.count_nonzero((bad & LOST) > 0))
        firsts = np.arange(0, n, self.block_n)
        self.block_base.extend(base[firsts].astype(np.float32))
        self.block_len.extend(np.diff(np.r_[firsts, n]).astype(np.int32))
        return out

    def history(self) -> tuple[Growable, ...]:
        """The per-frame arrays the engine may trim (``Engine._trim_history``)."""
        return self.mav, self.dmav, self.env_fast, self.env_slow, self.baseline, self.bad

    def oldest_open(self) -> int | None:
        """The first frame of the oldest interval still open (frames before it may be read
        when it closes), or None."""
        opens = [h.open_since for h in (self.lm, self.sus, self.art, self.lost) if h.open_since is not None]
        return min(opens) if opens else None

    def _block_stats(self, fast: np.ndarray, bad: np.ndarray) -> list[float]:
        """Each block's level: a quantile of the fast median envelope over its clean frames (µV).

        The median envelope, not raw frames: a low quantile of noisy 50-ms frames is biased low,
        the more so the lower the sampling rate. NaN for blocks that are mostly artefact.
        """
        q, m = self.cfg.baseline.block_quantile, self.block_n
        full = len(fast) // m
        out = [float("nan")] * -(-len(fast) // m)
        if full:
            clean = ~(bad[:full * m].reshape(full, m) != 0).any(axis=1)
            if clean.any():
                vals = np.quantile(fast[:full * m].reshape(full, m)[clean], q, axis=1)
                for c, v in zip(np.flatnonzero(clean), vals, strict=True):
                    out[int(c)] = float(v)
        for j in range(len(out)):
            if np.isnan(out[j]):
                z = slice(j * m, min(len(fast), (j + 1) * m))
                valid = bad[z] == 0
                if valid.mean() >= 0.5:
                    out[j] = quantile(fast[z][valid], q)
        return out

    def _block_hum(self, mains: np.ndarray) -> list[float]:
        """Each block's median mains-band envelope (µV)."""
        m, full = self.block_n, len(mains) // self.block_n
        out = np.median(mains[:full * m].reshape(full, m), axis=1).tolist() if full else []
        if len(mains) > full * m:
            out.append(float(np.median(mains[full * m:])))
        return out

    def _flag_hum(self, mains: np.ndarray, mav: np.ndarray, bad: np.ndarray) -> bool:
        """Marks in ``bad`` (in place) frames of one block whose hum rose well above the usual
        and dominates the notched EMG: a loose electrode, however small its hum. True if any."""
        if not self.hum_stats:
            return False
        art = self.cfg.artifact
        ref = sorted_quantile(sorted(self.hum_stats), 0.5)
        hum = (mains > art.lead_off_hum_rise * ref) & (mains > art.lead_off_mains_ratio * mav) & (bad == 0)
        if not hum.any():
            return False
        bad[hum] |= np.uint8(LEAD_OFF)
        return True

    def _block_baseline(self, stat: float, hum: float, slow: np.ndarray, bad: np.ndarray) -> float:
        """Resting level (µV) for one block; marks vanished signal in ``bad`` (in place).
        ``hum`` is the block's mains-band level (µV), kept with resting blocks as the usual hum."""
        # Runs once per 10-s block for the whole night: scalar Python, not numpy, on purpose.
        bl, art, cr = self.cfg.baseline, self.cfg.artifact, self.cfg.cramp
        if self.stats:
            b = sorted_quantile(sorted(self.stats), bl.quantile)
        elif stat == stat:
            b = stat
        else:
            b = self.baseline_now
        if not np.isfinite(b):
            return float("nan")
        b = max(b, bl.min_uV)
        bad[(slow < art.lead_off_ratio * b) & (bad == 0)] |= np.uint8(LEAD_OFF)
        s_on = max(b * cr.on_ratio, b + cr.on_above_uV)
        if stat == stat and np.count_nonzero(slow > s_on) <= bl.max_active_fraction * slow.size:
            self.stats.append(stat)
            self.hum_stats.append(hum)
        self.baseline_now = b
        return b

    def peek(self, fr: EmgFrames) -> SustainedPeek:
        """Sustained activity in frames that follow the processed ones, without changing state.

        For provisional cramp alerts between blocks: the same envelope, levels and hysteresis
        as :meth:`process`, with the baseline the next block will use (it depends only on the
        blocks before it). Electrode-pop blanking is left out; pops do not stop sustained
        activity anyway.
        """
        n = len(fr)
        bl, art, cr = self.cfg.baseline, self.cfg.artifact, self.cfg.cramp
        b = sorted_quantile(sorted(self.stats), bl.quantile) if self.stats else self.baseline_now
        if n == 0 or self._slow_hist is None or not np.isfinite(b):
            return SustainedPeek(self.sus.open_since, self.mav.n, np.zeros(0, bool), np.zeros(0, np.uint8))
        b = max(b, bl.min_uV)
        s_on = max(b * cr.on_ratio, b + cr.on_above_uV)
        mav = np.where(fr.lost, 0.0, fr.mav)
        if self.sus.open_since is None and max(mav.max(), self._slow_hist.max(initial=0.0)) <= s_on:
            # A median never exceeds its largest input: nothing can open (the usual case).
            return SustainedPeek(None, self.mav.n + n, np.zeros(n, bool), np.zeros(n, np.uint8))
        slow = moving_median(mav, self.slow_n, self._slow_hist)
        bad = self._frame_flags(fr)
        self._flag_hum(fr.mains, mav, bad)
        bad[(slow < art.lead_off_ratio * b) & (bad == 0)] |= np.uint8(LEAD_OFF)
        on, off = _sustained_on_off(slow, s_on, b * cr.off_ratio, bad, True)
        sus = copy.copy(self.sus)
        sus.update(on, off)
        return SustainedPeek(sus.open_since, self.mav.n + n, on, bad)

    def _frame_flags(self, fr: EmgFrames) -> np.ndarray:
        """Artefact flags each frame carries by itself: hum-dominated (lead-off), flat,
        saturated, lost. Pops and a vanished signal need context and are added by the caller."""
        bad = np.zeros(len(fr), np.uint8)
        art = self.cfg.artifact
        # Hum alone: strong muscle activity also has power at the mains line, but a detached
        # electrode has little else: the mains-band envelope against the notched level (the
        # muscle's own; both lines are notched whether or not one was found at the start).
        hum_only = (fr.mains > art.lead_off_mains_uV) & (fr.mains > art.lead_off_mains_ratio * fr.mav)
        bad[hum_only] |= np.uint8(LEAD_OFF)
        bad[fr.flat] |= np.uint8(FLAT)
        bad[fr.clipped] |= np.uint8(CLIPPED)
        bad[fr.lost] |= np.uint8(LOST)
        return bad

    def flush(self) -> StageOut:
        return StageOut(self.lm.flush(), self.sus.flush(), self.art.flush(), self.lost.flush())

    def _pops(self, level: np.ndarray, lost: np.ndarray) -> np.ndarray:
        """Frames within ``pop_blank_s`` after a step of the 0.2-s raw level (µV)."""
        k = self.pop_n
        lv = np.where(lost, np.nan, level)
        if not self._level_started:
            self._level_hist[:] = lv[0] if np.isfinite(lv[0]) else 0.0
            self._level_started = True
        full = np.concatenate([self._level_hist, lv])
        self._level_hist = full[-(2 * k - 1):]
        smooth = np.convolve(np.nan_to_num(full), np.ones(k) / k, mode="valid")  # len n + k
        step = np.abs(smooth[k:] - smooth[:-k])
        hits = np.flatnonzero(step > self.cfg.artifact.pop_step_uV)
        blank = np.zeros(level.size, bool)
        left = self._blank_left
        if left:
            blank[:left] = True
        for h in hits:
            blank[h:h + self.pop_blank] = True
        last = int(hits[-1]) if hits.size else -10**9
        self._blank_left = max(0, left - level.size, last + self.pop_blank - level.size)
        return blank


def _sustained_on_off(slow: np.ndarray, s_on: np.ndarray | float, s_off: np.ndarray | float, bad: np.ndarray,
                      known: np.ndarray | bool) -> tuple[np.ndarray, np.ndarray]:
    """Where sustained activity starts and where it may end, from the slow envelope and its
    levels (µV). Pops are short transients the median envelope already ignores; only a dead or
    saturated signal stops activity detection, and a gone signal ends it."""
    usable = ((bad & ~np.uint8(POP)) == 0) & known
    gone = ((bad & (LOST | LEAD_OFF | FLAT)) > 0) | ~np.asarray(known)
    on = (slow > s_on) & usable
    return on, ((slow < s_off) | gone) & ~on
