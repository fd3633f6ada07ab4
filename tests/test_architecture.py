"""Dependencies run one way: the signal-processing engine and the offline analysis need none of
storage, the live service, the advice rules, MQTT, HTTP or the web framework (checked in a fresh
interpreter, so what any test imported before cannot hide a dependency)."""

from __future__ import annotations

import subprocess
import sys

import pytest

FORBIDDEN = ("detector.store", "detector.service", "detector.advice", "dashboard", "paho", "httpx", "fastapi",
             "rule_engine", "uvicorn", "jinja2")


@pytest.mark.parametrize("module", ["detector.engine", "detector.analyze", "detector.cramp_evidence",
                                    "detector.sleep", "detector.plm", "detector.frontend", "detector.channel",
                                    "ingest.edf", "ingest.simulate"])
def test_the_engine_and_readers_import_no_service_storage_or_advice(module):
    probe = (f"import sys, {module}\n"
             f"bad = {FORBIDDEN!r}\n"
             "print([m for m in sys.modules\n"
             "       if any(m == f or m.startswith((f + '.', f + '_')) for f in bad)])")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-1000:]
    assert r.stdout.strip() == "[]", f"{module} pulls in {r.stdout.strip()}"
