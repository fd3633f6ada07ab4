"""The simulator: reproducible, block-invariant, physiologically shaped truth, EDF+ round trip."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from ingest.recordings.edf import read_edf_recording
from ingest.simulate import NightOptions, plan_night, render, write_night
from ingest.simulate.render import acc_labels, emg_labels
from ingest.simulate.writer import truth_path


def test_same_seed_same_night_other_seed_other_night():
    a = plan_night(NightOptions(hours=1, seed=5))
    b = plan_night(NightOptions(hours=1, seed=5))
    c = plan_night(NightOptions(hours=1, seed=6))
    assert [e.as_dict() for e in a.truth] == [e.as_dict() for e in b.truth]
    assert [e.as_dict() for e in a.truth] != [e.as_dict() for e in c.truth]
    np.testing.assert_array_equal(render(a, "EMG L-Gastroc", 0, 30_000),
                                  render(b, "EMG L-Gastroc", 0, 30_000))


@pytest.mark.parametrize("label", ["EMG R-Gastroc", "ACC L-Shank Y"])
def test_any_block_split_renders_the_same_samples(label):
    plan = plan_night(NightOptions(hours=0.2, seed=2, fs_emg=487.5))
    fs = 487.5 if label.startswith("EMG") else 50.0
    n = int(plan.duration_s * fs)
    whole = render(plan, label, 0, n)
    cuts = [0, 1, 4870, 4871, 12345, 20000, n]
    pieces = np.concatenate([render(plan, label, a, b) for a, b in itertools.pairwise(cuts)])
    np.testing.assert_array_equal(whole, pieces)


def test_truth_follows_the_domain_notes():
    kinds = {}
    for seed in range(6):
        plan = plan_night(NightOptions(hours=8, seed=seed))
        for e in plan.truth:
            kinds.setdefault(e.kind, []).append(e)
        sleep = [(a, b) for a, b, s in plan.sleep if s == "sleep"]
        assert sleep and sleep[0][0] > 0, "the night starts awake (sleep-onset latency)"
    for c in kinds["cramp"]:
        assert c.side in ("left", "right")
        assert 5 <= c.end_s - c.start_s <= 600
        assert 2 <= c.attrs["amplitude_ratio"] <= 100
    for s in kinds["plm_series"]:
        assert s.attrs["count"] >= 4 and 5 <= s.attrs["period_s"] <= 90
    for lm in kinds["limb_movement"]:
        assert 0.5 <= lm.end_s - lm.start_s <= 10
    for a in kinds["awakening"]:
        assert a.end_s - a.start_s >= 60
    assert {"cramp", "limb_movement", "plm_series", "rollover", "awakening", "bed_exit",
            "voluntary", "artifact"} <= set(kinds)


def test_edf_round_trip_with_other_units(tmp_path):
    plan = plan_night(NightOptions(hours=0.25, seed=4, fs_emg=250.0, fs_acc=25.0, emg_unit="mV",
                                   acc_unit="m/s2", mains_hz=60.0))
    path = tmp_path / "n.edf"
    tp = write_night(plan, path)
    assert tp == truth_path(path)
    truth = json.loads(tp.read_text())
    assert truth["schema"] == "nightcramp.truth/1" and truth["mains_hz"] == 60.0
    rec = read_edf_recording(path)
    assert [c.label for c in rec.channels] == [*emg_labels(plan), *acc_labels()]
    assert [c.unit for c in rec.channels] == ["mV"] * 2 + ["m/s2"] * 6
    assert rec.start == plan.options.start
    for i, c in enumerate(rec.channels):
        n = c.n_samples
        ref = render(plan, c.label, 0, n)
        tol = 3000 / 32767 if c.kind == "emg" else 8 / 32767
        np.testing.assert_allclose(rec.read(i, 0, n), ref, atol=tol * 1.01)
    texts = [a.text for a in rec.annotations]
    assert len(texts) == len(plan.truth)
    assert all(t.startswith("truth:") for t in texts)
