"""The answers the diary offers (plain data: the command line builds its flags from them
without loading the diary's models)."""

from __future__ import annotations

# Medicines the wearer can tick. Diuretics, statins and long-acting beta agonists are linked to
# starting cramps (Garrison 2012, DOMAIN.md); the last three are cramp treatments a clinician may
# have prescribed, asked so that advice can point to that clinician (never to change them).
MEDICATIONS: dict[str, str] = {
    "diuretic": "a water tablet (diuretic), e.g. for blood pressure",
    "statin": "a statin, for cholesterol",
    "beta-agonist": "a long-acting inhaler (beta agonist), e.g. for asthma or COPD",
    "muscle-relaxant": "a muscle relaxant prescribed for cramps",
    "magnesium": "magnesium tablets",
    "quinine": "quinine",
    "other": "another regular medicine",
}
EXERCISE = ("none", "light", "moderate", "hard")
AGE_BANDS = ("under-30", "30-49", "50-64", "65-plus")
SWELLING = ("none", "one-side", "both-sides")
