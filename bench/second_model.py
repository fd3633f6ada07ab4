"""A second, independent model of a night, to check the detector on nights it was not tuned on.

``ingest.simulate`` is the project's own simulator, and the detector was tuned against it; a
figure on it shows that the two agree. This model is written apart from it, from DOMAIN.md and
the EMG literature, with other assumptions wherever there is a choice:

- EMG is a sum of motor-unit action-potential trains (a recruitment-and-rate-coding pool in the
  manner of Fuglevand 1993: 120 units, exponentially spread thresholds, 8-30 Hz firing with 15%
  jitter, biphasic MUAPs 1-4 ms wide), not shaped noise; rest is electrode noise, ECG bleed
  (QRS at 50-80 beats a minute), mains hum and movement wander.
- A cramp is an involuntary drive that ramps up in 0.3-2 s and waxes and wanes (0.05-0.2 Hz),
  5 s to 10 min long (log-uniform), 2-40x the resting RMS (40% at 2-6x), on one calf; the
  wearer wakes 0-60 s after the onset (a quarter begin in wake), then lies still, stretches
  (the shank turns and shakes) or stands and walks (shank vertical, steps at 1.6-2 Hz with EMG
  bursts on both legs).
- Not cramps: periodic leg movements (series of 10-40, 15-40 s apart, 0.5-4 s, 30% bilateral),
  rollovers (a burst on both legs and the gravity vector turning 60-150 degrees about the
  shank), movement in wake and voluntary contractions of 5-25 s (led into by a movement and
  accompanied by more for part of their length, DOMAIN.md), an electrode pop and a lead-off
  stretch.

    .venv/bin/python bench/second_model.py [--nights 12] [--hours 4] [--seed0 50000] [--jobs 2]

Prints cramp recall and precision (overall and per behaviour), onset error, awakening and
periodic-leg-movement F1. The seeds are never used for tuning: a change made to pass this bench
makes it a second tuning set, so report the seeds used.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from scipy import signal

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from detector.analyze import analyze_recording  # noqa: E402
from detector.engine.config import DetectorConfig  # noqa: E402
from detector.engine.events import match_intervals  # noqa: E402
from ingest.recordings.recording import array_recording  # noqa: E402

SIDES = ("left", "right")


@dataclass
class Truth:
    kind: str  # cramp, lm, rollover, awakening, voluntary
    start_s: float
    end_s: float
    side: str | None
    attrs: dict = field(default_factory=dict)


@dataclass
class Night:
    fs: float
    fs_acc: float
    hours: float
    drive: dict[str, np.ndarray]  # per leg: motor drive 0..1 per EMG sample
    extra: dict[str, np.ndarray]  # per leg: additive µV (pops, walking bursts)
    lead_off: list[tuple[str, float, float]]
    phi: dict[str, np.ndarray]  # per leg: roll angle (rad) about the shank, per ACC sample
    elev: dict[str, np.ndarray]  # per leg: shank elevation (rad), per ACC sample
    shake: dict[str, np.ndarray]  # per leg: dynamic acceleration amplitude (g), per ACC sample
    truth: list[Truth]
    sleep_onset_s: float


def _smooth_step(n: int, ramp: int) -> np.ndarray:
    x = np.ones(n)
    r = min(ramp, n // 2)
    if r > 0:
        x[:r] = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, r))
        x[-r:] = x[:r][::-1]
    return x


def plan(seed: int, hours: float) -> Night:
    rng = np.random.default_rng([seed, 77])
    fs = float(rng.choice([256.0, 500.0, 1000.0]))
    fs_acc = float(rng.choice([25.0, 50.0, 100.0]))
    T = hours * 3600
    n, na = int(T * fs), int(T * fs_acc)
    drive = {s: np.zeros(n, np.float32) for s in SIDES}
    extra = {s: np.zeros(n, np.float32) for s in SIDES}
    phi = {s: np.zeros(na) for s in SIDES}
    elev = {s: np.zeros(na) for s in SIDES}
    shake = {s: np.zeros(na) for s in SIDES}
    truth: list[Truth] = []

    # Wake bouts: falling asleep, spontaneous awakenings, the morning.
    onset = float(rng.uniform(8, 30) * 60)
    wake = [(0.0, onset)]
    for _ in range(int(rng.integers(2, 6))):
        a = float(rng.uniform(onset + 600, T - 1200))
        wake.append((a, a + float(rng.uniform(1.5, 8) * 60)))
    wake.append((T - float(rng.uniform(5, 12) * 60), T))

    def is_awake(t: float) -> bool:
        return any(a <= t < b for a, b in wake)

    def free(a: float, b: float, margin: float = 60.0) -> bool:
        return not any(min(b + margin, x.end_s) - max(a - margin, x.start_s) > 0
                       for x in truth if x.kind in ("cramp", "lm", "rollover", "voluntary", "walk"))

    def add_drive(side: str, a: float, b: float, level: np.ndarray | float, ramp_s: float = 0.2) -> None:
        i, j = int(a * fs), min(n, int(b * fs))
        if j <= i:
            return
        if isinstance(level, np.ndarray):
            level = np.resize(level, j - i)
        env = _smooth_step(j - i, int(ramp_s * fs)) * level
        drive[side][i:j] = np.maximum(drive[side][i:j], env)

    def move(side: str, a: float, b: float, g: float) -> None:
        i, j = int(a * fs_acc), min(na, int(b * fs_acc))
        shake[side][i:j] = np.maximum(shake[side][i:j], g * _smooth_step(j - i, int(0.5 * fs_acc)))

    def turn(a: float, b: float, d_phi: float, sides=SIDES) -> None:
        i, j = int(a * fs_acc), min(na, int(b * fs_acc))
        for s in sides:
            cur = phi[s][i - 1] if i else 0.0
            phi[s][i:j] = cur + d_phi * np.linspace(0, 1, j - i)
            phi[s][j:] = cur + d_phi

    # The resting drive of each leg sets the size scale: relative size = RMS ratio.
    rest_level = {s: float(rng.uniform(0.0, 0.03)) for s in SIDES}

    # Cramps.
    n_cramps = int(rng.integers(2, 6))
    for _ in range(200):
        if sum(x.kind == "cramp" for x in truth) >= n_cramps:
            break
        side = str(rng.choice(SIDES))
        dur = float(np.exp(rng.uniform(np.log(5), np.log(600))))
        if rng.random() < 0.25:  # a quarter begin while the wearer is awake in bed
            a0, b0 = wake[int(rng.integers(1, len(wake) - 1))]
            a = float(rng.uniform(a0 + 10, max(a0 + 11, b0 - 5)))
        else:
            a = float(rng.uniform(onset + 300, T - dur - 900))
        in_wake = is_awake(a)
        if a + dur > T - 600 or not free(a, a + dur + 120, 90):
            continue
        small = rng.random() < 0.4
        size = float(rng.uniform(2, 6) if small else np.exp(rng.uniform(np.log(6), np.log(40))))
        # Drive for a target RMS ratio: the pool's RMS grows roughly with drive^1.5.
        level = min(1.0, 0.08 * (size / 2) ** (1 / 1.4))
        tt = np.arange(int(dur * fs)) / fs
        f_w, depth = float(rng.uniform(0.05, 0.2)), float(rng.uniform(0.0, 0.3))
        env = level * (1 - depth * (0.5 + 0.5 * np.sin(2 * np.pi * f_w * tt + rng.uniform(0, 6))))
        add_drive(side, a, a + dur, env, ramp_s=float(rng.uniform(0.3, 2.0)))
        delay = 0.0 if in_wake else float(min(dur, rng.uniform(0, 60)))
        action = str(rng.choice(["still", "stretch", "stand"], p=[0.35, 0.35, 0.3]))
        t_w = a + delay
        if action == "stretch":
            move(side, t_w, t_w + float(rng.uniform(10, 40)), float(rng.uniform(0.05, 0.3)))
            turn(t_w + 1, t_w + 4, float(rng.uniform(-0.6, 0.6)), (side,))
            w_end = a + dur + float(rng.uniform(60, 240))
        elif action == "stand":
            up = t_w + float(rng.uniform(3, 10))
            walk = float(rng.uniform(20, 90))
            for s in SIDES:
                i, j = int(up * fs_acc), int((up + walk + 4) * fs_acc)
                elev[s][i:j] = np.radians(80) * _smooth_step(j - i, int(1.5 * fs_acc))
                move(s, up, up + walk + 4, float(rng.uniform(0.2, 0.5)))
            step = 1 / float(rng.uniform(1.6, 2.0))
            for k in range(int(walk / step)):
                s = SIDES[k % 2]
                t0 = up + 2 + k * step
                extra_burst(extra[s], fs, t0, 0.25 * step, float(rng.uniform(30, 120)), rng)
            truth.append(Truth("walk", up, up + walk + 4, None))
            turn(up + walk + 4, up + walk + 7, float(rng.uniform(-1.5, 1.5)))
            w_end = max(a + dur, up + walk) + float(rng.uniform(60, 240))
        else:
            w_end = a + dur + float(rng.uniform(60, 180))
        truth.append(Truth("cramp", a, a + dur, side, {
            "size": size, "duration_s": dur, "delay_s": delay, "action": action, "awake_at_onset": in_wake}))
        if not in_wake:
            wake.append((t_w, w_end))

    # Periodic leg movements in sleep.
    for _ in range(int(rng.integers(1, 3))):
        a = float(rng.uniform(onset + 600, T - 2400))
        gap = float(rng.uniform(15, 40))
        k = int(rng.integers(10, 40))
        if not free(a, a + k * gap) or any(is_awake(a + i * gap) for i in range(k)):
            continue
        for i in range(k):
            t = a + i * gap + float(rng.normal(0, 1.5))
            d = float(rng.uniform(0.5, 4.0))
            sides = SIDES if rng.random() < 0.3 else (str(rng.choice(SIDES)),)
            for s in sides:
                add_drive(s, t, t + d, float(rng.uniform(0.05, 0.2)), 0.1)
                move(s, t, t + d, float(rng.uniform(0.0, 0.05)))
                truth.append(Truth("lm", t, t + d, s))

    # Rollovers in sleep.
    for _ in range(int(hours * rng.uniform(1, 2.5))):
        a = float(rng.uniform(onset, T - 600))
        if is_awake(a) or not free(a, a + 5, 30):
            continue
        d = float(rng.uniform(2, 4))
        for s in SIDES:
            add_drive(s, a, a + d, float(rng.uniform(0.08, 0.3)), 0.2)
            move(s, a, a + d, float(rng.uniform(0.1, 0.3)))
        turn(a, a + d, float(rng.choice([-1, 1]) * np.radians(rng.uniform(60, 150))))
        truth.append(Truth("rollover", a, a + d, None))

    # Movement and voluntary contractions in wake (not cramps).
    for a0, b0 in wake:
        t = a0 + float(rng.uniform(5, 30))
        while t < b0 - 20:
            s = str(rng.choice(SIDES))
            d = float(rng.uniform(1, 8))
            if free(t, t + d + 25, 5):
                move(s, t, t + d, float(rng.uniform(0.03, 0.3)))
                add_drive(s, t, t + d, float(rng.uniform(0.04, 0.15)), 0.2)
                truth.append(Truth("wake_move", t, t + d, s))
                if rng.random() < 0.15:
                    # A deliberate contraction (pointing the foot, tensing the calf): led into by
                    # the movement and accompanied by more of it (DOMAIN.md), for part of its length.
                    v = float(rng.uniform(5, 25))
                    add_drive(s, t + d, t + d + v, float(rng.uniform(0.1, 0.4)), 0.5)
                    a_on = t + d + float(rng.uniform(0, 0.6)) * v
                    move(s, a_on, a_on + float(rng.uniform(0.4, 1.0)) * (t + d + v - a_on),
                         float(rng.uniform(0.02, 0.08)))
                    truth.append(Truth("voluntary", t, t + d + v, s))
            t += float(rng.uniform(15, 90))

    # Artefacts: a pop per leg, one lead-off stretch on one leg in half the nights.
    for s in SIDES:
        t = float(rng.uniform(600, T - 600))
        i = int(t * fs)
        m = min(n - i, int(2 * fs))
        step = float(rng.choice([-1, 1]) * rng.uniform(300, 800))
        extra[s][i:i + m] += step * np.exp(-np.arange(m) / (0.4 * fs))
    lead_off = []
    if rng.random() < 0.5:
        a = float(rng.uniform(1200, T - 1200))
        lead_off.append((str(rng.choice(SIDES)), a, a + float(rng.uniform(60, 300))))

    for s in SIDES:
        drive[s] = np.maximum(drive[s], rest_level[s])
    # Awakenings: wake bouts of a minute or more after sleep onset, overlapping ones joined; the
    # morning's final wake is no awakening (as in WASO and the detector's stated definition).
    bouts = sorted(wake)
    merged: list[list[float]] = []
    for a, b in bouts:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    for a, b in merged[1:]:
        if b - a >= 60 and b < T:
            truth.append(Truth("awakening", a, min(b, T), None))
    return Night(fs, fs_acc, hours, drive, extra, lead_off, phi, elev, shake, truth, onset)


def extra_burst(x: np.ndarray, fs: float, t0: float, d: float, amp: float, rng: np.random.Generator) -> None:
    i, j = int(t0 * fs), int((t0 + d) * fs)
    j = min(j, len(x))
    if j > i:
        b = signal.lfilter(*signal.butter(2, [30 / (fs / 2), min(0.9, 200 / (fs / 2))], "band"),
                           rng.normal(0, 1, j - i))
        x[i:j] += (amp * b / max(1e-9, b.std()) * _smooth_step(j - i, (j - i) // 4)).astype(np.float32)


def motor_units(drive: np.ndarray, fs: float, rng: np.random.Generator, chunk_s: float = 600.0) -> np.ndarray:
    """EMG (µV) of a 120-unit pool under ``drive`` (0..1 per sample): recruitment thresholds
    spread exponentially, firing 8 Hz at threshold up to 30 Hz, 15% ISI jitter, biphasic MUAPs."""
    n_mu = 120
    thr = np.exp(np.linspace(np.log(0.01), np.log(0.7), n_mu))
    amp = 4.0 * (thr / thr[0]) ** 0.55  # µV, larger units later
    width = rng.uniform(1e-3, 4e-3, n_mu) * (1 + thr)
    classes = np.digitize(width, np.quantile(width, [0.25, 0.5, 0.75]))
    out = np.zeros(len(drive), np.float32)
    tk = np.arange(-int(0.02 * fs), int(0.02 * fs) + 1) / fs
    for c in range(4):
        w = float(np.median(width[classes == c]))
        tmpl = -tk / w * np.exp(-0.5 * (tk / w) ** 2)
        tmpl /= np.abs(tmpl).max()
        imp = np.zeros(len(drive), np.float32)
        for u in np.flatnonzero(classes == c):
            active = drive > thr[u]
            if not active.any():
                continue
            rate = np.where(active, 8 + 22 * (drive - thr[u]) / (1 - thr[u]), 0.0)
            # Integrate the rate with jitter: a spike each time the phase passes an integer.
            jit = 1 + 0.15 * rng.standard_normal(len(drive)) * 0.3
            phase = np.cumsum(rate * jit / fs) + rng.uniform(0, 1)
            spikes = np.flatnonzero(np.diff(np.floor(phase)) > 0) + 1
            imp[spikes] += amp[u] * rng.uniform(0.8, 1.2)
        out += signal.fftconvolve(imp, tmpl, mode="same").astype(np.float32)
    return out


def render(night: Night, seed: int):
    rng = np.random.default_rng([seed, 78])
    fs, fa = night.fs, night.fs_acc
    n = len(night.drive["left"])
    na = len(night.phi["left"])
    t = np.arange(n) / fs
    mains = float(rng.choice([50.0, 60.0]))
    hr = float(rng.uniform(50, 80)) / 60
    beats = np.arange(rng.uniform(0, 1), n / fs, 1 / hr)
    beats = beats + rng.normal(0, 0.03, len(beats))
    qrs_t = np.arange(-int(0.04 * fs), int(0.04 * fs) + 1) / fs
    qrs = np.exp(-0.5 * (qrs_t / 0.008) ** 2) - 0.3 * np.exp(-0.5 * ((qrs_t - 0.02) / 0.01) ** 2)
    sigs = {}
    for s in SIDES:
        side = "L" if s == "left" else "R"
        noise = float(rng.uniform(1.0, 4.0))
        emg = motor_units(night.drive[s], fs, rng)
        emg += rng.normal(0, noise, n).astype(np.float32)
        imp = np.zeros(n, np.float32)
        idx = (beats * fs).astype(int)
        imp[idx[(idx >= 0) & (idx < n)]] = float(rng.uniform(3, 30))
        emg += signal.fftconvolve(imp, qrs, mode="same").astype(np.float32)
        emg += (float(rng.uniform(0, 20)) * np.sin(2 * np.pi * mains * t)).astype(np.float32)
        wander = signal.lfilter(*signal.butter(1, 0.3 / (fs / 2)), rng.normal(0, 1, n))
        emg += (float(rng.uniform(20, 120)) * wander / max(1e-9, wander.std())).astype(np.float32)
        emg += night.extra[s]
        for ls, a, b in night.lead_off:
            if ls == s:
                i, j = int(a * fs), int(b * fs)
                emg[i:j] = (float(rng.uniform(50, 200)) * np.sin(2 * np.pi * mains * t[i:j])
                            + rng.normal(0, 0.5, j - i)).astype(np.float32)
        sigs[f"EMG {side}-Gastroc"] = (emg, fs)
        # Gravity in the sensor frame: X along the shank, the roll angle phi about it.
        tilt = np.radians(rng.uniform(-12, 12))
        el, ph = night.elev[s] + tilt, night.phi[s] + rng.uniform(-0.5, 0.5)
        g = np.stack([np.sin(el), np.cos(el) * np.cos(ph), np.cos(el) * np.sin(ph)], axis=1)
        dyn = rng.normal(0, 1, (na, 3))
        dyn = signal.lfilter(*signal.butter(2, min(0.9, 8 / (fa / 2))), dyn, axis=0)
        dyn /= max(1e-9, dyn.std())
        acc = g + night.shake[s][:, None] * dyn + rng.normal(0, 0.004, (na, 3))
        for k, ax in enumerate("XYZ"):
            sigs[f"ACC {side}-Shank {ax}"] = (acc[:, k].astype(np.float32), fa)
    return array_recording(f"second-model-{seed}", dt.datetime(2026, 3, 1, 22, tzinfo=dt.UTC), sigs)


def one(args: tuple[int, float]) -> dict:
    seed, hours = args
    night = plan(seed, hours)
    rec = render(night, seed)
    t0 = time.perf_counter()
    a = analyze_recording(rec, DetectorConfig())
    took = time.perf_counter() - t0
    ev = a.events
    cramps = [x for x in night.truth if x.kind == "cramp"]
    for c in cramps:  # the size as the detector would see it: band-passed RMS over the minutes before
        ch = next(i for i, k in enumerate(rec.channels) if k.kind == "emg" and k.side == c.side)
        fs = rec.channels[ch].fs
        a0 = max(0, int((c.start_s - 180) * fs))
        x = rec.read(ch, a0, int(c.end_s * fs))
        y = signal.sosfiltfilt(signal.butter(4, [20, min(450, 0.45 * fs)], "band", fs=fs, output="sos"), x)
        pre = y[:int((c.start_s - 5) * fs) - a0]
        w = int(10 * fs)
        rest = (np.median([pre[k:k + w].std() for k in range(0, max(1, len(pre) - w), w)])
                if len(pre) > w else np.nan)
        c.attrs["size"] = float(y[int(c.start_s * fs) - a0:].std() / rest) if rest > 0 else float("nan")
    det = [e for e in ev if e.kind == "cramp"]
    rows = []
    for c in cramps:
        hit = [e for e in det if e.side == c.side and e.start_s < c.end_s and e.end_s > c.start_s]
        leg = [e for e in ev if e.side == c.side and e.start_s < c.end_s and e.end_s > c.start_s]
        rows.append(c.attrs | {"found": bool(hit), "covered": bool(leg),
                               "onset_err": abs(hit[0].start_s - c.start_s) if hit else None,
                               "kinds": sorted({e.kind for e in leg})})
    fp = [e for e in det if not any(c.side == e.side and c.start_s < e.end_s and c.end_s > e.start_s
                                    for c in cramps)]
    fp_what = []
    for e in fp:
        near = [x.kind for x in night.truth if x.start_s < e.end_s + 5 and x.end_s > e.start_s - 5
                and x.side in (None, e.side)]
        fp_what.append(f"{e.start_s:.0f}+{e.end_s - e.start_s:.0f}s p{e.confidence:.2f} "
                       + (",".join(sorted(set(near))) or "nothing"))
    aw_t = [(x.start_s, x.end_s, None) for x in night.truth if x.kind == "awakening"]
    aw_d = [(e.start_s, e.end_s, None) for e in ev if e.kind == "awakening"]
    aw = match_intervals(aw_d, aw_t, sided=False)
    lm_t = [(x.start_s, x.end_s, x.side) for x in night.truth if x.kind == "lm"]
    lm_d = [(e.start_s, e.end_s, e.side) for e in ev if e.kind == "limb_movement"]
    ign = [(x.start_s - 2, x.end_s + 2, x.side) for x in night.truth
           if x.kind in ("cramp", "voluntary", "walk", "rollover", "wake_move")]
    lm = match_intervals(lm_d, lm_t, ignore=ign)
    return {"seed": seed, "fs": night.fs, "fs_acc": night.fs_acc, "rows": rows, "fp": len(fp),
            "fp_what": fp_what, "aw": (aw.tp, aw.fp, aw.fn), "lm": (lm.tp, lm.fp, lm.fn), "seconds": took}


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / max(1, 2 * tp + fp + fn)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nights", type=int, default=12)
    ap.add_argument("--hours", type=float, default=4.0)
    ap.add_argument("--seed0", type=int, default=50000)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    seeds = list(range(args.seed0, args.seed0 + args.nights))
    print(f"second night model: {len(seeds)} nights x {args.hours:g} h, seeds {seeds[0]}-{seeds[-1]}",
          flush=True)
    with Pool(args.jobs) as pool:
        res = []
        for r in pool.imap(one, [(s, args.hours) for s in seeds]):
            res.append(r)
            found = sum(x["found"] for x in r["rows"])
            missed = [x["kinds"] for x in r["rows"] if not x["found"]]
            print(f"  seed {r['seed']}: EMG {r['fs']:g} Hz, ACC {r['fs_acc']:g} Hz: "
                  f"cramps {found}/{len(r['rows'])}, false {r['fp']} {r['fp_what']}, missed as {missed}",
                  flush=True)
    rows = [x for r in res for x in r["rows"]]
    tp = sum(x["found"] for x in rows)
    fp = sum(r["fp"] for r in res)
    fn = len(rows) - tp
    print(f"\ncramps: {tp} found, {fp} false, {fn} missed -> recall {tp / max(1, len(rows)):.3f}, "
          f"precision {tp / max(1, tp + fp):.3f}, F1 {_f1(tp, fp, fn):.3f}")
    print(f"  no event at all on the cramp's leg: {sum(not x['covered'] for x in rows)}")
    errs = [x["onset_err"] for x in rows if x["onset_err"] is not None]
    if errs:
        print(f"  onset error median {np.median(errs):.2f} s, 90th percentile {np.quantile(errs, 0.9):.2f} s")
    bins = {
        "action": lambda x: x["action"],
        "awake at onset": lambda x: str(x["awake_at_onset"]),
        "size": lambda x: "2-3x" if x["size"] < 3 else "3-6x" if x["size"] < 6 else "6-40x",
        "duration": lambda x: "5-10 s" if x["duration_s"] < 10 else "10-30 s" if x["duration_s"] < 30
        else "30-120 s" if x["duration_s"] < 120 else "2-10 min",
        "wake delay": lambda x: "0-20 s" if x["delay_s"] < 20 else "20-40 s" if x["delay_s"] < 40
        else "40-60 s",
    }
    for name, fn_ in bins.items():
        cells = {}
        for x in rows:
            cells.setdefault(fn_(x), []).append(x["found"])
        print(f"  recall by {name}: "
              + ", ".join(f"{k} {np.mean(v):.2f} (n {len(v)})" for k, v in sorted(cells.items())))
    aw = np.sum([r["aw"] for r in res], axis=0)
    lm = np.sum([r["lm"] for r in res], axis=0)
    print(f"awakenings: F1 {_f1(*aw):.3f} (found {aw[0]}, false {aw[1]}, missed {aw[2]})")
    print(f"leg movements in sleep (AASM): F1 {_f1(*lm):.3f} (found {lm[0]}, false {lm[1]}, missed {lm[2]})")
    print(f"analysis time: median {np.median([r['seconds'] for r in res]):.1f} s a night")
    return 0


if __name__ == "__main__":
    sys.exit(main())
