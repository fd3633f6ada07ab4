"""What the advice may and may never say (DOMAIN.md), checked on the shipped rule file:
no drug to start, no prescription to stop or change, no diagnosis — alone or combined; a
source for every rule; every seed cause, therapy and long-term heading answered; red flags
always escalate; plain wording; the disclaimer wherever advice is shown."""

from __future__ import annotations

import itertools
import re
import tomllib

import pytest
import textstat
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.advice.rules import (
    ACTIONS,
    ENUMS,
    FEATURES,
    RED_FLAGS,
    AdviceError,
    evaluate,
    format_advice,
    load_rules,
    neutral_features,
    rules_path,
    safety_problems,
)

RULES = load_rules(rules_path())
RAW = tomllib.loads(rules_path().read_text())["rule"]
# Named medicines; "medicines" in general may be mentioned (e.g. as a diary topic).
DRUGS = re.compile(r"\b(quinine|magnesium|relaxants?|supplements?|statins?|diuretics?|water tablets?|"
                   r"inhalers?)\b", re.I)


def test_the_checker_catches_unsafe_sentences():
    bad = ["Take magnesium before bed.", "Try quinine if stretching fails.", "Start a muscle relaxant.",
           "Stop your statin for a week.", "Ask to reduce the dose of your diuretic.",
           "Switch to another medicine.", "You have restless legs syndrome.", "You probably have PLMD.",
           "This is a blood clot.", "The sensor diagnosed nocturnal leg cramps."]
    for text in bad:
        assert safety_problems(text), text
    fine = ["Do not stop or change them on your own.", "You said you take quinine.",
            "Ask your clinician about it.", "A swollen calf can be a sign of a blood clot."]
    for text in fine:
        assert not safety_problems(text), text


@pytest.mark.parametrize("raw", RAW, ids=[r["id"] for r in RAW])
def test_each_rule_alone_is_safe_sourced_and_plain(raw):
    assert not safety_problems(raw["text"]), raw["id"]
    assert not safety_problems(raw["clinician"], wearer=False), raw["id"]
    assert raw["source"].strip() and len(raw["source"]) >= 5
    # Grade 8 is the aim; no single text above grade 9 (Flesch-Kincaid).
    assert textstat.flesch_kincaid_grade(raw["text"]) <= 9.0, raw["id"]
    if DRUGS.search(raw["text"]) and raw["id"] != "mineral-rich-food":
        # Medicines appear only as something to talk about with a clinician.
        assert re.search(r"clinician|doctor|prescrib|midwife", raw["text"], re.I), raw["id"]


def test_rules_combined_are_safe_and_plain_on_average():
    texts = [r["text"] for r in RAW]
    assert all(t.rstrip().endswith((".", "!", "?")) for t in texts)  # no sentence spans two rules
    assert not safety_problems(" ".join(texts))
    for a, b in itertools.permutations(texts, 2):
        assert not safety_problems(f"{a} {b}")
    mean = sum(textstat.flesch_kincaid_grade(t) for t in texts) / len(texts)
    assert mean <= 8.0


def test_quinine_and_pharmacotherapy_only_as_topics_with_the_warning():
    by_id = {r["id"]: r for r in RAW}
    topics = by_id["medicine-topics"]
    assert topics["level"] == "info"
    assert "topics to discuss" in topics["text"] and "warn against" in topics["text"]
    assert "Cochrane CD005044" in topics["source"] and "FDA" in topics["source"]
    for r in RAW:
        if re.search(r"quinine", r["text"], re.I):
            assert re.search(r"serious", r["text"]) and re.search(r"warn", r["text"]), r["id"]


def _seed_headings(seed_text: str) -> dict[str, list[str]]:
    """Numbered cause/therapy headings and long-term bullets of the seed article."""
    sections = {"Causes": "Causes and Risk Factors", "Therapy": "Therapy and Treatment Options",
                "Long-term": "Long-Term Management", "Symptoms": "Symptoms of"}
    lines = seed_text.splitlines()
    out: dict[str, list[str]] = {k: [] for k in sections}
    current = None
    for ln in lines:
        for key, head in sections.items():
            if ln.startswith(head):
                current = key
        if ln.startswith("Conclusion"):
            current = None
        if current in ("Causes", "Therapy") and (m := re.match(r"^\d\. (.+)$", ln)):
            out[current].append(m.group(1).strip())
        if current == "Long-term" and (m := re.match(r"^- ([^:]+):", ln)):
            out[current].append(m.group(1).strip())
        if current == "Symptoms" and (m := re.match(r"^([A-Z][^|]+?) \| ", ln)) and m.group(1) != "Symptom":
            out[current].append(m.group(1).strip())
    return out


def test_every_seed_cause_therapy_and_long_term_heading_has_a_rule(testdata):
    seed = (testdata.parent / "seed" / "000_303110073652c0ef.txt").read_text()
    headings = _seed_headings(seed)
    assert len(headings["Causes"]) == 5 and len(headings["Therapy"]) == 3 and len(headings["Long-term"]) == 3
    covered = {s for r in RAW for s in r.get("seed", [])}
    for section in ("Causes", "Therapy", "Long-term"):
        for h in headings[section]:
            assert f"{section}/{h}" in covered, f"no rule answers seed heading {section}/{h}"
    known = {f"{k}/{h}" for k, hs in headings.items() for h in hs}
    assert covered <= known, f"rules name headings the seed does not have: {covered - known}"


def _feature_strategy():
    """Any night, history and diary the features can describe."""
    per = {}
    for name, (t, nullable, _) in FEATURES.items():
        if name in ENUMS and name != "medications":
            s = st.sampled_from(ENUMS[name])
        elif name == "medications":
            s = st.lists(st.sampled_from(ENUMS[name]), unique=True).map(tuple)
        elif t.name == "BOOLEAN":
            s = st.booleans()
        else:
            s = st.floats(min_value=0, max_value=60, allow_nan=False)
        per[name] = st.one_of(st.none(), s) if nullable else s
    return st.fixed_dictionaries(per)


@settings(max_examples=300, deadline=None)
@given(features=_feature_strategy(), flag=st.sampled_from(sorted(RED_FLAGS)))
def test_red_flags_always_yield_a_see_a_clinician_item(features, flag):
    f = neutral_features() | features | RED_FLAGS[flag]
    items = evaluate(RULES, f)
    assert any(a.level == "see-a-clinician" for a in items), flag
    shown = format_advice([a.to_json() for a in items])
    assert not safety_problems(" ".join(a.text for a in items))
    assert "clinician" in shown


@settings(max_examples=200, deadline=None)
@given(features=_feature_strategy())
def test_any_combination_of_fired_rules_stays_safe(features):
    items = evaluate(RULES, neutral_features() | features)
    assert not safety_problems(" ".join(a.text for a in items))
    assert all(a.source for a in items)


# A night on which every self-care rule of the shipped file fires: cramps that woke the wearer,
# hard exercise, little to drink, older age, pregnancy, cramps on several nights, no stretching.
SELF_CARE_NIGHT = {"cramps": 2.0, "cramp_woke": True, "awakenings_after_cramp": 1.0, "exercise": "hard",
                   "exercise_min": 120.0, "fluids_l": 1.0, "age_band": "65-plus", "pregnant": True,
                   "cramp_nights_7": 4.0, "stretched_nights_7": 4.0, "cramp_nights_30": 4.0,
                   "cramp_trend": 1.0, "diary_evening": False, "nights_7": 7.0}


@pytest.mark.parametrize("flag", list(RED_FLAGS))
def test_a_red_flag_holds_back_advice_that_could_harm(flag):
    """With a possible clot no advice may ask to stretch, massage, stand on the leg or exercise;
    the red flag's own text says what to do instead. Checked over every red flag, on a night where
    all those rules would otherwise fire."""
    base = neutral_features() | SELF_CARE_NIGHT
    plain = {a.rule for a in evaluate(RULES, base)}
    assert {"stretch-before-bed", "ease-a-cramp", "age-and-activity", "muscle-fatigue"} <= plain
    items = evaluate(RULES, base | RED_FLAGS[flag])
    flagged = [lr.rule for lr in RULES if lr.rule.red_flag == flag]
    assert any(a.rule in {r.id for r in flagged} for a in items), f"{flag} not answered"
    held = {a for r in flagged for a in r.withholds if any(i.rule == r.id for i in items)}
    if flag in ("one-sided-swelling", "warm-or-red-calf"):
        assert held == set(ACTIONS)  # a possible clot: everything that moves or presses the calf
    for item in items:
        if item.level == "see-a-clinician":
            continue
        asked = [a for a in held if ACTIONS[a].search(item.text)]
        assert not asked, f"with {flag}, rule {item.rule} still asks for {asked}: {item.text}"
    if held:
        assert not {"stretch-before-bed", "ease-a-cramp"} & {a.rule for a in items}


def test_a_rule_that_asks_for_an_action_must_declare_it(tmp_path):
    body = rules_path().read_text().replace('actions = ["stretch", "weight-bearing"]\n', "", 1)
    p = tmp_path / "advice.toml"
    p.write_text(body)
    with pytest.raises(AdviceError, match=r"rule 'ease-a-cramp': its text asks for stretch, weight-bearing"):
        load_rules(p)
