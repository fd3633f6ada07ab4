"""Diary and advice with a real InfluxDB: check-ins stored per night, advice links night -> rule
ids stored and updated when a check-in arrives, multi-night rules from stored history."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest

from detector.advice.rules import DISCLAIMER
from detector.service.settings import load_services
from detector.store.influx import InfluxStore


@pytest.fixture()
def services(tmp_path, influxd) -> Path:
    p = tmp_path / "services.toml"
    p.write_text(f"[store]\nurl = \"http://127.0.0.1:{influxd.port}\"\n"
                 f"database = \"adv_{tmp_path.name[-8:]}\"\nspool_dir = \"{tmp_path / 'spool'}\"\n")
    return p


@pytest.fixture()
def store(services):
    s = InfluxStore(load_services(services).store)
    s.setup()
    yield s
    s.close()


def _night(night: str, cramps: int, longest_s: float = 60.0) -> dict:
    """An analysis object as the detector stores it, with ``cramps`` left-leg cramps."""
    start = dt.datetime.fromisoformat(night).replace(hour=22, tzinfo=dt.UTC)
    events = []
    for k in range(cramps):
        t = 3600.0 * (k + 1)
        events.append({"kind": "cramp", "start_s": t, "end_s": t + longest_s, "duration_s": longest_s,
                       "side": "left", "channel": "EMG L-Gastroc", "confidence": 0.9, "features": {},
                       "start": (start + dt.timedelta(seconds=t)).isoformat()})
    summary = {"cramps": cramps, "cramps_left": cramps, "cramps_right": 0,
               "cramp_longest_s": longest_s if cramps else 0.0, "cramp_total_s": longest_s * cramps,
               "awakenings": 2, "awakenings_after_cramp": 0, "sleep_efficiency": 0.9,
               "plms_index_per_h": 2.0, "time_in_bed_s": 8 * 3600.0, "signal_lost_s": 0,
               "signal_quality": {"EMG L-Gastroc": {"kind": "emg", "artifact_pct": 1.0, "lost_pct": 0.0}}}
    rec = {"name": "t", "start": start.isoformat(), "duration_s": 8 * 3600.0, "channels": []}
    return {"schema": "nightcramp.analysis/1", "events": events, "summary": summary, "notes": [],
            "advice": [], "recording": rec}


def run(cli, *args):
    return subprocess.run([cli, *args], capture_output=True, text=True, timeout=60)


def test_diary_is_stored_per_night_and_merges(cli, services, store):
    r = run(cli, "diary", "evening", "--wearer", "w-1", "--night", "2026-11-20", "--exercise", "hard",
            "--fluids-l", "1.2", "--medication", "statin", "--medication", "diuretic",
            "--services", str(services))
    assert r.returncode == 0, r.stderr
    assert "night is not recorded yet" in r.stdout
    r = run(cli, "diary", "evening", "--wearer", "w-1", "--night", "2026-11-20", "--stretched", "yes",
            "--services", str(services))
    assert r.returncode == 0, r.stderr
    r = run(cli, "diary", "morning", "--wearer", "w-1", "--night", "2026-11-20", "--cramp-woke", "yes",
            "--services", str(services))
    assert r.returncode == 0, r.stderr
    d = store.diaries("w-1")["2026-11-20"]
    assert d["evening"]["exercise"] == "hard" and d["evening"]["fluids_l"] == 1.2
    assert d["evening"]["medications"] == ["diuretic", "statin"] and d["evening"]["stretched"] is True
    assert d["morning"]["cramp_woke"] is True and d["morning"]["calf_swelling"] is None
    rows = store.query("SELECT \"exercise\", \"medications\" FROM \"diary\" WHERE \"part\" = 'evening'")
    assert rows[0]["values"][0][1:] == ["hard", "diuretic,statin"]
    shown = json.loads(run(cli, "diary", "show", "--wearer", "w-1", "--night", "2026-11-20",
                           "--services", str(services)).stdout)
    assert shown["evening"]["fluids_l"] == 1.2


def test_bad_diary_answers_are_refused_clearly(cli, services):
    r = run(cli, "diary", "evening", "--wearer", "w-1", "--fluids-l", "-3", "--services", str(services))
    assert r.returncode == 2 and "fluids_l" in r.stderr and "Traceback" not in r.stderr
    r = run(cli, "diary", "morning", "--wearer", "w-1", "--warm-red", "maybe", "--services", str(services))
    assert r.returncode == 2 and "answer yes or no" in r.stderr
    r = subprocess.run([cli, "diary", "morning", "--wearer", "w-1", "--services", str(services)],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "no answers given" in r.stderr


def test_morning_red_flag_updates_the_stored_advice(cli, services, store):
    store.write_analysis("w-2", "2026-11-24", _night("2026-11-24", 1))
    store.write_advice("w-2", "2026-11-24", [])
    r = run(cli, "diary", "morning", "--wearer", "w-2", "--night", "2026-11-24", "--swelling", "one-side",
            "--services", str(services))
    assert r.returncode == 0, r.stderr
    assert "One calf is swollen [see-a-clinician]" in r.stdout
    assert DISCLAIMER in " ".join(r.stdout.split())
    stored = store.advice("w-2", "2026-11-24")
    assert stored[0]["rule"] == "one-sided-swelling" and stored[0]["level"] == "see-a-clinician"
    assert stored[0]["facts"] == {"calf_swelling": "one-side"}
    assert store.analysis("w-2", "2026-11-24")["advice"] == stored
    assert "one-sided-swelling" in store.advice_links("w-2")["2026-11-24"]


def test_two_weeks_of_cramp_nights_escalate_and_explain(cli, services, store):
    first = dt.date(2026, 11, 10)
    for k in range(14):
        night = (first + dt.timedelta(days=k)).isoformat()
        store.write_analysis("w-3", night, _night(night, 1 if k % 2 == 0 else 0))
    r = run(cli, "advice", "--wearer", "w-3", "--night", "2026-11-22", "--explain",
            "--services", str(services))
    assert r.returncode == 0, r.stderr
    assert "FIRED frequent-two-weeks" in r.stdout
    assert "with cramp_nights_7=4.0, cramp_nights_prev_7=3.0" in r.stdout
    assert "Cramps on 3 or more nights a week, two weeks running [see-a-clinician]" in r.stdout
    assert store.advice_links("w-3")["2026-11-22"][0] == "frequent-two-weeks"
    # A week with only two cramp nights before it does not escalate.
    js = json.loads(run(cli, "advice", "--wearer", "w-3", "--night", "2026-11-15", "--json",
                        "--services", str(services)).stdout)
    assert "frequent-two-weeks" not in [a["rule"] for a in js["advice"]]
    r = run(cli, "advice", "--wearer", "w-3", "--night", "2027-01-01", "--services", str(services))
    assert r.returncode == 2 and "no stored night 2027-01-01" in r.stderr


def test_advice_without_a_store_says_so(cli, tmp_path):
    p = tmp_path / "services.toml"
    p.write_text("[store]\nurl = \"http://127.0.0.1:9\"\ntimeout_s = 1\nretries = 0\n")
    r = run(cli, "advice", "--wearer", "w-1", "--services", str(p))
    assert r.returncode == 2 and "InfluxDB at http://127.0.0.1:9" in r.stderr and "Traceback" not in r.stderr


def test_the_morning_check_in_goes_to_the_latest_recorded_night(cli, services, store):
    for night in ("2026-11-24", "2026-11-25"):
        store.write_analysis("w-4", night, _night(night, 0))
    r = run(cli, "diary", "morning", "--wearer", "w-4", "--cramp-woke", "yes", "--services", str(services))
    assert r.returncode == 0, r.stderr
    assert "night of 2026-11-25 (the latest recorded for w-4" in r.stderr
    assert store.diaries("w-4")["2026-11-25"]["morning"]["cramp_woke"] is True
    shown = json.loads(run(cli, "diary", "show", "--wearer", "w-4", "--services", str(services)).stdout)
    assert shown["night"] == "2026-11-25" and shown["morning"]["cramp_woke"] is True
