"""InfluxDB line protocol for records (events, nights, frames).

Text matches influxdb-client's ``Point.to_line_protocol()`` (sorted tags and fields, the same
escaping, floats without a trailing ``.0``); tests check it against that reference.
"""

from __future__ import annotations

import math

import numpy as np

_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\r": r"\r", "\t": r"\t"})
_MEAS = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\r": r"\r", "\t": r"\t"})
_STR = str.maketrans({'"': r"\"", "\\": "\\\\"})


def _tag_value(v: str) -> str:
    out = str(v).translate(_KEY)
    return out + " " if out.endswith("\\") else out


def series_key(measurement: str, tags: dict[str, str]) -> str:
    """``measurement,tag=value,...`` with tags sorted and escaped; empty tag values dropped."""
    parts = [measurement.translate(_MEAS)]
    parts += [f"{str(k).translate(_KEY)}={_tag_value(v)}" for k, v in sorted(tags.items())
              if v not in ("", None)]
    return ",".join(parts)


def _field(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool | np.bool_):
        return str(bool(v)).lower()
    if isinstance(v, int | np.integer):
        return f"{int(v)}i"
    if isinstance(v, float | np.floating):
        if not math.isfinite(v):
            return None
        s = str(float(v))
        return s[:-2] if s.endswith(".0") else s
    return '"' + str(v).translate(_STR) + '"'


def field_text(v: float) -> str:
    """A finite float field value as :func:`point` writes it."""
    s = str(v)
    return s[:-2] if s.endswith(".0") else s


def point(measurement: str, tags: dict[str, str], fields: dict, ts_ns: int) -> str:
    """One line; fields with None or non-finite values are left out (as the reference does)."""
    fs = [(k, _field(v)) for k, v in sorted(fields.items())]
    body = ",".join(f"{str(k).translate(_KEY)}={s}" for k, s in fs if s is not None)
    if not body:
        raise ValueError(f"{measurement}: a point needs at least one field")
    return f"{series_key(measurement, tags)} {body} {int(ts_ns)}"
