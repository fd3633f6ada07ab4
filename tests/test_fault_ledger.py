"""bench/faults.py in reduced form: three of its faults through the real collector, broker,
detector and InfluxDB, with the ledger it prints (the full run is in docs/operations.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_fault_ledger_runs_and_loses_nothing(tmp_path):
    out = tmp_path / "faults.json"
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "faults.py"), "--only",
                        "ble-loss,two-detectors,clock-jump",
                        "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = json.loads(out.read_text())
    assert [row["fault"] for row in rows] == ["10% BLE packet loss", "two detectors started",
                                              "clock jump +1 h, -1 h, -1 h"]
    for row in rows:
        assert row["lost"] == row["duplicated"] == row["misplaced"] == 0 and row["sent"] > 0, row
    assert rows[0]["sent"] < rows[1]["sent"]  # the lossy radio delivered less, and all of it was stored
    assert "lost" in r.stdout and "moved" in r.stdout
