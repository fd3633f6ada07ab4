"""Line protocol text equals influxdb-client's Point serialiser (the reference)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from detector.lineproto import point, samples

influx_point = pytest.importorskip("influxdb_client").Point


def reference(measurement, tags, fields, ts):
    p = influx_point(measurement)
    for k, v in tags.items():
        p = p.tag(k, v)
    for k, v in fields.items():
        p = p.field(k, v)
    return p.time(int(ts), "ns").to_line_protocol()


@pytest.mark.parametrize("measurement, tags, fields", [
    ("event", {"wearer": "w-1", "kind": "cramp", "side": "left"},
     {"start_s": 12.5, "end_s": 200.0, "confidence": 0.93, "channel": "EMG L-Gastroc", "n": 3}),
    ("odd name", {"t,ag": "a=b c", "z": "trailing\\"}, {"s": 'quote " and \\ back', "ok": True}),
    ("night", {"wearer": "w-2"}, {"summary": '{"a": [1, 2]}', "big": 1e21, "tiny": 1.5e-7, "neg": -3.0}),
])
def test_points_equal_reference(measurement, tags, fields):
    assert point(measurement, tags, fields, 1_700_000_000_123_456_789) == reference(
        measurement, tags, fields, 1_700_000_000_123_456_789)


@given(st.lists(st.floats(-5000, 5000, allow_nan=False), min_size=1, max_size=50),
       st.integers(0, 2**62))
def test_vectorised_samples_equal_reference(values, t0):
    v = np.round(np.asarray(values), 3) + 0.0
    ts = t0 + np.arange(len(v), dtype=np.int64) * 1_000_000
    tags = {"wearer": "w-1", "sensor": "left-shank", "channel": "EMG L-Gastroc"}
    got = samples("emg", tags, "v", v, ts, decimals=3).split("\n")
    want = [reference("emg", tags, {"v": float(x)}, t) for x, t in zip(v, ts, strict=True)]
    assert got == want


def test_nan_samples_are_left_out():
    out = samples("acc", {"wearer": "w"}, "v", np.array([1.0, np.nan, 2.25]), np.array([1, 2, 3]), 6)
    assert out == "acc,wearer=w v=1 1\nacc,wearer=w v=2.25 3"
