"""The fault ledger: a sensor's real BLE packets through the collector (its durable outbox), a
real Mosquitto, the detector service and a real InfluxDB, once per fault; per fault the samples
sent, stored, lost and stored twice.

    .venv/bin/python bench/faults.py [--outage-s 60] [--only broker-kill,disk-full]

Sent is what the collector received from the radio (the capture, less the packets a lossy radio
dropped); stored is what InfluxDB holds for the sensor afterwards; moved counts stored frames
further than ``service.clock_tolerance_s`` (30 s) from the time their sample counter gives (a
clock step let through), off is the largest such distance (s; a replay faster than real time
spreads frame times by design). Goal: 0 lost, 0 duplicated and 0 moved in every row. The same
faults are tested one by one in tests/test_faults.py and
tests/test_collector.py.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard.services import start_influxd, start_mosquitto  # noqa: E402
from detector.service.settings import load_services  # noqa: E402
from detector.store.influx import InfluxStore  # noqa: E402
from ingest.ble.profile import decode_v1  # noqa: E402
from ingest.ble.replay import kept_packets, read_capture  # noqa: E402

CLI = str(ROOT / ".venv" / "bin" / "nightcramp")
CAPTURE = ROOT / "tests" / "data" / "ble-capture-left-shank.txt"
CAPTURE_S = 30.0  # sensor time the capture spans


def expected(loss: float = 0.0) -> int:
    cap = read_capture(CAPTURE)
    return sum(decode_v1(p).raw.size for s in ("emg", "acc") for p in kept_packets(cap.get(s, []), loss, s))


class Rig:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.mosq = start_mosquitto(tmp / "mosquitto")
        self.influx = start_influxd(tmp / "influxdb")
        self.services = tmp / "services.toml"
        self.services.write_text(
            f"[mqtt]\nport = {self.mosq.port}\nclient_id = \"det-{tmp.name}\"\n"
            f"[store]\nurl = \"http://127.0.0.1:{self.influx.port}\"\nspool_dir = \"{tmp / 'spool'}\"\n"
            "retries = 1\nbackoff_s = 0.05\ntimeout_s = 2.0\n"
            f"[service]\nstate_dir = \"{tmp / 'state'}\"\ncheckpoint_s = 0.5\ntick_s = 0.2\n"
            f"night_close_silence_s = 3600\nreorder_s = 3600\n[stack]\ndata_dir = \"{tmp}\"\n")
        self.env: dict[str, str] | None = None  # the environment of the collector and detectors
        self.dets: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        self.cleanups: list[Callable[[], object]] = []

    def detector(self, wait: bool = True) -> subprocess.Popen:
        log = self.tmp / f"detector-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("w") as fh:
            p = subprocess.Popen([CLI, "detect", "-v", "--services", str(self.services)], stdout=fh,
                                 stderr=fh, env=self.env)
        self.dets.append(p)
        if wait:
            self.wait_log(log, "subscribed to frames", p)
        return p

    def collector(self, speed: float, loss: float = 0.0) -> subprocess.Popen:
        return subprocess.Popen([CLI, "collect", "--wearer", "w-1", "--sensor", "left-shank", "--address",
                                 "AA:BB:CC:DD:EE:01", "--side", "L", "--replay", str(CAPTURE), "--speed",
                                 str(speed), "--replay-loss", str(loss), "--seconds",
                                 str(CAPTURE_S / speed + 1.5), "--resend-s", "3", "--drain-s", "300",
                                 "--services", str(self.services)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env)

    @staticmethod
    def wait_log(log: Path, text: str, proc: subprocess.Popen | None = None, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while text not in (log.read_text() if log.exists() else ""):
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"stopped before {text!r}: {log.read_text()[-400:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not in {log} after {timeout:g} s")
            time.sleep(0.05)

    def stored(self) -> int:
        st = InfluxStore(load_services(self.services).store)
        try:
            return st.count_samples("w-1", "emg") + st.count_samples("w-1", "acc")
        finally:
            st.close()

    def misplaced(self) -> tuple[int, float]:
        """(stored frames further than ``service.clock_tolerance_s`` from the time their sample
        counter gives, the largest distance in s), from the stream's median time base: frames a
        stepping clock moved. A replay faster than real time spreads its frames' times too."""
        cfg = load_services(self.services)
        st = InfluxStore(cfg.store)
        try:
            now = time.time_ns()
            bad, worst = 0, 0.0
            for stream in ("emg", "acc"):
                base = [t - first * 1e9 / fs for _s, first, t, fs, *_ in
                        st.raw_frames("w-1", stream, now - 86400 * 10**9, now + 86400 * 10**9,
                                      chunk_ns=2 * 86400 * 10**9)]
                if base:
                    mid = sorted(base)[len(base) // 2]
                    off = [abs(b - mid) / 1e9 for b in base]
                    bad += sum(o > cfg.service.clock_tolerance_s for o in off)
                    worst = max(worst, *off)
            return bad, round(worst, 2)
        finally:
            st.close()

    def stop(self) -> None:
        for d in self.dets:
            if d.poll() is None:
                d.send_signal(signal.SIGTERM)
                d.wait(30)
        self.mosq.stop()
        self.influx.stop()
        for undo in self.cleanups:
            undo()
        self.cleanups.clear()


def _finish(rig: Rig, col: subprocess.Popen) -> dict:
    out, err = col.communicate(timeout=600)
    if col.returncode:
        raise RuntimeError(f"collector failed: {err[-400:]}")
    return json.loads(out.strip().splitlines()[-1])


def broker_kill(rig: Rig, args) -> dict:
    rig.detector()
    col = rig.collector(speed=1.0)
    for _ in range(3):
        time.sleep(6.0)  # while frames flow
        port = rig.mosq.port
        rig.mosq.stop(signal.SIGKILL)
        rig.mosq = start_mosquitto(rig.tmp / "mosquitto", port)
    return _finish(rig, col)


def influx_down(rig: Rig, args) -> dict:
    rig.detector()
    port = rig.influx.port
    rig.influx.stop()
    col = rig.collector(speed=CAPTURE_S / (args.outage_s + 10))
    time.sleep(args.outage_s)
    rig.influx = start_influxd(rig.tmp / "influxdb", port)
    return _finish(rig, col)


def detector_kill(rig: Rig, args) -> dict:
    det = rig.detector()
    col = rig.collector(speed=1.0)
    rig.wait_log(rig.logs[0], "night opened", det)
    time.sleep(5.0)
    det.send_signal(signal.SIGKILL)
    det.wait(10)
    rig.detector()
    return _finish(rig, col)


def collector_kill(rig: Rig, args) -> dict:
    """Killed with frames in its outbox the detector has not confirmed (the detector is away),
    then started again without a radio: what it had accepted is sent and stored."""
    det = rig.detector()  # its session exists: the broker keeps its frames while it is away
    det.send_signal(signal.SIGTERM)
    det.wait(30)
    col = rig.collector(speed=4.0)
    time.sleep(CAPTURE_S / 4.0 + 3.0)  # the capture is in, the frames wait for confirmation
    col.send_signal(signal.SIGKILL)
    col.wait(10)
    rig.detector()
    again = subprocess.Popen([CLI, "collect", "--wearer", "w-1", "--sensor", "left-shank", "--address",
                              "AA:BB:CC:DD:EE:01", "--side", "L", "--seconds", "0.01", "--resend-s", "3",
                              "--drain-s", "300", "--services", str(rig.services)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return _finish(rig, again)


def disk_full(rig: Rig, args) -> dict:
    spool = rig.tmp / "spool"
    spool.mkdir(exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(spool)], capture_output=True,
                       text=True)
    if r.returncode:
        raise RuntimeError(f"needs root to mount a small tmpfs: {r.stderr.strip()}")
    rig.cleanups.append(lambda: subprocess.run(["umount", "-l", str(spool)], check=False))
    rig.detector()
    port = rig.influx.port
    rig.influx.stop()
    col = rig.collector(speed=1.0)
    rig.wait_log(rig.logs[0], "spool_full", rig.dets[0])
    time.sleep(5.0)
    rig.influx = start_influxd(rig.tmp / "influxdb", port)
    return _finish(rig, col)


def late_flush(rig: Rig, args) -> dict:
    rig.detector()
    port = rig.mosq.port
    rig.mosq.stop()  # the collector records into its outbox with no broker at all
    col = rig.collector(speed=2.0)
    time.sleep(CAPTURE_S / 2.0 + 2.0)
    rig.mosq = start_mosquitto(rig.tmp / "mosquitto", port)
    return _finish(rig, col)


def two_detectors(rig: Rig, args) -> dict:
    rig.detector()
    second = rig.detector(wait=False)
    second.wait(60)
    if second.returncode == 0 or "another detector" not in rig.logs[1].read_text():
        raise RuntimeError("the second detector did not refuse to start")
    return _finish(rig, rig.collector(speed=2.0))


def clock_jump(rig: Rig, args) -> dict:
    """The machine's wall clock steps +1 h, back, then -1 h while a night is recorded (as an NTP
    correction steps it), for the collector and the detector alike; their monotonic clocks run on."""
    step = rig.tmp / "clock-offset-s"
    step.write_text("0")
    rig.env = os.environ | {"PYTHONPATH": str(ROOT / "bench" / "clockstep"),
                            "NIGHTCRAMP_CLOCK_STEP_FILE": str(step)}
    rig.detector()
    col = rig.collector(speed=1.0)
    for offset in (3600, 0, -3600):
        time.sleep(CAPTURE_S / 4)
        step.write_text(str(offset))
    return _finish(rig, col)


def ble_loss(rig: Rig, args) -> dict:
    rig.detector()
    return _finish(rig, rig.collector(speed=2.0, loss=0.1)) | {"_loss": 0.1}


FAULTS: dict[str, tuple[str, Callable]] = {
    "broker-kill": ("broker SIGKILL x3", broker_kill),
    "influx-down": ("InfluxDB down {outage_s:g} s", influx_down),
    "detector-kill": ("detector SIGKILL", detector_kill),
    "collector-kill": ("collector SIGKILL", collector_kill),
    "disk-full": ("disk full under the spool", disk_full),
    "late-flush": ("late outbox flush", late_flush),
    "two-detectors": ("two detectors started", two_detectors),
    "clock-jump": ("clock jump +1 h, -1 h, -1 h", clock_jump),
    "ble-loss": ("10% BLE packet loss", ble_loss),
}
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--outage-s", type=float, default=60.0)
    ap.add_argument("--only", help="comma-separated fault names: " + ", ".join(FAULTS))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "faults.json")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(FAULTS)
    rows = []
    print(f"{'fault':30} {'sent':>8} {'stored':>8} {'lost':>6} {'twice':>6} {'moved':>6} "
          f"{'off s':>6} {'wall s':>7}  collector")
    for name in names:
        label, fn = FAULTS[name]
        with tempfile.TemporaryDirectory(prefix=f"faults-{name}-") as d:
            rig = Rig(Path(d))
            t0 = time.monotonic()
            try:
                out = fn(rig, args)
                time.sleep(1.0)  # the detector's last checkpoint and write (collector saw it confirmed)
                stored, (misplaced, off_s) = rig.stored(), rig.misplaced()
            finally:
                rig.stop()
            sent = expected(out.pop("_loss", 0.0))
            row = {"fault": label.format(outage_s=args.outage_s), "sent": sent, "stored": stored,
                   "lost": max(0, sent - stored), "duplicated": max(0, stored - sent), "misplaced": misplaced,
                   "max_off_s": off_s,
                   "wall_s": round(time.monotonic() - t0, 1), "collector": out}
            rows.append(row)
            print(f"{row['fault']:30} {sent:8} {stored:8} {row['lost']:6} {row['duplicated']:6} "
                  f"{misplaced:6} {off_s:6} "
                  f"{row['wall_s']:7}  connects {out.get('broker_connects')}, resent {out.get('resent')}, "
                  f"waiting {out.get('waiting')}", flush=True)
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    print(f"written {out}")
    return 0 if all(r["lost"] == r["duplicated"] == r["misplaced"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
