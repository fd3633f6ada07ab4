"""Every shared EDF/BDF file loads, or is rejected with one line naming the file and problem."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from ingest.recordings.edf import read_edf_recording
from ingest.recordings.recording import RecordingError

from .conftest import EDF_DIR

FILES = sorted(p for p in EDF_DIR.glob("*/*") if p.suffix.lower() in (".edf", ".bdf"))

REJECTED = {
    "invalid-date.edf": "start date '00.00.00' is not a valid date",
    "zero-data-records.edf": "holds no data records",
}
ANNOTATION_ONLY = {"SC4001EC-Hypnogram.edf": 154, "SC4001EC-Hypnogram.bdf": 154, "test_edfann.edf": 856}


def test_test_data_present():
    assert len(FILES) >= 29, (f"expected the shared EDF/BDF files under {EDF_DIR}: clone beside "
                              "shared/ or set NIGHTCRAMP_TESTDATA")


def _pyedflib_signals(path: Path):
    pyedflib = pytest.importorskip("pyedflib")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = pyedflib.EdfReader(str(path))
    except OSError:
        return None
    try:
        labels = r.getSignalLabels()
        dims = [r.getPhysicalDimension(i) for i in range(len(labels))]
        return r, labels, dims
    except Exception:
        r.close()
        raise


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_file_loads_or_is_rejected_clearly(path: Path):
    if path.name in REJECTED:
        with pytest.raises(RecordingError) as exc:
            read_edf_recording(path)
        msg = str(exc.value)
        assert "\n" not in msg
        assert msg.startswith(path.name + ": ")
        assert REJECTED[path.name] in msg
        return
    rec = read_edf_recording(path)
    assert rec.name == path.name
    assert rec.start.tzinfo is not None
    if path.name in ANNOTATION_ONLY:
        assert rec.channels == []
        assert len(rec.annotations) == ANNOTATION_ONLY[path.name]
        return
    assert rec.duration_s > 0
    assert rec.ignored, "non-leg channels are listed, not silently dropped"
    # Read a voltage signal as if it were a leg EMG and compare it with pyEDFlib's reading.
    info = _pyedflib_signals(path)
    first_uv = next((lab for lab in rec.ignored if lab), None)
    if info is None:
        # pyEDFlib refuses this file (EDF+D, non-compliant header): still read it through an alias.
        rec2 = read_edf_recording(path, aliases={first_uv: "EMG L-TibAnt"}) if first_uv else rec
        if rec2.channels:
            x = rec2.read(0, 0, rec2.channels[0].n_samples)
            assert x.size == rec2.channels[0].n_samples
        return
    r, labels, dims = info
    try:
        # A voltage channel at a rate EMG can have (ingest.recordings.recording.RATE_LIMITS_HZ).
        idx = next((i for i, d in enumerate(dims) if d.strip().lower() in ("uv", "µv", "mv")
                    and 44 <= r.getSampleFrequency(i) <= 20_000), None)
        if idx is None:
            return
        rec2 = read_edf_recording(path, aliases={labels[idx]: "EMG L-TibAnt"})
        ch = next(c for c in rec2.channels if c.label.strip() == labels[idx].strip())
        ref = r.readSignal(idx)
        scale = 1000.0 if dims[idx].strip().lower() == "mv" else 1.0
        n = min(len(ref), ch.n_samples, 20000)
        ours = rec2.read(rec2.channels.index(ch), 0, n)
        step = abs(r.getPhysicalMaximum(idx) - r.getPhysicalMinimum(idx)) / max(
            1, r.getDigitalMaximum(idx) - r.getDigitalMinimum(idx))
        np.testing.assert_allclose(ours, ref[:n] * scale, atol=2 * step * scale + 1e-3,
                                   rtol=1e-5)
        assert ch.fs == pytest.approx(r.getSampleFrequency(idx))
    finally:
        r.close()


def test_discontinuous_edf_keeps_its_timeline():
    rec = read_edf_recording(EDF_DIR / "mne-testing-data-edf" / "MB0400FU.EDF",
                             aliases={"EEG Fp2-Ref": "EMG L-TibAnt"})
    assert rec.duration_s == pytest.approx(29.0)
    assert rec.channels[0].n_samples == 29 * 200


def test_truncated_file_is_rejected(tmp_path):
    src = EDF_DIR / "pyedflib-testdata" / "test_generator.edf"
    bad = tmp_path / "cut.edf"
    bad.write_bytes(src.read_bytes()[:300])
    with pytest.raises(RecordingError, match=r"^cut\.edf: "):
        read_edf_recording(bad)


def test_not_an_edf(tmp_path):
    bad = tmp_path / "notes.edf"
    bad.write_bytes(b"hello" * 100)
    with pytest.raises(RecordingError, match=r"notes\.edf: not an EDF file"):
        read_edf_recording(bad)


def test_wrong_unit_names_the_channel():
    with pytest.raises(RecordingError, match=r"SaO2: physical dimension '' is not a voltage"):
        read_edf_recording(EDF_DIR / "edfize-testdata" / "simulated-01.edf",
                           aliases={"SaO2": "EMG L-TibAnt"})


def test_file_cut_mid_data_is_read_up_to_the_cut_and_says_so(tmp_path):
    src = EDF_DIR / "pyedflib-testdata" / "test_generator.edf"
    cut = tmp_path / "cut.edf"
    cut.write_bytes(src.read_bytes()[:1_500_000])
    rec = read_edf_recording(cut, aliases={"squarewave": "EMG L-TibAnt"})
    assert rec.duration_s == pytest.approx(331.0)
    assert any("truncated: 331 of 600 data records" in n for n in rec.notes)
    assert rec.read(0, 0, rec.channels[0].n_samples).size == 331 * 200
