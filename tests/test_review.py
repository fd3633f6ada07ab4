"""Review actions on top of detected events: order, audit fields, counts recomputed."""

from __future__ import annotations

import pytest

from dashboard.review import ReviewError, apply_reviews, event_key, make_review, reviewed_summary

EVENTS = [
    {"kind": "cramp", "start_s": 100.0, "end_s": 160.0, "side": "left", "channel": "EMG L-Gastroc"},
    {"kind": "cramp", "start_s": 900.0, "end_s": 1600.0, "side": "right", "channel": "EMG R-Gastroc"},
    {"kind": "awakening", "start_s": 170.0, "end_s": 400.0, "side": None, "channel": None,
     "subtype": "after_cramp"},
]
SUMMARY = {"cramps": 2, "cramps_left": 1, "cramps_right": 1, "cramp_total_s": 760.0, "cramp_longest_s": 700.0,
           "cramps_over_red_flag": 1, "awakenings": 1, "awakenings_after_cramp": 1, "sleep_efficiency": 0.8}


def test_actions_apply_in_order_with_who_and_when():
    k0, k1 = event_key(EVENTS[0]), event_key(EVENTS[1])
    reviews = [make_review("reject", "dr-a", event=k0),
               make_review("relabel", "dr-b", event=k1, kind="artifact"),
               make_review("add", "dr-a", kind="cramp", start_s=2000, end_s=2030, side="left",
                           duration_s=3600)]
    out = {e["key"]: e for e in apply_reviews(EVENTS, reviews)}
    assert out[k0]["status"] == "rejected" and out[k0]["reviewed_by"] == "dr-a"
    assert out[k1]["kind"] == "artifact" and out[k1]["status"] == "relabelled"
    assert out[k1]["detected_kind"] == "cramp"
    added = [e for e in out.values() if e["status"] == "added"]
    assert len(added) == 1 and added[0]["start_s"] == 2000.0
    s = reviewed_summary(SUMMARY, list(out.values()))
    assert (s.cramps, s.cramps_left, s.cramp_total_s, s.cramps_over_red_flag) == (1, 1, 30.0, 0)
    assert s.awakenings == 1 and s.sleep_efficiency == 0.8 and s.reviewed
    # accepting again undoes the rejection
    later = [*reviews, make_review("accept", "dr-c", event=k0)]
    again = {e["key"]: e for e in apply_reviews(EVENTS, later)}
    assert again[k0]["status"] == "accepted" and again[k0]["reviewed_by"] == "dr-c"


def test_nothing_reviewed_leaves_the_summary_counts():
    out = apply_reviews(EVENTS, [])
    assert all(e["status"] == "detected" for e in out)
    s = reviewed_summary(SUMMARY, out).to_json()
    assert {k: s[k] for k in SUMMARY} == SUMMARY and not s["reviewed"]


def test_an_unreviewed_night_gives_exactly_the_analysis_summary(night_analysis):
    """The dashboard counts a night's events with the analysis' own count_events: with no review
    edits, its summary is the analysis summary, field for field (leg movements, PLM series,
    sustained activity and lost signal included)."""
    obj = night_analysis.to_json()
    s = reviewed_summary(obj["summary"], apply_reviews(obj["events"], []))
    assert s == night_analysis.summary and s.to_json() == obj["summary"]
    assert s.cramps >= 1 and s.limb_movements > 0  # the night has something to count


def test_long_cramps_are_counted_against_the_nights_own_red_flag_duration():
    """A night analysed with cramp.red_flag_s = 300: its 400-s cramp is a red flag in the
    analysis and stays one on the dashboard (reviewed or not)."""
    from detector.analyze import analyze_recording
    from detector.engine.config import DetectorConfig
    from ingest.simulate import NightOptions, plan_night, render_recording

    rec = render_recording(plan_night(NightOptions(hours=1.0, seed=3, fs_emg=500.0, fs_acc=25.0,
                                                   cramps_per_night=0.0)))
    cfg = DetectorConfig()
    short = cfg.model_copy(update={"cramp": cfg.cramp.model_copy(update={"red_flag_s": 300.0})})
    a = analyze_recording(rec, short)
    summary = a.to_json()["summary"]
    assert summary["red_flag_s"] == 300.0
    cramp = {"kind": "cramp", "start_s": 1000.0, "end_s": 1400.0, "side": "left", "channel": "EMG L-Gastroc"}
    s = reviewed_summary(summary, apply_reviews([cramp], []))
    assert s.cramps_over_red_flag == 1
    old = {k: v for k, v in summary.items() if k != "red_flag_s"}  # stored before the field existed
    assert reviewed_summary(old, apply_reviews([cramp], [])).cramps_over_red_flag == 0  # 600-s default


@pytest.mark.parametrize(("kw", "message"), [
    ({"action": "delete", "event": "x"}, "action 'delete'"),
    ({"action": "relabel", "event": "x", "kind": "yawn"}, "kind 'yawn'"),
    ({"action": "relabel", "event": "x"}, "relabel needs the new kind"),
    ({"action": "reject"}, "reject needs the event"),
    ({"action": "add", "kind": "cramp", "start_s": 50, "end_s": 10}, "not a time span"),
    ({"action": "add", "kind": "cramp", "start_s": 3590, "end_s": 3700, "duration_s": 3600},
     "not a time span"),
    ({"action": "add", "kind": "cramp", "start_s": 5, "end_s": 10, "side": "middle"}, "side 'middle'"),
])
def test_bad_actions_are_refused_clearly(kw, message):
    action = kw.pop("action")
    with pytest.raises(ReviewError, match=message):
        make_review(action, "dr-a", **kw)


def test_durations_read_as_people_say_them():
    """A relabelled 1.6-s event is "2 s", not "0.0 min" (summary page)."""
    from dashboard.web.common import duration_text

    got = [duration_text(s) for s in (1.6, 45, 150, 3600 + 5 * 60)]
    assert got == ["2 s", "45 s", "2.5 min", "1 h 05 min"]


def test_undo_cancels_the_latest_action_on_its_event_and_stays_in_the_trail():
    k0 = event_key(EVENTS[0])
    added = make_review("add", "dr-a", kind="artifact", start_s=10, end_s=12, duration_s=3600)
    reviews = [make_review("relabel", "dr-a", event=k0, kind="artifact", note="movement artefact"),
               make_review("reject", "dr-a", event=k0), added]
    out = {e["key"]: e for e in apply_reviews(EVENTS, reviews)}
    assert out[k0]["status"] == "rejected" and added["event"] in out
    undo_reject = [*reviews, make_review("undo", "dr-a", event=k0)]
    out = {e["key"]: e for e in apply_reviews(EVENTS, undo_reject)}
    assert out[k0]["status"] == "relabelled" and out[k0]["review_note"] == "movement artefact"
    twice = [*undo_reject, make_review("undo", "dr-a", event=k0),
             make_review("undo", "dr-a", event=added["event"])]
    out = {e["key"]: e for e in apply_reviews(EVENTS, twice)}
    assert out[k0]["status"] == "detected" and out[k0]["kind"] == "cramp" and "reviewed_by" not in out[k0]
    assert added["event"] not in out  # an undone add removes the event
    assert reviewed_summary(SUMMARY, list(out.values())).cramps == 2
    with pytest.raises(ReviewError, match="undo needs the event"):
        make_review("undo", "dr-a")
