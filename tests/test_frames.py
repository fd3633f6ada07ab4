"""The MQTT frame format: bytes on the wire, round trips, and every malformed case named."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.wire.frames import FrameError, decode, encode
from ingest.wire.topics import sensor_topic


def test_documented_layout_bytes():
    raw = np.array([[1, -2], [300, -32768]], dtype=np.int16)
    b = encode("emg", 1000.0, 5, 1_700_000_000_000_000_000, (0.5, 0.25), raw)
    assert b[:2] == b"NC" and b[2] == 1 and b[3] == 1 and b[4] == 2 and b[5] == 1
    assert struct.unpack_from("<d", b, 8)[0] == 1000.0
    assert struct.unpack_from("<Q", b, 16)[0] == 5
    assert struct.unpack_from("<q", b, 24)[0] == 1_700_000_000_000_000_000
    assert struct.unpack_from("<H", b, 32)[0] == 2
    assert struct.unpack_from("<2f", b, 34) == (0.5, 0.25)
    assert struct.unpack_from("<4h", b, 42) == (1, -2, 300, -32768)
    assert struct.unpack_from("<I", b, 50)[0] == zlib.crc32(b[:50])
    assert len(b) == 54


@given(st.integers(1, 8), st.integers(0, 200), st.floats(1.0, 4000.0), st.integers(0, 2**63 - 1),
       st.booleans())
def test_round_trip(channels, n, rate, first, as_float):
    rng = np.random.default_rng(n)
    raw = (rng.normal(0, 1, (n, channels)).astype(np.float32) if as_float
           else rng.integers(-32768, 32767, (n, channels)).astype(np.int16))
    scale = tuple(float(np.float32(0.1 * (i + 1))) for i in range(channels))
    f = decode(encode("acc", rate, first, 123, scale, raw))
    assert (f.stream, f.rate_hz, f.first_sample, f.first_time_ns, f.scale) == ("acc", rate, first, 123, scale)
    np.testing.assert_array_equal(f.raw, raw)
    np.testing.assert_allclose(f.samples, raw.astype(np.float32) * np.float32(scale), rtol=1e-6)


GOOD = encode("emg", 500.0, 10, 0, (1.0,), np.zeros((4, 1), np.int16))


def _recrc(b: bytes) -> bytes:
    return b[:-4] + struct.pack("<I", zlib.crc32(b[:-4]))


@pytest.mark.parametrize("data, message", [
    (GOOD[:20], "truncated: 20 bytes"),
    (GOOD[:-1], "truncated or padded"),
    (b"XX" + GOOD[2:], "not a nightcramp frame"),
    (_recrc(GOOD[:2] + b"\x07" + GOOD[3:]), "unknown frame version 7"),
    (_recrc(GOOD[:8] + struct.pack("<d", 0.0) + GOOD[16:]), "impossible sample rate 0.0"),
    (_recrc(GOOD[:8] + struct.pack("<d", float("nan")) + GOOD[16:]), "impossible sample rate nan"),
    (_recrc(GOOD[:34] + struct.pack("<f", float("nan")) + GOOD[38:]), "scale must be finite"),
    (GOOD[:-5] + b"\x01" + GOOD[-4:], "CRC mismatch"),
])
def test_malformed_frames_are_named(data, message):
    with pytest.raises(FrameError, match=message.replace("(", r"\(")):
        decode(data)


def test_topics_take_pseudonyms_only():
    assert sensor_topic("w-17", "left-shank", "emg") == "nightcramp/v1/w-17/left-shank/emg"
    with pytest.raises(ValueError, match="never a name"):
        sensor_topic("Jane Doe", "s1", "emg")


def test_every_topic_is_built_and_parsed_by_the_wire_contract():
    from ingest.wire.topics import TopicError, parse_topic, wearer_topic

    t = parse_topic(sensor_topic("w-1", "l-shank", "status"))
    assert (t.wearer, t.sensor, t.kind) == ("w-1", "l-shank", "status")
    t = parse_topic(wearer_topic("w-1", "control"))
    assert (t.wearer, t.sensor, t.kind) == ("w-1", None, "control")
    for bad, reason in (("nightcramp/v2/w-1/s/emg", "bad_topic"), ("nightcramp/v1/W 1/s/emg", "bad_id"),
                        ("nightcramp/v1/w-1/s/ecg", "bad_topic"), ("nightcramp/v1/w-1", "bad_topic"),
                        ("nightcramp/v1/w-1/s/emg/x", "bad_topic")):
        with pytest.raises(TopicError) as exc:
            parse_topic(bad)
        assert exc.value.reason == reason, bad
    with pytest.raises(ValueError, match="topic kind"):
        sensor_topic("w-1", "s", "events")


def test_the_sensor_status_round_trips_and_bad_ones_name_the_field():
    from ingest.wire.status import SensorStatus, StatusError, parse_status

    st = SensorStatus(state="online", link="ble", battery_pct=80, channels={"emg": ["EMG L-Gastroc"]},
                      fs={"emg": 1000.0})
    assert parse_status(st.payload()) == st
    with pytest.raises(StatusError, match="battery_pct"):
        parse_status(b'{"state": "online", "link": "ble", "battery_pct": 140}')
    with pytest.raises(StatusError, match="sensor status"):
        parse_status(b"not json")


def test_the_header_is_read_without_the_samples():
    from ingest.wire.frames import read_header

    h = read_header(encode("emg", 1000.0, 5000, 123, (0.1, 0.1), np.zeros((100, 2), np.int16)))
    assert (h.stream, h.channels, h.rate_hz, h.first_sample, h.first_time_ns, h.n) == \
        ("emg", 2, 1000.0, 5000, 123, 100)
    assert h.duration_s == pytest.approx(0.1)
