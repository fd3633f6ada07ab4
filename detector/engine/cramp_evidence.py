"""Weighing the evidence for and against a cramp: sustained-activity features -> probability.

A sustained contraction is a cramp or something else (a long leg movement, a voluntary
contraction, a body movement, walking) by the balance of several signs (DOMAIN.md), not by one
veto. Each sign adds a term to the log-odds; the terms, their weights (``cramp_model.*``) and
their values are returned so that every event can say why it was called what it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from detector.engine.config import CrampModel, DetectorConfig


@dataclass(frozen=True)
class Term:
    """One sign's contribution to the log-odds of a cramp."""

    name: str  # feature key
    value: float  # the feature's value (its unit in FEATURE_TEXT)
    logit: float  # contribution (positive: for a cramp)


# What each sign means, in words for the "why" of an event.
FEATURE_TEXT = {
    "duration_s": "duration",
    "median_ratio": "level over the wearer's resting EMG",
    "fill": "plateau (share of the interval above the sustained level)",
    "onset_gap_s": "a burst and a pause before the contraction",
    "coactivation": "other leg active at the onset",
    "lead_in_intensity": "movement leading into the onset",
    "ramp_intensity": "movement while the contraction built up (leading into it)",
    "ramp_s": "seconds the contraction took to build up",
    "prior_intensity": "movement in the minute before",
    "context_intensity": "movement in the minutes before that (awake and moving about)",
    "early_intensity": "movement accompanying the onset",
    "later_intensity": "movement after the onset (waking, stretching, walking)",
    "post_intensity": "movement after the contraction has ended (cramp.after_window_s)",
    "post_side_intensity": "movement of this leg after the contraction has ended",
    "post_other_intensity": "movement of the other leg after the contraction has ended",
    "early_span_s": "seconds of the early part checked for accompanying movement",
    "no_reaction": "no movement after a contraction as short as a leg movement",
    "voluntary_hold": "movement with the onset and no reaction after the contraction",
    "twitches_before": "twitches before the onset",
    "rotation_at_onset": "position change at the onset",
    "rotation_after": "position change after the onset",
    "upright_at_onset": "standing at the onset",
    "upright_after": "standing up after the onset",
    "periodic_before": "a regular series of leg movements leading up to it",
    "artifact_fraction": "share of the interval with artefacts",
    "spectral_shift": "EMG frequency rise over the wearer's leg movements",
    "after_ratio": "residual tension after it (envelope over resting)",
}


def _clip(x: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, x))


def cramp_terms(f: dict[str, Any], cfg: DetectorConfig) -> list[Term]:
    """The log-odds terms for sustained-activity features ``f`` (see ``Engine._sustained_features``)."""
    m: CrampModel = cfg.cramp_model
    lm_max = cfg.activation.max_lm_s
    d = max(float(f["duration_s"]), 1e-3)
    if d >= lm_max:
        dur = m.w_duration_long * min(math.log2(d / lm_max), m.duration_long_cap)
    else:  # as short as a leg movement: needs other evidence
        span = max(lm_max - cfg.cramp.min_duration_s, 1e-3)
        dur = -m.w_duration_short * (lm_max - d) / span
    ratio = max(float(f["median_ratio"]), 1e-3)
    gap = float(f.get("onset_gap_s", 0.0))
    lm_like = d < 1.5 * lm_max  # as short as a leg movement (WASM: bilateral ones up to 15 s)
    terms = [
        Term("duration_s", d, m.duration_offset + dur),
        Term("median_ratio", ratio, m.w_level * _clip(math.log2(ratio / m.level_ref_ratio), -1.5, 1.0)),
        Term("fill", f["fill"], m.w_fill * (f["fill"] - m.fill_ref)),
        # A dip shorter than the AASM offset time does not end a movement: no pause at all.
        Term("onset_gap_s", gap, -m.w_onset_gap * min(gap / m.onset_gap_ref, 2.0)
             if gap >= cfg.activation.offset_quiet_s else 0.0),
        Term("coactivation", f["coactivation"],
             -m.w_coactivation * max(0.0, f["coactivation"] - m.coactivation_ref)),
        Term("twitches_before", f["twitches_before"],
             m.w_twitches if f["twitches_before"] >= m.min_twitches else 0.0),
        Term("artifact_fraction", f["artifact_fraction"], -m.w_artifact * f["artifact_fraction"]),
        Term("periodic_before", f.get("periodic_before", 0),
             -m.w_periodic if f.get("periodic_before", 0) >= m.periodic_min and lm_like else 0.0),
    ]
    if f.get("after_ratio") is not None:
        # Tone, not renewed activity: above residual_max the leg is moving again.
        r = f["after_ratio"]
        rise = (r - m.residual_floor) / m.residual_ref if r <= m.residual_max else 0.0
        terms.append(Term("after_ratio", f["after_ratio"], m.w_residual * _clip(rise, 0.0, 1.0)))
    if f.get("spectral_shift") is not None:
        terms.append(Term("spectral_shift", f["spectral_shift"],
                          m.w_spectral * _clip(f["spectral_shift"] / m.spectral_ref, -1.0, 1.0)))
    if f.get("has_acc", True):
        # Wake movement before points to a voluntary contraction when it leads into it or goes
        # on with it; a contraction out of a pause in that movement keeps little of the cost.
        lead = _lead_in(f)
        led = 1.0 - math.exp(-(lead + f["early_intensity"]) / m.clean_onset_ref)
        before = m.clean_onset_keep + (1.0 - m.clean_onset_keep) * led

        def lead_cost(x: float) -> float:
            return -m.w_lead_in * min(x / m.lead_in_ref, 3.0)

        terms += [
            Term("lead_in_intensity", f["lead_in_intensity"], lead_cost(f["lead_in_intensity"])),
            # Movement in the build-up leads in as well (one cost for both, with one cap).
            Term("ramp_intensity", float(f.get("ramp_intensity", 0.0)),
                 lead_cost(lead) - lead_cost(f["lead_in_intensity"])),
            Term("prior_intensity", f["prior_intensity"],
                 -m.w_prior * min(f["prior_intensity"] / m.prior_ref, 2.0) * before),
            Term("context_intensity", float(f.get("context_intensity", 0.0)),
                 -m.w_context * min(float(f.get("context_intensity", 0.0)) / m.context_ref, 2.0) * before),
            Term("early_intensity", f["early_intensity"],
                 -m.w_early * min(f["early_intensity"] / m.early_ref, 3.0)),
            Term("later_intensity", f["later_intensity"],
                 m.w_later * min(f["later_intensity"] / m.later_ref, m.later_cap) * _reaction_gate(f, cfg)),
            # As short as a leg movement, only the wearer's reaction tells a cramp apart: the
            # pain wakes them (DOMAIN.md). No movement after it at all is evidence against.
            Term("no_reaction", float(f["later_intensity"]),
                 -m.w_no_reaction if lm_like and f["later_intensity"] < m.no_reaction_ref else 0.0),
            # Moved into it, then nothing: a voluntary contraction is led into and accompanied by
            # movement and simply ends; the pain of a cramp that starts while the wearer moves is
            # stretched out, stood on or turned away from after it (DOMAIN.md).
            Term("voluntary_hold", float(f["early_intensity"]),
                 -m.w_voluntary_hold * min(1.0, f["early_intensity"] / m.early_ref)
                 * (1.0 - _reaction_after(f, m))),
            Term("rotation_at_onset", float(f["rotation_at_onset"]),
                 -m.w_rotation_onset * f["rotation_at_onset"]),
            Term("rotation_after", float(f["rotation_after"]), m.w_rotation_after * f["rotation_after"]),
            Term("upright_at_onset", float(f["upright_at_onset"]),
                 -m.w_upright_onset * f["upright_at_onset"]),
            Term("upright_after", float(f["upright_after"]), m.w_upright_after * f["upright_after"]),
        ]
    return terms


def _lead_in(f: dict[str, Any]) -> float:
    """Movement leading into the contraction: before the onset, and while it built up."""
    return float(f["lead_in_intensity"]) + float(f.get("ramp_intensity", 0.0))


def _reaction_after(f: dict[str, Any], m: CrampModel) -> float:
    """How much the wearer reacted after the contraction (0..1): movement once it ended, standing
    up or a turn after the onset."""
    return min(1.0, float(f.get("post_intensity", 0.0)) / m.hold_reaction_ref
               + float(bool(f.get("upright_after"))) + float(bool(f.get("rotation_after"))))


def _reaction_gate(f: dict[str, Any], cfg: DetectorConfig) -> float:
    """How far movement after the onset (0..1) is a reaction to this contraction.

    Out of stillness, any movement after it is (the pain wakes the wearer). A wearer who was
    already moving, or moved with the onset, simply goes on moving, unless the movement outlasts
    the contraction at several times their own rate of the minute before: stretching it out,
    standing on the leg or walking, as when a cramp starts while awake in bed (ICSD-3).

    Movement with the onset ends stillness on a shorter scale (``early_still_ref``) than movement
    in the minute before (``prior_ref``): the minute before is weighed as a rate, a few seconds
    of the leg moving as the contraction begins are a movement leading into it (DOMAIN.md)."""
    m, cr = cfg.cramp_model, cfg.cramp
    still = (math.exp(-(f["prior_intensity"] + _lead_in(f)) / m.prior_ref)
             * math.exp(-f["early_intensity"] / m.early_still_ref))
    before_s = max(cr.prior_window_s - cr.lead_in_skip_s, 1.0)
    rate = (f["prior_intensity"] + _lead_in(f)) / before_s
    after = float(f.get("post_intensity", 0.0)) / cr.after_window_s
    span = max(m.reaction_ratio_hi - m.reaction_ratio_lo, 1e-6)
    ratio = after / max(rate, m.reaction_floor_rate)
    # A wearer who moved with the onset was moving too, but only movement of this leg beyond
    # the other's after the contraction (stretching it out) outlasts it: getting up and walking
    # moves both legs, and follows restless wake movement as often as a cramp.
    early_s = float(f.get("early_span_s", cr.early_window_s - cr.early_skip_s))
    early_rate = float(f["early_intensity"]) / max(early_s, 0.5)
    own_leg = float(f.get("post_side_intensity", 0.0))
    one_sided = _clip((own_leg - float(f.get("post_other_intensity", 0.0))) / max(own_leg, 1e-6), 0.0, 1.0)
    # Only a wearer who was moving about can outlast their own rate; in between, in proportion
    # (getting out of bed after a short movement is not a reaction to it).
    moving = min(1.0, max(rate, early_rate * one_sided) / m.reaction_floor_rate)
    outlasting = moving * _clip((ratio - m.reaction_ratio_lo) / span, 0.0, 1.0)
    return float(max(still, outlasting))


def cramp_probability(f: dict[str, Any], cfg: DetectorConfig) -> tuple[float, list[Term]]:
    """Probability (0..1) that sustained activity with features ``f`` is a cramp, and its terms."""
    terms = cramp_terms(f, cfg)
    z = cfg.cramp_model.bias + sum(t.logit for t in terms)
    return 1.0 / (1.0 + math.exp(-_clip(z, -30.0, 30.0))), terms


def decidable_after_s(features: dict[str, Any], cfg: DetectorConfig) -> float | None:
    """Seconds after onset from which a cramp's own evidence, without what only comes later
    (movement, standing or a turn after the onset), meets the threshold: when a live alert is
    due (docs/live.md). None when that later evidence is needed."""
    f = features | {"later_intensity": 0.0, "post_intensity": 0.0, "upright_after": False,
                    "rotation_after": False, "after_ratio": None}
    d = cfg.cramp.min_duration_s
    while d <= features["duration_s"]:
        if cramp_probability(f | {"duration_s": d}, cfg)[0] >= cfg.cramp_model.threshold:
            return d
        d += 0.25
    return None


def explain(terms: list[Term], n: int = 3) -> dict[str, Any]:
    """The strongest signs for and against, in words, for an event's features."""
    def word(t: Term) -> str:
        return f"{FEATURE_TEXT.get(t.name, t.name)} ({_fmt(t.value)})"

    pro = sorted((t for t in terms if t.logit > 0.05), key=lambda t: -t.logit)[:n]
    con = sorted((t for t in terms if t.logit < -0.05), key=lambda t: t.logit)[:n]
    return {"for": [word(t) for t in pro], "against": [word(t) for t in con],
            "terms": {t.name: round(t.logit, 3) for t in terms}}


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 10 else f"{v:.2g}"
