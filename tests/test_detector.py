"""What the detector finds in known nights, in the real tibialis EMG, and in damaged input."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import scipy.io

from detector.analyze import analyze_recording
from detector.engine.config import DetectorConfig, Plm
from ingest.recordings.recording import Recording, RecordingError, array_recording

CFG = DetectorConfig()
START = dt.datetime(2026, 11, 24, 22, 0, tzinfo=dt.UTC)
LM_IGNORE = ("voluntary", "cramp", "bed_exit", "artifact:lead_off")


def _truth(plan):
    return [e.as_dict() for e in plan.truth]


def test_cramps_found_on_the_right_leg_at_the_right_time(night_plan, night_analysis):
    truth = [e for e in night_plan.truth if e.kind == "cramp"]
    found = night_analysis.of_kind("cramp")
    assert truth, "the test night must contain cramps"
    m = night_analysis.compare(_truth(night_plan), "cramp")
    assert (m.tp, m.fp, m.fn) == (len(truth), 0, 0)
    assert max(abs(e) for e in m.onset_errors_s) < 2.0
    for c in found:
        assert c.channel.startswith("EMG")
        assert 0.5 <= c.confidence <= 1.0
        assert {"median_ratio", "prior_intensity", "coactivation"} <= set(c.features)


def test_leg_movements_awakenings_series_rollovers(night_plan, night_analysis):
    t = _truth(night_plan)
    lm = night_analysis.compare(t, "limb_movement", subtypes=("lm",), ignore_kinds=LM_IGNORE)
    assert lm.f1 >= 0.95
    aw = night_analysis.compare(t, "awakening", sided=False)
    assert aw.f1 >= 0.85
    plm = night_analysis.compare(t, "plm_series", sided=False, subtypes=("sleep",))
    assert plm.tp >= 1 and plm.fp == 0
    assert night_analysis.compare(t, "rollover", sided=False).f1 >= 0.8
    assert night_analysis.compare(t, "bed_exit", sided=False).f1 >= 0.8


def test_summary_agrees_with_events_and_states_definitions(night_analysis):
    s = night_analysis.summary.to_json()
    assert s["cramps"] == len(night_analysis.of_kind("cramp"))
    assert s["awakenings"] == len(night_analysis.of_kind("awakening"))
    assert "wake bout of at least 60 s" in s["awakening_definition"]
    assert 0 < s["sleep_efficiency"] < 1
    assert s["total_sleep_time_s"] + s["waso_s"] <= s["time_in_bed_s"]
    assert s["plms_index_per_h"] is not None and s["plms_index_per_h"] > 0
    assert s["awakenings_after_cramp"] >= 1
    for v in s["signal_quality"].values():
        if v["kind"] == "emg":
            assert v["mains_hz"] == 50.0 and 1.0 < v["baseline_uV"] < 6.0


def _subset(rec: Recording, keep) -> Recording:
    idx = [i for i, c in enumerate(rec.channels) if keep(c)]
    return Recording(rec.name, rec.start, rec.duration_s, [rec.channels[i] for i in idx],
                     [rec.sources[i] for i in idx])


def test_emg_only_still_finds_cramps_and_says_what_it_cannot_tell(night_plan, night_rec):
    a = analyze_recording(_subset(night_rec, lambda c: c.kind == "emg"), CFG)
    assert any("no accelerometer" in n for n in a.notes)
    m = a.compare(_truth(night_plan), "cramp")
    assert m.recall == 1.0
    assert a.of_kind("rollover") == [] and a.of_kind("bed_exit") == []


def test_acc_only_gives_sleep_and_awakenings(night_plan, night_rec):
    a = analyze_recording(_subset(night_rec, lambda c: c.kind == "acc"), CFG)
    assert any("no leg EMG" in n for n in a.notes)
    assert a.of_kind("cramp") == [] and a.of_kind("limb_movement") == []
    assert a.compare(_truth(night_plan), "awakening", sided=False).f1 >= 0.8
    assert a.summary.total_sleep_time_s > 0


def test_one_leg_only_is_said(night_rec):
    a = analyze_recording(_subset(night_rec, lambda c: c.side == "left"), CFG)
    assert any("left leg only" in n for n in a.notes)


def _burst_train(period_s: float, n: int, fs: float = 250.0) -> Recording:
    rng = np.random.default_rng(0)
    total = int((60 + period_s * n + 120) * fs)
    x = rng.normal(0, 3, total)
    for k in range(n):
        a = int((60 + k * period_s) * fs)
        x[a:a + int(1.5 * fs)] *= 12
    return array_recording("train", START, {"EMG L-TibAnt": (x, fs)})


def test_plm_rules_aasm_and_wasm_differ_on_short_intervals():
    rec = _burst_train(7.0, 12)
    aasm = analyze_recording(rec, CFG)
    wasm = analyze_recording(rec, CFG.model_copy(update={"plm": Plm(rules="wasm")}))
    assert len(aasm.of_kind("limb_movement")) == 12
    assert [e.features["count"] for e in aasm.of_kind("plm_series")] == [12]
    assert wasm.of_kind("plm_series") == []


def test_real_tibialis_emg_activations(testdata):
    m = scipy.io.loadmat(testdata / "emg" / "emggo-tibialis-ballistic" / "Sample_Data.mat",
                         squeeze_me=True, struct_as_record=False)
    x = np.asarray(m["EMG"].channelData, float)
    rec = array_recording("emggo", START, {"EMG L-TibAnt": (x, float(m["EMG"].fs))})
    a = analyze_recording(rec, CFG)
    found = len(a.of_kind("limb_movement"))
    # Its authors count 56 ballistic activations; ECG bleed and motion swings are in the file.
    assert 50 <= found <= 64, found
    assert a.of_kind("cramp") == []


def _noise_rec(seconds: float, fs: float = 500.0, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 3, int(seconds * fs))


def test_one_minute_recording_degrades_gracefully():
    rec = array_recording("short", START, {"EMG L-Gastroc": (_noise_rec(60), 500.0)})
    a = analyze_recording(rec, CFG)
    assert a.summary.sleep_onset_s is None
    assert a.summary.cramps == 0


def test_nan_flat_clipped_and_lead_off_become_events():
    fs = 500.0
    x = _noise_rec(600, fs)
    x[int(100 * fs):int(130 * fs)] = np.nan  # samples missing
    x[int(200 * fs):int(260 * fs)] = 0.0  # flat line
    seg = x[int(300 * fs):int(320 * fs)]
    x[int(300 * fs):int(320 * fs)] = np.clip(seg * 800, -3000, 3000)  # saturating
    t = np.arange(int(40 * fs)) / fs
    x[int(400 * fs):int(440 * fs)] = 600 * np.sin(2 * np.pi * 50 * t)  # electrode off: hum only
    rec = array_recording("damaged", START, {"EMG L-Gastroc": (x, fs)})
    a = analyze_recording(rec, CFG)
    lost = a.of_kind("signal_lost")
    assert len(lost) == 1 and lost[0].start_s == pytest.approx(100, abs=0.2)
    subtypes = {(e.subtype, round(e.start_s / 10)) for e in a.of_kind("artifact")}
    assert ("flat", 20) in subtypes
    assert ("saturation", 30) in subtypes
    assert ("lead_off", 40) in subtypes
    assert a.of_kind("cramp") == []


@pytest.mark.parametrize("hum_at_start", [0.0, 15.0])
@pytest.mark.parametrize("line_hz", [50.0, 60.0])
def test_a_lead_off_with_modest_hum_is_an_artefact_not_a_cramp(hum_at_start, line_hz):
    """A detached electrode picks up hum of tens of µV only, with harmonics, on a night whose
    mains line was (15 µV) or was not (none) found at the start: a lead-off, not a contraction.
    It lasts longer than half the baseline window, and the resting level must not sink to the
    detached electrode's, or the reattached one would look like a contraction."""
    fs = 1000.0
    x = _noise_rec(1500, fs).astype(np.float32)
    t = np.arange(x.size) / fs
    x += (hum_at_start * np.sin(2 * np.pi * line_hz * t)).astype(np.float32)
    off = (t >= 300) & (t < 720)
    x[off] *= 0.03
    for h, rel in ((1, 1.0), (3, 0.3), (5, 0.15)):
        x[off] += (70.0 * rel * np.sin(2 * np.pi * h * line_hz * t[off])).astype(np.float32)
    rec = array_recording("lead-off", START, {"EMG L-Gastroc": (x, fs),
                                              "EMG R-Gastroc": (_noise_rec(1500, fs, 2), fs)})
    a = analyze_recording(rec, CFG)
    leads = [e for e in a.of_kind("artifact") if e.subtype == "lead_off"]
    assert len(leads) == 1
    assert leads[0].start_s == pytest.approx(300, abs=2) and leads[0].end_s == pytest.approx(720, abs=2)
    assert [e for e in a.events if e.kind in ("cramp", "sustained_activity")] == []


def test_no_leg_channels_is_a_clear_error():
    rec = array_recording("psg", START, {"EEG Fpz-Cz": (_noise_rec(30), 100.0)})
    with pytest.raises(RecordingError, match=r"no leg EMG or accelerometer channels found "
                                             r"\(channels present: EEG Fpz-Cz\)"):
        analyze_recording(rec, CFG)


def test_emg_rate_too_low_is_a_clear_error():
    rec = array_recording("slow", START, {"EMG L-Gastroc": (_noise_rec(30, 20.0), 20.0)})
    with pytest.raises(RecordingError, match="sampling rate 20 Hz is too low for EMG"):
        analyze_recording(rec, CFG)
