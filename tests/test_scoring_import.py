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
