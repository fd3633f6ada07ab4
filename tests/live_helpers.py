"""Helpers for tests with a live detector service: wait for conditions, never for a guessed time."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from detector.store.influx import InfluxStore


def wait_for_line(path: Path, text: str, timeout: float = 120, proc: subprocess.Popen | None = None) -> None:
    """Block until ``text`` appears in the file ``path`` (a log), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while text not in (path.read_text() if path.exists() else ""):
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{proc.args[:2]} exited ({proc.returncode}) before {text!r}: {path.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{text!r} not seen in {path} after {timeout} s")
        time.sleep(0.05)


def start_subscriber(port: int, out: Path, *topics: str) -> subprocess.Popen:
    """Debian's mosquitto_sub on ``topics``, output to ``out``; returns once it receives messages
    (a probe is published until it shows), so nothing published afterwards can be missed."""
    # stdbuf: mosquitto_sub writes through stdio, fully buffered into a file; each line must show.
    args = ["stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-v",
            "-t", "nightcramp/v1/probe/events"]
    for t in topics:
        args += ["-t", t]
    fh = out.open("w")
    sub = subprocess.Popen(args, stdout=fh, text=True)
    fh.close()
    deadline = time.monotonic() + 60
    while "nightcramp/v1/probe/events" not in out.read_text():
        assert time.monotonic() < deadline and sub.poll() is None, "mosquitto_sub never subscribed"
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1",
                        "-t", "nightcramp/v1/probe/events", "-m", "{}"], check=True, timeout=30)
        time.sleep(0.1)
    return sub


def start_detector(cli: str, services: Path, log: Path) -> subprocess.Popen:
    """`nightcramp detect -v` with its log in ``log``; returns once its subscription is granted."""
    with log.open("w") as fh:
        det = subprocess.Popen([cli, "detect", "--services", str(services), "-v"], stderr=fh, stdout=fh)
    wait_for_line(log, "subscribed to frames", proc=det)
    return det


def close_night_and_wait(cli: str, services: Path, store: InfluxStore, wearer: str = "sim-1",
                         timeout: float = 300) -> None:
    """Close the night by command (ordered after every frame already acknowledged by the broker)
    and wait until it is stored: no silence timer to race on a busy machine."""
    r = subprocess.run([cli, "night", "close", "--wearer", wearer, "--services", str(services)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and f"close the night of {wearer}" in r.stdout, r.stderr
    deadline = time.monotonic() + timeout
    while not store.nights(wearer):
        assert time.monotonic() < deadline, f"the night of {wearer} was not stored in {timeout} s"
        time.sleep(0.2)


def virtual_night(hours: float = 0.25, seed: int = 8):
    """A short two-sensor night of virtual sensors: (sensors, [(sensor, stream, frame bytes,
    night time s)] in time order), 5-s frames, 250/25 Hz, no cramps."""
    from ingest.simulate import NightOptions, plan_night
    from ingest.simulate.live import VirtualSensor

    plan = plan_night(NightOptions(hours=hours, seed=seed, fs_emg=250.0, fs_acc=25.0, cramps_per_night=0.0))
    sensors = [VirtualSensor("w-1", "left-shank", "L", plan), VirtualSensor("w-1", "right-shank", "R", plan)]
    out = [(vs.sensor, stream, payload, t) for vs in sensors for stream, payload, t in vs.frames(5.0)]
    out.sort(key=lambda f: f[3])
    return sensors, out


def one_go_reference(sensors, frames, cfg):
    """The analysis of ``virtual_night`` frames fed to one WearerNight in one go (the reference a
    live run is compared with)."""
    from collections import Counter

    from detector.service.live import WearerNight
    from ingest.wire.frames import decode

    statuses = {vs.sensor: vs.status() for vs in sensors}
    whole = WearerNight.open("w-1", decode(frames[0][2]).first_time_ns, statuses, cfg)
    for sensor, stream, payload, _ in frames:
        whole.feed(sensor, stream, decode(payload), Counter(), 3600.0)
    return whole.finish()


def service_on(tmp_path, influxd, database: str, cfg, service_extra: str = ""):
    """A DetectorService on a real InfluxDB (its state dir locked, its database made), whose
    handler a test calls with frames as the broker would deliver them. Close it with
    ``svc._unlock_state_dir(); svc.store.close()``."""
    from detector.service.live import DetectorService
    from detector.service.settings import load_services

    services = tmp_path / "services.toml"
    services.write_text(f"[store]\nurl = \"http://127.0.0.1:{influxd.port}\"\ndatabase = \"{database}\"\n"
                        f"spool_dir = \"{tmp_path / 'spool'}\"\n"
                        f"[service]\nstate_dir = \"{tmp_path / 'state'}\"\n{service_extra}")
    svc = DetectorService(load_services(services), cfg)
    svc._lock_state_dir()
    svc.store.setup()
    return svc


async def until_answered(call, what: str, within_s: float = 120.0):
    """``await call()`` asked again while JetStream gives no answer, as the workers do when they
    set up (detector.service.workers): a fresh cluster's first replicated stream went unanswered
    for 30 s on a busy CI machine (a request to a meta leader that is being re-elected is
    dropped, not refused). Creating the same stream again is harmless."""
    import asyncio

    import nats.errors

    deadline = time.monotonic() + within_s
    while True:
        try:
            return await call()
        except nats.errors.TimeoutError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"not within {within_s:g} s: {what}") from None
            await asyncio.sleep(0.5)
