"""Dependencies run one way: the signal-processing engine and the offline analysis need none of
storage, the live service, the advice rules, MQTT, HTTP or the web framework (checked in a fresh
interpreter, so what any test imported before cannot hide a dependency)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FORBIDDEN = ("detector.store", "detector.service", "detector.advice", "dashboard", "paho", "httpx", "fastapi",
             "rule_engine", "uvicorn", "jinja2")


ENGINE_MODULES = sorted(f"detector.engine.{p.stem}" for p in
                        (Path(__file__).resolve().parent.parent / "detector" / "engine").glob("*.py")
                        if p.stem != "__init__")


@pytest.mark.parametrize("module", ["detector.engine", *ENGINE_MODULES, "detector.analyze",
                                    "ingest.recordings.open", "ingest.simulate"])
def test_the_engine_and_readers_import_no_service_storage_or_advice(module):
    probe = (f"import sys, {module}\n"
             f"bad = {FORBIDDEN!r}\n"
             "print([m for m in sys.modules\n"
             "       if any(m == f or m.startswith((f + '.', f + '_')) for f in bad)])")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-1000:]
    assert r.stdout.strip() == "[]", f"{module} pulls in {r.stdout.strip()}"


def test_only_the_wire_contract_spells_topics_or_reads_frame_headers():
    """Outside ``ingest/wire`` no code (docstrings aside) spells the topic root or reads frame bytes
    by offset: topics come from ``ingest.wire.topics``, headers from ``read_header``."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    offenders = []
    for part in ("ingest", "detector", "dashboard", "bench"):
        for p in (root / part).rglob("*.py"):
            if "wire" in p.relative_to(root).parts:
                continue
            tree = ast.parse(p.read_text())
            docs = {id(n.body[0].value) for n in ast.walk(tree)
                    if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                    and n.body and isinstance(n.body[0], ast.Expr)}
            for n in ast.walk(tree):
                if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs \
                        and "nightcramp/v1" in n.value:
                    offenders.append(f"{p.relative_to(root)}:{n.lineno}: topic spelled out")
                if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "from_bytes" and n.args \
                        and isinstance(n.args[0], ast.Subscript) \
                        and p.relative_to(root).as_posix() != "ingest/ble/replay.py":
                    offenders.append(f"{p.relative_to(root)}:{n.lineno}: frame bytes read by offset")
    assert not offenders, "\n".join(offenders)
