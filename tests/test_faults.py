"""Faults during a live night, with real servers: nothing lost, nothing doubled.

Each test runs its own Mosquitto and InfluxDB so it can stop them: the detector killed with
SIGKILL and restarted, Mosquitto stopped and restarted mid-night, InfluxDB stopped for 60 s.
Every test requires the stored events to equal `nightcramp analyze` of the same night from a
file (so none lost or duplicated) and every sample sent to be stored exactly once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from dashboard.services import start_influxd, start_mosquitto
from detector.engine.state import read_state_index
from detector.service.settings import load_services
from detector.store.influx import InfluxStore
from tests.live_helpers import close_night_and_wait, start_detector, wait_for_line

NIGHT = ["--hours", "1", "--seed", "43", "--fs-emg", "250", "--fs-acc", "25", "--cramps-per-night", "24"]
SAMPLES = 3600 * (2 * 250 + 6 * 25)
INFLUX_OUTAGE_S = 60.0


@pytest.fixture(scope="module")
def offline(tmp_path_factory, cli):
    edf = tmp_path_factory.mktemp("offline") / "night.edf"
    subprocess.run([cli, "simulate", str(edf), *NIGHT], capture_output=True, check=True)
    out = json.loads(subprocess.run([cli, "analyze", str(edf), "--json"], capture_output=True, text=True,
                                    check=True).stdout)
    assert any(e["kind"] == "cramp" for e in out["events"])
    return out


class Rig:
    def __init__(self, tmp: Path, cli: str) -> None:
        self.tmp, self.cli = tmp, cli
        self.mosq = start_mosquitto(tmp / "mosquitto")
        self.influx = start_influxd(tmp / "influxdb")
        self.services = tmp / "services.toml"
        self.services.write_text(
            f"[mqtt]\nport = {self.mosq.port}\nclient_id = \"det-fault\"\n"
            f"[store]\nurl = \"http://127.0.0.1:{self.influx.port}\"\nspool_dir = \"{tmp / 'spool'}\"\n"
            "retries = 1\nbackoff_s = 0.05\ntimeout_s = 2.0\n"
            f"[service]\nnight_close_silence_s = 3600\ntick_s = 0.5\nstate_dir = \"{tmp / 'state'}\"\n"
            "checkpoint_s = 0.5\n"
            # Replayed at 900x: a few seconds of outage are most of the night, and frames the broker
            # redelivers after it may come behind newer ones; they may wait the whole night.
            "reorder_s = 3600\n")
        self.det: subprocess.Popen | None = None
        self.logs: list[Path] = []
        self.stores: list[InfluxStore] = []

    def start_detector(self) -> None:
        log = self.tmp / f"detector-{len(self.logs)}.log"
        self.logs.append(log)
        self.det = start_detector(self.cli, self.services, log)

    def publish(self, speed: float) -> subprocess.Popen:
        return subprocess.Popen([self.cli, "simulate", str(self.tmp / "truth"), "--live", *NIGHT, "--speed",
                                 str(speed), "--services", str(self.services)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def store(self) -> InfluxStore:
        """A client of this rig's InfluxDB, closed with the rig whatever the test's outcome."""
        s = InfluxStore(load_services(self.services).store)
        self.stores.append(s)
        return s

    def wait_night(self, timeout: float = 300) -> InfluxStore:
        """Close the night by command once the publisher is done, and wait until it is stored."""
        store = self.store()
        close_night_and_wait(self.cli, self.services, store, timeout=timeout)
        return store

    def stop(self) -> None:
        for st in self.stores:
            st.close()
        if self.det and self.det.poll() is None:
            self.det.send_signal(signal.SIGTERM)
            self.det.wait(30)
        self.mosq.stop()
        self.influx.stop()


@pytest.fixture()
def rig(tmp_path, cli):
    r = Rig(tmp_path, cli)
    yield r
    r.stop()


def _key(e):
    return (e["kind"], round(e["start_s"], 3), round(e["end_s"], 3), e.get("side") or "none")


def _check(store: InfluxStore, offline: dict, sent: dict) -> None:
    stored = store.events("sim-1", "2026-11-24")
    assert sorted(_key(e) for e in stored) == sorted(_key(e) for e in offline["events"])
    assert sent["samples"] == SAMPLES

    # The night's summary can reach InfluxDB before the last of its samples (after an outage the
    # spooled batches and the ones kept in memory are sent on later ticks): wait until every sample
    # is there, and a sample missing for good fails at the deadline with the count.
    def stored_samples() -> int:
        return store.count_samples("sim-1", "emg") + store.count_samples("sim-1", "acc")

    deadline = time.monotonic() + 300
    while stored_samples() < SAMPLES and time.monotonic() < deadline:
        time.sleep(0.5)
    assert stored_samples() == SAMPLES


def _wait_for_checkpointed_night(path: Path, timeout: float = 120) -> None:
    """Until the detector's checkpoint holds an open night (then a kill has something to resume)."""
    deadline = time.monotonic() + timeout
    while True:
        if path.exists() and read_state_index(path):
            return
        assert time.monotonic() < deadline, f"no open night checkpointed in {path} after {timeout} s"
        time.sleep(0.05)


def test_detector_killed_and_restarted(rig, offline):
    rig.start_detector()
    pub = rig.publish(speed=900)
    _wait_for_checkpointed_night(rig.tmp / "state" / "nights.state")
    rig.det.send_signal(signal.SIGKILL)  # mid-night, without warning
    rig.det.wait(10)
    rig.start_detector()
    out, err = pub.communicate(timeout=300)
    assert pub.returncode == 0, err
    store = rig.wait_night()
    assert "resumed 1 open night" in rig.logs[1].read_text()
    _check(store, offline, json.loads(out.strip().splitlines()[-1]))


def test_broker_restarted_mid_night(rig, offline):
    rig.start_detector()
    pub = rig.publish(speed=900)
    wait_for_line(rig.logs[0], "night opened for sim-1", proc=rig.det)  # frames are flowing
    port, data = rig.mosq.port, rig.tmp / "mosquitto"
    rig.mosq.stop(signal.SIGTERM)  # the broker goes down mid-night ...
    time.sleep(2.0)
    rig.mosq = start_mosquitto(data, port)  # ... and comes back with its persisted sessions
    out, err = pub.communicate(timeout=300)
    assert pub.returncode == 0, err
    store = rig.wait_night()
    assert "reconnected to MQTT" in rig.logs[0].read_text()
    _check(store, offline, json.loads(out.strip().splitlines()[-1]))


def test_influxdb_stopped_for_a_minute(rig, offline):
    rig.start_detector()
    port, data = rig.influx.port, rig.tmp / "influxdb"
    rig.influx.stop(signal.SIGTERM)
    down_at = time.monotonic()
    pub = rig.publish(speed=900)
    out, err = pub.communicate(timeout=300)
    assert pub.returncode == 0, err
    # The night closes while InfluxDB is still down: frames and the analysis go to the spool.
    r = subprocess.run([rig.cli, "night", "close", "--wearer", "sim-1", "--services", str(rig.services)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    wait_for_line(rig.logs[0], "night 2026-11-24 of sim-1 closed", proc=rig.det)
    time.sleep(max(0.0, INFLUX_OUTAGE_S - (time.monotonic() - down_at)))  # the outage lasts a minute
    assert any((rig.tmp / "spool").glob("*.lp.gz")), "frames wait in the spool while InfluxDB is down"
    assert rig.det.poll() is None, "the service keeps running"
    rig.influx = start_influxd(data, port)
    store = rig.store()
    deadline = time.monotonic() + 300
    while not store.nights("sim-1"):
        assert time.monotonic() < deadline, "the spooled night never reached InfluxDB"
        time.sleep(0.5)
    _check(store, offline, json.loads(out.strip().splitlines()[-1]))


@pytest.fixture()
def full_disk_rig(tmp_path, cli):
    """A rig whose spool lies on a 1-MB tmpfs: far less than the night's frames."""
    spool = tmp_path / "spool"
    spool.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(spool)],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.fail(f"a 1-MB tmpfs for the spool could not be mounted (the test needs root): {r.stderr}")
    rig = Rig(tmp_path, cli)
    try:
        yield rig
    finally:
        rig.stop()
        subprocess.run(["umount", "-l", str(spool)], check=False)


def test_disk_full_under_the_spool_while_influxdb_is_down(full_disk_rig, offline):
    """The detector stays up, stops acknowledging, says spool_full, leaves no temporary files,
    and once InfluxDB is back stores every sample exactly once and the whole night."""
    rig = full_disk_rig
    rig.start_detector()
    port, data = rig.influx.port, rig.tmp / "influxdb"
    rig.influx.stop(signal.SIGTERM)
    pub = rig.publish(speed=900)
    wait_for_line(rig.logs[0], "spool_full", proc=rig.det)
    status = json.loads((rig.tmp / "state" / "status.json").read_text())
    assert status["spool_full"] is True and status["stats"]["spool_full"] == 1
    assert not list((rig.tmp / "spool").glob("*.tmp"))
    out, err = pub.communicate(timeout=300)  # the broker keeps what the detector does not acknowledge
    assert pub.returncode == 0, err
    assert rig.det.poll() is None, "the service keeps running"
    rig.influx = start_influxd(data, port)
    wait_for_line(rig.logs[0], "spool has room again", proc=rig.det)
    store = rig.wait_night()
    _check(store, offline, json.loads(out.strip().splitlines()[-1]))
    assert json.loads((rig.tmp / "state" / "status.json").read_text())["spool_full"] is False


def test_a_second_detector_with_the_same_state_refuses_to_start(rig):
    rig.start_detector()
    r = subprocess.run([rig.cli, "detect", "--services", str(rig.services)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0
    assert f"another detector (pid {rig.det.pid})" in r.stderr and "state_dir" in r.stderr
    assert rig.det.poll() is None
    assert "subscribed to frames" in rig.logs[0].read_text()
