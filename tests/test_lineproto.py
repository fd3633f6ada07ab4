"""Line protocol text equals influxdb-client's Point serialiser (the reference)."""

from __future__ import annotations

import pytest

from detector.store.lineproto import point

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
