"""The streaming engine: samples in, events out; the batch analysis is one call of the same code.

Samples pass through per-channel front ends into fixed frame grids; frames are processed in
fixed blocks; intervals are classified once ``engine.lookahead_s`` of context after them has
been seen. Nothing depends on how the samples were chunked, so the streamed events equal the
whole-night events (tests/test_streaming.py checks this for many chunk sizes and a checkpointed
restart).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector.engine.channel import BAD_NAMES, LOST, POP, EmgStage, StageOut
from detector.engine.config import DetectorConfig
from detector.engine.cramp_evidence import cramp_probability, explain
from detector.engine.events import CrampAlert, Event
from detector.engine.frontend import AccFrames, AccFrontEnd, EmgFrames, EmgFrontEnd
from detector.engine.intervals import longest_run
from detector.engine.plm import PlmTracker, Series
from detector.engine.posture import AccStage, PostureOut
from detector.engine.sleep import SleepScorer
from detector.engine.spectral import characteristic_hz, relative_shift, resting_levels
from detector.engine.state import Stateful, record
from ingest.recordings.recording import Channel


@record
@dataclass
class _Sustained:
    ch: int
    start_s: float
    end_s: float
    start_f: int
    end_f: int
    decided: bool = False
    cramp: bool = False
    features: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Leg(Stateful):
    side: str
    axes: tuple[int, int, int]
    fe: AccFrontEnd
    stage: AccStage
    pending: list[list[np.ndarray]]


@dataclass(frozen=True)
class NightResult:
    """What a finished engine hands on, with no reference back to it: the summary, the analysis
    JSON and the live service read this. Times in s from the recording's start."""

    cfg: DetectorConfig
    events: list[Event]  # every event of the night, in the order decided
    new_events: list[Event]  # those decided by ``finish`` itself (what a streaming caller announces)
    hypnogram: np.ndarray  # per sleep epoch: 1 wake, 0 sleep
    bouts: list[tuple[int, int, int]]  # (first epoch, end epoch, 1 wake / 0 sleep)
    sleep_onset_epoch: int | None
    awakening_definition: str
    plm_series: list[Series]
    signal_quality: dict[str, dict[str, Any]]  # per channel label (EMG) or "ACC <side>"
    notes: list[str]  # what the analysis could not see, in words


class Engine(Stateful):
    """Analyse one night incrementally. ``update`` takes new samples per channel index.

    ``get_state()``/``set_state()`` take out and put back what the night accumulated, as plain
    data (detector.engine.state); the configuration, the channels and the thread pool are the
    constructor's and never part of it.
    """

    _derived = frozenset({"cfg", "pool", "channels"})

    def __init__(self, channels: list[Channel], cfg: DetectorConfig, *,
                 pool: Executor | None = None) -> None:
        self.cfg = cfg
        # Optional threads for the EMG front ends; results do not depend on it.
        self.pool = pool
        self.channels = channels
        fe = cfg.front_end
        self.frame_s = fe.frame_s
        self.block_frames = max(1, round(cfg.baseline.block_s / fe.frame_s))
        self.acc_block = max(1, round(cfg.baseline.block_s / cfg.acc.frame_s))
        self.block_s = self.block_frames * fe.frame_s
        self.emg = [i for i, c in enumerate(channels) if c.kind == "emg"]
        self.emg_fe = {i: EmgFrontEnd(channels[i].fs, cfg) for i in self.emg}
        self.emg_stage = {i: EmgStage(cfg) for i in self.emg}
        self._emg_buf: dict[int, list[EmgFrames]] = {i: [] for i in self.emg}
        self._emg_buf_n = dict.fromkeys(self.emg, 0)
        self.legs: dict[str, _Leg] = {}
        self.notes: list[str] = []
        self._group_acc()
        self._acc_buf: dict[str, list[AccFrames]] = {s: [] for s in self.legs}
        self._acc_buf_n = dict.fromkeys(self.legs, 0)
        self.blocks = 0
        self.finished = False
        # Interval bookkeeping (times in seconds from the recording start).
        self._lms: list[tuple[int, int, int]] = []  # ch, start frame, end frame
        # Onsets (s) of every leg-movement candidate seen, emitted or not: what makes a series
        # before a contraction must not depend on when candidates were emitted or dropped.
        self._lm_onsets: list[float] = []
        # (end s, channel, characteristic Hz) of leg-movement candidates: each channel's own
        # reference for a contraction's EMG frequency (detector.engine.spectral).
        self._lm_hz: list[tuple[float, int, float]] = []
        self._train_end: dict[int, float] = {}  # channel: end (s) of its last rhythmic train
        self._sus: list[_Sustained] = []
        self._twitch_frames: dict[int, list[int]] = {i: [] for i in self.emg}
        self.rotations: list[tuple[float, float, float, str]] = []
        self.upright: list[tuple[float, float, str]] = []
        self.cramps: list[Event] = []
        self.sustained: list[Event] = []
        self.events: list[Event] = []
        self._pending_rot: list[tuple[float, float, float, str]] = []
        self._pending_up: list[tuple[float, float, str]] = []
        self.alerts: list[CrampAlert] = []
        self._alert_news: list[CrampAlert] = []
        self.plm = PlmTracker(cfg)
        self.sleep = SleepScorer(cfg, has_acc=bool(self.legs), has_emg=bool(self.emg))

    # ---------------------------------------------------------------- input
    def _group_acc(self) -> None:
        by_leg: dict[tuple[str, str], dict[str, int]] = {}
        for i, c in enumerate(self.channels):
            if c.kind == "acc":
                by_leg.setdefault((c.side, c.site), {})[c.axis or "?"] = i
        for (side, site), axes in sorted(by_leg.items()):
            if side in self.legs:
                self.notes.append(f"second accelerometer on the {side} leg ({site}) not used")
                continue
            if set(axes) != {"X", "Y", "Z"}:
                missing = ", ".join(sorted({"X", "Y", "Z"} - set(axes)))
                self.notes.append(f"ACC {side} {site}: axis {missing} missing; accelerometer not used")
                continue
            ix, iy, iz = axes["X"], axes["Y"], axes["Z"]
            fss = {self.channels[j].fs for j in (ix, iy, iz)}
            if len(fss) != 1:
                self.notes.append(f"ACC {side} {site}: axes at different rates; accelerometer not used")
                continue
            fs = fss.pop()
            self.legs[side] = _Leg(side, (ix, iy, iz), AccFrontEnd(fs, self.cfg), AccStage(self.cfg),
                                   [[], [], []])

    def filter_emg(self, samples: dict[int, np.ndarray]) -> Callable[[], dict[int, EmgFrames]]:
        """Start the EMG front ends on new samples (µV); call the result to get their frames.

        With a pool the channels run in threads (filtering releases the GIL), so a caller can
        filter the next chunk while :meth:`update` digests this one. Call in sample order and
        collect each result before the next call for the same channels.
        """
        todo = {i: x for i, x in samples.items() if i in self.emg_fe}
        if self.pool is None or not todo:
            done = {i: self.emg_fe[i].update(x) for i, x in todo.items()}
            return lambda: done
        futures = {i: self.pool.submit(self.emg_fe[i].update, x) for i, x in todo.items()}
        return lambda: {i: f.result() for i, f in futures.items()}

    def update(self, samples: dict[int, np.ndarray], *,
               emg_frames: dict[int, EmgFrames] | None = None) -> list[Event]:
        """Feed new samples (µV or g, float) per channel index; returns events finalised now.

        ``emg_frames``: EMG front-end output already got from :meth:`filter_emg`; EMG samples
        in ``samples`` are then ignored.
        """
        if self.finished:
            raise RuntimeError("engine already finished")
        if emg_frames is None:
            emg_frames = self.filter_emg(samples)()
        for i, fr in emg_frames.items():
            self._push_emg(i, fr)
        for leg in self.legs.values():
            for k, j in enumerate(leg.axes):
                if j in samples:
                    leg.pending[k].append(np.asarray(samples[j], np.float64))
            self._feed_leg(leg)
        return self._run_blocks(final=False)

    def finish(self) -> NightResult:
        """No more data: flush everything and return the night's result."""
        for i in self.emg:
            self._push_emg(i, self.emg_fe[i].finish())
        for leg in self.legs.values():
            self._feed_leg(leg, final=True)
        out = self._run_blocks(final=True)
        self.finished = True
        for a in self.alerts:
            if a.status == "suspected":  # its interval was decided under another start frame
                a.status = "confirmed" if any(
                    e.channel == a.channel and e.start_s - 2 <= a.start_s <= e.end_s for e in self.cramps) \
                    else "retracted"
                self._alert_news.append(a)
        return NightResult(cfg=self.cfg, events=self.events, new_events=out, hypnogram=self.sleep.hypnogram(),
                           bouts=self.sleep.bouts(), sleep_onset_epoch=self.sleep.onset_epoch,
                           awakening_definition=self.sleep.definition(), plm_series=list(self.plm.series),
                           signal_quality=self._signal_quality(), notes=self.notes + self._capability_notes())

    def _signal_quality(self) -> dict[str, dict[str, Any]]:
        """Per EMG channel: resting level (µV), artefact and lost shares (%), mains (Hz); per leg's
        accelerometer: lost and moving shares (%)."""
        quality: dict[str, dict[str, Any]] = {}
        for i in self.emg:
            st = self.emg_stage[i]
            b = np.repeat(st.block_base.view, st.block_len.view)  # the per-frame resting level
            n = st.bad.n
            quality[self.channels[i].label] = {
                "kind": "emg",
                "baseline_uV": round(float(np.nanmedian(b)), 3) if b.size and np.isfinite(b).any() else None,
                "artifact_pct": round(100 * (st.n_artifact / n), 2) if n else 0.0,
                "lost_pct": round(100 * (st.n_lost / n), 2) if n else 0.0,
                "mains_hz": self.emg_fe[i].mains_hz,
            }
        for side, leg in self.legs.items():
            n = leg.stage.lost.n
            quality[f"ACC {side}"] = {"kind": "acc",
                                      "lost_pct": round(100 * (leg.stage.n_lost / n), 2) if n else 0.0,
                                      "moving_pct": round(100 * (leg.stage.n_moving / n), 2) if n else 0.0}
        return quality

    def _capability_notes(self) -> list[str]:
        notes = []
        if not self.legs:
            notes.append("no accelerometer: rollovers, bed exits and posture are not detected; sleep and "
                         "wake are estimated from EMG activity only; cramps cannot be told from "
                         "voluntary contractions by preceding movement")
        if not self.emg:
            notes.append("no leg EMG: cramps and leg movements cannot be detected; only sleep, "
                         "awakenings, rollovers and bed exits are reported")
        sides = {self.channels[i].side for i in self.emg}
        if len(sides) == 1:
            other = "right" if "left" in sides else "left"
            notes.append(f"EMG on the {next(iter(sides))} leg only: the {other} leg is not watched, and "
                         "two-legged movements cannot be told from one-sided cramps by co-activation")
        notes.append("quiet wakefulness without movement cannot be seen by a leg sensor and counts as sleep")
        return notes

    def _push_emg(self, i: int, fr: EmgFrames) -> None:
        if len(fr):
            self._emg_buf[i].append(fr)
            self._emg_buf_n[i] += len(fr)

    def _feed_leg(self, leg: _Leg, final: bool = False) -> None:
        n = min(sum(len(a) for a in p) for p in leg.pending)
        if n == 0:
            return
        cols = []
        for k in range(3):
            buf = np.concatenate(leg.pending[k])
            cols.append(buf[:n])
            leg.pending[k] = [buf[n:]] if len(buf) > n else []
        fr = leg.fe.update(np.stack(cols, axis=1))
        if len(fr):
            self._acc_buf[leg.side].append(fr)
            self._acc_buf_n[leg.side] += len(fr)

    # ---------------------------------------------------------------- blocks
    def _run_blocks(self, final: bool) -> list[Event]:
        before = len(self.events)
        k = self._blocks_ready()
        if k:
            self._process_block(self._take_emg(k * self.block_frames), self._take_acc(k * self.acc_block), k)
        if final:
            remaining = max([self._emg_buf_n[i] for i in self.emg] +
                            [self._acc_buf_n[s] * self.block_frames // self.acc_block for s in self.legs]
                            + [0])
            while remaining > 0:
                take = min(self.block_frames, remaining)
                acc_take = -(-take * self.acc_block // self.block_frames)
                self._process_block(self._take_emg(take, pad=True), self._take_acc(acc_take, pad=True), 1)
                remaining -= take
            for i in self.emg:
                self._stage_out(i, self.emg_stage[i].flush())
            for side, leg in self.legs.items():
                self._posture_out(side, leg.stage.flush())
            self._finalize(horizon=float("inf"), final=True)
        return self.events[before:]

    def _blocks_ready(self) -> int:
        """How many whole blocks every channel has frames for."""
        if not self.emg and not self.legs:
            return 0
        return min([self._emg_buf_n[i] // self.block_frames for i in self.emg]
                   + [self._acc_buf_n[s] // self.acc_block for s in self.legs])

    def _take_emg(self, n: int, pad: bool = False) -> dict[int, EmgFrames]:
        out = {}
        for i in self.emg:
            cat = EmgFrames.concat(self._emg_buf[i])
            head, rest = cat[:n], cat[n:]
            self._emg_buf[i] = [rest] if len(rest) else []
            self._emg_buf_n[i] = len(rest)
            if pad and len(head) < n:
                head = head.padded(n - len(head))
            out[i] = head
        return out

    def _take_acc(self, n: int, pad: bool = False) -> dict[str, AccFrames]:
        out = {}
        for s in self.legs:
            parts = self._acc_buf[s]
            if parts:
                mean = np.concatenate([p.mean for p in parts])
                dyn = np.concatenate([p.dynamic for p in parts])
                lost = np.concatenate([p.lost for p in parts])
            else:
                mean, dyn, lost = np.zeros((0, 3)), np.zeros(0), np.zeros(0, bool)
            head = AccFrames(mean[:n], dyn[:n], lost[:n])
            self._acc_buf[s] = [AccFrames(mean[n:], dyn[n:], lost[n:])] if len(dyn) > n else []
            self._acc_buf_n[s] = max(0, len(dyn) - n)
            if pad and len(head) < n:
                m = n - len(head)
                head = AccFrames(np.r_[head.mean, np.zeros((m, 3))], np.r_[head.dynamic, np.zeros(m)],
                                 np.r_[head.lost, np.ones(m, bool)])
            out[s] = head
        return out

    def _process_block(self, emg: dict[int, EmgFrames], acc: dict[str, AccFrames], k: int) -> None:
        for i, fr in emg.items():
            self._stage_out(i, self.emg_stage[i].process(fr))
            self._twitches(i, len(fr))
        for s, afr in acc.items():
            self._posture_out(s, self.legs[s].stage.process(afr))
        self.blocks += k
        self._feed_sleep(final=False)
        horizon = self.blocks * self.block_s - self.cfg.engine.lookahead_s
        self._finalize(horizon=horizon, final=False)
        self._trim_history(horizon)

    def _trim_history(self, horizon: float) -> None:
        """Let per-frame history go that no later decision can read: everything more than
        ``engine.history_s`` before the oldest thing still undecided (an open or pending
        interval, an unscored sleep epoch, the classification horizon). Keeps a night's state
        the same size however long the night (0 keeps it all)."""
        keep_s = self.cfg.engine.history_s
        if keep_s <= 0:
            return
        t = min(horizon, self.sleep.activity.n * self.sleep.epoch_s)
        for i in self.emg:
            st = self.emg_stage[i]
            o = st.oldest_open()
            if o is not None:
                t = min(t, o * self.frame_s)
        t = min([t] + [s * self.frame_s for _, s, _ in self._lms]
                + [x.start_f * self.frame_s for x in self._sus if not x.decided]
                + [x[0] for x in self._pending_rot + self._pending_up])
        fs = self.cfg.acc.frame_s
        for leg in self.legs.values():
            o = leg.stage.oldest_open()
            if o is not None:
                t = min(t, o * fs)
        t -= keep_s
        if t <= 0:
            return
        k = int(t / self.frame_s)
        for i in self.emg:
            for g in self.emg_stage[i].history():
                g.drop_before(k)
            tw = self._twitch_frames[i]
            if tw and tw[0] < k:
                self._twitch_frames[i] = [f for f in tw if f >= k]
        for leg in self.legs.values():
            for g in leg.stage.history():
                g.drop_before(int(t / fs))

    def _twitches(self, i: int, n: int) -> None:
        """Fasciculation-like twitches: a frame above the movement onset level with no movement
        within ±``_TWITCH_GAP`` frames (too brief for a movement, too strong for ECG bleed).
        Judged ``_TWITCH_GAP`` frames late, once the frames after it exist."""
        st = self.emg_stage[i]
        g = _TWITCH_GAP
        k1 = st.env_fast.n - g
        k0 = max(0, k1 - n)
        if k1 <= k0:
            return
        lo = max(0, k0 - g)
        b = st.baseline[lo:k1 + g]
        on = st.thresholds(b)[0]
        moving = st.env_fast[lo:k1 + g] >= on
        near = np.convolve(moving.astype(np.int32), np.ones(2 * g + 1, np.int32), mode="same") > 0
        off = k0 - lo
        cand = (st.mav[k0:k1] > on[off:off + k1 - k0]) & ~near[off:off + k1 - k0]
        self._twitch_frames[i].extend((k0 + np.flatnonzero(cand)).tolist())

    def _stage_out(self, i: int, out: StageOut) -> None:
        for s, e in out.lms:
            self._lms.append((i, s, e))
            if (e - s) * self.frame_s >= self.cfg.activation.min_duration_s:
                d = self.emg_stage[i].fast_delay
                self._lm_onsets.append(max(0.0, (s - d) * self.frame_s))
                hz = self._emg_hz(i, round(s - d), round(e - d))
                if hz is not None:
                    self._lm_hz.append(((e - d) * self.frame_s, i, hz))
        del self._lm_onsets[:-1000]
        del self._lm_hz[:-1000]
        d_slow = self.emg_stage[i].slow_delay
        for s, e in out.sustained:
            self._sus.append(_Sustained(i, (s - d_slow) * self.frame_s, (e - d_slow) * self.frame_s, s, e))
        ch = self.channels[i]
        st = self.emg_stage[i]
        for s, e in out.artifacts:
            bad = st.bad[s:e]
            kinds = [BAD_NAMES[b] for b in BAD_NAMES if b != LOST and np.any(bad & b)]
            dur = (e - s) * self.frame_s
            if kinds == ["lead_off"] and dur < self.cfg.artifact.lead_off_min_s:
                continue
            if kinds == ["pop"] and self._active_near(i, s, e):
                continue  # a level step during real muscle activity is movement, not a pop
            sub = next((k for k in _ARTIFACT_PRIORITY if k in kinds), "artifact")
            self.events.append(Event("artifact", s * self.frame_s, e * self.frame_s, ch.side, ch.label,
                                     1.0, sub, {"flags": kinds}))
        for s, e in out.lost:
            self.events.append(Event("signal_lost", s * self.frame_s, e * self.frame_s, ch.side,
                                     ch.label, 1.0, "", {}))

    def _emg_hz(self, i: int, r0: int, r1: int) -> float | None:
        """Characteristic EMG frequency (Hz) of channel ``i``'s activity in frames [r0, r1): the
        frames at least twice the resting baseline, with the resting noise of the quiet frames
        in the 30 s before taken out (detector.engine.spectral). None when it cannot be told."""
        st = self.emg_stage[i]
        r0, r1 = max(0, r0), min(r1, st.mav.n)
        cr = self.cfg.cramp
        q0 = max(0, r0 - round(cr.spectral_quiet_s / self.frame_s))
        if r1 - r0 < 1 or r0 <= q0:
            return None
        k = r0 - q0  # the quiet window is [:k], the activity [k:]
        mav, dmav = st.mav[q0:r1], st.dmav[q0:r1]
        b, bad = st.baseline[q0:r1], st.bad[q0:r1]
        quiet = (mav[:k] < cr.spectral_quiet_ratio * b[:k]) & (bad[:k] == 0) & (dmav[:k] > 0)
        rest = resting_levels(mav[:k], dmav[:k], quiet)
        if rest is None:
            return None
        act = (mav[k:] > cr.spectral_active_ratio * b[k:]) & (bad[k:] == 0) & (dmav[k:] > 0)
        return characteristic_hz(mav[k:][act], dmav[k:][act], rest, fs=self.channels[i].fs)

    def _spectral_shift(self, i: int, onset_s: float, end_s: float) -> tuple[float | None, float | None]:
        """A contraction's characteristic EMG frequency (Hz) and its rise over the same channel's
        last 50 leg movements before it (relative; None without enough of them)."""
        hz = self._emg_hz(i, round(onset_s / self.frame_s), round(end_s / self.frame_s))
        ref = [h for t, ch, h in self._lm_hz if ch == i and t < onset_s][-self.cfg.cramp.spectral_lms:]
        return hz, relative_shift(hz, ref)

    def _active_near(self, i: int, s: int, e: int) -> bool:
        """Whether channel ``i``'s median envelope shows activity around frames [s, e)."""
        st = self.emg_stage[i]
        lo, hi = max(0, s - 5), min(st.env_fast.n, e + 10)
        if hi <= lo:
            return False
        return bool(np.any(st.env_fast[lo:hi] > st.thresholds(st.baseline[lo:hi])[0]))

    def _posture_out(self, side: str, out: PostureOut) -> None:
        fs = self.cfg.acc.frame_s
        for s, e, ang in out.rotations:
            self._pending_rot.append((s * fs, e * fs, ang, side))
        for s, e in out.upright:
            if (e - s) * fs >= self.cfg.acc.bed_exit_min_s:
                self._pending_up.append((s * fs, e * fs, side))

    # ---------------------------------------------------------------- classification
    def _finalize(self, horizon: float, final: bool) -> None:
        self._emit_posture(horizon)
        self._decide_sustained(horizon)
        self._emit_lms(horizon)
        if final:
            self._feed_sleep(final=True)
        self.sleep.score(final)
        self.events += self.plm.advance(self.events, self.sleep.wake.view, self._complete_before(horizon),
                                        final)
        undecided = [t for t in (self._open_sustained_start(s) for s in ("left", "right")) if t is not None]
        self.events += self.sleep.emit(final, cramps=self.cramps, undecided_from=undecided)

    def _feed_sleep(self, final: bool) -> None:
        """Give the sleep scorer each epoch's activity once the epoch is complete and position
        changes ending within ``acc.max_rollover_s + acc.still_min_s`` after it are known; when
        ``final``, every epoch recorded (the last one possibly partial)."""
        sl, a = self.sleep, self.cfg.acc
        done = self.blocks * self.block_s
        known = done - (a.max_rollover_s + a.still_min_s + self.block_s)
        ep = sl.epoch_s
        while ((sl.activity.n + 1) * ep <= known + 1e-9
               or (final and done - sl.activity.n * ep > 1e-9)):
            sl.add_epochs(np.array([self._epoch_activity(sl.activity.n)]))

    def _epoch_activity(self, e: int) -> float:
        """Movement activity of epoch ``e`` (intensity seconds, position changes left out;
        without an accelerometer, EMG-active seconds)."""
        ep = self.sleep.epoch_s
        t0, t1 = e * ep, (e + 1) * ep
        if self.legs:
            total = self.movement_intensity(t0, t1)
            for r0, r1, *_ in self.rotations + self._pending_rot:
                if r1 + 2 > t0 and r0 - 2 < t1:
                    total -= self.movement_intensity(max(t0, r0 - 2), min(t1, r1 + 2))
            return max(total, 0.0)
        if self.emg:
            return self._moving_seconds(t0, t1)
        return 0.0

    def _emit_posture(self, horizon: float) -> None:
        """Emit position changes and bed exits once ``horizon`` has passed their end.

        The other leg's view of the same change is detected well within the look-ahead, so it
        is already pending then; both views become one event spanning both.
        """
        groups: tuple[tuple[list[Any], str], ...] = ((self._pending_rot, "rollover"),
                                                (self._pending_up, "bed_exit"))
        for items, kind in groups:
            known: list[Any] = self.rotations if kind == "rollover" else self.upright
            while True:
                ready = sorted(x for x in items if x[1] <= horizon)
                if not ready:
                    break
                x = ready[0]
                group = [y for y in items if min(x[1], y[1]) - max(x[0], y[0]) > -2.0]
                items[:] = [y for y in items if y not in group]
                start, end = min(y[0] for y in group), max(y[1] for y in group)
                if any(min(end, k[1]) - max(start, k[0]) > -2.0 for k in known):
                    continue
                merged = (start, end, *x[2:-1], "both" if len({y[-1] for y in group}) > 1 else x[-1])
                known.append(merged)
                feats: dict[str, Any] = {}
                if kind == "rollover":
                    feats["rotation_deg"] = max(y[2] for y in group)
                feats["legs"] = sorted({y[-1] for y in group})
                self.events.append(Event(kind, start, end, None, None, 0.9, "", feats))

    def _open_sustained_start(self, side: str) -> float | None:
        starts = []
        for i in self.emg:
            if self.channels[i].side != side:
                continue
            st = self.emg_stage[i]
            if st.sus.open_since is not None:
                starts.append((st.sus.open_since - st.slow_delay) * self.frame_s)
        starts += [x.start_s for x in self._sus if not x.decided and self.channels[x.ch].side == side]
        return min(starts) if starts else None

    def _decide_sustained(self, horizon: float) -> None:
        """Weigh every sustained interval whose context is complete: a cramp, or sustained
        activity that stays in the output with the reason it is not called a cramp."""
        cr = self.cfg.cramp
        for x in self._sus:
            if x.decided or x.end_s > horizon:
                continue
            x.decided = True
            if x.end_s - x.start_s >= cr.min_duration_s:
                feats = self._sustained_features(x)
                p, terms = cramp_probability(feats, self.cfg)
                x.cramp = p >= self.cfg.cramp_model.threshold
                x.features = feats | {"cramp_probability": p, "why": explain(terms)}
                ch = self.channels[x.ch]
                if x.cramp:
                    ev = Event("cramp", feats["onset_s"], x.end_s, ch.side, ch.label, p, "", x.features)
                    self.cramps.append(ev)
                    self.sleep.add_cramp(ev.start_s, ev.end_s)
                    self.events.append(ev)
                elif (feats["fill"] < cr.cluster_max_fill and feats["median_ratio"] < cr.on_ratio
                      and self._lm_would_show(x, feats)):
                    # Not a sustained contraction: leg movements with a little tone between them
                    # (mostly below the sustained level, at a median under its onset ratio). The
                    # leg movements are the events; each stays in the output.
                    pass
                elif (x.end_s - feats["onset_s"] > self.cfg.activation.max_lm_s
                      or not self._lm_would_show(x, feats)):
                    # Longer than any leg movement, or one that no leg-movement event would show
                    # (below the AASM criteria, or during a turn or standing): seen, and said why.
                    x.features["reason"] = "not a cramp: " + "; ".join(x.features["why"]["against"][:2] or
                                                                        ["too little evidence"])
                    ev = Event("sustained_activity", feats["onset_s"], x.end_s, ch.side, ch.label,
                               round(1.0 - p, 3), "", x.features)
                    self.sustained.append(ev)
                    self.events.append(ev)
            self._settle_alerts(x)
        # A decided interval lives on as its event (or its leg movements); nothing reads it again.
        self._sus = [x for x in self._sus if not x.decided]

    def _lm_would_show(self, x: _Sustained, feats: dict[str, Any]) -> bool:
        """Whether a leg movement of this channel covers sustained interval ``x`` and will be
        reported (not absorbed by a position change or standing). Uses only what is known within
        the look-ahead, like the features."""
        d = self.emg_stage[x.ch].fast_delay
        covering = [(s, e) for ch, s, e in self._lms if ch == x.ch and
                    (s - d) * self.frame_s < x.end_s and (e - d) * self.frame_s > x.start_s
                    and (e - s) * self.frame_s >= self.cfg.activation.min_duration_s]
        t0, m = feats["onset_s"], self.cfg.cramp.lm_posture_margin_s
        return bool(covering) and not (self._upright_within(t0 - m, x.end_s + m)
                                       or any(r[0] - m <= x.end_s and r[1] + m >= t0
                                              for r in self.rotations + self._pending_rot))

    def _meets_cramp_criteria(self, feats: dict[str, Any]) -> bool:
        """The cramp decision (DOMAIN.md), shared by final decisions and live alerts (which see
        the movement after the onset only as far as it has happened)."""
        return cramp_probability(feats, self.cfg)[0] >= self.cfg.cramp_model.threshold

    # ---------------------------------------------------------------- live alerts
    def watch(self) -> list[CrampAlert]:
        """Cramps suspected in the frames not yet processed as blocks, and alerts settled since
        the last call (status ``confirmed``/``retracted``). For the live service, which calls
        this after each hand-over of samples; alerts never change the events."""
        news, self._alert_news = self._alert_news, []
        peeks = {i: self.emg_stage[i].peek(self._pending_emg(i)) for i in self.emg}
        for i, pk in peeks.items():
            # One alert per contraction: none if one was raised while this interval was open.
            if pk.open_since is None or any(a.channel_index == i and a.met_at_s > pk.open_since * self.frame_s
                                            for a in self.alerts[-8:]):
                continue
            d_slow = self.emg_stage[i].slow_delay
            x = _Sustained(i, (pk.open_since - d_slow) * self.frame_s, (pk.end - d_slow) * self.frame_s,
                           pk.open_since, pk.end)
            if x.end_s - x.start_s < self.cfg.cramp.min_duration_s:
                continue
            feats = self._sustained_features(x)
            if x.start_f >= self.emg_stage[i].env_fast.n:
                # The onset refinement reads processed frames only; none reach this far yet.
                feats["onset_s"] = x.start_s
                feats["duration_s"] = x.end_s - x.start_s
            # The part of the contraction not yet in blocks: artefacts, plateau and the other leg.
            n_tail = len(pk.on)
            seen = max(0, self.emg_stage[i].mav.n - x.start_f)
            if n_tail:
                w = n_tail / max(1, seen + n_tail)
                feats["artifact_fraction"] += w * (float(np.mean(pk.bad > 0)) - feats["artifact_fraction"])
                feats["fill"] += w * (float(np.mean(pk.on)) - feats["fill"])
                side = self.channels[i].side
                if seen * self.frame_s < self.cfg.cramp.coactivation_window_s:
                    for j, other in peeks.items():
                        if self.channels[j].side != side and len(other.on):
                            feats["coactivation"] = max(feats["coactivation"], float(np.mean(other.on)))
            if self._meets_cramp_criteria(feats):
                ch = self.channels[i]
                alert = CrampAlert(i, x.start_f, ch.side, ch.label, feats["onset_s"], pk.end * self.frame_s,
                                   "suspected", feats)
                self.alerts.append(alert)
                news.append(alert)
        return news

    def _pending_emg(self, i: int) -> EmgFrames:
        cat = EmgFrames.concat(self._emg_buf[i])
        if len(self._emg_buf[i]) > 1:
            self._emg_buf[i] = [cat]  # same frames, joined once instead of at every look
        return cat

    def _settle_alerts(self, x: _Sustained) -> None:
        for a in self.alerts:
            if a.status == "suspected" and a.channel_index == x.ch and x.start_f <= a.start_f < max(
                    x.end_f, x.start_f + 1):
                a.status = "confirmed" if x.cramp else "retracted"
                self._alert_news.append(a)

    def _sustained_features(self, x: _Sustained) -> dict[str, Any]:
        """The evidence about one sustained interval (cramp_evidence.FEATURE_TEXT says what each is).

        Everything read lies within ``engine.lookahead_s`` after the interval, so the result
        never depends on how the data arrived."""
        cr = self.cfg.cramp
        st = self.emg_stage[x.ch]
        s, e = x.start_f, max(x.end_f, x.start_f + 1)
        b = st.baseline[s:e]
        slow = st.env_slow[s:e]
        ratio = slow / np.maximum(b, 1e-6)
        side = self.channels[x.ch].side
        # Onset refined on the fast envelope: the last frame below the sustained level before it.
        fast = st.env_fast  # read by absolute frame index
        lb = max(0, s - round(cr.onset_lookback_s / self.frame_s))
        s_on = st.thresholds(st.baseline[lb:s + 1])[2]
        back = fast[lb:s + 1] < s_on
        below = np.flatnonzero(back)
        onset_f = (lb + int(below[-1]) + 1) if below.size else lb
        onset_s = max(0.0, (onset_f - st.fast_delay) * self.frame_s)
        duration = x.end_s - onset_s
        n_av = min(e, fast.n)  # live alerts look at intervals not yet wholly processed
        fill = float(np.mean(fast[s:n_av] > st.thresholds(b[:n_av - s])[2])) if n_av > s else 1.0
        # A burst, a pause, then the contraction: a movement that led into it (merged into the
        # interval by the off-hold). The longest dip below the sustained-off level early on.
        g1 = min(n_av, onset_f + round(cr.early_window_s / self.frame_s))
        gap_s = 0.0
        if g1 > onset_f:
            below_off = fast[onset_f:g1] < st.thresholds(st.baseline[onset_f:g1])[3]
            gap_s = longest_run(below_off) * self.frame_s
        # The other leg at the onset: a body movement starts on both legs at once; what the
        # other leg does later is the wearer's reaction to the pain.
        co_n = max(1, round(min(cr.coactivation_window_s, 0.5 * duration) / self.frame_s))
        coact = 0.0
        for j in self.emg:
            if self.channels[j].side == side or j == x.ch:
                continue
            o = self.emg_stage[j]
            n = min(s + co_n, o.env_slow.n)
            if n > s:
                on_other = o.env_slow[s:n] > o.thresholds(o.baseline[s:n])[2]
                coact = max(coact, float(on_other.mean()))
        has_acc = bool(self.legs)
        mi = self.movement_intensity if has_acc else (lambda *_a: 0.0)
        lead_in = mi(onset_s - cr.lead_in_s, onset_s - cr.lead_in_skip_s)
        prior = mi(onset_s - cr.prior_window_s, onset_s - cr.lead_in_s)
        unseen = max(0.0, cr.prior_window_s - onset_s) / cr.prior_window_s
        if has_acc and unseen:  # recordings start with the wearer awake in bed
            prior += unseen * self.cfg.cramp_model.prior_ref
        ctx_s = max(cr.context_window_s - cr.prior_window_s, 1.0)
        context = mi(onset_s - cr.context_window_s, onset_s - cr.prior_window_s)
        unseen = min(ctx_s, max(0.0, cr.context_window_s - onset_s)) / ctx_s
        if has_acc and unseen:
            context += unseen * self.cfg.cramp_model.context_ref
        # The build-up: time until the envelope first reaches ramp_level of the contraction's
        # median level (at most the lead-in's length); movement of this leg during it led into it.
        rise = fast[onset_f:n_av]
        ramp_s = 0.0
        if rise.size:
            reached = np.flatnonzero(rise >= cr.ramp_level * float(np.median(rise)))
            ramp_s = min((int(reached[0]) if reached.size else rise.size) * self.frame_s, cr.lead_in_s)
        ramp = mi(onset_s + cr.ramp_skip_s, onset_s + ramp_s, side) if ramp_s > cr.ramp_skip_s else 0.0
        e_end = min(onset_s + cr.early_window_s, onset_s + max(cr.early_skip_s + 1.0, 0.5 * duration))
        early = mi(onset_s + cr.early_skip_s, e_end, side)
        later = mi(e_end, x.end_s + cr.after_window_s)
        post = mi(x.end_s, x.end_s + cr.after_window_s)
        post_side = mi(x.end_s, x.end_s + cr.after_window_s, side)
        post_other = max((mi(x.end_s, x.end_s + cr.after_window_s, s) for s in self.legs if s != side),
                         default=0.0)
        tw = self._twitch_frames[x.ch]
        t_lo = (onset_f - cr.twitch_window_s / self.frame_s)
        # A fasciculation does not move the leg: a twitch with the shank moving is a movement.
        twitches = _count_twitches([k for k in tw if t_lo <= k < onset_f - 10
                                    and not self._leg_moved(side, k * self.frame_s)],
                                   self.frame_s, cr.twitch_ecg_gap_s)
        rots = self.rotations + self._pending_rot
        r_on, u_on = onset_s + cr.rotation_onset_after_s, onset_s + cr.upright_onset_after_s
        rot_onset = any(r[0] < r_on and r[1] > onset_s - cr.posture_before_s for r in rots)
        rot_after = any(r[0] >= r_on and r[0] < x.end_s + cr.rotation_after_s for r in rots)
        up_onset = self._upright_within(onset_s - cr.posture_before_s, u_on)
        up_after = self._upright_within(u_on, x.end_s + cr.after_window_s)
        bad = st.bad[s:e]
        emg_hz, shift = self._spectral_shift(x.ch, onset_s, x.end_s)
        # Residual tension: a cramp leaves the muscle above resting for minutes (DOMAIN.md); the
        # median envelope over clean frames 5 s to after_window_s after the end, over resting.
        d = round(st.fast_delay)
        a0 = round((x.end_s + cr.residual_skip_s) / self.frame_s) + d
        a1 = min(round((x.end_s + cr.after_window_s) / self.frame_s) + d, st.env_fast.n)
        after_ratio = None
        if a1 - a0 >= round(cr.residual_min_s / self.frame_s):
            clean = st.bad[a0:a1] == 0
            if clean.mean() >= cr.residual_min_clean:
                rel = st.env_fast[a0:a1][clean] / np.maximum(st.baseline[a0:a1][clean], 1e-6)
                after_ratio = float(np.median(rel))
        return {
            "onset_s": onset_s,
            "emg_hz": emg_hz,
            "spectral_shift": shift,
            "after_ratio": after_ratio,
            "periodic_before": self._periodic_before(onset_s),
            "duration_s": duration,
            "median_ratio": float(np.median(ratio)) if ratio.size else 0.0,
            "peak_ratio": float(ratio.max()) if ratio.size else 0.0,
            "baseline_uV": float(np.median(b)) if b.size else 0.0,
            "fill": fill,
            "onset_gap_s": gap_s,
            "coactivation": coact,
            "has_acc": has_acc,
            "lead_in_intensity": lead_in,
            "ramp_s": ramp_s,
            "ramp_intensity": ramp,
            "prior_intensity": prior,
            "context_intensity": context,
            "early_intensity": early,
            "early_span_s": e_end - onset_s - cr.early_skip_s,
            "later_intensity": later,
            "post_intensity": post,
            "post_side_intensity": post_side,
            "post_other_intensity": post_other,
            "twitches_before": twitches,
            "rotation_at_onset": rot_onset,
            "rotation_after": rot_after,
            "upright_at_onset": up_onset,
            "upright_after": up_after,
            "artifact_fraction": float(np.mean(bad > 0)) if bad.size else 0.0,
        }

    def _periodic_before(self, onset_s: float) -> int:
        """How many leg-movement candidates (either leg, emitted or not; onsets within
        ``cramp.periodic_merge_s`` counted once, as AASM combines bilateral ones) form a regular
        series ending at ``onset_s``: intervals within the PLM limits (``plm.aasm_min_interval_s``
        to ``plm.max_interval_s``) whose longest is at most ``cramp_model.periodic_spread`` times
        the shortest. 0 if none."""
        m, cr, plm = self.cfg.cramp_model, self.cfg.cramp, self.cfg.plm
        t_lo = onset_s - plm.max_interval_s * (m.periodic_min + 1)
        onsets = self._lm_onsets
        merged: list[float] = []
        for t in sorted(t for t in onsets if t_lo <= t < onset_s - cr.periodic_recent_s):
            if not merged or t - merged[-1] > cr.periodic_merge_s:
                merged.append(t)
        chain = [*merged, onset_s]
        n = 0
        lo, hi = np.inf, 0.0
        for a, b in zip(chain[-2::-1], chain[::-1], strict=False):
            gap = b - a
            if (not plm.aasm_min_interval_s <= gap <= plm.max_interval_s
                    or max(hi, gap) > m.periodic_spread * min(lo, gap)):
                break
            lo, hi, n = min(lo, gap), max(hi, gap), n + 1
        return n

    def _moving_seconds(self, t0: float, t1: float, side: str | None = None) -> float:
        """Seconds in [t0, t1) with movement: accelerometer when present, else EMG activity."""
        if t1 <= t0:
            return 0.0
        if self.legs:
            fs = self.cfg.acc.frame_s
            k0, k1 = max(0, int(np.floor(t0 / fs))), max(0, int(np.ceil(t1 / fs)))
            tot = None
            for s, leg in self.legs.items():
                if side is not None and s != side:
                    continue
                m = leg.stage.moving[k0:k1].astype(bool)
                tot = m if tot is None else (tot[: len(m)] | m[: len(tot)])
            return float(np.sum(tot)) * fs if tot is not None else 0.0
        k0, k1 = max(0, int(t0 / self.frame_s)), max(0, int(t1 / self.frame_s))
        active = None
        for i in self.emg:
            st = self.emg_stage[i]
            f = st.env_fast[k0:k1] > st.thresholds(st.baseline[k0:k1])[0]
            active = f if active is None else (active[: len(f)] | f[: len(active)])
        if active is None or active.size == 0:
            return 0.0
        per_s = max(1, round(1 / self.frame_s))
        m = active[: len(active) // per_s * per_s].reshape(-1, per_s).any(axis=1)
        return float(m.sum())

    def movement_intensity(self, t0: float, t1: float, side: str | None = None) -> float:
        """Sum over [t0, t1) of per-frame movement intensity (louder leg), frame seconds weighted.

        Without an accelerometer, EMG-active seconds stand in (a coarser proxy).
        """
        if not self.legs:
            return self._moving_seconds(t0, t1)
        if t1 <= t0:
            return 0.0
        a = self.cfg.acc
        fs = a.frame_s
        k0, k1 = max(0, int(np.floor(t0 / fs))), max(0, int(np.ceil(t1 / fs)))
        best = None
        for s, leg in self.legs.items():
            if side is not None and s != side:
                continue
            dyn = leg.stage.dynamic[k0:k1]
            inten = np.clip((dyn - a.move_g) / a.move_g, 0.0, self.cfg.sleep.intensity_cap)
            best = inten if best is None else np.maximum(best[: len(inten)], inten[: len(best)])
        return float(np.sum(best)) * fs if best is not None else 0.0

    def _leg_moved(self, side: str, t: float) -> bool:
        """Whether ``side``'s shank moved (dynamic acceleration over ``acc.move_g``) within one
        accelerometer frame of ``t`` (s)."""
        leg = self.legs.get(side)
        if leg is None:
            return False
        a = self.cfg.acc
        k = int(np.floor(t / a.frame_s))
        dyn = leg.stage.dynamic[max(0, k - 1):max(0, k + 2)]
        return bool(np.any(dyn > a.move_g))

    def _upright_within(self, t0: float, t1: float) -> bool:
        """Whether either shank was upright (standing, walking) at any time in [t0, t1]."""
        fs = self.cfg.acc.frame_s
        k0, k1 = max(0, int(np.floor(t0 / fs))), max(0, int(np.ceil(t1 / fs)))
        return any(bool(leg.stage.upright[k0:k1].any()) for leg in self.legs.values())

    def _emit_lms(self, horizon: float) -> None:
        act = self.cfg.activation
        keep = []
        for ch, s, e in self._lms:
            st = self.emg_stage[ch]
            d = st.fast_delay
            t0, t1 = max(0.0, (s - d) * self.frame_s), (e - d) * self.frame_s
            if t1 - t0 < act.min_duration_s:
                continue
            side = self.channels[ch].side
            open_sus = self._open_sustained_start(side)
            if t1 > horizon or (open_sus is not None and open_sus <= t1 + 2):
                keep.append((ch, s, e))
                continue
            # Covered by a longer event of the same leg, which counts it (decided before any leg
            # movement inside it), or by a position change or standing, which cover it.
            host = next((c for c in self.cramps + self.sustained
                         if c.side == side and c.start_s - 2 <= t1 and c.end_s + 2 >= t0), None)
            if host is not None:
                host.features["absorbed_lms"] = host.features.get("absorbed_lms", 0) + 1
                continue
            if any(r[0] - 5 <= t1 and r[1] + 5 >= t0 for r in self.rotations):
                continue
            if self._upright_within(t0 - 5, t1 + 5):
                continue
            bad = st.bad[max(0, s - 10):e] & ~np.uint8(POP)
            if bad.size and np.mean(bad > 0) > 0.3:
                continue
            env = st.env_fast[s:e]
            b = float(np.median(st.baseline[s:e]))
            sub = "lm" if t1 - t0 <= act.max_lm_s else "long"
            ch_ = self.channels[ch]
            feats = {"peak_uV": float(env.max()), "mean_uV": float(env.mean()), "baseline_uV": b,
                     "peak_ratio": float(env.max() / max(b, 1e-6))}
            conf = float(np.clip(0.5 + 0.1 * np.log2(max(feats["peak_ratio"], 1.0)), 0.5, 0.99))
            # A train goes on across a pause of the AASM offset: the next activity within one
            # burst interval continues it, however few bursts it has.
            last = self._train_end.get(ch)
            going_on = last is not None and 0 <= t0 - last <= self.cfg.rhythm.max_interval_s
            train = self._rhythmic_bursts(ch, round(t0 / self.frame_s), round(t1 / self.frame_s),
                                          1 if going_on else self.cfg.rhythm.min_bursts)
            if train:
                # Walking or rhythmic leg activity (ALMA, foot tremor): one event per burst, none
                # of them a leg movement for PLM scoring; each says which activity it came from.
                for a, z in train:
                    self.events.append(Event("limb_movement", a, z, side, ch_.label, conf, "rhythmic",
                                             feats | {"train_bursts": len(train), "activity_start_s": t0,
                                                      "activity_end_s": t1}))
                self._train_end[ch] = t1
                continue
            self.events.append(Event("limb_movement", t0, t1, side, ch_.label, conf, sub, feats))
        self._lms = keep

    def _rhythmic_bursts(self, ch: int, r0: int, r1: int, min_bursts: int) -> list[tuple[float, float]]:
        """Bursts (s) of a train inside activity frames [r0, r1) of channel ``ch``, or [] when it
        is not one: at least ``min_bursts`` bursts (``rhythm.min_bursts`` for a new train), each
        parted from the next by a dip of the 0.15-s envelope below ``rhythm.dip_ratio`` of the
        activity's peak level, starting ``rhythm.min_interval_s``-``max_interval_s`` apart with
        the longest interval at most ``rhythm.max_spread`` times the shortest. The AASM offset
        (0.5 s below resting + 2 µV) joins such bursts into one movement; in walking each is a
        step."""
        rh = self.cfg.rhythm
        st = self.emg_stage[ch]
        mav = st.mav[max(0, r0):min(r1, st.mav.n)].astype(np.float64)
        if mav.size * self.frame_s < 2 * rh.min_interval_s or mav.size < 9:
            return []
        sm = np.convolve(mav, np.ones(3) / 3, mode="same")
        peak = float(np.quantile(sm, 0.9))
        low = sm < rh.dip_ratio * peak
        min_dip = max(1, round(rh.min_dip_s / self.frame_s))
        # Runs of "not low" frames are bursts; a dip shorter than min_dip does not part them.
        edges = np.flatnonzero(np.diff(np.r_[0, (~low).astype(np.int8), 0]))
        runs = [[int(a), int(b)] for a, b in zip(edges[::2], edges[1::2], strict=True)]
        merged: list[list[int]] = []
        for a, b in runs:
            if merged and a - merged[-1][1] < min_dip:
                merged[-1][1] = b
            else:
                merged.append([a, b])
        bursts = [(a, b) for a, b in merged if (b - a) * self.frame_s >= rh.min_burst_s]
        # Steps are strong; a train just over the onset level is more likely heartbeats (ECG
        # bleed beats at 0.5-1.5 s too) or tone, and stays one movement.
        rest = float(np.median(st.baseline[max(0, r0):min(r1, st.baseline.n)]))
        if bursts and np.median([sm[a:b].max() for a, b in bursts]) < rh.min_peak_ratio * max(rest, 1e-6):
            return []
        if len(bursts) < min_bursts or (min_bursts > 1 and len(bursts) < 2):
            return []
        if len(bursts) == 1:
            return [((max(0, r0) + a) * self.frame_s, (max(0, r0) + b) * self.frame_s) for a, b in bursts]
        ioi = np.diff([a for a, _ in bursts]) * self.frame_s
        if ioi.min() < rh.min_interval_s or ioi.max() > rh.max_interval_s or \
                ioi.max() > rh.max_spread * ioi.min():
            return []
        base = max(0, r0) * self.frame_s
        return [(base + a * self.frame_s, base + b * self.frame_s) for a, b in bursts]

    def _complete_before(self, horizon: float) -> float:
        """Time before which every leg movement and cramp is final (for the PLM tracker)."""
        c = horizon
        for ch, s, _e in self._lms:
            c = min(c, (s - self.emg_stage[ch].fast_delay) * self.frame_s)
        for i in self.emg:
            st = self.emg_stage[i]
            if st.lm.open_since is not None:
                c = min(c, (st.lm.open_since - st.fast_delay) * self.frame_s)
        for side in ("left", "right"):
            o = self._open_sustained_start(side)
            if o is not None:
                c = min(c, o - 5)
        return c


_TWITCH_GAP = 10  # frames (0.5 s at the default frame)

# The most specific explanation names an artefact interval (a clipped burst also steps the level).
_ARTIFACT_PRIORITY = ("saturation", "flat", "lead_off", "pop")


def _count_twitches(frames: list[int], frame_s: float, ecg_gap_s: float) -> int:
    """Fasciculation-like twitches among twitch frames: runs of adjacent frames, leaving out
    runs that have another within ``ecg_gap_s`` (heartbeats bleeding into the EMG recur every
    0.6-1.5 s; fasciculations before a cramp come seconds apart, Minetto 2009)."""
    if not frames:
        return 0
    f = np.asarray(frames)
    starts = f[np.r_[True, np.diff(f) > 2]] * frame_s
    gap = np.diff(starts)
    near = np.r_[gap < ecg_gap_s, False] | np.r_[False, gap < ecg_gap_s]
    return int(np.count_nonzero(~near))

