"""The wearer's evening and morning check-in (diary), one per night.

Answers are optional one by one: an unanswered question is ``None`` and advice rules that use
it must say what to do then (see detector/advice/rules.py). Units: litres, minutes, drinks.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from detector.advice.diary_answers import AGE_BANDS, EXERCISE, MEDICATIONS, SWELLING  # noqa: F401 (re-exported)


class Evening(BaseModel):
    """Asked before bed: the day behind the night."""

    model_config = ConfigDict(extra="forbid")

    exercise: Literal["none", "light", "moderate", "hard"] | None = Field(
        None, description="how hard the day's exercise was")
    exercise_min: float | None = Field(None, ge=0, le=1440, description="[min] exercise today")
    fluids_l: float | None = Field(None, ge=0, le=15, description="[l] fluids drunk today")
    alcohol_drinks: float | None = Field(None, ge=0, le=50, description="[drinks] alcohol today")
    caffeine_drinks: float | None = Field(None, ge=0, le=50, description="[drinks] coffee, tea, cola today")
    stretched: bool | None = Field(None, description="stretched calves/hamstrings before bed")
    medications: list[str] | None = Field(None, description="regular medicines, keys of MEDICATIONS")
    pregnant: bool | None = None
    age_band: Literal["under-30", "30-49", "50-64", "65-plus"] | None = None

    @field_validator("medications")
    @classmethod
    def _known(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        bad = [m for m in v if m not in MEDICATIONS]
        if bad:
            raise ValueError(f"unknown medication {', '.join(bad)} (choose from {', '.join(MEDICATIONS)})")
        return sorted(set(v))


class Morning(BaseModel):
    """Asked on waking: the night and the legs now."""

    model_config = ConfigDict(extra="forbid")

    cramp_woke: bool | None = Field(None, description="a cramp woke me")
    soreness: bool | None = Field(None, description="the calf is still sore or tight")
    calf_swelling: Literal["none", "one-side", "both-sides"] | None = None
    calf_warm_red: bool | None = Field(None, description="a calf is warm, red or tender to touch")
    leg_weakness: bool | None = Field(None, description="a leg feels weak or thinner than before")
    daytime_cramps: bool | None = Field(None, description="cramps also by day or in other parts of the body")


class Diary(BaseModel):
    """Both check-ins of one night; either may be missing."""

    evening: Evening | None = None
    morning: Morning | None = None


def save_checkin(store, wearer: str, night: str, part: str, answers: dict) -> dict:
    """Merge ``answers`` into the stored check-in (``evening`` or ``morning``) of a night,
    validate (ValueError naming the answer) and store it; returns all answers of that part."""
    model = {"evening": Evening, "morning": Morning}.get(part)
    if model is None:
        raise ValueError(f"diary part must be evening or morning, not {part!r}")
    stored = store.diaries(wearer).get(night, {}).get(part, {})
    merged = model(**(stored | answers)).model_dump()
    store.write_diary(wearer, night, part, merged)
    return merged
