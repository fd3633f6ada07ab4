"""What InfluxDB holds: every measurement's fields, each with one fixed type.

InfluxDB fixes a field's type per shard (7 days by default) from the first point written and
refuses (HTTP 400) a point whose field has another type, so a summary value that is an
integer one night (``round(0, 1)`` is ``0``) and a float the next loses the second night.
Every write goes through :func:`coerce`, which turns values into the declared type or refuses
them with the measurement and field named, before anything is sent.
"""

from __future__ import annotations

import math
import typing
from typing import Final, Literal

import numpy as np
from pydantic import BaseModel

from detector.advice.diary import Evening, Morning

FieldType = Literal["float", "integer", "string", "boolean"]
F: Final = "float"
INT: Final = "integer"
S: Final = "string"
B: Final = "boolean"


class SchemaError(ValueError):
    """A value that does not fit the stored schema; the message names measurement and field."""


_SUMMARY_FLOATS = ("time_in_bed_s", "sleep_onset_s", "sleep_onset_latency_s", "final_wake_s",
                   "total_sleep_time_s", "waso_s", "sleep_efficiency", "cramp_total_s",
                   "cramp_longest_s", "red_flag_s", "plms_index_per_h", "signal_lost_s")
_SUMMARY_INTS = ("awakenings", "awakenings_after_cramp", "cramps", "cramps_left", "cramps_right",
                 "cramps_over_red_flag", "sustained_activity", "limb_movements", "plm_series",
                 "plm_series_in_wake", "plms", "rollovers", "bed_exits", "artifacts")
# Numeric summary values stored as fields of their own (for InfluxQL users); the whole summary
# is in the ``json`` field as well.
SUMMARY_FIELDS: dict[str, FieldType] = {**dict.fromkeys(_SUMMARY_FLOATS, F),
                                        **dict.fromkeys(_SUMMARY_INTS, INT)}


def _diary_fields(*models: type[BaseModel]) -> dict[str, FieldType]:
    """Answer fields of the check-in models: numbers as floats, yes/no as booleans, choices and
    lists (comma-joined) as strings."""
    out: dict[str, FieldType] = {"json": S}
    for m in models:
        for name, f in m.model_fields.items():
            args = set(typing.get_args(f.annotation)) - {type(None)} or {f.annotation}
            if args <= {bool}:
                out[name] = B
            elif args & {float, int}:
                out[name] = F
            else:  # Literal choices, lists
                out[name] = S
    return out


_ENV: dict[str, FieldType] = {"min": F, "max": F, "mav": F, "hfpk": F}  # hfpk: EMG only
MEASUREMENTS: dict[str, dict[str, FieldType]] = {
    # raw samples as transmitted (retention policy ``raw``), one point per channel and frame
    "emg": {"data": S, "enc": S, "first": INT, "fs": F, "n": INT, "scale": F},
    "acc": {"data": S, "enc": S, "first": INT, "fs": F, "n": INT, "scale": F},
    # per-frame envelope (µV or g) and its rollups
    "env": _ENV, "env_1s": _ENV, "env_10s": _ENV,
    "event": {"start_s": F, "end_s": F, "duration_s": F, "confidence": F, "subtype": S,
              "features": S},
    "night": SUMMARY_FIELDS | {"json": S, "recording": S, "notes": S, "duration_s": F,
                               "hypnogram": S, "version": S, "advice_version": S},
    "advice": {"order": INT, "title": S, "text": S, "evidence": S, "source": S, "clinician": S,
               "facts": S},
    "diary": _diary_fields(Evening, Morning),
    "review": {"action": S, "kind": S, "start_s": F, "end_s": F, "side": S, "note": S, "by": S,
               "at": S},
    # a second scorer's events on a night (a PSG scoring a clinician imported) and its record
    "scored": {"label": S, "start": S, "end": S},
    "scoring": {"source": S, "by": S, "at": S, "version": S, "events": INT, "unmapped": S},
    # what each sensor last said about itself (its retained MQTT status), when the detector heard it
    "sensor": {"state": S, "link": S, "battery_pct": INT, "address": S},
}


def coerce(measurement: str, fields: dict) -> dict:
    """``fields`` converted to the declared types of ``measurement``; None and non-finite
    numbers are left out (a missing value). SchemaError for an undeclared field or a value
    that does not convert (a bool for a number, a fractional value for an integer, …)."""
    schema = MEASUREMENTS.get(measurement)
    if schema is None:
        raise SchemaError(f"{measurement!r} is not a stored measurement")
    out: dict = {}
    for k, v in fields.items():
        t = schema.get(k)
        if t is None:
            raise SchemaError(f"{measurement}.{k}: not a stored field")
        if v is None:
            continue
        out[k] = _convert(measurement, k, t, v)
        if out[k] is None:
            del out[k]
    return out


def _convert(measurement: str, k: str, t: FieldType, v):
    where = f"{measurement}.{k}"
    if t == S:
        if not isinstance(v, str):
            raise SchemaError(f"{where}: a string is stored here, not {type(v).__name__} {v!r}")
        return v
    if t == B:
        if not isinstance(v, bool | np.bool_):
            raise SchemaError(f"{where}: true or false is stored here, not {v!r}")
        return bool(v)
    if isinstance(v, bool | np.bool_) or not isinstance(v, int | float | np.integer | np.floating):
        raise SchemaError(f"{where}: a number is stored here, not {type(v).__name__} {v!r}")
    x = float(v)
    if not math.isfinite(x):
        return None
    if t == F:
        return x
    if not x.is_integer():
        raise SchemaError(f"{where}: a whole number is stored here, not {v!r}")
    return int(x)



def read_back(measurement: str, row: dict) -> dict:
    """A row read from InfluxDB with float fields as floats (its JSON writes 0.0 as ``0``)."""
    schema = MEASUREMENTS[measurement]
    return {k: float(v) if schema.get(k) == F and isinstance(v, int) and not isinstance(v, bool) else v
            for k, v in row.items()}
