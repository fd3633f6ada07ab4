"""Damaged and odd recordings: each gives a one-line error naming the file and the problem, or
an analysis whose notes say what was odd — never a traceback or "internal error".

The mutants are made here from the public EDF/BDF files in ../shared/testdata/edf, a short
simulated night with leg channels (so the analysis runs, not only the header check) and CSVs:
truncations, header fields, counts, ranges and rates.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from detector.analyze import analyze_recording
from detector.engine.config import DetectorConfig
from ingest.recordings.open import open_recording
from ingest.recordings.recording import RecordingError
from ingest.simulate import NightOptions, plan_night, write_night

from .conftest import EDF_DIR  # ../shared/testdata/edf, found from a scratch clone as well

PUBLIC = ["edfio-testdata/short_psg.edf", "edfio-testdata/test_subsecond.bdf",
          "pyedflib-testdata/test_generator.bdf", "mne-testing-data-edf/test_reduced.edf",
          "edfize-testdata/simulated-01.edf", "wfdb-testdata/test_edfann.edf"]
CFG = DetectorConfig()


def _field(data: bytes, offset: int, width: int, text: str) -> bytes:
    return data[:offset] + text.ljust(width)[:width].encode("ascii") + data[offset + width:]


def _ns(data: bytes) -> int:
    return int(data[252:256].decode().strip())


_SIGNAL_FIELDS = [("label", 16), ("transducer", 80), ("dimension", 8), ("pmin", 8), ("pmax", 8),
                  ("dmin", 8), ("dmax", 8), ("prefilter", 80), ("spr", 8), ("reserved", 32)]


def _sig_place(data: bytes, which: str, k: int) -> tuple[int, int]:
    """(offset, width) of field ``which`` of signal ``k`` in the per-signal header."""
    ns = _ns(data)
    off = 256
    for name, w in _SIGNAL_FIELDS:
        if name == which:
            return off + k * w, w
        off += ns * w
    raise KeyError(which)


def _sig_field(data: bytes, which: str, k: int, text: str) -> bytes:
    """Replace field ``which`` of signal ``k`` in the per-signal header."""
    return _field(data, *_sig_place(data, which, k), text)


def _sig(data: bytes, which: str, k: int) -> str:
    off, w = _sig_place(data, which, k)
    return data[off:off + w].decode("ascii").strip()


def _header_bytes(data: bytes) -> int:
    return 256 + 256 * _ns(data)


EDF_MUTATIONS: dict[str, Callable[[bytes], bytes]] = {
    "empty": lambda d: b"",
    "cut-in-main-header": lambda d: d[:100],
    "cut-at-255": lambda d: d[:255],
    "cut-after-main-header": lambda d: d[:256],
    "cut-in-signal-header": lambda d: d[:_header_bytes(d) - 10],
    "header-only": lambda d: d[:_header_bytes(d)],
    "cut-mid-data": lambda d: d[:_header_bytes(d) + (len(d) - _header_bytes(d)) // 2 + 3],
    "last-byte-gone": lambda d: d[:-1],
    "version-garbage": lambda d: _field(d, 0, 8, "XYZ"),
    "startdate-invalid": lambda d: _field(d, 168, 8, "32.13.99"),
    "startdate-blank": lambda d: _field(d, 168, 8, ""),
    "startdate-2084": lambda d: _field(d, 168, 8, "31.12.84"),
    "startdate-1985": lambda d: _field(d, 168, 8, "01.01.85"),
    "startdate-leap-day": lambda d: _field(d, 168, 8, "29.02.24"),
    "starttime-invalid": lambda d: _field(d, 176, 8, "25.61.61"),
    "header-bytes-wrong": lambda d: _field(d, 184, 8, "12"),
    "records-minus-one": lambda d: _field(d, 236, 8, "-1"),
    "records-zero": lambda d: _field(d, 236, 8, "0"),
    "records-huge": lambda d: _field(d, 236, 8, "99999999"),
    "records-text": lambda d: _field(d, 236, 8, "many"),
    "duration-zero": lambda d: _field(d, 244, 8, "0"),
    "duration-negative": lambda d: _field(d, 244, 8, "-1"),
    "duration-text": lambda d: _field(d, 244, 8, "x"),
    "duration-tiny": lambda d: _field(d, 244, 8, "1e-8"),  # sampling rates of 1e8 Hz and more
    "duration-huge": lambda d: _field(d, 244, 8, "1e6"),  # rates far below 1 Hz
    "ns-zero": lambda d: _field(d, 252, 4, "0"),
    "ns-text": lambda d: _field(d, 252, 4, "ab"),
    "ns-more-than-there": lambda d: _field(d, 252, 4, str(_ns(d) + 3)),
    "reserved-edf+d-no-annotations": lambda d: _field(d, 192, 44, "EDF+D"),
    "label-emptied": lambda d: _sig_field(d, "label", 0, ""),
    "dimension-unknown": lambda d: _sig_field(d, "dimension", 0, "furlong"),
    "physical-range-empty": lambda d: _sig_field(d, "pmax", 0, _sig(d, "pmin", 0)),
    "digital-range-empty": lambda d: _sig_field(d, "dmax", 0, _sig(d, "dmin", 0)),
    "physical-range-text": lambda d: _sig_field(d, "pmin", 0, "low"),
    "digital-range-reversed": lambda d: _sig_field(_sig_field(d, "dmin", 0, _sig(d, "dmax", 0)), "dmax", 0,
                                                   _sig(d, "dmin", 0)),
    "spr-zero": lambda d: _sig_field(d, "spr", 0, "0"),
    "spr-negative": lambda d: _sig_field(d, "spr", 0, "-5"),
    "spr-huge": lambda d: _sig_field(d, "spr", 0, "99999999"),
    "data-all-max": lambda d: d[:_header_bytes(d)] + b"\xff" * (len(d) - _header_bytes(d)),
}



CSV_HEAD = "# nightcramp-csv/1\n# start: 2026-11-24T22:30:00Z\n"


def _csv_rows(n: int = 3000, fs: float = 500.0) -> str:
    rng = np.random.default_rng(3)
    t = np.arange(n) / fs
    emg = rng.normal(0, 3, n)
    return "\n".join(f"{a:.4f},{b:.3f},{0.01:.3f}" for a, b in zip(t, emg, strict=True))


CSV_COLS = "time_s,EMG L-Gastroc [uV],ACC L-Shank X [g]\n"
CSV_MUTANTS: dict[str, str] = {
    "csv-empty": "",
    "csv-only-comments": CSV_HEAD,
    "csv-no-rows": CSV_HEAD + CSV_COLS,
    "csv-text-cell": CSV_HEAD + CSV_COLS + "0.0,abc,0.01\n0.002,1,0.01\n",
    "csv-short-row": CSV_HEAD + CSV_COLS + "0.0,1\n0.002,1,0.01\n",
    "csv-time-backwards": CSV_HEAD + CSV_COLS + "0.0,1,0\n0.002,1,0\n0.001,1,0\n0.003,1,0\n",
    "csv-time-constant": CSV_HEAD + CSV_COLS + "0.0,1,0\n0.0,1,0\n0.0,1,0\n",
    "csv-fs-1e12": "# nightcramp-csv/1\n# fs: 1e12\nEMG L-Gastroc [uV]\n1\n2\n3\n",
    "csv-fs-2e8": "# nightcramp-csv/1\n# fs: 2e8\nEMG L-Gastroc [uV]\n" + "1\n" * 500,
    "csv-fs-zero": "# nightcramp-csv/1\n# fs: 0\nEMG L-Gastroc [uV]\n1\n2\n",
    "csv-fs-negative": "# nightcramp-csv/1\n# fs: -500\nEMG L-Gastroc [uV]\n1\n2\n",
    "csv-fs-text": "# nightcramp-csv/1\n# fs: fast\nEMG L-Gastroc [uV]\n1\n2\n",
    "csv-fs-nan": "# nightcramp-csv/1\n# fs: nan\nEMG L-Gastroc [uV]\n1\n2\n",
    "csv-fs-inf": "# nightcramp-csv/1\n# fs: inf\nEMG L-Gastroc [uV]\n1\n2\n",
    "csv-acc-5khz": "# nightcramp-csv/1\n# fs: 5000\nACC L-Shank X [g]\n" + "0.01\n" * 5000,
    "csv-emg-20hz": "# nightcramp-csv/1\n# fs: 20\nEMG L-Gastroc [uV]\n" + "1\n" * 400,
    "csv-no-unit": CSV_HEAD + "time_s,EMG L-Gastroc\n0,1\n0.002,2\n",
    "csv-unknown-unit": CSV_HEAD + "time_s,EMG L-Gastroc [furlong]\n0,1\n0.002,2\n",
    "csv-start-invalid": "# nightcramp-csv/1\n# start: yesterday\n" + CSV_COLS + _csv_rows(100),
    "csv-start-no-zone": "# nightcramp-csv/1\n# start: 2026-11-24T22:30:00\n" + CSV_COLS + _csv_rows(),
    "csv-no-start": "# nightcramp-csv/1\n" + CSV_COLS + _csv_rows(),
    "csv-bom": "\ufeff" + CSV_HEAD + CSV_COLS + _csv_rows(),
    "csv-huge-values": CSV_HEAD + CSV_COLS + "\n".join(f"{k / 500:.4f},1e30,1e30" for k in range(2000)),
    "csv-inf-values": CSV_HEAD + CSV_COLS + "\n".join(f"{k / 500:.4f},inf,-inf" for k in range(2000)),
    "csv-no-leg-channels": CSV_HEAD + "time_s,EEG Fp1 [uV]\n0,1\n0.002,2\n",
    "csv-binary": "\x00\x01\x02\xff" * 100,
    "csv-ok": CSV_HEAD + CSV_COLS + _csv_rows(),
}


@pytest.fixture(scope="module")
def sim_edf(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mut") / "night.edf"
    plan = plan_night(NightOptions(hours=0.2, seed=5, fs_emg=250.0, fs_acc=25.0, cramps_per_night=0.0))
    write_night(plan, path)
    return path


def _sources(sim_edf: Path) -> list[Path]:
    return [sim_edf] + [EDF_DIR / p for p in PUBLIC]


def _outcome(path: Path) -> str:
    """'error: <message>' or 'analysis: <notes>'; anything else fails the test."""
    try:
        rec = open_recording(path)
    except RecordingError as exc:
        msg = str(exc)
        assert "\n" not in msg, f"{path.name}: error on several lines: {msg!r}"
        assert msg.startswith(path.name + ":"), f"error does not name the file: {msg!r}"
        return f"error: {msg}"
    try:
        a = analyze_recording(rec, CFG)
    except RecordingError as exc:  # e.g. no leg channels in a PSG file
        msg = str(exc)
        assert "\n" not in msg and msg.startswith(path.name + ":"), msg
        return f"error: {msg}"
    return "analysis: " + " | ".join(a.notes)


def _mutants(sim_edf: Path, out: Path) -> list[Path]:
    paths = []
    for src in _sources(sim_edf):
        data = src.read_bytes()
        for name, mutate in EDF_MUTATIONS.items():
            try:
                m = mutate(data)
            except (ValueError, IndexError):
                continue  # the mutation does not apply to this file (no such signal field)
            p = out / f"{src.stem}-{name}{src.suffix}"
            p.write_bytes(m)
            paths.append(p)
    for name, text in CSV_MUTANTS.items():
        p = out / f"{name}.csv"
        p.write_text(text, encoding="utf-8")
        paths.append(p)
    return paths


def test_sixty_and_more_mutants_each_give_a_named_error_or_an_analysis(sim_edf, tmp_path):
    paths = _mutants(sim_edf, tmp_path)
    assert len(paths) >= 60
    outcomes = {p.name: _outcome(p) for p in paths}
    errors = [o for o in outcomes.values() if o.startswith("error")]
    assert errors and len(errors) < len(outcomes)
    # Things that must be refused, whatever the file.
    for name, o in outcomes.items():
        if any(k in name for k in ("empty", "cut-in-main", "cut-at-255", "cut-after-main", "version-garbage",
                                   "records-text", "duration-zero",
                                   "duration-negative", "duration-text", "ns-zero", "ns-text",
                                   "csv-fs-1e12", "csv-fs-2e8", "csv-fs-zero", "csv-fs-negative",
                                   "csv-fs-text", "csv-fs-nan", "csv-fs-inf", "csv-time-backwards",
                                   "csv-time-constant", "csv-acc-5khz", "csv-emg-20hz", "csv-binary")):
            assert o.startswith("error"), (name, o)
    tiny = outcomes["night-duration-tiny.edf"]
    assert tiny.startswith("error") and "Hz" in tiny, tiny
    assert "sampling rate" in outcomes["csv-fs-2e8.csv"]
    assert "does not increase" in outcomes["csv-time-backwards.csv"]
    # Valid dates stay valid.
    for d in ("startdate-2084", "startdate-1985", "startdate-leap-day"):
        assert outcomes[f"night-{d}.edf"].startswith("analysis"), outcomes[f"night-{d}.edf"]
    assert "start time unknown" in outcomes["csv-no-start.csv"]
    assert "read from the file's length" in outcomes["night-records-minus-one.edf"]
    assert "all are read" in outcomes["night-records-zero.edf"]
    assert "infinite values read as missing" in outcomes["csv-inf-values.csv"]
    assert outcomes["csv-ok.csv"].startswith("analysis")
    last = outcomes["night-last-byte-gone.edf"]
    assert "truncated" in last or last.startswith("error"), last


def test_a_directory_and_a_missing_file_are_told_apart(tmp_path):
    d = tmp_path / "night.edf"
    d.mkdir()
    with pytest.raises(RecordingError, match=r"night\.edf: is a directory"):
        open_recording(d)
    with pytest.raises(RecordingError, match=r"gone\.edf: no such file"):
        open_recording(tmp_path / "gone.edf")


def test_the_command_line_prints_one_line_and_never_internal_error(sim_edf, tmp_path, cli):
    """A sample of the mutants through ``nightcramp analyze``: one line on stderr when refused."""
    paths = _mutants(sim_edf, tmp_path)
    pick = [p for p in paths if p.name.startswith("night-") and any(
        k in p.name for k in ("duration-tiny", "spr-huge", "ns-more", "cut-mid", "startdate-invalid"))]
    pick += [tmp_path / "csv-fs-1e12.csv", tmp_path / "csv-binary.csv"]
    for p in pick:
        r = subprocess.run([cli, "analyze", str(p)], capture_output=True, text=True, timeout=120)
        assert "internal error" not in r.stderr and "Traceback" not in r.stderr, (p.name, r.stderr)
        if r.returncode:
            assert len(r.stderr.strip().splitlines()) == 1, (p.name, r.stderr)
            assert p.name in r.stderr

