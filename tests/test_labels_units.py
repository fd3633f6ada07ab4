"""Channel labels, aliases and physical units."""

from __future__ import annotations

import pytest

from ingest.recordings.labels import parse_label, unit_scale


@pytest.mark.parametrize("label, kind, side, site, axis", [
    ("EMG L-Gastroc", "emg", "left", "Gastroc", None),
    ("emg r-tibant", "emg", "right", "Tibant", None),
    ("EMG  R - Soleus", "emg", "right", "Soleus", None),
    ("ACC L-Shank X", "acc", "left", "Shank", "X"),
    ("acc r-shank z", "acc", "right", "Shank", "Z"),
    ("LAT", "emg", "left", "TibAnt", None),
    ("Leg/R", "emg", "right", "TibAnt", None),
    ("EMG Tib L", "emg", "left", "TibAnt", None),
    ("leg l", "emg", "left", "TibAnt", None),
])
def test_labels(label, kind, side, site, axis):
    p = parse_label(label)
    assert p is not None
    assert (p.kind, p.side, p.site, p.axis) == (kind, side, site, axis)


@pytest.mark.parametrize("label", ["EMG submental", "EEG Fpz-Cz", "EMG", "ACC L-Shank", "Resp oro-nasal"])
def test_unknown_labels_are_not_guessed(label):
    assert parse_label(label) is None


@pytest.mark.parametrize("kind, unit, factor", [
    ("emg", "uV", 1.0), ("emg", "µV", 1.0), ("emg", "UV", 1.0), ("emg", "mV", 1000.0), ("emg", "V", 1e6),
    ("acc", "g", 1.0), ("acc", "mg", 0.001), ("acc", "m/s2", 1 / 9.80665), ("acc", "m/s^2", 1 / 9.80665),
])
def test_units(kind, unit, factor):
    assert unit_scale(kind, unit, label="x") == pytest.approx(factor)


def test_wrong_unit_message():
    with pytest.raises(ValueError, match=r"^EMG L-Gastroc: physical dimension 'furlong' is not a voltage"):
        unit_scale("emg", "furlong", label="EMG L-Gastroc")
    with pytest.raises(ValueError, match="is not an acceleration"):
        unit_scale("acc", "uV", label="ACC L-Shank X")
