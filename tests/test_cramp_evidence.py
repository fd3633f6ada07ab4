"""The cramp decision weighs evidence, nothing seen vanishes, and real contractions stay whole.

Simulated nights span the behaviours around a cramp (docs/simulator.md); real recordings from
../shared/testdata check onset/offset against an independent force reference, activation counts
and walking bursts.
"""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import pytest
import scipy.io

from detector.analyze import analyze_recording
from detector.engine.config import DetectorConfig
from detector.engine.cramp_evidence import cramp_probability
from ingest.recordings.csvfile import read_csv_recording
from ingest.recordings.recording import RecordingError, array_recording
from ingest.simulate import NightOptions, plan_night, render_recording

CFG = DetectorConfig()
START = dt.datetime(2026, 11, 24, 22, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def nights():
    """Eight 3-h nights with many cramps of every simulated behaviour, at mixed rates."""
    out = []
    for k, seed in enumerate(range(300, 308)):
        opts = NightOptions(hours=3.0, seed=seed, cramps_per_night=30.0, fs_emg=(250.0, 500.0, 1000.0)[k % 3],
                            fs_acc=(25.0, 50.0)[k % 2], mains_hz=(50.0, 60.0, 0.0)[k % 3])
        plan = plan_night(opts)
        out.append((plan, analyze_recording(render_recording(plan), CFG)))
    return out


def test_every_cramp_leaves_an_event_on_its_leg(nights):
    n = 0
    for plan, a in nights:
        for t in plan.truth_of("cramp"):
            n += 1
            on_leg = [e for e in a.events if e.side == t.side and e.start_s < t.end_s and e.end_s > t.start_s]
            assert on_leg, f"seed {plan.options.seed}: cramp at {t.start_s:.0f} s ({t.attrs}) left no event"
    assert n >= 25


def test_behaviours_are_all_present_and_mostly_found(nights):
    def found(t, a):
        return any(e.kind == "cramp" and e.side == t.side and e.start_s < t.end_s and e.end_s > t.start_s
                   for e in a.events)

    outs = [(t.attrs, found(t, a)) for plan, a in nights for t in plan.truth_of("cramp")]
    assert {a["action"] for a, _ in outs} == {"still", "stretch", "stand"}
    assert {a["awake_at_onset"] for a, _ in outs} == {True, False}
    assert sum(found for _, found in outs) >= 0.75 * len(outs)
    # Standing on the leg after the onset is how cramps are relieved: evidence for, not a veto.
    stand = [found for a, found in outs if a["action"] == "stand" and a["duration_s"] > 30]
    assert stand and sum(stand) >= 0.7 * len(stand)


def test_events_say_why(nights):
    for _, a in nights:
        for e in a.of_kind("cramp") + a.of_kind("sustained_activity"):
            why = e.features["why"]
            assert set(why) == {"for", "against", "terms"}
            p = e.features["cramp_probability"]
            assert 0.0 <= p <= 1.0
            if e.kind == "cramp":
                assert e.confidence == pytest.approx(p) and p >= CFG.cramp_model.threshold
                assert why["for"]
            else:
                assert p < CFG.cramp_model.threshold
                assert e.features["reason"].startswith("not a cramp: ")


def test_no_event_starts_before_the_recording(nights):
    for plan, a in nights:
        assert all(0.0 <= e.start_s <= e.end_s <= plan.duration_s for e in a.events)


def test_evidence_moves_the_probability_the_way_domain_md_says():
    base = {"duration_s": 60.0, "median_ratio": 3.0, "fill": 0.9, "onset_gap_s": 0.0, "coactivation": 0.0,
            "twitches_before": 0,
            "artifact_fraction": 0.0, "has_acc": True, "lead_in_intensity": 0.0, "prior_intensity": 0.0,
            "early_intensity": 0.0, "later_intensity": 0.0, "rotation_at_onset": False,
            "rotation_after": False, "upright_at_onset": False, "upright_after": False}

    def p(**kw):
        return cramp_probability(base | kw, CFG)[0]

    assert p() > 0.9  # a minute of one-sided plateau out of stillness
    assert p(upright_after=True, later_intensity=60.0) > p()  # stood up and walked it off
    assert p(lead_in_intensity=20.0, prior_intensity=60.0) < 0.5  # movement led into it
    assert p(onset_gap_s=1.0) < p() - 0.05  # a burst, a pause, then the contraction
    assert p(coactivation=1.0) < 0.5  # both legs at once: a body movement
    assert p(upright_at_onset=True) < p()
    assert p(duration_s=6.0) < 0.5 < p(duration_s=6.0, twitches_before=4, later_intensity=60.0,
                                       upright_after=True)
    # Already awake and restless: movement after the onset counts only when it outlasts the
    # contraction well above the wearer's own rate of the minute before (stretching it out).
    awake = {"duration_s": 12.0, "median_ratio": 10.0, "prior_intensity": 60.0, "early_intensity": 30.0,
             "later_intensity": 300.0}
    assert p(**awake, post_intensity=300.0) > 0.5 > p(**awake, post_intensity=40.0)
    # A short movement out of near-stillness, then getting out of bed and walking: not a
    # reaction to the movement, however much walking follows.
    up = {"duration_s": 4.0, "median_ratio": 15.0, "prior_intensity": 10.0, "early_intensity": 10.0,
          "later_intensity": 230.0, "post_intensity": 230.0, "upright_after": True}
    assert p(**up) < 0.5
    # Moved into a 20-s contraction, held it, and nothing after (a voluntary hold, DOMAIN.md); the
    # same onset followed by stretching it out, standing up or turning over is a cramp.
    hold = {"duration_s": 20.0, "median_ratio": 5.0, "early_intensity": 25.0, "later_intensity": 40.0,
            "post_intensity": 0.0}
    assert p(**hold) < 0.5
    assert p(**hold | {"post_intensity": 60.0, "later_intensity": 120.0}) > 0.5
    assert p(**hold, upright_after=True) > 0.5 and p(**hold, rotation_after=True) > p(**hold)
    assert p(**hold | {"early_intensity": 0.0}) > 0.5  # out of stillness: no sign of a voluntary hold
    # Grabbed the leg as a short contraction began, then stretched that leg out for half a minute
    # after it (a cramp striking a wearer awake in bed): a reaction. The same movement of both
    # legs after it, getting up and walking about, is not.
    grab = {"duration_s": 6.0, "median_ratio": 10.0, "prior_intensity": 14.0, "early_intensity": 13.0,
            "early_span_s": 1.5, "later_intensity": 230.0, "post_intensity": 220.0,
            "post_side_intensity": 220.0}
    assert p(**grab, post_other_intensity=0.0) > 0.5 > p(**grab, post_other_intensity=220.0)
    # Moving about in wake, then lying still when a contraction begins, nothing leading into it or
    # going on with it: the earlier movement is little sign of a voluntary one (DOMAIN.md).
    def cost(**kw):
        terms = {t.name: t.logit for t in cramp_probability(base | kw, CFG)[1]}
        return terms["prior_intensity"] + terms["context_intensity"]

    awake_still = {"duration_s": 7.0, "prior_intensity": 60.0, "context_intensity": 80.0}
    assert 0 > cost(**awake_still) > 0.5 * cost(**awake_still, lead_in_intensity=4.0)
    # Out of a still minute, a contraction whose EMG took 4 s to build up while the leg moved (a
    # movement whose weaker EMG ran into a hold) was led into; one that hardened first, with the
    # leg moving only after it, was not (DOMAIN.md).
    built = {"duration_s": 20.0, "median_ratio": 4.0, "later_intensity": 40.0, "post_intensity": 0.0,
             "ramp_s": 4.0}
    assert p(**built, ramp_intensity=25.0) < 0.5 < p(**built, ramp_intensity=0.0)
    assert p(**built, ramp_intensity=25.0) == pytest.approx(p(**built, lead_in_intensity=25.0))


def _hold(led: bool) -> object:
    """15 minutes of two legs at rest (3 µV EMG, still shanks); at 600 s the left calf holds 6x
    resting for 18 s. Led into: the first 3 s are a movement of the shank (0.1 g) whose EMG,
    2.5x resting, runs into the hold. Hardened first: the hold starts at once, with a 0.5-s jerk."""
    fs, fa, seconds, t0 = 1000.0, 25.0, 900, 600.0
    rng = np.random.default_rng(7)
    sig = {}
    for side in ("L", "R"):
        x = rng.normal(0, 3, int(seconds * fs))
        acc = np.zeros((int(seconds * fa), 3))
        acc[:, 1] = 1.0
        acc += rng.normal(0, 0.004, acc.shape)
        if side == "L":
            x[int(t0 * fs):int((t0 + 18) * fs)] *= 6.0
            moved = 3.0 if led else 0.5
            if led:
                x[int(t0 * fs):int((t0 + 3) * fs)] *= 2.5 / 6.0
            a, b = int(t0 * fa), int((t0 + moved) * fa)
            acc[a:b] += rng.normal(0, 0.1, (b - a, 3))
        sig[f"EMG {side}-Gastroc"] = (x.astype(np.float32), fs)
        for k, ax in enumerate("XYZ"):
            sig[f"ACC {side}-Shank {ax}"] = (acc[:, k].astype(np.float32), fa)
    return analyze_recording(array_recording("hold", dt.datetime(2026, 11, 24, 22, tzinfo=dt.UTC), sig), CFG)


def test_movement_while_a_contraction_builds_up_leads_into_it():
    """The build-up (time to reach cramp.ramp_level of the hold) is measured on the envelope, and
    the leg's movement within it is the first reason against a cramp; a hold that hardened first
    is a cramp, its onset jerk no build-up."""
    led = [e for e in _hold(True).events if e.kind in ("cramp", "sustained_activity") and e.side == "left"]
    assert [e.kind for e in led] == ["sustained_activity"]
    f = led[0].features
    assert f["ramp_s"] == pytest.approx(3.0, abs=0.5) and f["ramp_intensity"] > 5.0
    assert f["why"]["against"][0].startswith("movement while the contraction built up")
    first = [e for e in _hold(False).events if e.kind in ("cramp", "sustained_activity") and e.side == "left"]
    assert [e.kind for e in first] == ["cramp"]
    assert first[0].start_s == pytest.approx(600.0, abs=1.0)
    assert first[0].features["ramp_s"] < 1.0 and first[0].features["ramp_intensity"] == 0.0


def _openhdemg(testdata):
    m = scipy.io.loadmat(testdata / "emg" / "openhdemg-vl-trapezoid" / "otb_testfile.mat")
    return np.asarray(m["Data"][0, 0], float), float(np.squeeze(m["SamplingFrequency"]))


@pytest.mark.parametrize("channel", [0, 27, 63])
def test_real_sustained_contraction_is_one_event_at_the_force_window(testdata, channel):
    data, fs = _openhdemg(testdata)
    x = data[:, channel]
    # A baseline needs rest: the recording's first real second, forward and reversed in turn.
    rest = x[: int(fs)]
    pad = np.concatenate([rest if k % 2 == 0 else rest[::-1] for k in range(60)])
    y = np.concatenate([pad, x, pad[: 20 * int(fs)]])
    rec = array_recording("openhdemg", START, {"EMG L-VastLat": (y, fs)})
    a = analyze_recording(rec, CFG)
    off = len(pad) / fs
    onset, offset = 1.653, 31.008  # derived_force_windows.csv: force above 10 % of its range
    sustained = [e for e in a.events if e.kind in ("cramp", "sustained_activity")]
    assert len(sustained) == 1, [(e.kind, e.start_s - off, e.end_s - off) for e in a.events]
    e = sustained[0]
    assert abs(e.start_s - off - onset) <= 1.0 and abs(e.end_s - off - offset) <= 1.0
    assert not [x for x in a.events if x.kind == "artifact" and x.start_s < e.end_s and x.end_s > e.start_s]


def test_real_tibialis_activations_within_ten_percent(testdata):
    m = scipy.io.loadmat(testdata / "emg" / "emggo-tibialis-ballistic" / "Sample_Data.mat",
                         squeeze_me=True, struct_as_record=False)
    rec = array_recording("emggo", START, {"EMG L-TibAnt": (np.asarray(m["EMG"].channelData, float),
                                                            float(m["EMG"].fs))})
    a = analyze_recording(rec, CFG)
    found = len(a.of_kind("limb_movement"))
    assert 0.9 * 56 <= found <= 1.1 * 56, found  # its authors count 56
    assert not a.of_kind("cramp")


def test_real_gait_bursts_once_per_stride_and_no_cramp(testdata):
    import csv

    d = testdata / "emg" / "musclesynergies-gait-emg"
    rows = np.loadtxt(d / "ID0012_TW_01_raw_emg.csv", delimiter=",", skiprows=1)
    with open(d / "ID0012_TW_01_raw_emg.csv") as fh:
        cols = fh.readline().strip().split(",")
    with open(d / "ID0012_TW_01_cycles.csv") as fh:
        touchdowns = [float(r["touchdown_s"]) for r in csv.DictReader(fh)]
    t_first = float(rows[0, 0])  # the export's time of its first sample
    fs = 1000.0
    for muscle, label in (("TA", "EMG R-TibAnt"), ("GM", "EMG R-Gastroc"), ("SO", "EMG R-Soleus")):
        x = rows[:, cols.index(muscle)]
        # Walking follows a rest in bed: 60 s of the quietest real second of this channel first.
        env = np.convolve(np.abs(x - x.mean()), np.ones(250) / 250, mode="valid")
        q = int(np.argmin(env[: len(env) - 1000]))
        rest = x[q:q + 250] - x[q:q + 250].mean()
        pad = np.concatenate([rest if k % 2 == 0 else rest[::-1] for k in range(240)])
        rec = array_recording("gait", START, {label: (np.concatenate([pad, x - x.mean()]), fs)})
        a = analyze_recording(rec, CFG)
        off = len(pad) / fs - t_first
        moving = [e for e in a.events
                  if e.kind in ("limb_movement", "sustained_activity") and e.end_s >= off]
        assert not a.of_kind("cramp"), muscle
        # One burst per stride: between bursts the TA rests ~0.5 s at 8-14 µV, above the AASM
        # offset level, so the steps are found as a rhythmic train and told apart.
        for t0, t1 in itertools.pairwise(touchdowns):
            onsets = [e for e in moving if t0 <= e.start_s - off < t1]
            assert len(onsets) == 1, (muscle, t0, [(e.subtype, e.start_s - off) for e in moving])
            assert onsets[0].subtype == "rhythmic"
        # Walking is not a leg movement for PLM scoring.
        assert not [e for e in moving if e.subtype == "lm"], muscle


def test_csv_rate_from_time_column_is_clean_and_backwards_time_is_refused(tmp_path):
    t = np.arange(2000) / 1000.0
    body = "\n".join(f"{ti:.3f},{v:.2f}" for ti, v in zip(t, np.random.default_rng(1).normal(0, 3, t.size),
                                                          strict=True))
    p = tmp_path / "night.csv"
    p.write_text("time_s,EMG L-Gastroc [uV]\n" + body + "\n")
    rec = read_csv_recording(p)
    assert rec.channels[0].fs == 1000.0
    assert any("start time unknown" in n for n in rec.notes)
    lines = p.read_text().splitlines()
    lines[500], lines[501] = lines[501], lines[500]
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(RecordingError, match="time column does not increase at data row"):
        read_csv_recording(p)


def test_sleep_efficiency_never_above_one(testdata):
    from ingest.recordings.edf import read_edf_recording

    for name in ("test_subsecond.bdf", "test_subsecond.edf"):
        path = testdata / "edf" / "edfio-testdata" / name
        try:
            rec = read_edf_recording(path, aliases={"Fp1": "EMG L-Gastroc"})
        except RecordingError:
            continue
        s = analyze_recording(rec, CFG).summary
        assert s.sleep_efficiency is None or s.sleep_efficiency <= 1.0


def test_real_nox_psg_leg_channels_too_coarse_to_score_is_said(testdata):
    from ingest.recordings.edf import read_edf_recording

    rec = read_edf_recording(testdata / "psg" / "rsleep-nox-a1-psg" / "subject1.edf")
    assert {c.label for c in rec.channels if c.kind == "emg"} == {"Left Leg", "Right Leg"}
    a = analyze_recording(rec, CFG)
    obj = a.to_json()
    assert [c["resolution"] for c in obj["recording"]["channels"]] == [pytest.approx(31.25, abs=0.01)] * 2
    note = next(n for n in a.notes if n.startswith("EMG too coarsely quantised"))
    assert "31.25 µV" in note and "8-µV leg-movement onset criterion" in note
    assert not [e for e in a.events if e.kind == "artifact"]  # no unexplained "artefact 94%"
