"""The leg-sensor GATT packet format, device profiles, and the committed packet capture."""

from __future__ import annotations

import itertools
import struct
from pathlib import Path

import numpy as np
import pytest

from ingest.ble.profile import PacketError, decode_v1, encode_v1, load_profile

CAPTURE = Path(__file__).parent / "data" / "ble-capture-left-shank.txt"


def test_documented_bytes():
    b = encode_v1(65535, 2**32 - 1, 0.5, np.array([[1, -2], [3, -4]], np.int16))
    assert b[0] == 1 and b[1] == 0
    assert struct.unpack_from("<HIfBB", b, 2) == (65535, 2**32 - 1, 0.5, 2, 2)
    assert struct.unpack_from("<4h", b, 14) == (1, -2, 3, -4)
    p = decode_v1(bytearray(b))  # bleak hands notifications over as bytearray
    assert (p.seq, p.t_us, p.scale) == (65535, 2**32 - 1, 0.5)
    np.testing.assert_array_equal(p.raw, [[1, -2], [3, -4]])


@pytest.mark.parametrize("data, message", [
    (b"\x01\x00", "shorter than its 14-byte header"),
    (b"\x02" + encode_v1(0, 0, 1.0, np.zeros(3, np.int16))[1:], "unknown packet version 2"),
    (encode_v1(0, 0, 1.0, np.zeros(3, np.int16))[:-1], "header says"),
])
def test_malformed_packets(data, message):
    with pytest.raises(PacketError, match=message):
        decode_v1(data)


def test_packets_fit_one_notification():
    with pytest.raises(PacketError, match="exceeds"):
        encode_v1(0, 0, 1.0, np.zeros(200, np.int16))


def test_device_profile():
    p = load_profile("nightcramp-leg-v1")
    assert p.streams["emg"].fs == 1000.0 and p.streams["acc"].fs == 50.0
    assert p.labels("acc", "R") == ["ACC R-Shank X", "ACC R-Shank Y", "ACC R-Shank Z"]
    with pytest.raises(ValueError, match="device profile not found"):
        load_profile("unknown-sensor")


def test_capture_decodes_with_its_gap_and_wraps():
    lines = [ln.split() for ln in CAPTURE.read_text().splitlines() if not ln.startswith("#")]
    emg = [decode_v1(bytes.fromhex(h)) for s, h in lines if s == "emg"]
    acc = [decode_v1(bytes.fromhex(h)) for s, h in lines if s == "acc"]
    assert len(emg) == 299 and len(acc) == 150
    steps = np.diff([p.seq for p in emg]) % 65536
    assert sorted(set(steps.tolist())) == [1, 2] and int(np.sum(steps == 2)) == 1  # one packet lost
    assert any(b.t_us < a.t_us for a, b in itertools.pairwise(emg))  # the clock wraps
    assert all(p.raw.shape == (100, 1) for p in emg) and all(p.raw.shape == (10, 3) for p in acc)
