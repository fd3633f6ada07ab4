"""A PSG lab's scoring as a second scorer: the Noxturnal CSV export (UTF-16, French labels)."""

from __future__ import annotations

import datetime as dt

import pytest

from detector.engine.config import DetectorConfig, Plm
from detector.engine.events import Event
from detector.engine.plm import find_series
from ingest.recordings.recording import RecordingError
from ingest.recordings.scoring import read_noxturnal_csv

NOX = "psg/rsleep-nox-a1-psg/noxturnal_events_example_unicode_2.csv"


def test_utf16_french_export_is_read_and_mapped(testdata):
    sc = read_noxturnal_csv(testdata / NOX)
    assert len(sc.of_kind("limb_movement")) == 29
    assert len(sc.of_kind("plm_series")) == 1
    stages = {k: len(sc.of_kind(k)) for k in ("wake", "n1", "n2", "n3", "rem")}
    assert all(stages.values()) and sum(stages.values()) > 800  # 30-s epochs of a night
    assert sc.of_kind("limb_movement")[0].start == dt.datetime(2018, 7, 26, 0, 21, 35, tzinfo=dt.UTC)
    assert "Hypopnée" in sc.unmapped  # named, not guessed
    utf8 = read_noxturnal_csv(testdata / NOX.replace(".csv", ".utf8.csv"))
    assert [(e.kind, e.start) for e in utf8.events] == [(e.kind, e.start) for e in sc.events]


def test_its_leg_movements_give_noxturnals_plm_series_by_aasm_rules(testdata):
    sc = read_noxturnal_csv(testdata / NOX)
    origin = sc.start
    moves = [Event("limb_movement", *sc.seconds(e, origin), None, None, 1.0, "lm")
             for e in sc.of_kind("limb_movement")]
    ours = find_series(moves, DetectorConfig())
    theirs = [sc.seconds(e, origin) for e in sc.of_kind("plm_series")]
    assert [(s.start_s, s.end_s, len(s.onsets)) for s in ours] == [(*theirs[0], 4)]
    assert theirs[0] == pytest.approx((2135.0, 2262.0))  # 00:21:35-00:23:42
    # WASM needs intervals of at least 10 s; the scored series has 15-89 s, so it stands too.
    wasm = find_series(moves, DetectorConfig(plm=Plm(rules="wasm")))
    assert [(s.start_s, s.end_s) for s in wasm] == [theirs[0]]


def test_broken_exports_are_named(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("Heure de début,Heure de fin,Événement,Durée,\n[],[],[],[s],\n32/13/2018 99:00:00,x,MJ,1,\n")
    with pytest.raises(RecordingError, match=r"bad.csv: row 3: time '32/13/2018 99:00:00'"):
        read_noxturnal_csv(p)
    p.write_text("just one column\n")
    with pytest.raises(RecordingError, match="not a Noxturnal export"):
        read_noxturnal_csv(p)
    p.write_bytes(b"\xff\x00\xfe")
    with pytest.raises(RecordingError, match="neither UTF-16"):
        read_noxturnal_csv(p)


def test_scoring_command_checks_the_series(testdata, cli):
    import subprocess

    r = subprocess.run([cli, "scoring", str(testdata / NOX)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "limb_movement 29" in r.stdout and "plm_series 1" in r.stdout
    assert "00:21:35-00:23:42  4 movements  (as scored)" in r.stdout
    assert "Hypopnée 89" in r.stdout  # unmapped labels are named
    bad = subprocess.run([cli, "scoring", str(testdata / "psg" / "nope.csv")], capture_output=True, text=True)
    assert bad.returncode != 0 and "nope.csv" in bad.stderr and "Traceback" not in bad.stderr


def test_cohen_kappa_corrects_for_chance():
    import numpy as np

    from detector.agreement import cohen_kappa

    a = np.array([0] * 90 + [1] * 10)
    assert cohen_kappa(a, a) == 1.0
    assert cohen_kappa(a, np.zeros(100)) == 0.0  # "always asleep" agrees on 90% and is worth nothing
    # 20 epochs both wake, 15 and 5 apart, 60 both asleep: po 0.80, pe 0.575, kappa 0.529.
    b = np.array([1] * 20 + [1] * 15 + [0] * 5 + [0] * 60)
    c = np.array([1] * 20 + [0] * 15 + [1] * 5 + [0] * 60)
    assert abs(cohen_kappa(b, c) - 0.225 / 0.425) < 1e-9
    assert cohen_kappa(np.zeros(5), np.zeros(5)) is None


def _noxturnal_csv(truth: dict, path) -> None:
    """A lab's scoring of a simulated night as Noxturnal exports it: UTF-16, French labels,
    30-s stage epochs, one row per leg movement."""
    start = dt.datetime.fromisoformat(truth["start"])

    def clock(s: float) -> str:
        return (start + dt.timedelta(seconds=s)).strftime("%d/%m/%Y %H:%M:%S")

    rows = ["Heure de début,Heure de fin,Événement,Durée", "[],[],[],[s]"]
    for k in range(int(truth["duration_s"] // 30)):
        t = 30 * k + 15
        state = next((x["state"] for x in truth["sleep"] if x["start_s"] <= t < x["end_s"]), "wake")
        rows.append(f"{clock(30 * k)},{clock(30 * k + 30)},{'N2' if state == 'sleep' else 'Éveil'},30")
    for e in truth["events"]:
        if e["kind"] == "limb_movement":
            rows.append(f"{clock(e['start_s'])},{clock(e['end_s'])},MJ,{e['end_s'] - e['start_s']:.1f}")
    path.write_bytes("\r\n".join(rows).encode("utf-16"))


def test_nightcramp_is_compared_with_a_labs_scoring_of_the_same_night(tmp_path, cli):
    import json
    import subprocess

    edf = tmp_path / "night.edf"
    r = subprocess.run([cli, "simulate", str(edf), "--hours", "1", "--seed", "25"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    truth = json.loads(edf.with_name("night.truth.json").read_text())
    lab = tmp_path / "lab.csv"
    _noxturnal_csv(truth, lab)
    out = subprocess.run([cli, "scoring", str(lab), "--against", str(edf), "--json"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    ag = json.loads(out.stdout)
    lm = next(k for k in ag["kinds"] if k["kind"] == "limb_movement")
    assert lm["theirs"] > 10 and lm["recall"] >= 0.75 and lm["precision"] >= 0.8, lm
    assert lm["onset_median_s"] < 1.5, lm
    ep = ag["epochs"]
    assert ep["epochs"] == int(truth["duration_s"] // 30) and ep["kappa"] >= 0.5, ep
    # In words, for a person; the analysis JSON works as the night too.
    analysis = tmp_path / "night.json"
    analysis.write_text(subprocess.run([cli, "analyze", str(edf), "--json"], capture_output=True, text=True,
                                       check=True).stdout)
    words = subprocess.run([cli, "scoring", str(lab), "--against", str(analysis)], capture_output=True,
                           text=True)
    assert words.returncode == 0, words.stderr
    assert "limb_movement: theirs" in words.stdout and "Cohen's kappa" in words.stdout
    # Another night's scoring is refused, not compared.
    other = dict(truth, start="2020-01-01T22:00:00+00:00")
    _noxturnal_csv(other, tmp_path / "other.csv")
    bad = subprocess.run([cli, "scoring", str(tmp_path / "other.csv"), "--against", str(analysis)],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "another night?" in bad.stderr


def test_edf_annotations_are_read_as_a_scoring(tmp_path):
    import edfio
    import numpy as np

    from ingest.recordings.scoring import read_scoring

    path = tmp_path / "scored.edf"
    sig = edfio.EdfSignal(np.zeros(6000), sampling_frequency=100, label="EMG L-TibAnt",
                          physical_dimension="uV", physical_range=(-100, 100))
    notes = [edfio.EdfAnnotation(0, 30, "Sleep stage W"), edfio.EdfAnnotation(30, 30, "Sleep stage N2"),
             edfio.EdfAnnotation(35.5, 1.5, "Limb movement (left)"),
             edfio.EdfAnnotation(40, 2, "Leg movement right"), edfio.EdfAnnotation(50, 0, "Lights on")]
    edfio.Edf([sig], annotations=notes, starttime=dt.time(23, 0)).write(path)
    sc = read_scoring(path)
    assert [(e.kind, e.side) for e in sc.events] == [("wake", None), ("n2", None), ("limb_movement", "left"),
                                                     ("limb_movement", "right"), ("other", None)]
    assert sc.unmapped == {"Lights on": 1}
