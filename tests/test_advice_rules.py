"""Advice rules: loading refuses broken rules with a message naming the rule and the problem;
features come from the night, its history and the diary; the analysis carries the advice."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from detector.advice.diary import Diary, Evening, Morning
from detector.advice.rules import (
    DISCLAIMER,
    AdviceError,
    evaluate,
    explain,
    load_rules,
    neutral_features,
    night_features,
    rules_path,
)

GOOD = '''
[[rule]]
id = "long-cramp"
title = "A long cramp"
text = "A cramp lasted more than 10 minutes. Please see a clinician about it."
clinician = "Cramp over 10 min in this recording."
level = "see-a-clinician"
evidence = "expert-opinion"
source = "Katzberg 2015"
red_flag = "cramp-over-10-min"
when = "cramp_longest_min > 10"

[[rule]]
id = "flags"
title = "Diary red flags"
text = "Something you noted in the morning check-in should be seen by a clinician today."
clinician = "Diary red flag reported."
level = "see-a-clinician"
evidence = "safety-warning"
source = "Allen & Kirby 2012"
when = """calf_swelling == "one-side" or calf_warm_red == true or leg_weakness == true or
        daytime_cramps == true or (cramp_nights_7 >= 3 and cramp_nights_prev_7 >= 3)"""
'''

EXTRA = '''
[[rule]]
id = "extra"
title = "Extra rule"
text = "Some plain words for the wearer about the night."
clinician = "A note for clinicians."
level = "info"
evidence = "low"
source = "The source article, Therapy"
when = {when!r}
'''


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "advice.toml"
    p.write_text(text)
    return p


def _extra(tmp_path, when: str, **replace) -> Path:
    body = EXTRA.format(when=when)
    for k, v in replace.items():
        body = body.replace(k, v)
    return _write(tmp_path, GOOD + body)


def test_the_shipped_rules_load():
    rules = load_rules(rules_path())
    assert len(rules) >= 25
    assert len({r.rule.id for r in rules}) == len(rules)


@pytest.mark.parametrize(("when", "message"), [
    ("cramp >= 1", "rule 'extra': unknown feature 'cramp' in 'when' (did you mean 'cramps'?)"),
    ("cramps + \"x\" > 1", "rule 'extra': type mismatch"),
    ('cramps == "two"', "rule 'extra': type mismatch in 'when': 'cramps' is float, compared with text 'two'"),
    ('calf_swelling == "left"', "rule 'extra': 'calf_swelling' is never 'left'"),
    ("cramps >=", "rule 'extra': 'when' is not a valid condition"),
    ("fluids_l < 1.5", "rule 'extra': fluids_l may be unknown"),
])
def test_a_bad_condition_is_refused_naming_rule_and_problem(tmp_path, when, message):
    with pytest.raises(AdviceError) as err:
        load_rules(_extra(tmp_path, when))
    assert message in str(err.value)


def test_missing_source_and_unknown_fields_are_named(tmp_path):
    with pytest.raises(AdviceError, match=r"rule 'extra': source: missing"):
        load_rules(_extra(tmp_path, "cramps >= 1", **{'source = "The source article, Therapy"\n': ""}))
    with pytest.raises(AdviceError, match=r"rule 'extra': level: "):
        load_rules(_extra(tmp_path, "cramps >= 1", **{'level = "info"': 'level = "urgent"'}))
    with pytest.raises(AdviceError, match=r"rule 'extra': colour: Extra inputs are not permitted"):
        load_rules(_extra(tmp_path, "cramps >= 1", **{'level = "info"': 'level = "info"\ncolour = "red"'}))


def test_unsafe_wording_and_duplicates_are_refused(tmp_path):
    with pytest.raises(AdviceError, match=r"rule 'extra': text recommends a drug: 'Take magnesium'"):
        load_rules(_extra(tmp_path, "cramps >= 1", **{"Some plain words for the wearer about the night.":
                                                      "Take magnesium every night before bed."}))
    with pytest.raises(AdviceError, match=r"rule 'extra': text states a diagnosis"):
        load_rules(_extra(tmp_path, "cramps >= 1", **{"Some plain words for the wearer about the night.":
                                                      "You have restless legs syndrome, it seems."}))
    with pytest.raises(AdviceError, match="appears twice"):
        load_rules(_write(tmp_path, GOOD + EXTRA.format(when="cramps > 1") + EXTRA.format(when="cramps > 2")))


def test_a_rule_file_that_drops_a_red_flag_is_refused(tmp_path):
    without_long = GOOD.replace('when = "cramp_longest_min > 10"', 'when = "cramp_longest_min > 30"')
    with pytest.raises(AdviceError, match=r"no see-a-clinician rule fires for red flag.*cramp-over-10-min"):
        load_rules(_write(tmp_path, without_long))
    demoted = GOOD.replace('level = "see-a-clinician"\nevidence = "expert-opinion"',
                           'level = "info"\nevidence = "expert-opinion"')
    with pytest.raises(AdviceError, match="answers red flag 'cramp-over-10-min' but its level is 'info'"):
        load_rules(_write(tmp_path, demoted))


def test_night_features_from_summary_history_and_diary():
    summary = {"cramps": 2, "cramps_left": 2, "cramps_right": 0, "cramp_longest_s": 95.0,
               "cramp_total_s": 130.0, "awakenings": 3, "awakenings_after_cramp": 1,
               "sleep_efficiency": 0.81, "plms_index_per_h": 4.2,
               "time_in_bed_s": 8 * 3600.0, "signal_lost_s": 0.0,
               "signal_quality": {"EMG L-Gastroc": {"kind": "emg", "artifact_pct": 2.0, "lost_pct": 0.0},
                                  "ACC left": {"kind": "acc", "lost_pct": 0.0}}}
    events = [{"kind": "cramp", "start_s": 3600.0}, {"kind": "cramp", "start_s": 6 * 3600.0}]
    # Cramp nights: 3 of the last 7 (with this one) and 3 of the 7 before.
    history = [{"night": d, "summary": {"cramps": c, "cramps_left": c}} for d, c in [
        ("2026-11-23", 1), ("2026-11-21", 2), ("2026-11-19", 0), ("2026-11-16", 1), ("2026-11-14", 1),
        ("2026-11-12", 3), ("2026-11-01", 5)]]
    diaries = {"2026-11-24": Diary(evening=Evening(fluids_l=1.0, medications=["statin"], stretched=True),
                                   morning=Morning(calf_swelling="none")),
               "2026-11-22": Diary(evening=Evening(stretched=True))}
    f = night_features(summary, events=events, history=history, diaries=diaries, night="2026-11-24")
    assert f["cramps"] == 2 and f["cramp_side"] == "left" and f["cramp_longest_min"] == pytest.approx(95 / 60)
    assert f["first_cramp_h"] == 1.0 and f["cramps_second_half"] == 1
    assert f["sleep_efficiency"] == pytest.approx(81.0) and f["plm_index"] == 4.2 and f["signal_ok"]
    nights = (f["nights_7"], f["cramp_nights_7"], f["cramp_nights_prev_7"], f["cramp_nights_30"])
    assert nights == (4, 3, 3, 7)
    assert f["cramps_7"] == 5 and f["cramps_left_30"] == 15 and f["cramps_right_30"] == 0
    assert f["cramp_trend"] == pytest.approx(5 / 4 - 5 / 3)
    assert f["stretched_nights_7"] == 2 and f["fluids_l"] == 1.0 and f["medications"] == ("statin",)
    assert f["diary_evening"] and f["diary_morning"] and f["cramp_woke"] is None


def test_rules_fire_with_the_facts_that_made_them(tmp_path):
    rules = load_rules(rules_path())
    f = neutral_features() | {"cramps": 1.0, "cramp_nights_30": 1.0, "medications": ("diuretic",),
                              "fluids_l": 1.0, "diary_evening": True}
    items = {a.rule: a for a in evaluate(rules, f)}
    assert {"medication-review", "fluids-low", "stretch-before-bed"} <= set(items)
    assert items["fluids-low"].facts == {"cramps": 1.0, "fluids_l": 1.0}
    assert items["medication-review"].level == "see-a-clinician"
    order = [a.level for a in evaluate(rules, f)]
    assert order == sorted(order, key=["see-a-clinician", "suggestion", "info"].index)
    rows = explain(rules, f)
    assert len(rows) == len(rules)
    assert {lr.rule.id for lr, fired, _ in rows if fired} == set(items)


def test_analysis_json_carries_advice_and_disclaimer(night_analysis):
    from detector.advice.rules import with_advice

    obj = with_advice(night_analysis).to_json()
    assert obj["advice_disclaimer"] == DISCLAIMER
    assert obj["summary"]["cramps"] >= 1
    ids = [a["rule"] for a in obj["advice"]]
    assert "stretch-before-bed" in ids and "ease-a-cramp" in ids
    for a in obj["advice"]:
        assert set(a) >= {"rule", "title", "text", "level", "source", "facts"}
        assert a["facts"]


def test_advice_command_explains_every_rule(tmp_path, cli, night_analysis):
    p = tmp_path / "night.json"
    from detector.advice.rules import with_advice

    p.write_text(json.dumps(with_advice(night_analysis).to_json()))
    r = subprocess.run([cli, "advice", "--analysis", str(p), "--explain"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    n_rules = len(load_rules(rules_path()))
    assert r.stdout.count("\n        when ") == n_rules
    assert "FIRED stretch-before-bed" in r.stdout and "   -   long-cramp" in r.stdout
    assert DISCLAIMER in " ".join(r.stdout.split())
    js = json.loads(subprocess.run([cli, "advice", "--analysis", str(p), "--json", "--explain"],
                                   capture_output=True, text=True, check=True).stdout)
    assert len(js["rules"]) == n_rules and js["disclaimer"] == DISCLAIMER
    assert sorted(a["rule"] for a in js["advice"]) == sorted(x["rule"] for x in js["rules"] if x["fired"])
    bad = subprocess.run([cli, "advice", "--analysis", str(p), "--rules", str(_extra(tmp_path, "cramp > 1"))],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown feature 'cramp'" in bad.stderr and "Traceback" not in bad.stderr


def test_a_broken_rule_file_never_costs_the_analysis(tmp_path, monkeypatch, night_rec):
    from detector.advice.rules import with_advice
    from detector.analyze import analyze_recording
    from detector.engine.config import DetectorConfig

    monkeypatch.setattr("detector.advice.rules.DEFAULT_RULES", _extra(tmp_path, "cramp >= 1"))
    a = with_advice(analyze_recording(night_rec, DetectorConfig()))
    assert a.events and a.advice == []
    assert any("no advice" in n and "unknown feature 'cramp'" in n for n in a.notes)


def test_why_and_sources_read_as_words_for_a_person():
    """The reasons a rule fired are phrased for the wearer ("you had 19 periodic leg movements an
    hour of sleep", not "plm index = 19.62"), every feature has a phrase, and sources are
    citations a reader can look up, never file names."""
    from detector.advice.rules import FEATURES, load_rules, rules_path
    from detector.advice.wording import because, known_phrases

    assert known_phrases() == set(FEATURES)
    assert because({"plm_index": 19.62}) == "Because you had 20 periodic leg movements an hour of sleep."
    assert because({"diary_evening": False, "cramps": 1.0}) == (
        "Because there is no evening check-in yet and nightcramp saw 1 cramp last night.")
    for lr in load_rules(rules_path()):
        assert ".md" not in lr.rule.source and "docs/" not in lr.rule.source, lr.rule.id
        assert "seed" not in lr.rule.source.lower(), lr.rule.id
