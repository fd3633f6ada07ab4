"""The nightly summary: sleep figures, counts and durations, PLM index, signal quality.

One typed, frozen :class:`NightSummary` is what advice, the web pages, the report, the PDF and
the command line read. Its event counts come from :func:`count_events`, the one place they are
counted, whether from the detected events (the analysis) or from a clinician's reviewed ones
(``NightSummary.reviewed``). Durations are seconds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from detector.engine.config import Cramp

if TYPE_CHECKING:  # the engine imports this module's neighbours, not the other way round
    from detector.engine.events import Event
    from detector.engine.pipeline import NightResult


def night_key(start: dt.datetime) -> str:
    """A night's key: the date the evening started (recordings starting before noon belong to
    the evening before), ISO format."""
    return (start - dt.timedelta(hours=12)).date().isoformat()


class NightSummary(BaseModel):
    """One night in figures (schema ``nightcramp.analysis/1``, key ``summary``).

    Stored nights are read back with :meth:`of`; nights stored before a field existed get its
    default (for ``red_flag_s``: the configured default at the time of reading)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    time_in_bed_s: float = 0.0
    sleep_onset_s: float | None = None
    sleep_onset_latency_s: float | None = None
    final_wake_s: float | None = None
    total_sleep_time_s: float = 0.0
    waso_s: float = 0.0
    sleep_efficiency: float | None = None  # 0..1 of the time in bed
    awakenings: int = 0
    awakenings_after_cramp: int = 0
    awakening_definition: str = ""
    cramps: int = 0
    cramps_left: int = 0
    cramps_right: int = 0
    cramp_total_s: float = 0.0
    cramp_longest_s: float = 0.0
    cramps_over_red_flag: int = 0
    red_flag_s: float = Cramp.model_fields["red_flag_s"].default
    cramp_definition: str = ""
    sustained_activity: int = 0
    limb_movements: int = 0
    plm_series: int = 0
    plm_series_in_wake: int = 0
    plm_rules: str = "aasm"
    plms: int = 0
    plms_index_per_h: float | None = None
    rollovers: int = 0
    bed_exits: int = 0
    artifacts: int = 0
    signal_lost_s: float = 0.0
    signal_quality: dict[str, dict[str, Any]] = {}
    reviewed: bool = False  # counts taken from a clinician's reviewed events

    @classmethod
    def of(cls, value: NightSummary | Mapping[str, Any]) -> NightSummary:
        """A summary from itself or from its JSON (an analysis file, a stored night)."""
        return value if isinstance(value, NightSummary) else cls.model_validate(dict(value))

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def reviewed_with(self, events: Iterable[Mapping[str, Any]]) -> NightSummary:
        """This summary with every event-derived count taken from reviewed events (dicts with a
        ``status``; rejected ones left out), against the red-flag duration the night was analysed
        with. Sleep measures and the PLM index stay as detected."""
        events = list(events)
        live = [e for e in events if e.get("status") != "rejected"]
        counts = count_events(live, self.red_flag_s)
        return self.model_copy(update=counts | {
            "reviewed": any(e.get("status", "detected") != "detected" for e in events)})


def _get(e: Any, key: str) -> Any:
    return e.get(key) if isinstance(e, Mapping) else getattr(e, key, None)


def count_events(events: Iterable[Any], red_flag_s: float) -> dict[str, Any]:
    """The summary's event counts and durations (s) from events (``Event`` objects or their
    JSON dicts): the one place they are counted."""
    events = list(events)

    def of(kind: str, subtype: str | None = None) -> list[Any]:
        return [e for e in events if _get(e, "kind") == kind
                and (subtype is None or (_get(e, "subtype") or "") == subtype)]

    def dur(e: Any) -> float:
        return float(_get(e, "end_s")) - float(_get(e, "start_s"))

    cramps = of("cramp")
    durations = [dur(c) for c in cramps]
    awak = of("awakening")
    return {
        "awakenings": len(awak),
        "awakenings_after_cramp": len(of("awakening", "after_cramp")),
        "cramps": len(cramps),
        "cramps_left": sum(1 for c in cramps if _get(c, "side") == "left"),
        "cramps_right": sum(1 for c in cramps if _get(c, "side") == "right"),
        "cramp_total_s": round(float(sum(durations)), 1),
        "cramp_longest_s": round(float(max(durations)), 1) if durations else 0.0,
        "cramps_over_red_flag": sum(1 for d in durations if d > red_flag_s),
        "sustained_activity": len(of("sustained_activity")),
        "limb_movements": len(of("limb_movement", "lm")),
        "plm_series": len(of("plm_series", "sleep")),
        "plm_series_in_wake": len(of("plm_series", "wake")),
        "rollovers": len(of("rollover")),
        "bed_exits": len(of("bed_exit")),
        "artifacts": len(of("artifact")),
        "signal_lost_s": round(sum(dur(e) for e in of("signal_lost")), 1),
    }


def summarize(result: NightResult, duration_s: float, events: Sequence[Event]) -> NightSummary:
    """The summary of a finished night (``result``) recorded for ``duration_s`` s, counted from
    ``events`` (the analysis's, or a clinician's reviewed ones)."""
    cfg = result.cfg
    epoch = cfg.sleep.epoch_s
    wake = result.hypnogram.astype(bool)
    tib = duration_s
    onset = result.sleep_onset_epoch
    sleep_runs = [(a, b) for a, b, v in result.bouts if not v]
    onset_s: float | None = None
    end_s: float | None = None
    if onset is not None and sleep_runs:
        end_epoch = max(b for a, b in sleep_runs)
        period = wake[onset:end_epoch]
        # The last epoch may be cut short by the end of the recording: count what was recorded.
        length = np.clip(tib - np.arange(onset, end_epoch) * epoch, 0.0, epoch)
        tst = float(np.sum(length[~period]))
        waso = float(np.sum(length[period]))
        onset_s, end_s = onset * epoch, min(end_epoch * epoch, tib)
    else:
        tst = waso = 0.0
    plms = 0
    for s in result.plm_series:
        if not s.in_sleep:
            continue
        for t in s.onsets:
            k = int(t // epoch)
            if onset is not None and onset <= k < len(wake) and not wake[k] and (end_s is None or t < end_s):
                plms += 1
    tst_h = tst / 3600.0
    return NightSummary(
        time_in_bed_s=round(tib, 1),
        sleep_onset_s=onset_s,
        sleep_onset_latency_s=onset_s,
        final_wake_s=end_s,
        total_sleep_time_s=tst,
        waso_s=waso,
        sleep_efficiency=round(tst / tib, 4) if tib else None,
        awakening_definition=result.awakening_definition,
        red_flag_s=cfg.cramp.red_flag_s,
        cramp_definition=(f"sustained calf/foot EMG at >= {cfg.cramp.on_ratio:g}x the wearer's resting "
                          f"level for >= {cfg.cramp.min_duration_s:g} s whose evidence (duration, level, "
                          "plateau, one-sidedness, movement before, at and after the onset, twitches) "
                          f"gives a cramp probability >= {cfg.cramp_model.threshold:g}"),
        plm_rules=cfg.plm.rules,
        plms=plms,
        plms_index_per_h=round(plms / tst_h, 2) if tst_h > 0 else None,
        signal_quality=result.signal_quality,
        **count_events(events, cfg.cramp.red_flag_s),
    )
