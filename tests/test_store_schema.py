"""Every stored measurement keeps one type per field, and re-writing a night never loses it
(a real InfluxDB, started by the fixture)."""

from __future__ import annotations

import copy
import json
import time

import httpx
import numpy as np
import pytest

from detector.engine.summary import summarize
from detector.store import schema as store_schema
from detector.store.influx import NightConflict, StoreError
from detector.store.schema import MEASUREMENTS, SUMMARY_FIELDS, SchemaError, coerce


@pytest.fixture()
def store(make_store):
    return make_store("s")


def _field_types(store, measurement: str, rp: str | None = None) -> dict[str, str]:
    src = f'"{rp}"."{measurement}"' if rp else f'"{measurement}"'
    return {k: t for s in store.query(f"SHOW FIELD KEYS FROM {src}") for k, t in s["values"]}


def _analysis(night_analysis, **summary) -> dict:
    obj = json.loads(json.dumps(night_analysis.to_json()))
    obj["summary"].update(summary)
    return obj


def test_every_numeric_summary_value_is_declared(night_analysis):
    numeric = {k for k, v in night_analysis.summary.to_json().items()
               if isinstance(v, int | float) and not isinstance(v, bool)}
    assert numeric <= set(SUMMARY_FIELDS), numeric - set(SUMMARY_FIELDS)
    assert summarize  # the summary above is the one summarize() builds


@pytest.mark.parametrize("edge", [0, 0.0, 12.0, None, 3])
def test_a_night_written_twice_with_edge_values_keeps_its_types(store, night_analysis, edge):
    """0 (an int), integral floats and None in every summary value: the second night of the
    same week is stored as well as the first (InfluxDB refuses a field of another type)."""
    first = _analysis(night_analysis, **{k: 1.5 if t == "float" else 1 for k, t in SUMMARY_FIELDS.items()})
    second = _analysis(night_analysis, **dict.fromkeys(SUMMARY_FIELDS, edge))
    assert store.write_analysis("w-1", "2026-11-24", first)
    assert store.write_analysis("w-1", "2026-11-25", second)
    assert {n["night"] for n in store.nights("w-1")} == {"2026-11-24", "2026-11-25"}
    types = _field_types(store, "night")
    for k, t in SUMMARY_FIELDS.items():
        assert types[k] == t, k
    ev = _field_types(store, "event")
    assert all(ev[k] == t for k, t in MEASUREMENTS["event"].items())


def test_diary_review_advice_and_frames_keep_their_types(store, night_analysis):
    store.write_analysis("w-1", "2026-11-24", _analysis(night_analysis))
    store.write_diary("w-1", "2026-11-24", "evening", {"fluids_l": 1, "stretched": True, "exercise": "light",
                                                       "medications": ["statin"]})
    store.write_diary("w-1", "2026-11-25", "evening", {"fluids_l": 1.5, "stretched": False})
    for k, start in enumerate((0, 12.3, 7)):  # an int, a float, an int again
        store.write_review("w-1", "2026-11-24", {"event": f"e{k}", "action": "add", "kind": "cramp",
                                                 "start_s": start, "end_s": start + 10, "side": None,
                                                 "note": None, "by": "dr",
                                                 "at": f"2026-11-25T08:00:0{k}+00:00"})
    store.write_advice("w-1", "2026-11-24", [{"rule": "r", "title": "t", "text": "x", "level": "info",
                                              "source": "s", "facts": {"a": 1}}] * 2)
    raw = np.arange(20, dtype=np.int16).reshape(10, 2)
    t0 = (time.time_ns() // 10**9 - 3600) * 10**9  # inside the raw retention
    for first, rate in ((0, 1000), (10, 1000.0)):
        store.write_frame("w-1", "left", "emg", ["EMG L-Gastroc", "EMG L-TibAnt"], raw, (1, 0.5), rate,
                          first, t0 + first * 10**6)
    assert len(store.reviews("w-1", "2026-11-24")) == 3
    assert store.diaries("w-1")["2026-11-25"]["evening"]["fluids_l"] == 1.5
    for m, rp in (("diary", None), ("review", None), ("advice", None), ("env", None), ("emg", "raw")):
        types = _field_types(store, m, rp)
        assert types, m
        assert all(MEASUREMENTS[m][k] == t for k, t in types.items()), (m, types)


def test_values_that_do_not_fit_are_refused_before_anything_is_sent():
    with pytest.raises(SchemaError, match=r"review.start_s: a number"):
        coerce("review", {"start_s": True})
    with pytest.raises(SchemaError, match=r"night.cramps: a whole number"):
        coerce("night", {"cramps": 1.5})
    with pytest.raises(SchemaError, match=r"event.colour: not a stored field"):
        coerce("event", {"colour": "red"})
    with pytest.raises(SchemaError, match=r"review.note: a string"):
        coerce("review", {"note": 3})
    assert coerce("night", {"signal_lost_s": 0, "cramps": 2.0, "plms_index_per_h": None}) == {
        "signal_lost_s": 0.0, "cramps": 2}
    assert isinstance(coerce("night", {"signal_lost_s": 0})["signal_lost_s"], float)
    assert coerce("event", {"start_s": np.float32(1.5), "confidence": np.int64(1)}) == {
        "start_s": 1.5, "confidence": 1.0}
    assert store_schema.MEASUREMENTS["diary"]["fluids_l"] == "float"


def test_a_refused_rewrite_leaves_the_stored_night(store, influxd, night_analysis):
    """The new points are written before the old ones go: a rewrite the server refuses costs
    nothing already stored. (The refusal is made real: another series of the same week already
    holds ``plms_index_per_h`` as a string, written behind the store's back.)"""
    good = _analysis(night_analysis, plms_index_per_h=None)
    assert store.write_analysis("w-1", "2026-11-24", good)
    before = store.events("w-1", "2026-11-24")
    start_ns = store.nights("w-1")[0]["start_ns"]
    r = httpx.post(f"http://127.0.0.1:{influxd.port}/write", params={"db": store.s.database},
                   content=f'night,night=2026-11-24,wearer=w-9 plms_index_per_h="x" {start_ns}')
    assert r.status_code == 204
    changed = _analysis(night_analysis, plms_index_per_h=2.5, cramps=99)
    changed["events"] = changed["events"][:3]
    with pytest.raises(StoreError, match="conflict"):
        store.write_analysis("w-1", "2026-11-24", changed)
    assert store.events("w-1", "2026-11-24") == before
    assert store.nights("w-1")[0]["summary"]["cramps"] == night_analysis.summary.cramps


def test_a_rewrite_replaces_events_by_version_and_removes_the_old(store, night_analysis):
    a = _analysis(night_analysis)
    assert store.write_analysis("w-1", "2026-11-24", a)
    fewer = copy.deepcopy(a)
    fewer["events"] = [e for e in fewer["events"] if e["kind"] != "limb_movement"]
    assert store.write_analysis("w-1", "2026-11-24", fewer)
    assert len(store.events("w-1", "2026-11-24")) == len(fewer["events"])
    rows = store.query('SELECT COUNT("start_s") FROM "event" WHERE "wearer" = \'w-1\'')
    assert rows[0]["values"][0][1] == len(fewer["events"])  # the old version is gone, not hidden


def test_a_shorter_fragment_does_not_replace_a_longer_night(store, night_analysis):
    a = _analysis(night_analysis)
    assert store.write_analysis("w-1", "2026-11-24", a)
    frag = copy.deepcopy(a)
    frag["recording"]["duration_s"] = 120.0
    frag["events"] = []
    with pytest.raises(NightConflict, match="does not replace it"):
        store.write_analysis("w-1", "2026-11-24", frag)
    assert len(store.events("w-1", "2026-11-24")) == len(a["events"])
    assert store.write_analysis("w-1", "2026-11-24", frag, replace_longer=True)
    assert store.events("w-1", "2026-11-24") == []


def test_stored_nights_from_before_versions_are_still_read(store, influxd, night_analysis):
    """Points written by an older nightcramp (no version tag) are read, then replaced."""
    a = _analysis(night_analysis)
    lines = ['event,kind=cramp,night=2026-11-24,side=left,wearer=w-1 start_s=1,end_s=20,duration_s=19,'
             'confidence=0.9,subtype="",features="{}" 1700000001000000000',
             'night,night=2026-11-24,wearer=w-1 json="{}",recording="{}",notes="[]",duration_s=3600 '
             '1700000000000000000']
    r = httpx.post(f"http://127.0.0.1:{influxd.port}/write", params={"db": store.s.database},
                   content="\n".join(lines))
    assert r.status_code == 204
    assert [e["start_s"] for e in store.events("w-1", "2026-11-24")] == [1.0]
    assert store.write_analysis("w-1", "2026-11-24", a, replace_longer=True)
    assert len(store.events("w-1", "2026-11-24")) == len(a["events"])
