"""Why a rule fired, in words a wearer reads: "you had 19 periodic leg movements an hour of
sleep", not "plm_index = 19.62". Every feature a rule may read has a phrase here
(tests/test_advice_rules.py checks that none is missing)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def _n(v: Any) -> str:
    return f"{float(v):.0f}"


def _count(v: Any, one: str, many: str) -> str:
    n = round(float(v))
    return f"{n} {one if n == 1 else many}"


def _yes(yes: str, no: str) -> Callable[[Any], str]:
    return lambda v: yes if v else no


_PHRASES: dict[str, Callable[[Any], str]] = {
    "cramps": lambda v: f"nightcramp saw {_count(v, 'cramp', 'cramps')} last night",
    "cramps_left": lambda v: f"{_count(v, 'cramp', 'cramps')} in the left leg",
    "cramps_right": lambda v: f"{_count(v, 'cramp', 'cramps')} in the right leg",
    "cramp_side": lambda v: {"none": "no cramps", "both": "cramps in both legs"}.get(
        v, f"cramps in the {v} leg"),
    "cramp_longest_min": lambda v: f"the longest cramp lasted {_n(v)} minutes",
    "cramp_total_min": lambda v: f"{_n(v)} minutes in cramps",
    "cramps_second_half": lambda v: f"{_count(v, 'cramp', 'cramps')} in the second half of the night",
    "first_cramp_h": lambda v: f"the first cramp came {float(v):.1f} hours after you went to bed",
    "awakenings": lambda v: f"you woke {_count(v, 'time', 'times')}",
    "awakenings_after_cramp": lambda v: f"you woke {_count(v, 'time', 'times')} after a cramp",
    "sleep_efficiency": lambda v: f"you slept {_n(v)}% of the time in bed",
    "plm_index": lambda v: f"you had {_n(v)} periodic leg movements an hour of sleep",
    "recorded_h": lambda v: f"the recording lasted {float(v):.1f} hours",
    "signal_lost_min": lambda v: f"the sensors sent no usable signal for {_n(v)} minutes",
    "emg_artifact_pct": lambda v: f"the muscle signal was disturbed {_n(v)}% of the time",
    "signal_ok": _yes("the sensors' signal was good", "the sensors' signal was poor"),
    "has_emg": _yes("the muscle sensors were worn", "no muscle sensor was worn"),
    "has_acc": _yes("the movement sensor was worn", "no movement sensor was worn"),
    "nights_7": lambda v: f"{_count(v, 'night', 'nights')} recorded this week",
    "cramp_nights_7": lambda v: f"cramps on {_count(v, 'night', 'nights')} this week",
    "cramp_nights_prev_7": lambda v: f"cramps on {_count(v, 'night', 'nights')} the week before",
    "cramp_nights_30": lambda v: f"cramps on {_count(v, 'night', 'nights')} in the last 30",
    "cramps_7": lambda v: f"{_count(v, 'cramp', 'cramps')} this week",
    "cramps_left_30": lambda v: f"{_count(v, 'left-leg cramp', 'left-leg cramps')} in the last 30 nights",
    "cramps_right_30": lambda v: f"{_count(v, 'right-leg cramp', 'right-leg cramps')} in the last 30 nights",
    "cramp_trend": lambda v: (f"{abs(float(v)):.1f} {'more' if float(v) > 0 else 'fewer'} cramps a night "
                              "than the week before"),
    "stretched_nights_7": lambda v: f"you stretched on {_count(v, 'evening', 'evenings')} this week",
    "diary_evening": _yes("you filled in the evening check-in", "there is no evening check-in yet"),
    "exercise": lambda v: "you did no exercise" if v == "none" else f"your exercise was {v}",
    "exercise_min": lambda v: f"you exercised for {_n(v)} minutes",
    "fluids_l": lambda v: f"you drank {float(v):.1f} litres",
    "alcohol_drinks": lambda v: f"you had {_count(v, 'alcoholic drink', 'alcoholic drinks')}",
    "caffeine_drinks": lambda v: f"you had {_count(v, 'coffee, tea or cola', 'coffees, teas or colas')}",
    "stretched": _yes("you stretched before bed", "you did not stretch before bed"),
    "medications": lambda v: ("you take " + ", ".join(v)) if v else "you ticked no regular medicines",
    "pregnant": _yes("you are pregnant", "you are not pregnant"),
    "age_band": lambda v: "you are 65 or older" if v == "65-plus" else f"your age is {v}",
    "diary_morning": _yes("you filled in the morning check-in", "there is no morning check-in yet"),
    "cramp_woke": _yes("you said a cramp woke you", "you said no cramp woke you"),
    "soreness": _yes("you said your calf was still sore", "you said your calf was not sore"),
    "calf_swelling": lambda v: {"one-side": "you said one calf is swollen",
                                "both-sides": "you said both calves are swollen"}.get(
        v, "you said no calf is swollen"),
    "calf_warm_red": _yes("you said a calf is warm, red or tender", "you said no calf is warm or red"),
    "leg_weakness": _yes("you said a leg feels weak", "you said no leg feels weak"),
    "daytime_cramps": _yes("you said you also get cramps by day or elsewhere", "you get no cramps by day"),
}


def fact_phrase(name: str, value: Any) -> str:
    """One fact a rule read, for a person ("not answered" when the value is unknown)."""
    if value is None:
        return f"{name.replace('_', ' ')}: not answered"
    phrase = _PHRASES.get(name)
    return phrase(value) if phrase else f"{name.replace('_', ' ')}: {value}"


def because(facts: Mapping[str, Any]) -> str:
    """``"Because you had 19 periodic leg movements an hour of sleep."``; empty with no facts."""
    parts = [fact_phrase(k, v) for k, v in facts.items()]
    if not parts:
        return ""
    said = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"Because {said}."


def known_phrases() -> set[str]:
    return set(_PHRASES)
