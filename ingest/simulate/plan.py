"""What happens in a simulated night: sleep/wake, movements, cramps, artefacts — the truth.

All times are seconds from lights-off. Amplitudes are multiples of the channel's resting EMG
floor (mean absolute value in µV), following DOMAIN.md: cramps 2–100× resting, unilateral,
5 s–10 min, fasciculations before, a jerk at onset, then waking, stretching and sometimes
walking; PLM series per AASM (0.5–10 s LMs at 5–90 s intervals); rollovers with both legs
and a rotation of the gravity vector.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np

Side = Literal["left", "right"]
SIDES: tuple[Side, Side] = ("left", "right")


@dataclass
class TruthEvent:
    """One true event. ``kind`` uses the analysis kinds plus ``voluntary`` (never a cramp)."""

    kind: str
    start_s: float
    end_s: float
    side: Side | None = None
    subtype: str = ""
    attrs: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["start_s"] = round(self.start_s, 3)
        d["end_s"] = round(self.end_s, 3)
        return d


@dataclass(frozen=True)
class NightOptions:
    """How to simulate: length, rates (Hz), mains (Hz or 0), units and event rates."""

    hours: float = 8.0
    seed: int = 0
    fs_emg: float = 1000.0
    fs_acc: float = 50.0
    mains_hz: float = 50.0
    emg_unit: str = "uV"
    acc_unit: str = "g"
    emg_site: str = "Gastroc"
    start: dt.datetime = dt.datetime(2026, 11, 24, 22, 30, tzinfo=dt.UTC)
    cramps_per_night: float = 2.0
    awakenings_per_night: float = 5.0
    plm_series_per_night: float = 1.5
    rollovers_per_hour: float = 1.5
    isolated_lms_per_hour: float = 2.0
    pops_per_channel: float = 2.0
    lead_off_prob: float = 0.3
    # Behaviour around cramps (CrampBehaviour; ranges in docs/simulator.md)
    cramp_small_fraction: float = 0.4  # share of cramps at 2-6x resting (else 6-100x)
    cramp_max_wake_delay_s: float = 90.0  # waking 0..this after onset
    cramp_action_p: tuple[float, float, float] = (0.3, 0.35, 0.35)  # still, stretch, stand
    cramp_awake_fraction: float = 0.25  # cramps that begin while the wearer is awake in bed
    cramp_twitch_fraction: float = 0.5  # cramps with twitches in the minute before
    cramp_jerk_fraction: float = 0.5  # cramps with a jerk at onset
    # Share of a cramp's EMG power in the higher band (40-350 Hz against the 20-250 Hz of
    # voluntary activity and leg movements): 0 = no spectral shift, 1 = the whole shift
    cramp_spectral_mix: tuple[float, float] = (0.0, 1.0)
    cramp_residual_fraction: float = 0.7  # cramps leaving residual tension (15-35% over resting)
    ecg_uv: tuple[float, float] = (2.0, 40.0)  # ECG bleed QRS amplitude range, µV (DOMAIN.md: 5-40)
    max_tilt_deg: float = 20.0  # sensor mounting tilt (each leg, fixed for the night)
    carrier: str = "gaussian"  # contraction carrier: gaussian | real (segments of real EMG, carrier.py)
    carrier_dir: str = ""  # folder with the real EMG recordings (../shared/testdata/emg) for "real"


CRAMP_ACTIONS = ("still", "stretch", "stand")


@dataclass(frozen=True)
class CrampBehaviour:
    """What happens around one simulated cramp; each field is a knob of the robustness bench."""

    duration_s: float  # 5 s - 10 min, log-uniform (Delphi consensus)
    size_ratio: float  # times the resting EMG level: 2-6 (ambulatory study) or 6-100 (induced)
    wake_delay_s: float  # onset to waking, 0-90 s (Chaney & Sherman: ~41 s)
    action: str  # still | stretch | stand (stand on the leg, then walk)
    awake_at_onset: bool  # ICSD-3: "during time in bed, asleep or awake"
    twitches: bool  # fasciculation-like twitches in the minute before (Minetto 2009)
    jerk: bool  # a jerk of the foot at onset
    # Share of the EMG power in the higher band (Serrao 2007); drawn from its own generator so
    # that adding it changed no other draw of a night
    spectral_mix: float = 1.0
    residual: bool = True  # residual tension for minutes afterwards (own generator too)

    def as_attrs(self) -> dict:
        return {"duration_s": round(self.duration_s, 2), "size_ratio": round(self.size_ratio, 2),
                "wake_delay_s": round(self.wake_delay_s, 1), "action": self.action,
                "awake_at_onset": self.awake_at_onset, "twitches": self.twitches, "jerk": self.jerk,
                "spectral_mix": round(self.spectral_mix, 2), "residual": self.residual}


def draw_behaviour(rng: np.random.Generator, opts: NightOptions) -> CrampBehaviour:
    """One cramp's behaviour from the ranges in ``opts`` (docs/simulator.md)."""
    if rng.random() < opts.cramp_small_fraction:
        size = float(np.exp(rng.uniform(np.log(2.0), np.log(6.0))))
    else:
        size = float(np.exp(rng.uniform(np.log(6.0), np.log(100.0))))
    p = np.asarray(opts.cramp_action_p, float)
    return CrampBehaviour(
        duration_s=float(np.exp(rng.uniform(np.log(5.0), np.log(600.0)))),
        size_ratio=size,
        wake_delay_s=float(rng.uniform(0.0, opts.cramp_max_wake_delay_s)),
        action=CRAMP_ACTIONS[int(rng.choice(3, p=p / p.sum()))],
        awake_at_onset=bool(rng.random() < opts.cramp_awake_fraction),
        twitches=bool(rng.random() < opts.cramp_twitch_fraction),
        jerk=bool(rng.random() < opts.cramp_jerk_fraction),
    )


@dataclass
class Burst:
    """An EMG activity component on one leg: amplitude (× floor) over [start, end) seconds."""

    side: Side
    start: float
    end: float
    amp: float
    shape: str = "phasic"  # phasic | tonic (cramp) | twitch | residual
    mod_hz: float = 0.0  # waxing/waning frequency for tonic bursts
    mix: float = 1.0  # tonic: share of the power in the higher band (render.py)


@dataclass
class Motion:
    """Acceleration component on one or both legs: dynamic movement of ``amp`` g RMS."""

    sides: tuple[Side, ...]
    start: float
    end: float
    amp: float
    kind: str = "jiggle"  # jiggle | jerk | walk


@dataclass
class Posture:
    """From ``start`` on, the roll angle (deg) of both shanks while lying, or standing."""

    start: float
    roll_deg: float
    standing: bool = False
    transition_s: float = 2.0


@dataclass
class NightPlan:
    options: NightOptions
    duration_s: float
    floors: dict[Side, float]  # resting EMG mean absolute value per leg, µV
    bursts: list[Burst]
    motions: list[Motion]
    postures: list[Posture]
    pops: list[tuple[Side, float, float]]  # side, time, step µV
    lead_offs: list[tuple[Side, float, float]]  # side, start, end
    heart: np.ndarray  # beat times, s
    ecg_uv: dict[Side, float]
    wander: dict[Side, list[tuple[float, float, float]]]  # (freq Hz, amp µV, phase)
    mains_uv: dict[Side, float]
    truth: list[TruthEvent]
    sleep: list[tuple[float, float, str]]  # (start, end, "wake"|"sleep")
    tilt: dict[Side, np.ndarray] = field(default_factory=dict)  # sensor mounting rotation per leg (3x3)

    def truth_of(self, kind: str) -> list[TruthEvent]:
        return [e for e in self.truth if e.kind == kind]


class _Timeline:
    """Keeps intervals from colliding while the night is laid out."""

    def __init__(self) -> None:
        self.busy: list[tuple[float, float]] = []

    def free(self, a: float, b: float, margin: float = 0.0) -> bool:
        return all(b + margin <= s or a - margin >= e for s, e in self.busy)

    def take(self, a: float, b: float) -> None:
        self.busy.append((a, b))


def plan_night(opts: NightOptions) -> NightPlan:
    """Lay out a whole night from ``opts`` (seeded: the same options give the same night)."""
    rng = np.random.default_rng([opts.seed, 0x6E63])
    T = opts.hours * 3600.0
    truth: list[TruthEvent] = []
    bursts: list[Burst] = []
    motions: list[Motion] = []
    tl = _Timeline()

    floors = {s: float(rng.uniform(1.5, 5.0)) for s in SIDES}
    # Wake periods: sleep-onset latency, awakenings (spontaneous and after cramps), final wake.
    sol = float(rng.uniform(6, 25) * 60)
    final_len = float(rng.uniform(6, 20) * 60) if T > 3600 else min(120.0, T * 0.1)
    sleep_end = T - final_len
    wakes: list[tuple[float, float, str]] = [(0.0, sol, "onset"), (sleep_end, T, "final")]
    tl.take(0.0, sol + 120)
    tl.take(sleep_end - 120, T)

    # Cramps first: they bring their own awakenings and behaviour (CrampBehaviour).
    quiet: list[tuple[float, float]] = []  # spans where restless-wake movements are not added
    n_cramps = int(rng.poisson(opts.cramps_per_night * opts.hours / 8.0)) if T > 1800 else 0
    for ci in range(n_cramps):
        for _attempt in range(50):
            beh = draw_behaviour(rng, opts)
            dur = beh.duration_s
            onset = float(rng.uniform(sol + 600, max(sol + 601, sleep_end - dur - 900)))
            # A cramp is painful by definition (ICSD-3), and the pain wakes the wearer while it
            # lasts or just after; a short cramp cannot wake them a minute after it has ended.
            late = dur + float(rng.uniform(0.0, 10.0))
            if beh.wake_delay_s > late:
                beh = replace(beh, wake_delay_s=late)
            post = float(rng.uniform(90, 300))
            walk_len = float(rng.uniform(60, 240)) if beh.action == "stand" else 0.0
            pre = float(rng.uniform(30, 300)) if beh.awake_at_onset else 0.0
            end_all = onset + max(dur, beh.wake_delay_s) + post + walk_len + 300
            if tl.free(onset - 120 - pre, end_all, 300):
                break
        else:
            continue
        tl.take(onset - 120 - pre, end_all)
        mix_rng = np.random.default_rng([opts.seed, 0x5EC, ci])
        beh = replace(beh, spectral_mix=float(mix_rng.uniform(*opts.cramp_spectral_mix)),
                      residual=bool(mix_rng.random() < opts.cramp_residual_fraction))
        side: Side = SIDES[int(rng.integers(2))]
        attrs = {"amplitude_ratio": round(beh.size_ratio, 2)} | beh.as_attrs()
        truth.append(TruthEvent("cramp", onset, onset + dur, side, "", attrs))
        if beh.twitches:  # fasciculation-like twitches in the minute before (Minetto 2009)
            for t in np.sort(rng.uniform(onset - 60, onset - 3, int(rng.integers(3, 9)))):
                bursts.append(Burst(side, float(t), float(t) + float(rng.uniform(0.03, 0.08)),
                                    float(rng.uniform(8, 25)), "twitch"))
        bursts.append(Burst(side, onset, onset + dur, beh.size_ratio, "tonic", float(rng.uniform(0.03, 0.2)),
                            beh.spectral_mix))
        if beh.jerk:
            motions.append(Motion((side,), onset, onset + 0.4, float(rng.uniform(0.1, 0.3)), "jerk"))
        # The pain wakes the wearer (or they are awake already); what they do then.
        w0 = onset - pre if beh.awake_at_onset else onset + beh.wake_delay_s
        act0 = onset + (0.0 if beh.awake_at_onset else beh.wake_delay_s)
        act0 = max(act0, onset + 1.0)
        act_end = max(onset + dur, act0 + 5.0)
        if beh.action == "still":
            # Lies still through it; a short stretch once it eases.
            motions.append(Motion((side,), act_end, act_end + float(rng.uniform(5, 20)),
                                  float(rng.uniform(0.02, 0.06))))
            w_end = act_end + post
        elif beh.action == "stretch":
            # Grabs the foot / pulls it up and stretches while it lasts, and a while after.
            motions.append(Motion((side,), act0, act_end + post * 0.5, float(rng.uniform(0.03, 0.1))))
            w_end = act_end + post
        else:
            # Sits up and stands on the leg (the classic relief), then walks.
            ex0 = act0 + float(rng.uniform(2, 8))
            motions.append(Motion(SIDES, act0, ex0, float(rng.uniform(0.05, 0.15))))
            truth.append(TruthEvent("bed_exit", ex0, ex0 + walk_len, None, "walk"))
            motions.append(Motion(SIDES, ex0 + 3, ex0 + walk_len - 3, 0.25, "walk"))
            w_end = ex0 + walk_len + post * 0.3
        # Residual tension after the cramp: slightly above resting for minutes.
        r_end, r_amp = onset + dur + float(rng.uniform(60, 240)), float(rng.uniform(0.15, 0.35))
        if beh.residual:
            bursts.append(Burst(side, onset + dur, r_end, r_amp, "residual"))
        wakes.append((w0, w_end + float(rng.uniform(30, 120)), "cramp"))
        quiet.append((onset - 5, act_end + 5))  # restless wake movements resume after the cramp

    n_aw = int(rng.poisson(opts.awakenings_per_night * opts.hours / 8.0)) if T > 1800 else 0
    for _ in range(n_aw):
        for _attempt in range(50):
            dur = float(np.clip(np.exp(rng.normal(np.log(180), 0.6)), 75, 900))
            a = float(rng.uniform(sol + 300, max(sol + 301, sleep_end - dur - 300)))
            if tl.free(a, a + dur, 240):
                break
        else:
            continue
        tl.take(a - 60, a + dur + 60)
        wakes.append((a, a + dur, "spontaneous"))
        if rng.random() < 0.15:
            ex0 = a + dur * 0.3
            ex_len = min(dur * 0.5, float(rng.uniform(40, 200)))
            truth.append(TruthEvent("bed_exit", ex0, ex0 + ex_len, None, "walk"))
            motions.append(Motion(SIDES, ex0 + 3, ex0 + ex_len - 3, 0.25, "walk"))

    wakes.sort()
    for a, b, why in wakes:
        if why not in ("onset", "final"):
            truth.append(TruthEvent("awakening", a, b, None, why))
        for a2, b2 in _minus(a, b, quiet):
            _wake_activity(rng, a2, b2, floors, bursts, motions, truth, tl)

    sleep = _sleep_timeline(wakes, T)
    asleep = [(a, b) for a, b, s in sleep if s == "sleep"]

    postures = [Posture(0.0, 0.0)]
    _rollovers(rng, opts, asleep, tl, bursts, motions, postures, truth)
    _plm_series(rng, opts, asleep, tl, bursts, motions, truth)
    _isolated_lms(rng, opts, asleep, tl, bursts, motions, truth)
    _standing_postures(truth, postures)

    pops: list[tuple[Side, float, float]] = []
    lead_offs: list[tuple[Side, float, float]] = []
    for side in SIDES:
        for t in rng.uniform(60, T - 60, int(rng.poisson(opts.pops_per_channel * opts.hours / 8))):
            step = float(rng.choice([-1, 1]) * rng.uniform(500, 2500))
            pops.append((side, float(t), step))
            truth.append(TruthEvent("artifact", float(t), float(t) + 1.0, side, "pop"))
    if T > 3600 and rng.random() < opts.lead_off_prob:
        side = SIDES[int(rng.integers(2))]
        dur = float(rng.uniform(30, 600))
        a = float(rng.uniform(600, T - dur - 600))
        lead_offs.append((side, a, a + dur))
        truth.append(TruthEvent("artifact", a, a + dur, side, "lead_off"))

    hr = float(rng.uniform(52, 75)) / 60.0
    beats = np.cumsum(np.clip(rng.normal(1.0 / hr, 0.04, int(T * hr * 1.2) + 10), 0.4, 2.0))
    heart = beats[beats < T]
    ecg = {s: float(rng.uniform(*opts.ecg_uv)) for s in SIDES}
    wander = {s: [(float(rng.uniform(0.05, 0.5)), float(rng.uniform(20, 150)),
                   float(rng.uniform(0, 2 * np.pi))) for _ in range(2)] for s in SIDES}
    mains = {s: (float(rng.uniform(3, 40)) if opts.mains_hz else 0.0) for s in SIDES}
    truth.sort(key=lambda e: (e.start_s, e.kind))
    return NightPlan(opts, T, floors, bursts, motions, postures, pops, lead_offs, heart, ecg,
                     wander, mains, truth, sleep, _tilts(opts))


def _tilts(opts: NightOptions) -> dict[Side, np.ndarray]:
    """A fixed mounting rotation per leg: up to ``max_tilt_deg`` about a random axis."""
    rng = np.random.default_rng([opts.seed, 0x7417])
    out = {}
    for s in SIDES:
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        ang = np.deg2rad(rng.uniform(0.0, opts.max_tilt_deg))
        k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        out[s] = np.eye(3) + np.sin(ang) * k + (1 - np.cos(ang)) * (k @ k)  # Rodrigues
    return out


def _minus(a: float, b: float, holes: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """[a, b) without the ``holes`` (seconds)."""
    out = [(a, b)]
    for h0, h1 in holes:
        out = [piece for x0, x1 in out for piece in ((x0, min(x1, h0)), (max(x0, h1), x1))
               if piece[1] > piece[0]]
    return out


def _sleep_timeline(wakes: list[tuple[float, float, str]], T: float) -> list[tuple[float, float, str]]:
    out: list[tuple[float, float, str]] = []
    t = 0.0
    for a, b, _ in sorted(wakes):
        if a > t:
            out.append((t, a, "sleep"))
        out.append((max(a, t), b, "wake"))
        t = max(t, b)
    if t < T:
        out.append((t, T, "sleep"))
    return out


def _wake_activity(rng, a, b, floors, bursts, motions, truth, tl) -> None:
    """Restless wake: leg movements every 10–40 s, sometimes a voluntary contraction."""
    t = a + float(rng.uniform(2, 15))
    while t < b - 5:
        dur = float(rng.uniform(1.0, 6.0))
        sides = SIDES if rng.random() < 0.4 else (SIDES[int(rng.integers(2))],)
        amp_g = float(rng.uniform(0.03, 0.15))
        motions.append(Motion(sides, t, t + dur, amp_g))
        for s in sides:
            emg_dur = min(dur, float(rng.uniform(0.8, 5.0)))
            amp = float(rng.uniform(4, 25))
            bursts.append(Burst(s, t, t + emg_dur, amp))
            truth.append(TruthEvent("limb_movement", t, t + emg_dur, s, "wake",
                                    {"amplitude_ratio": round(amp, 2)}))
        if rng.random() < 0.12 and t + dur + 40 < b:
            # A voluntary contraction, preceded and accompanied by movement.
            s = sides[0]
            v0 = t + dur + float(rng.uniform(0.5, 3))
            vd = float(rng.uniform(4, 25))
            amp = float(rng.uniform(4, 30))
            bursts.append(Burst(s, v0, v0 + vd, amp, "tonic", float(rng.uniform(0.1, 0.4)), 0.0))
            motions.append(Motion((s,), v0, v0 + vd, float(rng.uniform(0.02, 0.06))))
            truth.append(TruthEvent("voluntary", v0, v0 + vd, s, "", {"amplitude_ratio": amp}))
            t = v0 + vd
        t += dur + float(rng.uniform(8, 40))


def _rollovers(rng, opts, asleep, tl, bursts, motions, postures, truth) -> None:
    roll = 0.0
    for a, b in asleep:
        n = int(rng.poisson(opts.rollovers_per_hour * (b - a) / 3600))
        for t in np.sort(rng.uniform(a + 60, max(a + 61, b - 60), n)):
            dur = float(rng.uniform(2, 6))
            if not tl.free(t - 20, t + dur + 20):
                continue
            tl.take(t - 20, t + dur + 20)
            roll = float(rng.choice([r for r in (-90.0, 0.0, 90.0, 180.0) if r != roll]))
            postures.append(Posture(float(t) + 0.5, roll, False, dur - 1.0))
            motions.append(Motion(SIDES, float(t), float(t) + dur, float(rng.uniform(0.05, 0.15))))
            for s in SIDES:
                lag = float(rng.uniform(0, 0.8))
                bursts.append(Burst(s, t + lag, t + dur - lag * 0.5, float(rng.uniform(5, 30))))
            truth.append(TruthEvent("rollover", float(t), float(t) + dur, None, "",
                                    {"roll_deg": roll}))
    postures.sort(key=lambda p: p.start)


def _plm_series(rng, opts, asleep, tl, bursts, motions, truth) -> None:
    n = int(rng.poisson(opts.plm_series_per_night * opts.hours / 8))
    for _ in range(n):
        spans = [(a, b) for a, b in asleep if b - a > 600]
        if not spans:
            return
        a, b = spans[int(rng.integers(len(spans)))]
        period = float(rng.uniform(15, 40))
        count = int(rng.integers(8, 60))
        t0 = float(rng.uniform(a + 60, max(a + 61, b - 120)))
        bilateral = rng.random() < 0.3
        main: Side = SIDES[int(rng.integers(2))]
        lms: list[tuple[float, float]] = []
        t = t0
        for _k in range(count):
            dur = _lm_duration(rng)
            if t + dur > b - 30 or not tl.free(t - 3, t + dur + 3):
                break
            lms.append((t, dur))
            t += period * float(rng.uniform(0.85, 1.15))
        if len(lms) < 4:
            continue
        for t, dur in lms:
            tl.take(t - 2, t + dur + 2)
            amp = float(rng.uniform(5, 30))
            sides = SIDES if bilateral else (main,)
            for s in sides:
                lag = float(rng.uniform(0, 0.4)) if bilateral and s != main else 0.0
                bursts.append(Burst(s, t + lag, t + lag + dur, amp))
                truth.append(TruthEvent("limb_movement", t + lag, t + lag + dur, s, "plm",
                                        {"amplitude_ratio": round(amp, 2)}))
            motions.append(Motion(sides, t, t + min(dur, 0.6), float(rng.uniform(0.01, 0.04)), "jerk"))
        last = lms[-1][0] + lms[-1][1]
        truth.append(TruthEvent("plm_series", lms[0][0], last, None if bilateral else main, "",
                                {"count": len(lms), "period_s": round(period, 1)}))


def _lm_duration(rng: np.random.Generator) -> float:
    """A sleep leg movement's length: the whole AASM range 0.5-10 s, log-uniform (median 2.2 s)."""
    return float(np.exp(rng.uniform(np.log(0.5), np.log(10.0))))


def _isolated_lms(rng, opts, asleep, tl, bursts, motions, truth) -> None:
    for a, b in asleep:
        n = int(rng.poisson(opts.isolated_lms_per_hour * (b - a) / 3600))
        for t in rng.uniform(a + 30, max(a + 31, b - 30), n):
            dur = _lm_duration(rng)
            if not tl.free(t - 120, t + dur + 120):
                continue
            tl.take(t - 5, t + dur + 5)
            s: Side = SIDES[int(rng.integers(2))]
            amp = float(rng.uniform(5, 30))
            bursts.append(Burst(s, float(t), float(t) + dur, amp))
            motions.append(Motion((s,), float(t), float(t) + min(dur, 0.6),
                                  float(rng.uniform(0.01, 0.04)), "jerk"))
            truth.append(TruthEvent("limb_movement", float(t), float(t) + dur, s, "isolated",
                                    {"amplitude_ratio": round(amp, 2)}))


def _standing_postures(truth: list[TruthEvent], postures: list[Posture]) -> None:
    """Bed exits put both shanks vertical, then back to the roll angle held before."""
    for ev in [e for e in truth if e.kind == "bed_exit"]:
        before = [p for p in postures if p.start <= ev.start_s and not p.standing]
        roll = before[-1].roll_deg if before else 0.0
        postures.append(Posture(ev.start_s, roll, True, 2.0))
        postures.append(Posture(ev.end_s, roll, False, 2.0))
    postures.sort(key=lambda p: p.start)
