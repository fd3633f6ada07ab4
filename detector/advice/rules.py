"""Advice rules: each night linked to what the source article and the evidence say, safely.

Rules live in ``config/advice.toml``. A rule's condition is a `rule-engine` expression over
the typed features below (never ``eval``); rules are checked when loaded: syntax, unknown
features, type mismatches, a missing source, an unguarded feature that may be unknown (no
diary, no sleep estimate) and whether every red flag still yields a see-a-clinician item.
"""

from __future__ import annotations

import datetime as dt
import difflib
import enum
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from detector.advice.diary import AGE_BANDS, EXERCISE, MEDICATIONS, SWELLING, Diary
from detector.disclaimer import DISCLAIMER
from detector.engine.summary import NightSummary
from ingest.paths import ConfigFileError, config_file, read_toml

DEFAULT_RULES: Path | None = None  # a fixed rule file; None: advice.toml where ingest.paths finds it


def rules_path() -> Path:
    """The rule file in use: ``advice.toml`` from the configuration search path (ingest.paths)."""
    return DEFAULT_RULES or config_file("advice.toml")


LEVELS = ("see-a-clinician", "suggestion", "info")

class T(enum.Enum):
    """A feature's type; rule-engine's own types are looked up only when rules are compiled, so
    that importing this module does not build rule-engine's parser (about 0.6 s)."""

    FLOAT = "FLOAT"
    STRING = "STRING"
    BOOLEAN = "BOOLEAN"
    ARRAY = "ARRAY"  # of strings

    def engine_type(self):
        import rule_engine

        t = getattr(rule_engine.DataType, "STRING" if self is T.ARRAY else self.value)
        return rule_engine.DataType.ARRAY(t) if self is T.ARRAY else t


# name: (type, may be unknown, meaning [unit])
FEATURES: dict[str, tuple[T, bool, str]] = {
    # this night
    "cramps": (T.FLOAT, False, "cramps detected this night [count]"),
    "cramps_left": (T.FLOAT, False, "cramps on the left leg [count]"),
    "cramps_right": (T.FLOAT, False, "cramps on the right leg [count]"),
    "cramp_side": (T.STRING, False, "where the cramps were: none, left, right or both"),
    "cramp_longest_min": (T.FLOAT, False, "longest cramp [min]"),
    "cramp_total_min": (T.FLOAT, False, "time in cramps [min]"),
    "cramps_second_half": (T.FLOAT, False, "cramps in the second half of the recording [count]"),
    "first_cramp_h": (T.FLOAT, True, "first cramp, hours after the recording started; null without cramps"),
    "awakenings": (T.FLOAT, False, "awakenings (wake bouts after sleep onset, see the summary) [count]"),
    "awakenings_after_cramp": (T.FLOAT, False, "awakenings that followed a cramp [count]"),
    "sleep_efficiency": (T.FLOAT, True, "time asleep / time in bed [%]; null without an estimate"),
    "plm_index": (T.FLOAT, True, "periodic limb movements in sleep per hour [/h]; null without sleep"),
    "recorded_h": (T.FLOAT, False, "length of the recording [h]"),
    "signal_lost_min": (T.FLOAT, False, "time with no usable signal [min]"),
    "emg_artifact_pct": (T.FLOAT, False, "worst EMG channel's time with artefacts [%]"),
    "signal_ok": (T.BOOLEAN, False, "signal usable: < 20% lost and < 20% artefacts on every EMG channel"),
    "has_emg": (T.BOOLEAN, False, "the night has leg EMG"),
    "has_acc": (T.BOOLEAN, False, "the night has a leg accelerometer"),
    # several nights (this one and the stored ones before it, by night date)
    "nights_7": (T.FLOAT, False, "nights recorded in the 7 nights ending with this one [count]"),
    "cramp_nights_7": (T.FLOAT, False, "of those, nights with at least one cramp [count]"),
    "cramp_nights_prev_7": (T.FLOAT, False, "nights with a cramp in the 7 nights before those [count]"),
    "cramp_nights_30": (T.FLOAT, False, "nights with a cramp in the 30 nights ending with this one [count]"),
    "cramps_7": (T.FLOAT, False, "cramps in the 7 nights ending with this one [count]"),
    "cramps_left_30": (T.FLOAT, False, "left-leg cramps in the 30 nights ending with this one [count]"),
    "cramps_right_30": (T.FLOAT, False, "right-leg cramps in the 30 nights ending with this one [count]"),
    "cramp_trend": (T.FLOAT, True, "cramps per recorded night, last 7 nights minus the 7 before "
                                   "[cramps/night]; null when either week has no recording"),
    "stretched_nights_7": (T.FLOAT, False, "evenings in the last 7 with stretching reported [count]"),
    # diary: evening (null when not answered)
    "diary_evening": (T.BOOLEAN, False, "the evening check-in was answered"),
    "exercise": (T.STRING, True, "the day's exercise: none, light, moderate, hard"),
    "exercise_min": (T.FLOAT, True, "exercise that day [min]"),
    "fluids_l": (T.FLOAT, True, "fluids drunk that day [l]"),
    "alcohol_drinks": (T.FLOAT, True, "alcoholic drinks that day [count]"),
    "caffeine_drinks": (T.FLOAT, True, "coffee, tea or cola that day [count]"),
    "stretched": (T.BOOLEAN, True, "stretched before bed"),
    "medications": (T.ARRAY, False, "regular medicines ticked (empty when none or not answered)"),
    "pregnant": (T.BOOLEAN, True, "pregnant"),
    "age_band": (T.STRING, True, "under-30, 30-49, 50-64 or 65-plus"),
    # diary: morning
    "diary_morning": (T.BOOLEAN, False, "the morning check-in was answered"),
    "cramp_woke": (T.BOOLEAN, True, "the wearer says a cramp woke them"),
    "soreness": (T.BOOLEAN, True, "calf still sore or tight in the morning"),
    "calf_swelling": (T.STRING, True, "none, one-side or both-sides"),
    "calf_warm_red": (T.BOOLEAN, True, "a calf is warm, red or tender"),
    "leg_weakness": (T.BOOLEAN, True, "a leg feels weak or thinner than before"),
    "daytime_cramps": (T.BOOLEAN, True, "cramps also by day or in other parts of the body"),
}

# Red flags (DOMAIN.md) as feature changes on top of any night: each must yield a see-a-clinician
# item whatever else is true. Checked at load and by property tests.
RED_FLAGS: dict[str, dict] = {
    "cramp-over-10-min": {"cramps": 1.0, "cramp_longest_min": 10.5, "cramp_total_min": 10.5},
    "cramps-3-nights-a-week-for-2-weeks": {"cramp_nights_7": 3.0, "cramp_nights_prev_7": 3.0,
                                           "nights_7": 7.0, "cramp_nights_30": 6.0},
    "one-sided-swelling": {"calf_swelling": "one-side", "diary_morning": True},
    "warm-or-red-calf": {"calf_warm_red": True, "diary_morning": True},
    "leg-weakness": {"leg_weakness": True, "diary_morning": True},
    "cramps-by-day-or-elsewhere": {"daytime_cramps": True, "diary_morning": True},
}


# The values a text feature can take; conditions comparing with anything else are refused.
ENUMS: dict[str, tuple[str, ...]] = {
    "cramp_side": ("none", "left", "right", "both"),
    "exercise": EXERCISE,
    "age_band": AGE_BANDS,
    "calf_swelling": SWELLING,
    "medications": tuple(MEDICATIONS),
}
_CMP_TEXT = re.compile(r'\b([a-z_][a-z0-9_]*)\s*(?:==|!=)\s*"([^"]*)"'
                       r'|"([^"]*)"\s*(?:==|!=|in)\s*([a-z_][a-z0-9_]*)\b')


_DRUG = (r"(quinine|magnesium|potassium tablets?|supplements?|tablets?|pills?|medicines?|medications?|drugs?|"
         r"muscle relaxants?|cyclobenzaprine|baclofen|gabapentin|vitamins?|doses?|prescriptions?|statins?|"
         r"diuretics?|inhalers?|treatment)")
_START = re.compile(r"\b(take|taking|start|starting|begin|try|trying|use|using|add|adding)\b(\W+\w+){0,5}?\W+"
                    + _DRUG + r"\b", re.I)
_STOP = re.compile(r"\b(stop|stopping|quit|reduce|lower|cut down on|change|changing|switch|skip|halve|double|"
                   r"increase|come off|discontinue)\b(\W+\w+){0,4}?\W+(your\W+|the\W+)?" + _DRUG + r"\b",
                   re.I)
_NEGATED = re.compile(r"\b(not|never|no)\b|n't\b", re.I)
_REPORTED = re.compile(r"\byou said\b", re.I)
_DIAGNOSIS = re.compile(
    r"\bdiagnos\w*|\b(plmd|rls|restless legs syndrome|periodic limb movement disorder)\b"
    r"|\byou (may |might |could |probably |likely |seem to )?"
    r"(have|suffer from|are suffering from|have got|'ve got)"
    r"\b(\W+\w+){0,5}?\W+"
    r"(cramps?|leg cramps|plmd|rls|restless legs?|periodic limb movement disorder|neuropathy|dvt|"
    r"thrombosis|blood clot|sciatica|stenosis|disease|disorder|syndrome)\b"
    r"|\b(this|it) (is|means) (a |an )?(blood clot|dvt|sciatica|plmd|rls|restless legs|disorder|disease)\b",
    re.I)


def safety_problems(text: str, *, wearer: bool = True) -> list[str]:
    """Phrases that recommend starting a drug, stopping or changing a prescription, or state a
    diagnosis (the last only for wearer texts). Sentence by sentence; a negated or reported
    sentence ("Do not stop…", "You said you take…") is not a recommendation."""
    out = []
    for sent in re.split(r"(?<=[.!?])\s+", text.strip()):
        plain = not _NEGATED.search(sent) and not _REPORTED.search(sent)
        for name, pat in (("recommends a drug", _START), ("tells to stop or change a medicine", _STOP)):
            m = pat.search(sent)
            if m and plain:
                out.append(f"{name}: {m.group(0)!r}")
        if wearer and (m := _DIAGNOSIS.search(sent)):
            out.append(f"states a diagnosis: {m.group(0)!r}")
    return out


class AdviceError(ValueError):
    """A rule file that cannot be used; the message names the rule and the problem."""


# What a rule asks the wearer to do with the leg, so that a red flag can hold it back: with a
# possible clot, stretching, massage, standing on the leg or exercise could do harm. A wearer
# text that speaks of one of these must declare it (checked at load).
ACTIONS: dict[str, re.Pattern[str]] = {
    "stretch": re.compile(r"\bstretch", re.I),
    "massage": re.compile(r"\bmassag|\brub\b", re.I),
    "weight-bearing": re.compile(r"\bweight on\b|\bstand up\b|\bwalk(?:ing)?\b", re.I),
    "exercise": re.compile(r"\bexercis|\bcycling\b|\bactivity\b|\bsessions?\b", re.I),
}


class Rule(BaseModel):
    """One advice rule (see config/advice.toml for the fields' meaning)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,48}$")
    title: str = Field(min_length=3)
    text: str = Field(min_length=20, description="plain-language text for the wearer")
    clinician: str = Field(min_length=20, description="note for clinicians")
    level: Literal["info", "suggestion", "see-a-clinician"]
    evidence: Literal["high", "moderate", "low", "very-low", "expert-opinion", "safety-warning"]
    source: str = Field(min_length=5, description="seed section and/or study")
    seed: list[str] = Field(default_factory=list, description="seed headings this rule answers")
    red_flag: str | None = None
    actions: list[str] = Field(default_factory=list, description="what the text asks of the leg (ACTIONS)")
    withholds: list[str] = Field(default_factory=list,
                                 description="for a red flag: actions no other advice may ask while it is up")
    when: str = Field(min_length=1, description="rule-engine condition over FEATURES")

    @field_validator("actions", "withholds")
    @classmethod
    def _actions(cls, v: list[str]) -> list[str]:
        unknown = [a for a in v if a not in ACTIONS]
        if unknown:
            raise ValueError(f"unknown action(s) {', '.join(unknown)} (known: {', '.join(ACTIONS)})")
        return v

    @field_validator("red_flag")
    @classmethod
    def _flag(cls, v: str | None) -> str | None:
        if v is not None and v not in RED_FLAGS:
            raise ValueError(f"unknown red flag {v!r} (known: {', '.join(RED_FLAGS)})")
        return v


@dataclass
class LoadedRule:
    rule: Rule
    compiled: Any  # rule_engine.Rule
    symbols: tuple[str, ...]


@dataclass
class AdviceItem:
    rule: str
    title: str
    text: str
    level: str
    evidence: str
    source: str
    clinician: str
    facts: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"rule": self.rule, "title": self.title, "text": self.text, "level": self.level,
                "evidence": self.evidence, "source": self.source, "clinician": self.clinician,
                "facts": self.facts}


def _context():
    import rule_engine

    types = {k: t.engine_type() for k, (t, _, _) in FEATURES.items()}
    return rule_engine.Context(type_resolver=rule_engine.type_resolver_from_dict(types))


def _compile(r: Rule, ctx) -> LoadedRule:
    import rule_engine

    try:
        compiled = rule_engine.Rule(r.when, context=ctx)
    except rule_engine.errors.SymbolResolutionError as exc:
        near = difflib.get_close_matches(exc.symbol_name, FEATURES, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise AdviceError(f"rule {r.id!r}: unknown feature {exc.symbol_name!r} in 'when'{hint}") from None
    except rule_engine.errors.RuleSyntaxError as exc:
        raise AdviceError(f"rule {r.id!r}: 'when' is not a valid condition: {exc.message}") from None
    except rule_engine.errors.EngineError as exc:
        raise AdviceError(f"rule {r.id!r}: type mismatch in 'when' ({exc.message}): "
                          f"{r.when!r}") from None
    names = tuple(sorted(s for s in compiled.context.symbols if s in FEATURES))
    # rule-engine lets `number == "text"` through; such a condition could never be true.
    for m in _CMP_TEXT.finditer(r.when):
        name, lit = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))
        if name not in FEATURES:
            continue
        if name not in ENUMS:
            raise AdviceError(f"rule {r.id!r}: type mismatch in 'when': {name!r} is "
                              f"{FEATURES[name][0].name.lower()}, compared with text {lit!r}")
        if lit not in ENUMS[name]:
            raise AdviceError(f"rule {r.id!r}: {name!r} is never {lit!r} (values: {', '.join(ENUMS[name])})")
    return LoadedRule(r, compiled, names)


def neutral_features() -> dict:
    """A quiet night with no history and no diary: the baseline every check starts from."""
    f: dict = {}
    for name, (t, nullable, _) in FEATURES.items():
        if nullable:
            f[name] = None
        elif t == T.BOOLEAN:
            f[name] = False
        elif t == T.STRING:
            f[name] = "none"
        elif t is T.ARRAY:
            f[name] = ()
        else:
            f[name] = 0.0
    f.update(recorded_h=8.0, nights_7=1.0, signal_ok=True, has_emg=True, has_acc=True)
    return f


def load_rules(path: Path | None = None) -> list[LoadedRule]:
    """Read and check a rule file (default ``rules_path()``); raises AdviceError naming the rule
    and the problem."""
    path = path or rules_path()
    try:
        doc = read_toml(Path(path), "advice rule file")
    except ConfigFileError as exc:
        raise AdviceError(str(exc)) from None
    raw = doc.get("rule", [])
    if not raw:
        raise AdviceError(f"{path}: no [[rule]] entries")
    rules: list[LoadedRule] = []
    seen: set[str] = set()
    for k, item in enumerate(raw):
        rid = item.get("id", f"#{k + 1}") if isinstance(item, dict) else f"#{k + 1}"
        try:
            r = Rule(**item)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'rule'}: "
                                 f"{'missing' if e['type'] == 'missing' else e['msg']}" for e in exc.errors())
            raise AdviceError(f"{path}: rule {rid!r}: {problems}") from None
        if r.id in seen:
            raise AdviceError(f"{path}: rule {r.id!r} appears twice")
        seen.add(r.id)
        unsafe = [f"text {p}" for p in safety_problems(r.text)] + [
            f"clinician note {p}" for p in safety_problems(r.clinician, wearer=False)]
        if unsafe:
            raise AdviceError(f"{path}: rule {r.id!r}: {'; '.join(unsafe)}")
        if not r.text.rstrip().endswith((".", "!", "?")):
            raise AdviceError(f"{path}: rule {r.id!r}: text must end a sentence (texts are shown together)")
        undeclared = [a for a, pat in ACTIONS.items() if pat.search(r.text) and a not in r.actions
                      and not r.red_flag]
        if undeclared:
            raise AdviceError(f"{path}: rule {r.id!r}: its text asks for {', '.join(undeclared)}; list it "
                              f"in 'actions' so that a red flag can hold it back")
        if re.search(r"\.md\b|\bdocs/|\bseed\b", r.source, re.I):
            raise AdviceError(f"{path}: rule {r.id!r}: its source {r.source!r} names a file or the seed; "
                              "cite what a reader can look up (article section, study)")
        if r.withholds and not r.red_flag:
            raise AdviceError(f"{path}: rule {r.id!r}: only a red-flag rule may withhold advice")
        if r.red_flag and r.level != "see-a-clinician":
            raise AdviceError(f"{path}: rule {r.id!r} answers red flag {r.red_flag!r} but its level is "
                              f"{r.level!r}, not 'see-a-clinician'")
        rules.append(_compile(r, _context()))  # a context per rule: it records the symbols read
    import rule_engine

    for lr in rules:  # unknown values must be handled, not crash evaluation
        try:
            lr.compiled.evaluate(neutral_features())
        except rule_engine.errors.EngineError:
            unknown = [s for s in lr.symbols if FEATURES[s][1]]
            raise AdviceError(f"{path}: rule {lr.rule.id!r}: {', '.join(unknown) or 'a feature'} may be "
                              f"unknown (no diary answer or no estimate); guard it, e.g. "
                              f"'{unknown[0] if unknown else 'x'} != null and …'") from None
    missing = [flag for flag in RED_FLAGS if not red_flag_answered(rules, flag)]
    if missing:
        raise AdviceError(f"{path}: no see-a-clinician rule fires for red flag(s) {', '.join(missing)}")
    return rules


def red_flag_answered(rules: list[LoadedRule], flag: str, base: dict | None = None) -> bool:
    f = (base or neutral_features()) | RED_FLAGS[flag]
    return any(lr.rule.level == "see-a-clinician" and _fires(lr, f) for lr in rules)


def _fires(lr: LoadedRule, f: dict) -> bool:
    import rule_engine

    try:
        return bool(lr.compiled.matches(f))
    except rule_engine.errors.EngineError:
        return False


# ------------------------------------------------------------------------------------- features
def night_features(summary: NightSummary | Mapping[str, Any], *, start: dt.datetime | None = None,
                   events: list[dict] | None = None, history: list[dict] | None = None,
                   diaries: dict[str, Diary] | None = None, night: str | None = None) -> dict:
    """Features of one night (see FEATURES) from its summary and cramp events, the stored
    summaries of earlier nights (``history``: dicts with ``night`` and ``summary``) and the
    diaries by night date."""
    s = NightSummary.of(summary)
    f = neutral_features()
    cramps = [e for e in (events or []) if e.get("kind") == "cramp"]
    n, left, right = float(s.cramps), float(s.cramps_left), float(s.cramps_right)
    rec_s = s.time_in_bed_s
    f.update(cramps=n, cramps_left=left, cramps_right=right,
             cramp_side="both" if left and right else "left" if left else "right" if right else "none",
             cramp_longest_min=s.cramp_longest_s / 60, cramp_total_min=s.cramp_total_s / 60,
             awakenings=float(s.awakenings), awakenings_after_cramp=float(s.awakenings_after_cramp))
    if cramps:
        first = min(e["start_s"] for e in cramps)
        f["first_cramp_h"] = first / 3600
        half = (rec_s or 2 * first) / 2
        f["cramps_second_half"] = float(sum(1 for e in cramps if e["start_s"] >= half))
    f["sleep_efficiency"] = None if s.sleep_efficiency is None else 100.0 * s.sleep_efficiency
    f["plm_index"] = s.plms_index_per_h
    emg_q = [q for q in s.signal_quality.values() if q.get("kind") == "emg"]
    f["has_emg"] = bool(emg_q)
    f["has_acc"] = any(q.get("kind") == "acc" for q in s.signal_quality.values())
    f["emg_artifact_pct"] = max((float(q.get("artifact_pct") or 0) for q in emg_q), default=0.0)
    f["signal_lost_min"] = s.signal_lost_s / 60
    f["signal_ok"] = all(float(q.get("artifact_pct") or 0) < 20 and float(q.get("lost_pct") or 0) < 20
                         for q in emg_q)
    f["recorded_h"] = rec_s / 3600 if rec_s else f["recorded_h"]

    key = night or (start.date().isoformat() if start else None)
    past = _by_night(history or [])
    if key:
        past[key] = (n, left, right)
    _multi(f, past, key, diaries or {})
    d = (diaries or {}).get(key or "", Diary())
    if d.evening is not None:
        f["diary_evening"] = True
        ev = d.evening.model_dump()
        for k in ("exercise", "exercise_min", "fluids_l", "alcohol_drinks", "caffeine_drinks", "stretched",
                  "pregnant", "age_band"):
            f[k] = ev[k]
        f["medications"] = tuple(ev["medications"] or ())
    if d.morning is not None:
        f["diary_morning"] = True
        f.update(d.morning.model_dump())
    return f


def _by_night(history: list[dict]) -> dict[str, tuple[float, float, float]]:
    def counts(value: NightSummary | Mapping[str, Any]) -> tuple[float, float, float]:
        s = NightSummary.of(value)
        return float(s.cramps), float(s.cramps_left), float(s.cramps_right)
    return {h["night"]: counts(h["summary"]) for h in history if "night" in h}


def _multi(f: dict, by_night: dict[str, tuple[float, float, float]], key: str | None,
           diaries: dict[str, Diary]) -> None:
    if not key:
        f["nights_7"] = 1.0
        f["cramp_nights_7"] = f["cramp_nights_30"] = 1.0 if f["cramps"] else 0.0
        f["cramps_7"] = f["cramps"]
        f["cramps_left_30"], f["cramps_right_30"] = f["cramps_left"], f["cramps_right"]
        return
    today = dt.date.fromisoformat(key)

    def window(a: int, b: int, k: int = 0) -> list[float]:  # nights a..b-1 days before this one
        days = [(today - dt.timedelta(days=d)).isoformat() for d in range(a, b)]
        return [by_night[d][k] for d in days if d in by_night]

    last, prev, month = window(0, 7), window(7, 14), window(0, 30)
    f["nights_7"] = float(len(last))
    f["cramp_nights_7"] = float(sum(1 for c in last if c > 0))
    f["cramp_nights_prev_7"] = float(sum(1 for c in prev if c > 0))
    f["cramp_nights_30"] = float(sum(1 for c in month if c > 0))
    f["cramps_7"] = float(sum(last))
    f["cramps_left_30"], f["cramps_right_30"] = float(sum(window(0, 30, 1))), float(sum(window(0, 30, 2)))
    f["cramp_trend"] = (sum(last) / len(last) - sum(prev) / len(prev)) if last and prev else None
    evenings = [diaries.get((today - dt.timedelta(days=k)).isoformat()) for k in range(7)]
    f["stretched_nights_7"] = float(sum(1 for d in evenings if d and d.evening and d.evening.stretched))


# ------------------------------------------------------------------------------------- evaluation
def evaluate(rules: list[LoadedRule], features: dict) -> list[AdviceItem]:
    """The rules that fire, see-a-clinician first, each with the facts that made it fire. A red
    flag that fires withholds every other rule asking for one of its ``withholds`` (no
    stretching, massage or weight on a leg that may have a clot)."""
    fired = [lr for lr in rules if _fires(lr, features)]
    held = {a for lr in fired for a in lr.rule.withholds}
    out = [_item(lr, features) for lr in fired if lr.rule.red_flag or not held & set(lr.rule.actions)]
    return sorted(out, key=lambda a: LEVELS.index(a.level))


def explain(rules: list[LoadedRule], features: dict) -> list[tuple[LoadedRule, bool, dict]]:
    """Every rule, whether it fired and the values of the features its condition reads."""
    return [(lr, _fires(lr, features), {s: _plain(features[s]) for s in lr.symbols}) for lr in rules]


def _item(lr: LoadedRule, f: dict) -> AdviceItem:
    r = lr.rule
    return AdviceItem(r.id, r.title, r.text, r.level, r.evidence, r.source, r.clinician,
                      {s: _plain(f[s]) for s in lr.symbols})


def _plain(v):
    if isinstance(v, float):
        return round(v, 3)
    if isinstance(v, tuple):
        return list(v)
    return v


def default_rules() -> list[LoadedRule]:
    """The rules of ``rules_path()``, loaded once per change of the file."""
    path = rules_path()
    try:
        st = path.stat()
    except FileNotFoundError:
        raise AdviceError(f"{path}: advice rule file not found") from None
    return _cached_rules(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=4)
def _cached_rules(path: str, _mtime: int, _size: int) -> list[LoadedRule]:
    return load_rules(Path(path))


def advise(summary: NightSummary | Mapping[str, Any], *, rules: list[LoadedRule] | None = None,
           **kw: Any) -> list[dict]:
    """The ``advice`` list of the analysis JSON for one night (see night_features for ``kw``)."""
    rules = rules if rules is not None else default_rules()
    return [a.to_json() for a in evaluate(rules, night_features(summary, **kw))]


def stored_night_features(store, wearer: str, night: str, analysis: dict | None = None,
                          nights: list[dict] | None = None) -> dict:
    """Features of a stored night with the wearer's history and diaries from the store;
    ``analysis`` (e.g. with reviewed events) instead of the stored one, ``nights`` (e.g. with
    reviewed summaries) instead of the stored nights."""
    analysis = analysis or store.analysis(wearer, night)
    if analysis is None:
        raise LookupError(f"no stored night {night} for wearer {wearer!r}")
    history = [n for n in (nights if nights is not None else store.nights(wearer)) if n["night"] != night]
    diaries = {k: Diary(**v) for k, v in store.diaries(wearer).items()}
    return night_features(analysis["summary"], events=analysis["events"], history=history, diaries=diaries,
                          night=night)


def format_advice(items: list[dict], *, width: int = 88) -> str:
    """Advice as terminal text, with the reasons in words and the disclaimer."""
    import textwrap

    from detector.advice.wording import because

    lines = []
    mark = {"see-a-clinician": "!", "suggestion": "*", "info": "-"}
    for a in items:
        lines.append(f" {mark[a['level']]} {a['title']} [{a['level']}]")
        lines += textwrap.wrap(a["text"], width, initial_indent="     ", subsequent_indent="     ")
        if a.get("facts"):
            lines += textwrap.wrap(because(a["facts"]), width, initial_indent="     ",
                                   subsequent_indent="     ")
        lines.append(f"     source: {a['source']} (evidence: {a['evidence']})")
    if not items:
        lines.append(" (no advice for this night)")
    lines += textwrap.wrap(DISCLAIMER, width, initial_indent=" ", subsequent_indent=" ")
    return "\n".join(lines)



def with_advice(analysis, *, rules: list[LoadedRule] | None = None):
    """``analysis`` (detector.analyze.Analysis) with the advice of this night alone (no history
    or diary; ``nightcramp advice`` adds those for stored nights). A broken rule file costs the
    advice, never the analysis: it is said in the notes."""
    import dataclasses

    rec = analysis.recording
    cramps = [e.to_json(rec.start) for e in analysis.events if e.kind == "cramp"]
    try:
        items = advise(analysis.summary, events=cramps, start=rec.start, rules=rules)
    except AdviceError as exc:
        return dataclasses.replace(analysis, advice=[], notes=[*analysis.notes, f"no advice: {exc}"])
    return dataclasses.replace(analysis, advice=items)
