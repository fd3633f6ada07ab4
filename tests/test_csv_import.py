"""CSV recordings: the documented layout, units, gaps and errors."""

from __future__ import annotations

import numpy as np
import pytest

from detector.analyze import analyze_recording
from detector.engine.config import DetectorConfig
from ingest.recordings.csvfile import read_csv_recording
from ingest.recordings.recording import RecordingError


def _write(path, rows, header="time_s,EMG L-Gastroc [mV],ACC L-Shank X [mg]", meta=("# nightcramp-csv/1",)):
    path.write_text("\n".join([*meta, header, *rows]) + "\n")
    return path


def test_units_and_rate_from_time_column(tmp_path):
    rows = [f"{i / 250:.4f},{0.001 * (i % 7)},{1000 + i % 3}" for i in range(1000)]
    rec = read_csv_recording(_write(tmp_path / "a.csv", rows))
    assert [c.label for c in rec.channels] == ["EMG L-Gastroc", "ACC L-Shank X"]
    assert rec.channels[0].fs == pytest.approx(250.0)
    assert rec.duration_s == pytest.approx(4.0)
    emg = rec.read(0, 0, 7)
    np.testing.assert_allclose(emg, [0, 1, 2, 3, 4, 5, 6], atol=1e-4)  # mV -> µV
    np.testing.assert_allclose(rec.read(1, 0, 3), [1.0, 1.001, 1.002], atol=1e-6)  # mg -> g


def test_start_and_fs_header(tmp_path):
    rows = [f"{i % 5}" for i in range(500)]
    rec = read_csv_recording(_write(tmp_path / "b.csv", rows, header="EMG R-TibAnt [uV]",
                                    meta=("# start: 2026-11-24T22:30:00Z", "# fs: 100")))
    assert rec.start.isoformat() == "2026-11-24T22:30:00+00:00"
    assert rec.channels[0].fs == 100.0


def test_empty_cells_are_gaps(tmp_path):
    fs = 500
    rng = np.random.default_rng(0)
    x = rng.normal(0, 4, fs * 120)
    cells = [f"{v:.3f}" for v in x]
    for i in range(fs * 50, fs * 60):
        cells[i] = ""
    path = _write(tmp_path / "gap.csv", cells, header="EMG L-Gastroc [uV]", meta=(f"# fs: {fs}",))
    rec = read_csv_recording(path)
    assert np.isnan(rec.read(0, fs * 55, fs * 55 + 1)).all()
    a = analyze_recording(rec, DetectorConfig())
    lost = a.of_kind("signal_lost")
    assert len(lost) == 1
    assert lost[0].start_s == pytest.approx(50.0, abs=0.1)
    assert lost[0].end_s == pytest.approx(60.0, abs=0.1)


@pytest.mark.parametrize("header, meta, rows, message", [
    ("EMG L-Gastroc", ("# fs: 100",), ["1", "2"], "column 'EMG L-Gastroc' has no unit"),
    ("EMG L-Gastroc [furlong]", ("# fs: 100",), ["1", "2"], "is not a voltage"),
    ("EMG L-Gastroc [uV]", (), ["1", "2"], "no sampling rate"),
    ("EMG L-Gastroc [uV]", ("# fs: fast",), ["1", "2"], "'# fs: fast' is not a number"),
    ("EMG L-Gastroc [uV]", ("# fs: 100",), [], "no data rows"),
    ("EMG L-Gastroc [uV]", ("# fs: 100", "# start: yesterday"), ["1"], "is not an ISO-8601 time"),
])
def test_errors_name_the_problem(tmp_path, header, meta, rows, message):
    path = _write(tmp_path / "bad.csv", rows, header=header, meta=meta)
    with pytest.raises(RecordingError, match=r"^bad\.csv: ") as exc:
        read_csv_recording(path)
    assert message in str(exc.value)
