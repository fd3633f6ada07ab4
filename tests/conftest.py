"""Shared fixtures: paths to the public test data and small simulated nights with truth."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from detector.analyze import analyze_recording
from detector.engine.config import DetectorConfig
from ingest.simulate import NightOptions, plan_night, render_recording

ROOT = Path(__file__).resolve().parent.parent


def _testdata() -> Path:
    """The public test files: $NIGHTCRAMP_TESTDATA, else ../shared/testdata beside the repository
    (as in CI), else beside the repository this one was cloned from (a scratch clone)."""
    if os.environ.get("NIGHTCRAMP_TESTDATA"):
        return Path(os.environ["NIGHTCRAMP_TESTDATA"]).resolve()
    here = ROOT.parent / "shared" / "testdata"
    if here.is_dir():
        return here.resolve()
    origin = subprocess.run(["git", "-C", str(ROOT), "config", "--get", "remote.origin.url"],
                            capture_output=True, text=True).stdout.strip()
    if origin and Path(origin).is_dir():
        return (Path(origin).resolve().parent / "shared" / "testdata").resolve()
    return here


TESTDATA = _testdata()
EDF_DIR = TESTDATA / "edf"
CLI = ROOT / ".venv" / "bin" / "nightcramp"


def busy_night(hours: float = 2.0, seed: int = 25, **kw) -> NightOptions:
    """A short night with the event rates of a restless one, so every kind occurs (seed 25: the
    first from 21 whose truth holds cramps, a PLM series, rollovers, a bed exit and awakenings
    after cramps; chosen by its truth, not by how the detector does on it)."""
    base = dict(hours=hours, seed=seed, cramps_per_night=10.0, awakenings_per_night=12.0,
                plm_series_per_night=8.0, rollovers_per_hour=3.0, fs_emg=500.0, fs_acc=50.0)
    base.update(kw)
    return NightOptions(**base)


@pytest.fixture(scope="session")
def testdata() -> Path:
    if not TESTDATA.is_dir():
        pytest.fail(f"shared test data not found at {TESTDATA}: clone beside shared/ or set "
                    "NIGHTCRAMP_TESTDATA")
    return TESTDATA


@pytest.fixture(scope="session")
def night_plan():
    return plan_night(busy_night())


@pytest.fixture(scope="session")
def night_rec(night_plan):
    return render_recording(night_plan)


@pytest.fixture(scope="session")
def night_analysis(night_rec):
    return analyze_recording(night_rec, DetectorConfig())


@pytest.fixture(scope="session")
def cli() -> str:
    if not CLI.exists():
        pytest.fail(f"{CLI} missing: run 'make install'")
    return str(CLI)


@pytest.fixture()
def env_no_debug(monkeypatch):
    monkeypatch.delenv("NIGHTCRAMP_DEBUG", raising=False)
    return dict(os.environ)


@pytest.fixture(scope="session")
def influxd(tmp_path_factory):
    """A real InfluxDB on a free loopback port for the whole session."""
    from dashboard.services import start_influxd

    server = start_influxd(tmp_path_factory.mktemp("influxd"))
    yield server
    server.stop()


@pytest.fixture()
def make_store(influxd, tmp_path, request):
    """``make_store(prefix)``: a store on the session's InfluxDB with a database of this test's
    own (spool in tmp_path, quick retries), closed after the test."""
    from detector.store.influx import InfluxStore, StoreSettings

    made = []

    def make(prefix: str = "t"):
        name = request.node.name.replace("[", "_").replace("]", "_").replace("-", "_")[:40]
        s = InfluxStore(StoreSettings(url=f"http://127.0.0.1:{influxd.port}", database=f"{prefix}_{name}",
                                      spool_dir=tmp_path / "spool", backoff_s=0.01, retries=1))
        s.setup()
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory):
    """A real Mosquitto on a free loopback port for the whole session."""
    from dashboard.services import start_mosquitto

    server = start_mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield server
    server.stop()


def grafana_metrics(prefix: str) -> list[str]:
    """Metric names starting with ``prefix`` that docs/grafana/nightcramp.json queries."""
    import json
    import re

    board = json.loads((ROOT / "docs" / "grafana" / "nightcramp.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    return sorted({n for e in exprs for n in re.findall(rf"\b{prefix}\w*", e)})
